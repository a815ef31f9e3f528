#![no_main]
//! Any bytes: decode must return a value or an error, and a decoded message must re-encode to
//! something that decodes to the same message.
use crosscast_wire::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let again = msg.encode_to_vec();
        assert_eq!(Message::decode(&again).as_ref(), Ok(&msg));
    }
});

#![no_main]
//! Any bytes as the body of an `Input` message (type 13): decode must return a value or an
//! error; a decoded input must pass `Input::validate` (what the host checks before sending) and
//! re-encode to bytes that decode to the same input.
use crosscast_wire::{Message, PROTOCOL_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    // Framed here so that every input reaches the input decoder rather than the header checks.
    let mut data = Vec::with_capacity(body.len() + 6);
    data.extend_from_slice(&((body.len() + 2) as u32).to_le_bytes());
    data.extend_from_slice(&[PROTOCOL_VERSION, 13]);
    data.extend_from_slice(body);
    match Message::decode(&data) {
        Ok(Message::Input(input)) => {
            assert_eq!(input.validate(), Ok(()));
            let again = Message::Input(input).encode_to_vec();
            assert_eq!(again, data, "the encoding is canonical");
        }
        Ok(other) => panic!("type 13 decoded as {other:?}"),
        Err(_) => {}
    }
});

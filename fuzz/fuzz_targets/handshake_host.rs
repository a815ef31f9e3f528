#![no_main]
//! Feeds a sequence of length-delimited inputs to the host handshake; it must never panic and
//! never reach "established" without a valid proof (the fuzzer does not know the key).
use std::time::{Duration, Instant};

use crosscast_wire::{HostHandshake, PeerCred, UidPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let peer = PeerCred {
        pid: 1,
        uid: 0,
        gid: 0,
    };
    let Ok(mut h) = HostHandshake::new(
        &[0x5a; 32],
        [7; 32],
        1,
        &peer,
        &UidPolicy::only(0),
        now,
        Duration::from_secs(2),
    ) else {
        return;
    };
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (msg, tail) = tail.split_at(n);
        rest = tail;
        let _ = h.handle(msg, now);
        while h.poll_transmit().is_some() {}
    }
    assert!(h.outcome().is_none(), "authenticated without the key");
});

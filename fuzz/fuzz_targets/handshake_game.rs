#![no_main]
//! Feeds a sequence of length-delimited inputs to the game handshake; it must never panic and
//! never accept a host that cannot prove the key.
use std::time::{Duration, Instant};

use crosscast_wire::GameHandshake;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut g = GameHandshake::new(&[0x5a; 32], [3; 16], now, Duration::from_secs(2));
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (msg, tail) = tail.split_at(n);
        rest = tail;
        let _ = g.handle(msg, now);
        while g.poll_transmit().is_some() {}
    }
    assert!(g.outcome().is_none(), "accepted a host without the key");
});

//! The game's PulseAudio server: frame parsing and command decoding exactly as `read_loop`
//! runs them, and playback streams (format conversion, resampling, buffer bounds, flow
//! control) with arbitrary specs, buffer attributes and operation sequences.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the half, so one corpus covers both.
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        crosscast_pulse::fuzz::frames(rest);
    } else {
        crosscast_pulse::fuzz::stream(rest);
    }
});

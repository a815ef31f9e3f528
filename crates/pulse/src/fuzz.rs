//! Entry points for `fuzz/fuzz_targets/pulse.rs`; not an API.

use crate::client::fill_attr;
use crate::frame::{FrameDecoder, HEADER};
use crate::stream::{Converter, Delays, Format, Playback, CAP_SLACK};
use pulseaudio::protocol as pa;

/// Feeds `data` to the server's frame decoder as one connection's byte stream, until it
/// ends or the decoder refuses it (which would disconnect a real client).
///
/// The first byte picks the mode. Bit 0 starts past auth, at the protocol version in the
/// next byte, so that commands are reached without the fuzzer first finding a valid auth.
/// Bit 1 frames the rest here: each frame is a command byte, a u16 (LE) length and that
/// many bytes of parameters, sent on the control channel with a valid header and the
/// command's tagstruct prefix (command, sequence number), so mutations land in each
/// command's parameter decoder instead of mostly breaking headers and tags. Without bit 1
/// the bytes are the raw stream.
pub fn frames(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut dec = if mode & 1 == 1 {
        let Some((&v, r)) = rest.split_first() else {
            return;
        };
        rest = r;
        FrameDecoder::authed(1 << 16, u16::from(v))
    } else {
        FrameDecoder::new(1 << 16)
    };
    let mut framed = Vec::new();
    if mode & 2 == 2 {
        let mut seq = 0u32;
        while let Some((&[cmd, lo, hi], r)) = rest.split_first_chunk::<3>() {
            let len = usize::from(u16::from_le_bytes([lo, hi])).min(r.len());
            // Tagstruct: 'L' and a big-endian u32, twice (command tag, sequence number).
            let mut prefix = [0u8; 10];
            prefix[0] = b'L';
            prefix[1..5].copy_from_slice(&u32::from(cmd).to_be_bytes());
            prefix[5] = b'L';
            prefix[6..].copy_from_slice(&seq.to_be_bytes());
            seq += 1;
            for w in [(prefix.len() + len) as u32, u32::MAX, 0, 0, 0] {
                framed.extend_from_slice(&w.to_be_bytes());
            }
            framed.extend_from_slice(&prefix);
            framed.extend_from_slice(&r[..len]);
            rest = &r[len..];
        }
        rest = &framed;
    }
    while rest.len() >= HEADER {
        let (hdr, r) = rest.split_at(HEADER);
        let Ok(hdr) = <&[u8; HEADER]>::try_from(hdr) else {
            return;
        };
        let Ok(h) = dec.header(hdr) else {
            return;
        };
        let Some(payload) = r.get(..h.len as usize) else {
            return;
        };
        rest = &r[h.len as usize..];
        if dec.frame(&h, payload).is_err() {
            return;
        }
    }
    let _ = dec.version();
}

/// Runs one playback stream with a spec and buffer attributes from `data` (as the server
/// accepts them) through writes, mixes, flushes, drains, corks and triggers chosen by the
/// rest of `data`, checking the buffer bound and the counters as it goes.
pub fn stream(data: &[u8]) {
    let Some((head, mut ops)) = data.split_first_chunk::<23>() else {
        return;
    };
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let format =
        [Format::U8, Format::S16Le, Format::S32Le, Format::F32Le][usize::from(head[0] % 4)];
    let channels = 1 + usize::from(head[1] % 2);
    // The server refuses other rates before a converter exists.
    let rate = 8_000 + word(2) % (192_000 - 8_000 + 1);
    let a = pa::stream::BufferAttr {
        max_length: word(6),
        target_length: word(10),
        pre_buffering: word(14),
        minimum_request_length: word(18),
        fragment_size: 0,
    };
    let conv = Converter::new(format, channels, rate);
    let frame = conv.frame_bytes() as u32;
    let attr = fill_attr(&a, frame, rate, &crate::Limits::default());
    assert!(
        attr.max_length >= frame && attr.max_length % frame == 0,
        "{attr:?}"
    );
    assert!(attr.target_length <= attr.max_length, "{attr:?}");
    assert!(attr.min_request <= attr.target_length && attr.prebuf <= attr.target_length);
    let mut p = Playback::new(conv, attr, head[22] & 1 == 1);
    let mut events = Vec::new();
    let mut delays = Delays::default();
    let mut out = Vec::new();
    let mut now = 0u64;
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        now += 1_000_000;
        match op % 10 {
            0..=3 => {
                let n = (usize::from(op) * 37).min(ops.len());
                let (chunk, rest) = ops.split_at(n);
                ops = rest;
                p.write(chunk, now, &mut events);
            }
            4 => {
                let frames = usize::from(ops.first().copied().unwrap_or(0)) * 16;
                ops = ops.get(1..).unwrap_or_default();
                out.clear();
                out.resize(2 * frames, 0.0);
                p.mix_into(&mut out, Some(now), &mut delays);
                for s in &out {
                    // Decoded input is clamped to [-1, 1]; sinc ringing stays well inside 2.
                    assert!(s.is_finite() && s.abs() < 2.0, "mixed sample {s}");
                }
                p.after_mix(&mut events);
            }
            5 => p.flush(&mut events),
            6 => {
                let _ = p.drain(u32::from(op), &mut events);
            }
            7 => p.corked = !p.corked,
            8 => p.trigger(&mut events),
            _ => p.prebuf(),
        }
        assert!(p.read_index() <= p.write_index);
        assert!(p.buffered_frames() <= p.cap_frames() + CAP_SLACK);
        events.clear();
    }
}

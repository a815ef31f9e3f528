//! What every transport carries: a 32-byte header and a payload, plus the clock and the
//! checksum that turn them into a delay.

use rustix::time::{clock_gettime, ClockId};

/// Bytes of [`Header`] on the wire.
pub(crate) const HEADER_LEN: usize = 32;
const MAGIC: u32 = u32::from_le_bytes(*b"CCB1");

/// `CLOCK_MONOTONIC` in nanoseconds: both processes read the same clock, so a timestamp taken
/// in the sender can be subtracted from one taken in the receiver.
pub(crate) fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    // The monotonic clock is never negative.
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// Checksum of a payload: XXH3-64, which runs at memory speed, so validating even a 10 MB
/// payload costs about as much as reading it once. Every transport pays the same for it.
pub(crate) fn checksum(payload: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(payload)
}

/// The message header, little-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Message number, warm-up included, starting at 0.
    pub(crate) seq: u32,
    /// Payload length in bytes (the header not included).
    pub(crate) len: u64,
    /// Sender's `CLOCK_MONOTONIC` just before sending.
    pub(crate) sent_ns: u64,
    /// [`checksum`] of the payload.
    pub(crate) sum: u64,
}

impl Header {
    /// The header's wire form.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.sum.to_le_bytes());
        b
    }

    /// Reads a header, refusing anything without the magic.
    pub(crate) fn decode(b: &[u8]) -> Result<Header, String> {
        let word = |r: std::ops::Range<usize>| -> Result<&[u8], String> {
            b.get(r)
                .ok_or_else(|| format!("short header: {} bytes", b.len()))
        };
        let u32_at = |r| -> Result<u32, String> {
            let mut a = [0u8; 4];
            a.copy_from_slice(word(r)?);
            Ok(u32::from_le_bytes(a))
        };
        let u64_at = |r| -> Result<u64, String> {
            let mut a = [0u8; 8];
            a.copy_from_slice(word(r)?);
            Ok(u64::from_le_bytes(a))
        };
        if u32_at(0..4)? != MAGIC {
            return Err("bad header magic: the stream lost its framing".into());
        }
        Ok(Header {
            seq: u32_at(4..8)?,
            len: u64_at(8..16)?,
            sent_ns: u64_at(16..24)?,
            sum: u64_at(24..32)?,
        })
    }

    /// Checks a received header and payload against what the receiver expects: the right
    /// message, the right length, and a checksum over every payload byte.
    pub(crate) fn validate(&self, expect_seq: u32, payload: &[u8]) -> Result<(), String> {
        if self.seq != expect_seq {
            return Err(format!(
                "message {} arrived where {expect_seq} was expected",
                self.seq
            ));
        }
        if self.len != payload.len() as u64 {
            return Err(format!(
                "message {} says {} bytes but {} arrived",
                self.seq,
                self.len,
                payload.len()
            ));
        }
        if checksum(payload) != self.sum {
            return Err(format!("message {}: payload checksum mismatch", self.seq));
        }
        Ok(())
    }
}

/// A payload of `size` pseudo-random bytes, so no transport can compress or dedupe it.
pub(crate) fn template(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        // xorshift64*: cheap and good enough to defeat any pattern-based shortcut.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (size - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    out
}

/// Makes `payload` this message's object: stamps `seq` into its first and last bytes, so a stale
/// buffer can never pass for a new one, and returns its checksum.
pub(crate) fn stamp(payload: &mut [u8], seq: u32) -> u64 {
    let s = seq.to_le_bytes();
    let n = payload.len();
    let head = n.min(4);
    payload[..head].copy_from_slice(&s[..head]);
    if n >= 8 {
        payload[n - 4..].copy_from_slice(&s);
    }
    checksum(payload)
}

/// The checksum and the shared memory of message `seq`, which a zero-copy sender produced in
/// place before sending it.
pub(crate) fn take_prepared<T>(
    prepared: &mut Option<(u32, u64, T)>,
    seq: u32,
) -> Result<(u64, T), String> {
    match prepared.take() {
        Some((s, sum, at)) if s == seq => Ok((sum, at)),
        _ => Err(format!("message {seq} was not prepared")),
    }
}

/// A copying sender's object in its own memory, produced before it is sent.
pub(crate) struct Outgoing {
    /// The object's bytes, what the transport copies.
    pub(crate) bytes: Vec<u8>,
    /// The message they were last [`prepare`](Self::prepare)d for, and its checksum.
    prepared: Option<(u32, u64)>,
}

impl Outgoing {
    /// A `size`-byte object, not prepared yet.
    pub(crate) fn new(size: usize) -> Outgoing {
        Outgoing {
            bytes: template(size),
            prepared: None,
        }
    }

    /// Makes the bytes message `seq`'s object.
    pub(crate) fn prepare(&mut self, seq: u32) {
        self.prepared = Some((seq, stamp(&mut self.bytes, seq)));
    }

    /// The header of message `seq`, timestamped now: the transport's cost starts here.
    pub(crate) fn header(&self, seq: u32) -> Result<[u8; HEADER_LEN], String> {
        match self.prepared {
            Some((s, sum)) if s == seq => Ok(Header {
                seq,
                len: self.bytes.len() as u64,
                sent_ns: now_ns(),
                sum,
            }
            .encode()),
            _ => Err(format!("message {seq} was not prepared")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        let h = Header {
            seq: 7,
            len: 3072,
            sent_ns: 123_456_789,
            sum: 0xDEAD_BEEF,
        };
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        assert!(Header::decode(&[0u8; HEADER_LEN]).is_err());
        assert!(Header::decode(&h.encode()[..10]).is_err());
    }

    #[test]
    fn validate_catches_every_kind_of_damage() {
        let mut p = template(4096);
        let sum = stamp(&mut p, 3);
        let h = Header {
            seq: 3,
            len: 4096,
            sent_ns: 1,
            sum,
        };
        assert!(h.validate(3, &p).is_ok());
        assert!(h.validate(4, &p).is_err());
        assert!(h.validate(3, &p[..4095]).is_err());
        // One flipped bit in the middle: the checksum covers the whole payload.
        p[2048] ^= 1;
        assert!(h.validate(3, &p).is_err());
    }

    #[test]
    fn only_the_prepared_message_can_be_sent() {
        let mut p = Some((3, 99, "slot"));
        assert!(take_prepared(&mut p.clone(), 4).is_err());
        assert_eq!(take_prepared(&mut p, 3), Ok((99, "slot")));
        assert!(take_prepared(&mut p, 3).is_err(), "sent twice");
        let mut o = Outgoing::new(64);
        assert!(o.header(0).is_err());
        o.prepare(5);
        assert!(o.header(4).is_err());
        let h = Header::decode(&o.header(5).unwrap()).unwrap();
        assert_eq!((h.seq, h.len), (5, 64));
        assert!(h.validate(5, &o.bytes).is_ok());
    }

    #[test]
    fn stamp_changes_the_checksum_per_message() {
        let mut p = template(100);
        let a = stamp(&mut p, 1);
        let b = stamp(&mut p, 2);
        assert_ne!(a, b);
        let mut tiny = template(3);
        stamp(&mut tiny, 1);
        assert_eq!(&tiny[..3], &[1, 0, 0]);
    }

    #[test]
    fn template_has_requested_size_and_no_long_runs() {
        for size in [0, 1, 7, 8, 3072] {
            assert_eq!(template(size).len(), size);
        }
        let t = template(4096);
        assert!(t.windows(8).all(|w| w.iter().any(|&b| b != w[0])));
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}

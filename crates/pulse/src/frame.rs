//! The incoming side of a connection without I/O: frame headers checked against the
//! limits, payloads decoded into audio, auth or commands. `read_loop` and the fuzzer
//! both go through here, so fuzzing exercises exactly the server's parsing.

use crate::PulseError;
use pulseaudio::protocol::{self as pa, Command};
use std::io::Cursor;

/// Frame header: length, channel, offset high, offset low, flags (all big-endian u32).
pub(crate) const HEADER: usize = 20;
/// The control channel.
const CONTROL: u32 = u32::MAX;
/// Seek-mode bits of the frame flags (`pa_seek_mode_t`: relative, absolute, relative to the
/// read index, relative to the end).
const SEEK_MASK: u32 = 0xff;

/// Where an audio frame goes in its stream, as the client's `pa_stream_write` asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seek {
    /// From the write index (also `PA_SEEK_RELATIVE_END`: our buffer ends there).
    Relative(i64),
    /// At this write index.
    Absolute(i64),
    /// From the read index.
    OnRead(i64),
}

/// A frame header that passed the size limit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    /// Payload bytes that follow.
    pub(crate) len: u32,
    channel: u32,
    offset_hi: u32,
    offset_lo: u32,
    flags: u32,
}

/// One decoded frame.
#[derive(Debug)]
pub(crate) enum Frame {
    /// Audio for the stream on `channel`; the bytes are the payload.
    Audio { channel: u32, seek: Seek },
    /// The client's auth, with the protocol version both sides now speak.
    Auth { seq: u32, version: u16 },
    /// Any later command (boxed: commands are large, audio frames are many).
    Command { seq: u32, cmd: Box<Command> },
}

/// Protocol state of a connection's incoming side: before auth, only auth is accepted;
/// after it, commands are decoded in the negotiated version.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    max_frame: u32,
    authed: bool,
    version: u16,
}

impl FrameDecoder {
    /// A decoder for a fresh connection.
    pub(crate) fn new(max_frame: u32) -> Self {
        Self {
            max_frame,
            authed: false,
            version: pa::MIN_VERSION,
        }
    }

    /// A decoder past auth at `version` (the fuzzer starts here too, to reach commands).
    pub(crate) fn authed(max_frame: u32, version: u16) -> Self {
        Self {
            max_frame,
            authed: true,
            version: version.clamp(pa::MIN_VERSION, pa::MAX_VERSION),
        }
    }

    /// Parses a header; a frame above the limit is refused before its payload is read.
    pub(crate) fn header(&self, hdr: &[u8; HEADER]) -> Result<Header, PulseError> {
        let word = |i: usize| u32::from_be_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
        let h = Header {
            len: word(0),
            channel: word(4),
            offset_hi: word(8),
            offset_lo: word(12),
            flags: word(16),
        };
        if h.len > self.max_frame {
            return Err(PulseError::FrameTooLarge {
                len: h.len,
                max: self.max_frame,
            });
        }
        Ok(h)
    }

    /// Decodes the payload of `h` (exactly `h.len` bytes).
    pub(crate) fn frame(&mut self, h: &Header, payload: &[u8]) -> Result<Frame, PulseError> {
        if h.channel != CONTROL {
            if !self.authed {
                return Err(PulseError::Violation("audio before auth"));
            }
            let offset = ((u64::from(h.offset_hi) << 32) | u64::from(h.offset_lo)) as i64;
            let seek = match h.flags & SEEK_MASK {
                0 | 3 => Seek::Relative(offset),
                1 => Seek::Absolute(offset),
                2 => Seek::OnRead(offset),
                _ => return Err(PulseError::Violation("unknown seek mode")),
            };
            return Ok(Frame::Audio {
                channel: h.channel,
                seek,
            });
        }
        check_timeval(payload)?;
        let (seq, cmd) = Command::read_tag_prefixed(&mut Cursor::new(payload), self.version)?;
        if self.authed {
            return Ok(Frame::Command {
                seq,
                cmd: Box::new(cmd),
            });
        }
        let Command::Auth(p) = cmd else {
            return Err(PulseError::Violation("first command is not auth"));
        };
        let version = p.version.min(pa::MAX_VERSION);
        if version < pa::MIN_VERSION {
            return Err(PulseError::Violation("protocol version too old"));
        }
        self.authed = true;
        self.version = version;
        Ok(Frame::Auth { seq, version })
    }

    /// Negotiated protocol version (the minimum before auth).
    pub(crate) fn version(&self) -> u16 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, channel: u32, flags: u32) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        for (i, w) in [len, channel, 0, 0, flags].into_iter().enumerate() {
            h[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        h
    }

    fn command(seq: u32, cmd: &Command, version: u16) -> Vec<u8> {
        let mut v = Vec::new();
        pa::write_command_message(&mut v, seq, cmd, version).unwrap();
        v
    }

    #[test]
    fn auth_then_commands_then_audio() {
        let mut d = FrameDecoder::new(1 << 16);
        let audio = d.header(&header(4, 0, 0)).unwrap();
        assert!(matches!(
            d.frame(&audio, &[0; 4]),
            Err(PulseError::Violation("audio before auth"))
        ));
        let auth = pa::AuthParams {
            version: 40,
            supports_shm: false,
            supports_memfd: false,
            cookie: vec![0; 256],
        };
        let msg = command(3, &Command::Auth(auth), pa::MAX_VERSION);
        let h = d.header(msg[..HEADER].try_into().unwrap()).unwrap();
        match d.frame(&h, &msg[HEADER..]).unwrap() {
            Frame::Auth { seq, version } => {
                assert_eq!((seq, version), (3, 40.min(pa::MAX_VERSION)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.version(), 40.min(pa::MAX_VERSION));
        let msg = command(4, &Command::GetServerInfo, d.version());
        let h = d.header(msg[..HEADER].try_into().unwrap()).unwrap();
        match d.frame(&h, &msg[HEADER..]).unwrap() {
            Frame::Command { seq, cmd } => {
                assert_eq!(seq, 4);
                assert!(matches!(*cmd, Command::GetServerInfo), "{cmd:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.frame(&audio, &[0; 4]).unwrap(),
            Frame::Audio {
                channel: 0,
                seek: Seek::Relative(0)
            }
        ));
        let absolute = d.header(&header(4, 0, 1)).unwrap();
        assert!(matches!(
            d.frame(&absolute, &[0; 4]).unwrap(),
            Frame::Audio {
                seek: Seek::Absolute(0),
                ..
            }
        ));
        let unknown = d.header(&header(4, 0, 7)).unwrap();
        assert!(d.frame(&unknown, &[0; 4]).is_err());
    }

    #[test]
    fn oversized_frames_and_non_auth_first_are_refused() {
        let mut d = FrameDecoder::new(100);
        assert!(matches!(
            d.header(&header(101, CONTROL, 0)),
            Err(PulseError::FrameTooLarge { len: 101, max: 100 })
        ));
        let msg = command(1, &Command::GetServerInfo, pa::MIN_VERSION);
        let h = d.header(msg[..HEADER].try_into().unwrap()).unwrap();
        assert!(matches!(
            d.frame(&h, &msg[HEADER..]),
            Err(PulseError::Violation("first command is not auth"))
        ));
    }
}

/// Refuses a latency query whose timeval has 1 000 000 microseconds or more, before the
/// `pulseaudio` crate reads it: its `read_timeval` multiplies the microseconds by 1000 in a
/// `u32`, which overflows (a panic where overflow checks are on; found by fuzzing). Only the
/// two latency queries carry a timeval from the client, at a fixed place: `L` command, `L`
/// sequence, `L` channel, then `T` seconds and microseconds.
fn check_timeval(payload: &[u8]) -> Result<(), PulseError> {
    const LATENCY_QUERIES: [u32; 2] = [14, 57];
    let u32_at = |i: usize| {
        payload
            .get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    };
    let is_query =
        payload.first() == Some(&b'L') && u32_at(1).is_some_and(|c| LATENCY_QUERIES.contains(&c));
    if is_query && payload.get(15) == Some(&b'T') && u32_at(20).is_some_and(|us| us >= 1_000_000) {
        return Err(PulseError::Violation("timeval microseconds out of range"));
    }
    Ok(())
}

#[cfg(test)]
mod timeval_tests {
    use super::*;

    #[test]
    fn a_latency_query_with_an_overflowing_timeval_is_refused_not_a_panic() {
        let mut dec = FrameDecoder::authed(1 << 16, 32);
        let mut p = Vec::new();
        for (tag, v) in [(b'L', 14u32), (b'L', 1), (b'L', 0)] {
            p.push(tag);
            p.extend_from_slice(&v.to_be_bytes());
        }
        p.push(b'T');
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&u32::MAX.to_be_bytes());
        let h = Header {
            len: p.len() as u32,
            channel: CONTROL,
            offset_hi: 0,
            offset_lo: 0,
            flags: 0,
        };
        assert!(dec.frame(&h, &p).is_err());
    }
}

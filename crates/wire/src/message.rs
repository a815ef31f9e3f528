//! Every message of the protocol and its binary encoding.
//!
//! Layout of one message (little-endian):
//!
//! ```text
//! u32 length of what follows | u8 protocol version | u8 type | fields...
//! ```
//!
//! Frames never travel in messages: a [`SurfaceConfig`] comes with one memfd per slot beside
//! it (SCM_RIGHTS), and [`FrameQueued`]/[`Message::SlotReleased`] name slots by index.

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::input::Input;
use crate::limits::*;

/// The protocol version this build speaks; carried in every message header.
pub const PROTOCOL_VERSION: u8 = 1;
const HEADER_LEN: usize = 6;

/// Which side of the connection a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The untrusted renderer process.
    Game = 1,
    /// The privileged process that owns the surface.
    Host = 2,
}

/// Pixel layout of a frame slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 8-bit red, green, blue, alpha, in that byte order.
    Rgba8 = 1,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> u32 {
        4
    }
}

/// How queued frames are handed to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueuePolicy {
    /// Live default: the game never waits; a queued frame the host has not acquired yet is
    /// replaced by a newer one and counted as dropped.
    #[default]
    Mailbox = 1,
    /// Lossless: every queued frame is acquired in order; the game waits for a free slot.
    Fifo = 2,
}

/// Sample encoding of audio blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 16-bit integers.
    S16 = 1,
    /// 32-bit floats in [-1, 1].
    F32 = 2,
}

impl SampleFormat {
    /// Bytes per sample of one channel.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::S16 => 2,
            SampleFormat::F32 => 4,
        }
    }
}

/// Reason codes carried by [`Message::Error`] and [`Message::Goodbye`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Normal end of a session.
    Normal = 0,
    /// Malformed or out-of-order message.
    Protocol = 1,
    /// Authentication or credential check failed.
    Auth = 2,
    /// Unsupported protocol version or role.
    Version = 3,
    /// A configured limit was hit (sessions, memory, backlog).
    Limit = 4,
    /// A slot was used by a side that does not own it.
    SlotOwnership = 5,
    /// The peer took too long.
    Timeout = 6,
    /// The sender failed internally.
    Internal = 7,
}

impl ErrorCode {
    fn from_u16(v: u16) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => ErrorCode::Normal,
            1 => ErrorCode::Protocol,
            2 => ErrorCode::Auth,
            3 => ErrorCode::Version,
            4 => ErrorCode::Limit,
            5 => ErrorCode::SlotOwnership,
            6 => ErrorCode::Timeout,
            7 => ErrorCode::Internal,
            other => return Err(DecodeError::invalid("error code", format!("{other}"))),
        })
    }
}

/// First message of the game: who it is and its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Role of the sender; the host accepts only [`Role::Game`].
    pub role: Role,
    /// Random bytes of the game, bound into both proofs.
    pub client_nonce: [u8; 16],
}

/// The host's frame slots: sent with one sealed memfd per slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurfaceConfig {
    /// Increases with every new configuration; frame messages name it.
    pub config_id: u32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Bytes per row, at least `width * 4`.
    pub stride: u32,
    /// Pixel layout.
    pub format: PixelFormat,
    /// Number of slots (and of fds beside this message).
    pub slot_count: u8,
    /// Size of each slot's memfd in bytes.
    pub slot_len: u64,
    /// Queue policy the host applies.
    pub policy: QueuePolicy,
}

impl SurfaceConfig {
    /// Checks the geometry limits; used by decode and by the host before allocating.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_dimensions(self.width, self.height)?;
        let min_stride = u64::from(self.width) * u64::from(self.format.bytes_per_pixel());
        if u64::from(self.stride) < min_stride || self.stride % 4 != 0 {
            return Err(DecodeError::invalid(
                "stride",
                format!("{} for width {}", self.stride, self.width),
            ));
        }
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&self.slot_count) {
            return Err(DecodeError::invalid(
                "slot count",
                format!("{} not in {MIN_SLOTS}..={MAX_SLOTS}", self.slot_count),
            ));
        }
        let needed = u64::from(self.stride) * u64::from(self.height);
        if self.slot_len < needed || self.slot_len > MAX_FRAME_BYTES {
            return Err(DecodeError::invalid(
                "slot length",
                format!(
                    "{} (frame needs {needed}, limit {MAX_FRAME_BYTES})",
                    self.slot_len
                ),
            ));
        }
        Ok(())
    }

    /// Bytes of one frame inside a slot.
    pub fn frame_len(&self) -> usize {
        self.stride as usize * self.height as usize
    }
}

fn check_dimensions(width: u32, height: u32) -> Result<(), DecodeError> {
    for (field, v) in [("width", width), ("height", height)] {
        if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&v) || v % 2 != 0 {
            return Err(DecodeError::invalid(
                field,
                format!("{v} (must be even, {MIN_DIMENSION}..={MAX_DIMENSION})"),
            ));
        }
    }
    Ok(())
}

/// The game finished drawing a slot and hands it to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameQueued {
    /// Configuration the slot belongs to.
    pub config_id: u32,
    /// Slot index.
    pub slot: u8,
    /// Frame sequence number, strictly increasing.
    pub seq: u64,
    /// Presentation time, CLOCK_MONOTONIC nanoseconds in the game.
    pub pts_ns: u64,
    /// CLOCK_MONOTONIC just before sending, for handoff-delay measurement.
    pub sent_ns: u64,
}

/// The audio stream's format; sent before the first block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u8,
    /// Sample encoding.
    pub format: SampleFormat,
}

impl AudioConfig {
    fn validate(&self) -> Result<(), DecodeError> {
        if !SAMPLE_RATES.contains(&self.sample_rate) {
            return Err(DecodeError::invalid(
                "sample rate",
                self.sample_rate.to_string(),
            ));
        }
        if self.channels == 0 || self.channels > MAX_CHANNELS {
            return Err(DecodeError::invalid("channels", self.channels.to_string()));
        }
        Ok(())
    }
}

/// A block of mixed PCM from the game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioBlock {
    /// Block sequence number, +1 per block.
    pub seq: u64,
    /// CLOCK_MONOTONIC time of the first sample.
    pub pts_ns: u64,
    /// CLOCK_MONOTONIC just before sending.
    pub sent_ns: u64,
    /// Format of `data` (must match the [`AudioConfig`]).
    pub config: AudioConfig,
    /// Interleaved samples, little-endian.
    pub data: Vec<u8>,
}

impl AudioBlock {
    /// Frames (samples per channel) in the block.
    pub fn frames(&self) -> usize {
        self.data.len() / (usize::from(self.config.channels) * self.config.format.bytes())
    }

    /// The samples as interleaved f32, whatever the wire format.
    pub fn to_f32(&self) -> Vec<f32> {
        match self.config.format {
            SampleFormat::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            SampleFormat::S16 => self
                .data
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect(),
        }
    }
}

/// Message type tags, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MessageType {
    Hello = 1,
    Challenge = 2,
    Proof = 3,
    Welcome = 4,
    SurfaceConfig = 5,
    FrameQueued = 6,
    SlotReleased = 7,
    AudioConfig = 8,
    AudioBlock = 9,
    Resize = 10,
    Goodbye = 11,
    Error = 12,
    Input = 13,
    WantInput = 14,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Game → host: opens the handshake.
    Hello(Hello),
    /// Host → game: the host's random nonce.
    Challenge {
        /// Fresh random bytes for this connection.
        nonce: [u8; 32],
    },
    /// Game → host: HMAC-SHA256 over the transcript, proving the game holds the key.
    Proof {
        /// The MAC.
        mac: [u8; 32],
    },
    /// Host → game: the host's own proof and the session id; data may flow after it.
    Welcome {
        /// Session id chosen by the host.
        session_id: u64,
        /// HMAC-SHA256 over the transcript and session id, proving the host holds the key.
        mac: [u8; 32],
    },
    /// Host → game: new frame slots (fds beside the message).
    SurfaceConfig(SurfaceConfig),
    /// Game → host: a slot holds a finished frame.
    FrameQueued(FrameQueued),
    /// Host → game: the host is done with a slot.
    SlotReleased {
        /// Configuration the slot belongs to.
        config_id: u32,
        /// Slot index.
        slot: u8,
    },
    /// Game → host: the audio format.
    AudioConfig(AudioConfig),
    /// Game → host: timestamped PCM.
    AudioBlock(AudioBlock),
    /// Game → host: please reconfigure the surface to this size.
    Resize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// Either side: orderly close.
    Goodbye {
        /// Why.
        code: ErrorCode,
    },
    /// Either side: the session ends because of this error.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason, at most [`MAX_REASON_LEN`] bytes.
        reason: String,
    },
    /// Host → game: the streamer's input, mapped to the game's surface. Sent only after the
    /// game asked with [`Message::WantInput`], so a game that never reads input gets none.
    Input(Input),
    /// Game → host: start (or stop) sending [`Message::Input`].
    WantInput {
        /// Whether the game wants input events.
        enabled: bool,
    },
}

impl Message {
    /// The message's type tag.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::Challenge { .. } => MessageType::Challenge,
            Message::Proof { .. } => MessageType::Proof,
            Message::Welcome { .. } => MessageType::Welcome,
            Message::SurfaceConfig(_) => MessageType::SurfaceConfig,
            Message::FrameQueued(_) => MessageType::FrameQueued,
            Message::SlotReleased { .. } => MessageType::SlotReleased,
            Message::AudioConfig(_) => MessageType::AudioConfig,
            Message::AudioBlock(_) => MessageType::AudioBlock,
            Message::Resize { .. } => MessageType::Resize,
            Message::Goodbye { .. } => MessageType::Goodbye,
            Message::Error { .. } => MessageType::Error,
            Message::Input(_) => MessageType::Input,
            Message::WantInput { .. } => MessageType::WantInput,
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut w = Writer::new(out);
        w.u32(0); // patched below
        w.u8(PROTOCOL_VERSION);
        w.u8(self.kind() as u8);
        match self {
            Message::Hello(h) => {
                w.u8(h.role as u8);
                w.bytes(&h.client_nonce);
            }
            Message::Challenge { nonce } => w.bytes(nonce),
            Message::Proof { mac } => w.bytes(mac),
            Message::Welcome { session_id, mac } => {
                w.u64(*session_id);
                w.bytes(mac);
            }
            Message::SurfaceConfig(c) => {
                w.u32(c.config_id);
                w.u32(c.width);
                w.u32(c.height);
                w.u32(c.stride);
                w.u8(c.format as u8);
                w.u8(c.slot_count);
                w.u64(c.slot_len);
                w.u8(c.policy as u8);
            }
            Message::FrameQueued(f) => {
                w.u32(f.config_id);
                w.u8(f.slot);
                w.u64(f.seq);
                w.u64(f.pts_ns);
                w.u64(f.sent_ns);
            }
            Message::SlotReleased { config_id, slot } => {
                w.u32(*config_id);
                w.u8(*slot);
            }
            Message::AudioConfig(c) => encode_audio_config(&mut w, c),
            Message::AudioBlock(b) => {
                w.u64(b.seq);
                w.u64(b.pts_ns);
                w.u64(b.sent_ns);
                encode_audio_config(&mut w, &b.config);
                // Blocks are bounded by MAX_MESSAGE_LEN well below u32::MAX.
                w.u32(b.data.len() as u32);
                w.bytes(&b.data);
            }
            Message::Resize { width, height } => {
                w.u32(*width);
                w.u32(*height);
            }
            Message::Goodbye { code } => w.u16(*code as u16),
            Message::Error { code, reason } => {
                w.u16(*code as u16);
                w.string(reason, MAX_REASON_LEN);
            }
            Message::Input(input) => input.encode(&mut w),
            Message::WantInput { enabled } => w.u8(u8::from(*enabled)),
        }
        let body = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&body.to_le_bytes());
    }

    /// The encoded message as a new buffer.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }

    /// Decodes exactly one message occupying all of `buf` (one SEQPACKET datagram), applying
    /// every limit of [`crate::limits`].
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLarge(buf.len()));
        }
        let mut r = Reader::new(buf);
        let declared = r.u32()? as usize;
        if declared != buf.len() - 4 {
            return Err(DecodeError::LengthMismatch {
                declared,
                actual: buf.len() - 4,
            });
        }
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN - buf.len(),
            });
        }
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = r.u8()?;
        let msg = match kind {
            1 => {
                let role = match r.u8()? {
                    1 => Role::Game,
                    2 => Role::Host,
                    other => return Err(DecodeError::invalid("role", other.to_string())),
                };
                Message::Hello(Hello {
                    role,
                    client_nonce: r.array()?,
                })
            }
            2 => Message::Challenge { nonce: r.array()? },
            3 => Message::Proof { mac: r.array()? },
            4 => Message::Welcome {
                session_id: r.u64()?,
                mac: r.array()?,
            },
            5 => {
                let c = SurfaceConfig {
                    config_id: r.u32()?,
                    width: r.u32()?,
                    height: r.u32()?,
                    stride: r.u32()?,
                    format: match r.u8()? {
                        1 => PixelFormat::Rgba8,
                        other => {
                            return Err(DecodeError::invalid("pixel format", other.to_string()))
                        }
                    },
                    slot_count: r.u8()?,
                    slot_len: r.u64()?,
                    policy: decode_policy(r.u8()?)?,
                };
                c.validate()?;
                Message::SurfaceConfig(c)
            }
            6 => Message::FrameQueued(FrameQueued {
                config_id: r.u32()?,
                slot: check_slot(r.u8()?)?,
                seq: r.u64()?,
                pts_ns: r.u64()?,
                sent_ns: r.u64()?,
            }),
            7 => Message::SlotReleased {
                config_id: r.u32()?,
                slot: check_slot(r.u8()?)?,
            },
            8 => Message::AudioConfig(decode_audio_config(&mut r)?),
            9 => {
                let seq = r.u64()?;
                let pts_ns = r.u64()?;
                let sent_ns = r.u64()?;
                let config = decode_audio_config(&mut r)?;
                let len = r.u32()? as usize;
                let frame_bytes = usize::from(config.channels) * config.format.bytes();
                if len % frame_bytes != 0 {
                    return Err(DecodeError::invalid(
                        "audio data",
                        format!("{len} bytes is not whole frames of {frame_bytes}"),
                    ));
                }
                let frames = (len / frame_bytes) as u32;
                let range = block_frames_range(config.sample_rate);
                if !range.contains(&frames) {
                    return Err(DecodeError::invalid(
                        "audio block length",
                        format!(
                            "{frames} frames, must be {MIN_BLOCK_MS}..={MAX_BLOCK_MS} ms ({range:?})"
                        ),
                    ));
                }
                Message::AudioBlock(AudioBlock {
                    seq,
                    pts_ns,
                    sent_ns,
                    config,
                    data: r.bytes(len)?.to_vec(),
                })
            }
            10 => {
                let (width, height) = (r.u32()?, r.u32()?);
                check_dimensions(width, height)?;
                Message::Resize { width, height }
            }
            11 => Message::Goodbye {
                code: ErrorCode::from_u16(r.u16()?)?,
            },
            12 => Message::Error {
                code: ErrorCode::from_u16(r.u16()?)?,
                reason: r.string("reason", MAX_REASON_LEN)?,
            },
            13 => Message::Input(Input::decode(&mut r)?),
            14 => Message::WantInput {
                enabled: match r.u8()? {
                    0 => false,
                    1 => true,
                    other => return Err(DecodeError::invalid("enabled", other.to_string())),
                },
            },
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

fn check_slot(slot: u8) -> Result<u8, DecodeError> {
    if slot >= MAX_SLOTS {
        return Err(DecodeError::invalid(
            "slot",
            format!("{slot} (limit {MAX_SLOTS})"),
        ));
    }
    Ok(slot)
}

fn decode_policy(v: u8) -> Result<QueuePolicy, DecodeError> {
    match v {
        1 => Ok(QueuePolicy::Mailbox),
        2 => Ok(QueuePolicy::Fifo),
        other => Err(DecodeError::invalid("queue policy", other.to_string())),
    }
}

fn encode_audio_config(w: &mut Writer<'_>, c: &AudioConfig) {
    w.u32(c.sample_rate);
    w.u8(c.channels);
    w.u8(c.format as u8);
}

fn decode_audio_config(r: &mut Reader<'_>) -> Result<AudioConfig, DecodeError> {
    let c = AudioConfig {
        sample_rate: r.u32()?,
        channels: r.u8()?,
        format: match r.u8()? {
            1 => SampleFormat::S16,
            2 => SampleFormat::F32,
            other => return Err(DecodeError::invalid("sample format", other.to_string())),
        },
    };
    c.validate()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(frames: usize) -> AudioBlock {
        AudioBlock {
            seq: 1,
            pts_ns: 2,
            sent_ns: 3,
            config: AudioConfig {
                sample_rate: 48_000,
                channels: 2,
                format: SampleFormat::S16,
            },
            data: vec![0; frames * 4],
        }
    }

    #[test]
    fn audio_block_roundtrip_and_limits() {
        let ok = Message::AudioBlock(block(480));
        assert_eq!(Message::decode(&ok.encode_to_vec()).unwrap(), ok);
        for frames in [100, 2000] {
            let bad = Message::AudioBlock(block(frames)).encode_to_vec();
            assert!(matches!(
                Message::decode(&bad),
                Err(DecodeError::Invalid {
                    field: "audio block length",
                    ..
                })
            ));
        }
    }

    #[test]
    fn length_prefix_must_match() {
        let mut bytes = Message::Goodbye {
            code: ErrorCode::Normal,
        }
        .encode_to_vec();
        bytes.push(0);
        assert!(matches!(
            Message::decode(&bytes),
            Err(DecodeError::LengthMismatch { .. })
        ));
        bytes.pop();
        bytes[0] += 1;
        bytes.push(0);
        assert_eq!(Message::decode(&bytes), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn oversize_is_rejected_before_parsing() {
        let bytes = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::TooLarge(MAX_MESSAGE_LEN + 1))
        );
    }

    #[test]
    fn surface_config_limits() {
        let good = SurfaceConfig {
            config_id: 1,
            width: 1280,
            height: 720,
            stride: 5120,
            format: PixelFormat::Rgba8,
            slot_count: 3,
            slot_len: 5120 * 720,
            policy: QueuePolicy::Mailbox,
        };
        good.validate().unwrap();
        for bad in [
            SurfaceConfig {
                width: 8192,
                ..good.clone()
            },
            SurfaceConfig {
                stride: 100,
                ..good.clone()
            },
            SurfaceConfig {
                slot_count: 9,
                ..good.clone()
            },
            SurfaceConfig {
                slot_len: 10,
                ..good.clone()
            },
            SurfaceConfig {
                height: 721,
                ..good.clone()
            },
        ] {
            let bytes = Message::SurfaceConfig(bad).encode_to_vec();
            assert!(Message::decode(&bytes).is_err());
        }
    }

    #[test]
    fn unknown_type_and_version() {
        let mut bytes = Message::Goodbye {
            code: ErrorCode::Normal,
        }
        .encode_to_vec();
        bytes[5] = 99;
        assert_eq!(Message::decode(&bytes), Err(DecodeError::UnknownType(99)));
        bytes[4] = 7;
        assert_eq!(Message::decode(&bytes), Err(DecodeError::Version(7)));
    }
}

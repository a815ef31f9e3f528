//! The crosscast protocol without I/O.
//!
//! `crosscast-wire` turns bytes into validated [`Message`]s and back, and drives the
//! authentication handshake ([`HostHandshake`], [`GameHandshake`]) and the slot-ownership rules
//! of the frame queue ([`SlotTable`]) as plain state machines. It never reads a clock, never
//! touches a socket and never panics on input: everything it is given comes from an untrusted
//! peer. `crosscast-ipc` is the driver that moves these bytes over a Unix socket.
//!
//! It is not a transport: fds (the shared frame slots) travel beside the bytes, and pairing them
//! with [`Message::SurfaceConfig`] is the driver's job.
//!
//! ```
//! use crosscast_wire::{Message, FrameQueued};
//! let msg = Message::FrameQueued(FrameQueued { config_id: 1, slot: 2, seq: 7, pts_ns: 10, sent_ns: 11 });
//! let bytes = msg.encode_to_vec();
//! assert_eq!(Message::decode(&bytes).unwrap(), msg);
//! ```
#![forbid(unsafe_code)]

mod codec;
mod error;
mod handshake;
pub mod input;
pub mod limits;
mod message;
mod pixel;
mod rate;
mod slots;

pub use error::{DecodeError, HandshakeError, SlotError};
pub use handshake::{
    GameHandshake, HandshakeOutcome, HostHandshake, PeerCred, UidPolicy, KEY_LEN, NONCE_LEN,
};
pub use input::{Fixed, Input, InputEvent, ScrollAxis, TouchPhase};
pub use message::{
    AudioBlock, AudioConfig, ErrorCode, FrameQueued, Hello, Message, MessageType, PixelFormat,
    QueuePolicy, Role, SampleFormat, SurfaceConfig, PROTOCOL_VERSION,
};
pub use pixel::PixelOrder;
pub use rate::{FrameRate, FrameRateError, MAX_FPS};
pub use slots::{SlotOwner, SlotTable};

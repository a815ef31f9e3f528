//! The Linux transport between a sandboxed game and the host.
//!
//! - [`os`]: the only `unsafe` code of the project: SEQPACKET sockets with fd passing, sealed
//!   memfd slots, process spawning with inherited fds, the game's sandbox.
//! - [`auth`]: the session key, socket-name derivation and the handshake drivers.
//! - [`host`] / [`game`]: the two ends of a session: the BufferQueue over shared slots and the
//!   audio channel, with every game message validated before use.
//! - [`input`]: the streamer's input: the host's never-blocking [`InputSender`] and the
//!   game's bounded queue.
//! - [`connect`]: spawn mode (socketpair + inherited key pipe) and named mode (abstract
//!   socket, bounded pending connections, handshake timeout).
//!
//! It is not the protocol: message formats and the handshake logic live in `crosscast-wire`.
#![deny(unsafe_code)]

mod arrival;
pub mod auth;
pub mod channel;
pub mod connect;
mod error;
pub mod game;
pub mod host;
pub mod input;
#[cfg(target_os = "linux")]
pub mod os;
mod shared;
pub mod stamp;
pub mod stats;

pub use auth::SessionKey;
pub use channel::Channel;
pub use error::IpcError;
pub use game::{GameSession, SlotWriter};
pub use host::{FrameConsumer, FrameView, HostOptions, HostSession};
pub use input::{InputCounters, InputDelivery, InputSender, INPUT_QUEUE_LEN};
pub use stats::{DelayHistogram, HostCounters};

pub use os::process::monotonic_ns;

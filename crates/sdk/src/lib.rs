//! The game side of crosscast's native protocol, for engines.
//!
//! A game streamed by crosscast renders straight into buffers the host owns (sealed memfd
//! "slots"), queues each with its presentation time, and sends its mixed audio as timestamped
//! blocks. This crate is everything a game needs for that, with the protocol's rules built in:
//!
//! 1. [`Game::connect`]: adopt the connection a host spawned the game with (`crosscast live --
//!    ./game`), or reach a listening host in named mode with the shared key; sandbox the
//!    process (after connecting: a sandboxed process opens no socket); authenticate.
//! 2. Each frame: [`Game::dequeue`] a [`Frame`], write RGBA pixels into it, [`Game::queue`] it
//!    with its presentation time. [`Pacer`] computes frame times on a fixed grid and says
//!    when the game fell behind.
//! 3. Audio: [`Game::audio`] announces the format once and gives an [`AudioOut`] that turns
//!    interleaved samples into blocks ([`BLOCK_MS_MIN`]..=[`BLOCK_MS_MAX`] ms each).
//! 4. Input: [`Game::want_input`] opts in to the streamer's keys and pointer; take them with
//!    [`Game::take_input`] before drawing each frame.
//! 5. Reconnecting after a host restart: a game in named mode runs [`supervise`] in a small
//!    unsandboxed parent, which connects and hands the connection to a fresh, sandboxed game
//!    process; a game whose host went away exits with [`EXIT_HOST_LOST`].
//!
//! **The clock** is CLOCK_MONOTONIC in nanoseconds ([`monotonic_ns`]) for every timestamp:
//! frames' `pts_ns` and audio blocks' first sample. The host reads the same clock, which is how
//! audio and video stay in sync without any clock exchange.
//!
//! The wire format itself is documented byte by byte in `docs/protocol.md`; C programs use the
//! same API through `crosscast-sdk-c` (`include/crosscast.h`).
#![forbid(unsafe_code)]

mod audio;
mod error;
mod game;
mod pacing;
mod supervise;

pub use audio::{AudioOut, BLOCK_MS_MAX, BLOCK_MS_MIN};
pub use crosscast_ipc::monotonic_ns;
pub use crosscast_ipc::os::sandbox::SandboxLevel;
pub use crosscast_ipc::SessionKey;
pub use crosscast_wire::{
    AudioConfig, FrameRate, Input, InputEvent, SampleFormat, SurfaceConfig, PROTOCOL_VERSION,
};
pub use error::SdkError;
pub use game::{ConnectOptions, Connection, Frame, Game};
pub use pacing::{Pacer, Tick};
pub use supervise::{supervise, SuperviseEnd};

/// Exit status of a game whose host went away without a goodbye; [`supervise`] reconnects
/// when its game exits with it.
pub const EXIT_HOST_LOST: i32 = 3;

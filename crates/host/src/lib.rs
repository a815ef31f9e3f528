//! The host pipeline: receives game sessions, runs the constant-rate output clock, feeds the
//! encoder (and its outputs) and the preview, and reports the stream's health.
//!
//! It is not the transport (`crosscast-ipc`) and not the codecs (`crosscast-media`): it wires
//! them together and owns the timing.
#![forbid(unsafe_code)]

pub mod clock;
pub mod command;
mod error;
pub mod feed;
pub mod live;
pub mod mix;
pub mod pulse;
pub mod source;
pub mod status;
pub mod timeline;
pub mod wayland;

pub use clock::{ClockEvent, ClockOptions, ClockReport, ClockSnapshot, OutputClock, OutputSink};
pub use command::{CommandLaunch, WAYLAND_SOCKET};
pub use error::HostError;
pub use feed::{AudioSource, FrameStamp, GameFeed, IpcFeed, ShowResult};
pub use live::{run_live, LiveOptions, LiveReport};
pub use pulse::PulseSource;
pub use source::{GameLaunch, SessionSource, SourceEvent};
pub use status::LiveStatus;
pub use wayland::WaylandFeed;

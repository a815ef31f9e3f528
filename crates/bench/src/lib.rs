//! Benchmarks for crosscast, and the statistics and reports they share.
//!
//! - [`stats`]: delay summaries (avg, p50, p99, max, stall rate) and the JSON report schema of
//!   docs/design.md, used by every `crosscast bench` subcommand.
//! - [`ipc`]: `crosscast bench ipc`, the article's transport comparison reproduced on Linux with
//!   two real processes, crosscast's own surface in the same table.
//! - [`probe`]: the pixels of `crosscast-input-probe`, the Wayland client of the input-latency
//!   bench (a white square while a key or button is held).
//! - [`peers`]: the config of the nginx-rtmp ingest the squeeze bench and the tests start.
//! - `plot` (feature `plot`): the delay-distribution chart of a transport comparison.
//!
//! The library never prints: it returns reports and tables, and status lines go through a
//! caller-supplied callback, so the binary decides where text goes.
#![forbid(unsafe_code)]

pub mod ipc;
pub mod peers;
#[cfg(feature = "plot")]
pub mod plot;
pub mod probe;
pub mod stats;

mod error;

pub use error::BenchError;
pub use stats::{Report, Row, Summary};

//! crosscast-media: the host's media back end.
//!
//! It converts RGBA frames to I420 ([`rgba_to_i420`], SIMD through the `yuv` crate), encodes
//! H.264 (libx264) and AAC-LC (FFmpeg's native encoder) through `ffmpeg-next` on its own
//! threads, and writes that one encode to any mix of FLV files, fragmented MP4 files and RTMP
//! ingests ([`LiveEncoder`]). It does not capture, composite or pace frames: the host decides
//! which frame goes out at which index and hands it over.
//!
//! Needs FFmpeg ≥ 5.1 shared libraries with libx264.

// Unsafe only in `ffi_io` (an FFmpeg call ffmpeg-next lacks), each block with a SAFETY note.
#![deny(unsafe_code)]

mod audio;
mod config;
mod convert;
mod encoder;
mod error;
mod ffi_io;
mod mux;
mod rtmp;
mod stats;

pub use config::{EncoderConfig, FileFormat, OutputSpec, RtmpUrl, X264_PRESETS};
pub use convert::{rgba_to_i420, rgba_to_i420_reference, I420Image};
pub use encoder::LiveEncoder;
pub use error::MediaError;
pub use stats::{EncoderStats, OutputKind, OutputState, OutputStats};

/// RTMP reconnect backoff: first delay and cap (the delay doubles per failed attempt).
pub const RTMP_BACKOFF: (std::time::Duration, std::time::Duration) =
    (rtmp::BACKOFF_START, rtmp::BACKOFF_MAX);

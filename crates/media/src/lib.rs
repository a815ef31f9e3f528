//! crosscast-media: the host's media back end.
//!
//! It converts RGBA frames to I420 ([`rgba_to_i420`], BT.709 limited range, SIMD through the
//! `yuv` crate), encodes H.264 (libx264) and AAC-LC (FFmpeg's native encoder) through
//! `ffmpeg-next` on its own threads (or H.264 on a GPU: VAAPI, NVENC, QSV; see [`VideoEncoder`]),
//! and writes that one encode to any mix of FLV files, fragmented MP4 files and push outputs:
//! RTMP, RTMPS (verified) and SRT ([`LiveEncoder`], [`OutputSpec::Push`], [`PushUrl`]), with
//! adaptive bitrate for the push outputs. It does not capture, composite or
//! pace frames: the host's output clock decides which frame goes out at which index.
//!
//! ```
//! use crosscast_media::{EncoderConfig, LiveEncoder, OutputSpec};
//! let dir = tempfile::tempdir()?;
//! let mut cfg = EncoderConfig::new(320, 180, 30);
//! cfg.preset = "ultrafast".into();
//! cfg.block_when_full = true; // a recording that must not drop frames
//! let mut enc = LiveEncoder::start(cfg, &[OutputSpec::File(dir.path().join("a.flv"))])?;
//! let black = vec![0u8; 320 * 180 * 4];
//! for i in 0..30u64 {
//!     enc.push_video(&black, 320 * 4, i)?; // frame i is shown at i / fps
//!     enc.push_audio(&vec![0.0f32; 1600 * 2], i * 1600)?; // 1600 stereo samples per frame
//! }
//! let stats = enc.finish()?;
//! assert_eq!(stats.video_frames_encoded, 30);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Timing: video pts is `frame_index` in 1/fps (constant frame rate); audio pts is
//! `first_sample` in 1/sample_rate on the same timeline (0 = frame 0). Gaps in the audio are
//! filled with silence, overlaps trimmed. The AAC encoder's priming packet is dropped so both
//! streams start at 0 and decoded audio sample n plays at n / sample_rate in every container,
//! even for readers that ignore timestamps (FLV has no edit list). Push audio continuously
//! (silence when the game is quiet): muxers interleave by time and hold video back (up to 1 s)
//! while they wait for audio.
//!
//! Needs FFmpeg 5.1 or newer shared libraries built with libx264.

// Unsafe only in `ffi_io` (FFmpeg calls ffmpeg-next lacks: the output interrupt callback, the
// `av_log` capture), each block with a SAFETY note.
#![deny(unsafe_code)]

mod abr;
mod audio;
mod config;
mod convert;
mod encoder;
mod error;
mod ffi_io;
mod fit;
mod load;
mod mux;
mod push;
mod stats;
mod video;

pub use config::{
    EncoderConfig, FileFormat, OutputSpec, PushScheme, PushUrl, TlsOptions, SRT_KEYS, X264_PRESETS,
};
pub use convert::{rgba_to_i420, rgba_to_i420_reference, to_i420, I420Image};
pub use encoder::LiveEncoder;
pub use error::MediaError;
pub use load::{LoadController, LoadPolicy, Step, AUTO_LADDER};
pub use stats::{EncoderStats, OutputKind, OutputState, OutputStats};
pub use video::{VideoBackend, VideoEncoder};

/// First push (RTMP, RTMPS, SRT) reconnect delay; it doubles after every failed attempt.
pub const RTMP_BACKOFF_START: std::time::Duration = push::BACKOFF_START;
/// Longest push reconnect delay.
pub const RTMP_BACKOFF_MAX: std::time::Duration = push::BACKOFF_MAX;

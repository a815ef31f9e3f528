//! Counters and per-output states, readable at any time through `LiveEncoder::stats`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What kind of sink an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Local FLV file.
    FlvFile,
    /// Local fragmented MP4 file.
    Mp4File,
    /// RTMP or RTMPS ingest.
    Rtmp,
    /// SRT (MPEG-TS) output.
    Srt,
}

/// Where an output is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputState {
    /// Push output: first connection attempt in progress.
    Connecting,
    /// Push output: connected and sending.
    Live,
    /// Push output: lost or never reached; retrying with backoff, packets meanwhile are dropped.
    Reconnecting {
        /// Failed attempts in a row so far.
        attempt: u32,
        /// Why the last attempt or the connection failed.
        last_error: String,
    },
    /// File: writing.
    Recording,
    /// Closed cleanly by `finish`.
    Finished,
    /// Gave up (files only: a write failed); the reason says why.
    Failed(String),
}

/// One output's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStats {
    /// Display name: file path, or push URL with its secrets masked.
    pub name: String,
    /// Kind of sink.
    pub kind: OutputKind,
    /// Current state.
    pub state: OutputState,
    /// Encoded bytes handed to the muxer.
    pub bytes: u64,
    /// Packets dropped for this output (push queue full or disconnected).
    pub packets_dropped: u64,
    /// Successful push connections after the first.
    pub reconnects: u64,
}

/// Whole-encoder figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderStats {
    /// Video frames that went through the encoder.
    pub video_frames_encoded: u64,
    /// AAC frames (1024 samples each) encoded.
    pub audio_frames_encoded: u64,
    /// Sum of `bytes` over all outputs.
    pub bytes_written: u64,
    /// Video frames encoded per second over the last ~second.
    pub encode_fps: f64,
    /// Video frames dropped because the encoder queue was full.
    pub video_frames_dropped: u64,
    /// Audio blocks dropped because the encoder queue was full.
    pub audio_blocks_dropped: u64,
    /// Samples (per channel) of silence inserted to fill timeline gaps.
    pub audio_gap_samples: u64,
    /// Samples (per channel) cut because they overlapped audio already sent.
    pub audio_overlap_samples: u64,
    /// Per-output figures, in the order the outputs were given.
    pub outputs: Vec<OutputStats>,
}

/// Shared between an output's writer and `stats()`.
#[derive(Debug)]
pub(crate) struct OutputShared {
    name: String,
    kind: OutputKind,
    state: Mutex<OutputState>,
    pub(crate) bytes: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl OutputShared {
    pub(crate) fn new(name: String, kind: OutputKind, state: OutputState) -> Arc<Self> {
        Arc::new(Self {
            name,
            kind,
            state: Mutex::new(state),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn set_state(&self, state: OutputState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    pub(crate) fn state(&self) -> OutputState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn snapshot(&self) -> OutputStats {
        OutputStats {
            name: self.name.clone(),
            kind: self.kind,
            state: self.state(),
            bytes: self.bytes.load(Ordering::Relaxed),
            packets_dropped: self.dropped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// Encoder-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) video_encoded: AtomicU64,
    pub(crate) audio_encoded: AtomicU64,
    pub(crate) video_dropped: AtomicU64,
    pub(crate) audio_dropped: AtomicU64,
    pub(crate) audio_gap: AtomicU64,
    pub(crate) audio_overlap: AtomicU64,
}

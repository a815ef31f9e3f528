//! Counters and per-output states, readable at any time through `LiveEncoder::stats`.

use crate::mux::EncodedPacket;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
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
    /// Media time waiting in this output's queue (network outputs), in milliseconds.
    pub backlog_ms: u64,
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
    /// The bitrate network outputs get now, in kb/s, when adaptive bitrate is on and there
    /// is a network output (recordings keep `EncoderConfig::video_bitrate_kbps`).
    pub live_bitrate_kbps: Option<u32>,
    /// The configured (full) video bitrate in kb/s: recordings always get it.
    pub video_bitrate_kbps: u32,
    /// Whether a second video encode runs for the network outputs (so recordings keep the
    /// full bitrate while the live bitrate is lowered).
    pub second_encode: bool,
    /// FFmpeg's name of the video encoder in use (`libx264`, `h264_vaapi`, ...).
    pub video_codec: String,
    /// x264's preset now (it moves with `--preset auto`); `None` for hardware encoders.
    pub preset: Option<String>,
    /// The encoder thread's busy time per encoded frame over the frame period, last ~second
    /// (1.0 = 100 %: exactly keeping up; above, frames are being dropped).
    pub encode_load: f64,
    /// The last ~second dropped frames for a full encoder queue or ran above 100 % load.
    pub overloaded: bool,
    /// The frame rate the encoder should keep up with.
    pub target_fps: f64,
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
    /// Connections made so far (the bitrate controller sees a change as a reconnect).
    pub(crate) connections: AtomicU64,
    /// Timestamp (µs) of the newest packet put in the queue, and of the newest that left it
    /// (written or dropped): their difference is the media time waiting.
    pub(crate) queued_until_us: AtomicI64,
    pub(crate) sent_until_us: AtomicI64,
    /// Bytes of packets in the queue (added when one goes in, taken when it leaves).
    queued_bytes: AtomicI64,
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
            connections: AtomicU64::new(0),
            queued_until_us: AtomicI64::new(0),
            sent_until_us: AtomicI64::new(0),
            queued_bytes: AtomicI64::new(0),
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
            backlog_ms: u64::try_from(self.backlog_us() / 1000).unwrap_or(0),
        }
    }

    /// Media time queued and not yet written, in microseconds (0 for files).
    pub(crate) fn backlog_us(&self) -> i64 {
        let q = self.queued_until_us.load(Ordering::Relaxed);
        let s = self.sent_until_us.load(Ordering::Relaxed);
        (q - s).max(0)
    }

    /// Notes that packet `p` went into the queue.
    pub(crate) fn entered_queue(&self, p: &EncodedPacket) {
        if let Some(us) = p.dts_us() {
            self.queued_until_us.fetch_max(us, Ordering::Relaxed);
        }
        self.queued_bytes
            .fetch_add(p.data.len() as i64, Ordering::Relaxed);
    }

    /// Notes that packet `p` left the queue (written or dropped).
    pub(crate) fn left_queue(&self, p: &EncodedPacket) {
        if let Some(us) = p.dts_us() {
            self.sent_until_us.fetch_max(us, Ordering::Relaxed);
        }
        self.queued_bytes
            .fetch_sub(p.data.len() as i64, Ordering::Relaxed);
    }

    /// Notes that packet `p` left the queue unsent, counted as dropped.
    pub(crate) fn dropped_from_queue(&self, p: &EncodedPacket) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.left_queue(p);
    }

    /// Bytes of packets waiting in the queue.
    pub(crate) fn queued_bytes(&self) -> u64 {
        u64::try_from(self.queued_bytes.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

/// What the encoder thread reports about its load (see `load.rs`).
#[derive(Debug, Default, Clone)]
pub(crate) struct LoadState {
    pub(crate) video_codec: String,
    pub(crate) preset: Option<String>,
    pub(crate) load: f64,
    pub(crate) overloaded: bool,
}

/// Notes for the host's log, oldest first, bounded: a full queue drops the oldest, counted.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    queue: std::collections::VecDeque<String>,
    lost: u64,
}

impl Notes {
    /// Most notes kept until the host takes them.
    const MAX: usize = 64;

    pub(crate) fn push(&mut self, note: String) {
        if self.queue.len() >= Self::MAX {
            self.queue.pop_front();
            self.lost += 1;
        }
        self.queue.push_back(note);
    }

    pub(crate) fn take(&mut self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.queue.len() + 1);
        if self.lost > 0 {
            out.push(format!(
                "encoder: {} older notes dropped (nobody read them)",
                std::mem::take(&mut self.lost)
            ));
        }
        out.extend(self.queue.drain(..));
        out
    }
}

/// Encoder-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) load: Mutex<LoadState>,
    pub(crate) notes: Mutex<Notes>,
    pub(crate) video_encoded: AtomicU64,
    pub(crate) audio_encoded: AtomicU64,
    pub(crate) video_dropped: AtomicU64,
    pub(crate) audio_dropped: AtomicU64,
    pub(crate) audio_gap: AtomicU64,
    pub(crate) audio_overlap: AtomicU64,
    /// The live bitrate in force (0: adaptive bitrate off or no network output).
    pub(crate) live_kbps: AtomicU32,
    /// 1 while a second video encode serves the network outputs.
    pub(crate) second_encode: AtomicU32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounded_and_say_what_was_lost() {
        let mut n = Notes::default();
        for i in 0..100 {
            n.push(format!("n{i}"));
        }
        let got = n.take();
        assert_eq!(got.len(), Notes::MAX + 1);
        assert!(got[0].contains("36 older notes dropped"), "{}", got[0]);
        assert_eq!(got[1], "n36");
        assert!(n.take().is_empty());
    }
}

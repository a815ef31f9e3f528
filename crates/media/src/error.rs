//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in crosscast-media; each variant says what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The frame-times file (`EncoderConfig::frame_times`) cannot be created.
    #[error("cannot create the frame-times file {}: {reason}", path.display())]
    FrameTimes {
        /// The file.
        path: PathBuf,
        /// Why (the I/O error's text: this enum is `Clone` and `Eq`, `io::Error` is neither).
        reason: String,
    },
    /// The encoder configuration is unusable; nothing was started, fix the setting and retry.
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(String),
    /// An output file has an extension we cannot mux; nothing was started.
    #[error("unsupported output file {path:?}: the name must end in .flv or .mp4")]
    UnsupportedExtension {
        /// The rejected path.
        path: PathBuf,
    },
    /// An output path cannot be handed to FFmpeg (not UTF-8 or contains NUL); nothing was started.
    #[error("unusable output path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A local output file could not be created or its header written; nothing was started.
    #[error("cannot open output {output}: {reason}")]
    OpenOutput {
        /// Display name of the output (the file path).
        output: String,
        /// FFmpeg's or the OS's reason.
        reason: String,
    },
    /// A push URL is malformed, has an unsupported scheme or bad options; nothing was started.
    #[error("invalid push URL {url}: {reason}")]
    InvalidPushUrl {
        /// The URL with its secrets (stream key, SRT streamid and passphrase) masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The extra CA file for `rtmps://` (`--ca-file`) is unusable; nothing was started.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A video frame or image does not match the configured geometry; the frame was not used.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// An audio block is malformed; the block was not used.
    #[error("invalid audio block: {0}")]
    InvalidAudio(String),
    /// An encoder could not be found or opened; nothing was started.
    #[error("cannot open {codec} encoder: {reason}")]
    EncoderOpen {
        /// Codec name (`libx264`, `aac`).
        codec: String,
        /// FFmpeg's reason.
        reason: String,
    },
    /// The encoder thread's nice value could not be applied; nothing was started.
    #[error("cannot set encoder nice value {nice}: {reason} (lowering nice needs CAP_SYS_NICE or RLIMIT_NICE)")]
    Priority {
        /// Requested nice value.
        nice: i32,
        /// The OS's reason.
        reason: String,
    },
    /// A worker thread could not be spawned; nothing was started.
    #[error("cannot spawn {0} thread")]
    Spawn(String),
    /// Encoding a frame or taking its packets failed; the encoder thread stops with this reason.
    #[error("{0}")]
    Encode(String),
    /// The encoder thread stopped on an error; no more frames are accepted, call `finish`.
    #[error("encoder stopped: {0}")]
    EncoderStopped(String),
    /// A local recording failed mid-stream (disk full, I/O error); its file holds what was written before.
    #[error("output {output} failed: {reason}")]
    OutputFailed {
        /// Display name of the output.
        output: String,
        /// The reason it failed.
        reason: String,
    },
}

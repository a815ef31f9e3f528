//! The crate's one error type.

use std::path::PathBuf;

/// What went wrong in a bench; each variant says what the caller can do next.
///
/// A transport that cannot run in this environment is not an error: its row in the report says
/// why. These errors end the whole bench run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options make no sense (unknown transport, zero size or count); fix the command line.
    #[error("invalid bench options: {0}")]
    Options(String),
    /// The arguments given to the peer process are malformed; the parent and peer executables
    /// are probably of different versions. Rebuild, then rerun.
    #[error("invalid ipc-peer arguments: {0}")]
    PeerArgs(String),
    /// The peer process failed while running a transport; the message says where. The parent
    /// records this as the transport's reason, so it only surfaces from `ipc_peer_main`.
    #[error("ipc peer failed: {0}")]
    Peer(String),
    /// The platform floor (a payload-free ping between two processes) could not be measured;
    /// the message says where. The handoff figures cannot be put beside it, so the run stops.
    #[error("cannot measure the platform floor: {0}")]
    Floor(String),
    /// The peer executable could not be started; check the path passed as `peer_exe`.
    #[error("cannot start the peer process {path}: {source}")]
    Spawn {
        /// The executable that was tried.
        path: PathBuf,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be turned into JSON (a non-finite figure); nothing was written.
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// An output file could not be written; check the path and free space, then rerun.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The chart could not be drawn or encoded; the report itself is still valid.
    #[error("cannot draw the plot {path}: {reason}")]
    Plot {
        /// The chart file.
        path: PathBuf,
        /// What the drawing backend said.
        reason: String,
    },
    /// The input probe's shared-memory file could not be made or written (memfd limits, no
    /// memory); `what` names the step.
    #[error("input probe: cannot {what}: {source}")]
    ProbeShm {
        /// The step that failed.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

//! The crate's one error type.

use std::path::PathBuf;

/// Why X11 could not be offered to the game, or Xwayland could not start.
#[derive(Debug, thiserror::Error)]
pub enum XwaylandError {
    /// `Xwayland` is not on `PATH`.
    #[error("Xwayland not found on PATH: install the Debian package xwayland")]
    Missing,
    /// A file or socket of the X display could not be made.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Every display number in the searched range is taken (`/tmp/.X{N}-lock` exists).
    #[error("no free X display number in {first}..={last} (all /tmp/.X<N>-lock exist)")]
    NoFreeDisplay {
        /// The first number tried.
        first: u32,
        /// The last number tried.
        last: u32,
    },
    /// Xwayland's command (in the sandbox) could not be built.
    #[error("cannot build Xwayland's command")]
    Sandbox(#[from] crosscast_sandbox::SandboxError),
    /// Xwayland could not be spawned.
    #[error("cannot start Xwayland")]
    Spawn(#[source] crosscast_ipc::os::OsError),
    /// The socket or its watcher thread failed.
    #[error("X socket watcher: {what}")]
    Watcher {
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

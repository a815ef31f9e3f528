//! The one error type of this crate.

use std::path::PathBuf;

/// What went wrong in the preview; each variant says what the host should do next.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The comments file could not be opened: fix the path or run without `--comments`.
    #[error("cannot open comments file {path}: {source}; run without --comments or fix the path")]
    CommentsOpen {
        /// The file that was asked for.
        path: PathBuf,
        /// Why opening failed.
        #[source]
        source: std::io::Error,
    },
    /// A background thread could not be spawned: the process is out of resources, give up.
    #[error("cannot spawn the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Why spawning failed.
        #[source]
        source: std::io::Error,
    },
    /// The bundled font did not parse: the build is broken, nothing to retry.
    #[error("bundled font is unreadable: {0}")]
    Font(String),
    /// A `--preview` value was not understood: show the accepted forms to the user.
    #[error("unknown preview target {0:?}: expected \"window\", \"png:DIR\" or \"none\"")]
    BadTarget(String),
    /// The PNG directory could not be created or written: preview stops, the stream goes on.
    #[error("cannot write preview PNG in {path}: {source}")]
    PngWrite {
        /// The directory or file concerned.
        path: PathBuf,
        /// Why writing failed.
        #[source]
        source: std::io::Error,
    },
    /// PNG encoding failed: preview stops, the stream goes on.
    #[error("cannot encode preview PNG: {0}")]
    PngEncode(String),
    /// No window could be opened (no display, X server refused): run with `--preview none` or `png:DIR`.
    #[error("cannot open the preview window: {0}; use --preview none or --preview png:DIR")]
    Window(String),
    /// The preview thread died unexpectedly: preview is gone, the stream can go on without it.
    #[error("the preview thread ended abnormally: {0}")]
    ThreadPanicked(String),
}

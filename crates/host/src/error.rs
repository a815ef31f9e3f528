use crosscast_ipc::IpcError;
use crosscast_media::MediaError;

/// Why the host pipeline stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The transport failed in a way no retry fixes (e.g. the listening socket).
    #[error(transparent)]
    Ipc(#[from] IpcError),
    /// The encoder or an output could not start, or failed for good.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The game could not be started.
    #[error("cannot start the game: {0}")]
    Spawn(String),
    /// No game ever delivered a frame.
    #[error("no frame from the game within {0:?}; is it running and rendering?")]
    NoFrames(std::time::Duration),
    /// The preview could not start.
    #[error("preview: {0}")]
    Preview(String),
}

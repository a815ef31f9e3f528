use crosscast_compositor::CompositorError;
use crosscast_ipc::IpcError;
use crosscast_media::MediaError;
use crosscast_preview::PreviewError;
use crosscast_sandbox::SandboxError;
use crosscast_xwayland::XwaylandError;

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
    #[error("cannot start the game {}", program.display())]
    Spawn {
        /// The game's program.
        program: std::path::PathBuf,
        /// What failed.
        #[source]
        source: IpcError,
    },
    /// One of the host's own threads could not be started.
    #[error("cannot start the {name} thread")]
    Thread {
        /// The thread's role.
        name: &'static str,
        /// Why the OS refused.
        #[source]
        source: std::io::Error,
    },
    /// No game ever delivered a frame.
    #[error("no frame from the game within {0:?}; is it running and rendering?")]
    NoFrames(std::time::Duration),
    /// The preview window, its overlay or the comments feed failed.
    #[error("preview failed")]
    Preview(#[from] PreviewError),
    /// The sandbox for an arbitrary game cannot be set up (its message says how to fix it).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The Wayland compositor the game draws through could not start.
    #[error("the Wayland compositor could not start")]
    Compositor(#[from] CompositorError),
    /// The game's PulseAudio server could not start.
    #[error("the game's PulseAudio server")]
    Pulse(#[from] crosscast_pulse::PulseError),
    /// The game's PulseAudio directory could not be made.
    #[error("cannot make the game's PulseAudio directory {}", path.display())]
    PulseDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The game's X display or its Xwayland could not be set up.
    #[error("X11 for the game")]
    Xwayland(#[from] XwaylandError),
    /// The input script (`--input`) could not be read.
    #[error(transparent)]
    Input(#[from] crosscast_input::InputError),
    /// The game's data directory cannot be made.
    #[error("cannot make the game's data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

//! The SDK's errors: what went wrong, with the transport's error kept as the source.

use crosscast_ipc::IpcError;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The game was not started by a crosscast host (no connection on fd 3 and key on fd 4).
    #[error("not started by a crosscast host (run it as `crosscast live -- GAME`, or connect in named mode)")]
    NotSpawned(#[source] IpcError),
    /// No host listens under this key, app id and user id.
    #[error("cannot reach the host (is `crosscast host --listen` running with the same key, app id and user id?)")]
    NoHost(#[source] IpcError),
    /// The key file could not be read or is malformed.
    #[error("the session key")]
    Key(#[source] IpcError),
    /// The sandbox could not be applied.
    #[error("cannot sandbox the game")]
    Sandbox(#[source] crosscast_ipc::os::OsError),
    /// The handshake failed (wrong key, protocol version, timeout).
    #[error("the host's handshake failed")]
    Handshake(#[source] IpcError),
    /// The host went away: with a goodbye (`goodbye`, it is shutting down) or without one
    /// (killed or crashed; a supervised game reconnects, see [`crate::EXIT_HOST_LOST`]).
    #[error("the host went away{}", if *.goodbye { "" } else { " without a goodbye" })]
    HostGone {
        /// Whether the host said goodbye (a deliberate end).
        goodbye: bool,
    },
    /// An argument the protocol does not allow (an audio block of the wrong size, say).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Any other transport error.
    #[error("the session")]
    Session(#[source] IpcError),
    /// Starting a process or a thread failed.
    #[error("{what}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl SdkError {
    /// Classifies a session error: the host leaving is its own case.
    pub(crate) fn session(e: IpcError) -> SdkError {
        match e {
            IpcError::PeerClosed(_) => SdkError::HostGone { goodbye: true },
            e if SdkError::is_disconnect(&e) => SdkError::HostGone { goodbye: false },
            e => SdkError::Session(e),
        }
    }

    /// Whether the connection broke under a call (the host died, or closed it mid-message).
    pub(crate) fn is_disconnect(e: &IpcError) -> bool {
        matches!(
            e,
            IpcError::Disconnected | IpcError::Os(crosscast_ipc::os::OsError::Disconnected { .. })
        )
    }

    /// Classifies an error from a call on `session`. A send can fail on the closed socket a
    /// moment before the session's reader has read the goodbye that came before the close:
    /// then the goodbye, read within a short wait, decides.
    pub(crate) fn from_session(session: &crosscast_ipc::GameSession, e: IpcError) -> SdkError {
        let err = SdkError::session(e);
        if !err.host_lost() {
            return err;
        }
        let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
        loop {
            if let Some(closed) = session.closed() {
                return match SdkError::session(closed) {
                    gone @ SdkError::HostGone { goodbye: true } => gone,
                    _ => err,
                };
            }
            if std::time::Instant::now() >= until {
                return err;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Whether this error means the host went away without a goodbye: exit with
    /// [`crate::EXIT_HOST_LOST`] so a supervisor reconnects.
    pub fn host_lost(&self) -> bool {
        matches!(self, SdkError::HostGone { goodbye: false })
    }
}

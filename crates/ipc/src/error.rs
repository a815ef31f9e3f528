use crosscast_wire::{DecodeError, ErrorCode, HandshakeError, SlotError};

use crate::os::OsError;

/// Errors of the session layer. Every variant ends the session it happened on; none disturbs
/// another session.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IpcError {
    /// A system call failed.
    #[error(transparent)]
    Os(#[from] OsError),
    /// The peer sent bytes that are not a valid message.
    #[error("malformed message from peer: {0}")]
    Decode(#[from] DecodeError),
    /// Authentication failed or did not finish.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer broke the slot-ownership rules.
    #[error("frame queue violation: {0}")]
    Slot(#[from] SlotError),
    /// The peer sent a valid message that is not allowed here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A configured limit was hit.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// The peer ended the session in order (goodbye).
    #[error("peer closed the session: {0}")]
    PeerClosed(String),
    /// The peer went away without a goodbye (crashed, killed, or its host restarted).
    #[error("peer disconnected without a goodbye")]
    Disconnected,
    /// The peer ended the session with an error it reported.
    #[error("peer refused: {code:?}: {reason}")]
    Refused {
        /// The peer's reason code.
        code: crosscast_wire::ErrorCode,
        /// The peer's explanation.
        reason: String,
    },
    /// The session key could not be read or written.
    #[error("session key: {0}")]
    Key(String),
    /// Waiting for the peer took longer than allowed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

impl IpcError {
    /// Whether the peer ended the session itself (so there is nobody to send an error to).
    pub fn is_peer_end(&self) -> bool {
        matches!(
            self,
            IpcError::PeerClosed(_) | IpcError::Disconnected | IpcError::Refused { .. }
        )
    }

    /// The reason code to send to the peer when this error ends the session.
    pub fn code(&self) -> ErrorCode {
        match self {
            IpcError::Handshake(h) => h.code(),
            IpcError::Slot(s) => s.code(),
            IpcError::Limit(_) => ErrorCode::Limit,
            IpcError::Timeout(_) => ErrorCode::Timeout,
            IpcError::Os(_) | IpcError::Key(_) => ErrorCode::Internal,
            IpcError::PeerClosed(_) | IpcError::Disconnected | IpcError::Refused { .. } => {
                ErrorCode::Normal
            }
            IpcError::Decode(_) | IpcError::Protocol(_) => ErrorCode::Protocol,
        }
    }
}

use crate::message::ErrorCode;

/// Why bytes from the peer are not a valid message. Every variant closes the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ended before a field it must contain.
    #[error("message truncated: needed {needed} more bytes")]
    Truncated {
        /// How many more bytes the field needed.
        needed: usize,
    },
    /// The length prefix does not match the bytes received.
    #[error("length prefix says {declared} bytes but {actual} arrived")]
    LengthMismatch {
        /// Length claimed by the prefix.
        declared: usize,
        /// Length actually present.
        actual: usize,
    },
    /// The message is larger than [`crate::limits::MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The peer speaks a protocol version this build does not.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The message type byte is unknown.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A field holds a value outside its allowed range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes were left over after the last field.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

impl DecodeError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DecodeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Why a handshake failed. The connection is closed; an established session elsewhere is not
/// affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's uid is not allowed to connect.
    #[error("peer uid {uid} is not allowed (expected {expected:?})")]
    UidRejected {
        /// The uid the kernel reported for the peer.
        uid: u32,
        /// The uids that are allowed.
        expected: Vec<u32>,
    },
    /// The peer sent bytes that are not a valid message.
    #[error("malformed handshake message: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a valid message that does not belong at this step.
    #[error("unexpected {got:?} during the handshake (expected {expected})")]
    Unexpected {
        /// What arrived.
        got: crate::MessageType,
        /// What the state machine was waiting for.
        expected: &'static str,
    },
    /// The peer's role or version is not acceptable.
    #[error("peer announced {0}")]
    BadHello(String),
    /// The peer's proof does not verify: wrong key or a replayed proof.
    #[error("authentication failed: {0}")]
    AuthFailed(&'static str),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    TimedOut,
    /// The peer reported an error and closed.
    #[error("peer refused: {code:?}: {reason}")]
    PeerError {
        /// Reason code sent by the peer.
        code: ErrorCode,
        /// Human-readable reason sent by the peer.
        reason: String,
    },
    /// A message was handed in after the handshake had already ended.
    #[error("handshake already finished")]
    Finished,
}

impl HandshakeError {
    /// The reason code to send to the peer before closing.
    pub fn code(&self) -> ErrorCode {
        match self {
            HandshakeError::UidRejected { .. } | HandshakeError::AuthFailed(_) => ErrorCode::Auth,
            HandshakeError::TimedOut => ErrorCode::Timeout,
            HandshakeError::BadHello(_) => ErrorCode::Version,
            _ => ErrorCode::Protocol,
        }
    }
}

/// A frame-queue rule broken by one side. Closes the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The slot index is not below the configured slot count.
    #[error("slot {slot} out of range (surface has {count} slots)")]
    OutOfRange {
        /// Offending index.
        slot: u8,
        /// Configured slot count.
        count: u8,
    },
    /// The side acting on the slot does not own it.
    #[error("slot {slot} is owned by {owner:?}, not by the {actor:?}")]
    NotOwned {
        /// Offending index.
        slot: u8,
        /// Who owns it now.
        owner: crate::SlotOwner,
        /// Who tried to act on it.
        actor: crate::Role,
    },
    /// The message refers to a surface configuration that is not current.
    #[error("unknown surface configuration {got} (current {current})")]
    UnknownConfig {
        /// Configuration id in the message.
        got: u32,
        /// Current configuration id.
        current: u32,
    },
    /// Frame sequence numbers must increase.
    #[error("frame sequence {got} does not follow {last}")]
    SequenceRegressed {
        /// Sequence in the message.
        got: u64,
        /// Last accepted sequence.
        last: u64,
    },
}

impl SlotError {
    /// The reason code to send to the peer before closing.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::SlotOwnership
    }
}

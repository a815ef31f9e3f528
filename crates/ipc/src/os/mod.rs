//! The Linux OS layer of crosscast: every system call of the project, and all of its `unsafe`.
//!
//! Everything above this module is safe code built on these types:
//!
//! - [`socket`]: `SOCK_SEQPACKET` Unix sockets with `SCM_RIGHTS` fd passing, `SO_PEERCRED`,
//!   abstract-namespace listeners.
//! - [`memfd`]: host-allocated frame memory, sealed against shrink and grow, mapped shared.
//! - [`process`]: spawning the game with fds on fixed numbers, the key pipe, adopting inherited
//!   fds, clocks, priorities, dropping privileges.
//! - [`sandbox`]: `no_new_privs`, Landlock and seccomp for the game process.
//!
//! Syscalls go through [`rustix`], so most of this code needs no `unsafe` either; the few
//! places that do (mapping memory, the post-fork child, process-wide `set*id`, installing a
//! seccomp filter through `seccompiler`) carry `#![allow(unsafe_code)]` in their own file and a
//! `// SAFETY:` comment on every block.
//!
//! ```
//! use crosscast_ipc::os::socket::{Recv, SeqPacket};
//!
//! let (host, game) = SeqPacket::pair()?;
//! game.send(b"hello", &[])?;
//! let mut buf = [0u8; 64];
//! let mut fds = Vec::new();
//! assert_eq!(
//!     host.recv(&mut buf, &mut fds)?,
//!     Recv::Message { len: 5, truncated: false, fds_truncated: false }
//! );
//! # Ok::<(), crosscast_ipc::os::OsError>(())
//! ```

pub mod memfd;
pub mod process;
pub mod sandbox;
pub mod socket;

pub use rustix::io::Errno;

/// Errors of the OS layer. Each variant says what failed and what the caller should do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OsError {
    /// A system call failed; the operation did not take effect. Usually fatal for the object it
    /// was called on (close the connection, drop the mapping).
    #[error("{op} failed: {errno}")]
    Sys {
        /// The system call or step that failed, e.g. `"sendmsg"`.
        op: &'static str,
        /// The kernel's error number.
        #[source]
        errno: Errno,
    },
    /// The peer closed its end (`EPIPE`/`ECONNRESET`): close this connection, nothing was sent.
    #[error("peer disconnected during {op}; close this connection")]
    Disconnected {
        /// The operation that noticed.
        op: &'static str,
    },
    /// The socket is non-blocking and the operation would block: wait for readiness and retry.
    #[error("{op} would block; wait until the socket is ready and retry")]
    WouldBlock {
        /// The operation that would have blocked.
        op: &'static str,
    },
    /// An empty `SOCK_SEQPACKET` message cannot be told apart from end-of-file, so it is never sent.
    #[error("refusing to send an empty message: the peer would read it as end-of-file")]
    EmptyMessage,
    /// More fds than one message may carry; split the message.
    #[error("{count} fds in one message; at most {max} are allowed", max = socket::MAX_FDS)]
    TooManyFds {
        /// How many fds were given.
        count: usize,
    },
    /// The message exceeds what the socket can carry in one datagram (`EMSGSIZE`).
    #[error("message of {len} bytes is larger than the socket can carry")]
    MessageTooLarge {
        /// The message length in bytes.
        len: usize,
    },
    /// Nobody listens on that abstract name (yet): start the host or retry later.
    #[error("no listener on the abstract socket; is the host running?")]
    NoListener,
    /// Another socket is already bound to that abstract name (another host is running).
    #[error("the abstract socket name is already in use; is another host running?")]
    AddressInUse,
    /// An abstract socket name that the kernel cannot take.
    #[error("invalid abstract socket name: {reason}")]
    InvalidName {
        /// Why it was refused.
        reason: &'static str,
    },
    /// An fd that should be a connected Unix SEQPACKET socket is something else.
    #[error("fd is not a unix SOCK_SEQPACKET socket: {reason}")]
    NotSeqPacket {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The fd that should be a sealed memfd is something else; the peer is broken or hostile.
    #[error("fd is not a memfd sealed against shrink and grow: {reason}")]
    NotSealedMemfd {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The sealed memfd has another size than the configuration announced; refuse it.
    #[error("memfd is {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The size the protocol announced.
        expected: u64,
        /// The size the fd really has.
        actual: u64,
    },
    /// A zero or too large mapping length.
    #[error("invalid mapping length {len}")]
    InvalidLength {
        /// The requested length.
        len: usize,
    },
    /// A `read_at`/`write_at` range outside the mapping.
    #[error("range {offset}+{len} is outside the {size}-byte mapping")]
    OutOfBounds {
        /// Start of the range.
        offset: usize,
        /// Length of the range.
        len: usize,
        /// Size of the mapping.
        size: usize,
    },
    /// The key fd did not deliver exactly 32 bytes followed by end-of-file.
    #[error("session key must be exactly 32 bytes, got {got}{}", if *.more { " or more" } else { "" })]
    KeyLength {
        /// Bytes read before end-of-file (or before giving up).
        got: usize,
        /// True when more bytes followed the 32nd.
        more: bool,
    },
    /// An fd mapping for a child that cannot be honoured (stdio number, duplicate, negative).
    #[error("cannot place an fd on number {target}: {reason}")]
    InvalidFdTarget {
        /// The requested fd number in the child.
        target: i32,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `take_inherited_fd` found no inheritable fd with that number.
    #[error("fd {fd} was not inherited: {reason}")]
    NotInherited {
        /// The fd number.
        fd: i32,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Privileges were not (fully) dropped; do not continue as the old user.
    #[error("dropping privileges failed: {reason}")]
    PrivilegeDrop {
        /// What went wrong.
        reason: String,
    },
    /// Landlock could not be set up although the kernel offers it; the sandbox is not in force.
    #[error("landlock: {0}")]
    Landlock(String),
    /// The seccomp filter could not be built or installed; the sandbox is not in force.
    #[error("seccomp: {0}")]
    Seccomp(String),
}

impl OsError {
    /// The kernel error number behind this error, if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            OsError::Sys { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// A thread that could not be started (`clone` failed): its errno, or `EAGAIN`, which is
    /// what the kernel returns when it is out of threads, if std gave none.
    pub fn thread_spawn(op: &'static str, e: &std::io::Error) -> OsError {
        OsError::Sys {
            op,
            errno: Errno::from_io_error(e).unwrap_or(Errno::AGAIN),
        }
    }

    /// Wraps a failed syscall with the name of the operation.
    pub(crate) fn sys(op: &'static str) -> impl FnOnce(Errno) -> OsError {
        move |errno| OsError::Sys { op, errno }
    }
}

/// Result of the OS layer.
pub type Result<T, E = OsError> = std::result::Result<T, E>;

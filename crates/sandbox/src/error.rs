//! The crate's one error type.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Why the sandbox cannot run a game; every message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// `bwrap` is not on `PATH`.
    #[error(
        "the sandbox needs bubblewrap (`bwrap`), which is not on PATH: install the Debian \
         package `bubblewrap` (apt install bubblewrap), or run the game unsandboxed with \
         `--sandbox off`"
    )]
    BwrapMissing,
    /// The system does not let this user create user namespaces, so bwrap cannot work.
    #[error(
        "the sandbox needs unprivileged user namespaces, which this system blocks: {cause}. \
         Either allow them (`{fix}`, and put the setting in /etc/sysctl.d/ to keep it after a \
         reboot), or run the game unsandboxed with `--sandbox off` (it then runs as your user, \
         with your files and the network). bwrap said: {stderr}",
        fix = cause.fix()
    )]
    UserNamespacesBlocked {
        /// What blocks them.
        cause: UsernsBlock,
        /// bwrap's own message from the preflight run (trimmed).
        stderr: String,
    },
    /// The preflight run of bwrap failed for a reason that is not about user namespaces.
    #[error("the sandbox's trial run (`bwrap ... true`) failed ({status}): {stderr}")]
    ProbeFailed {
        /// How bwrap ended.
        status: String,
        /// bwrap's message (trimmed).
        stderr: String,
    },
    /// The game program is not an executable file, or not found on `PATH`.
    #[error("no such program: {}{}", .program.to_string_lossy(), if *.searched_path { " (searched PATH)" } else { "" })]
    NoSuchProgram {
        /// The program as given.
        program: OsString,
        /// The name had no `/`, so it was looked up on `PATH`.
        searched_path: bool,
    },
    /// The data or runtime directory given for a game is not a directory.
    #[error("{what} {} is not a directory", .path.display())]
    NotADirectory {
        /// Which directory ("data directory", "runtime directory").
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A path that the sandbox binds must be absolute.
    #[error("{what} {} must be an absolute path", .path.display())]
    NotAbsolute {
        /// Which path.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The runtime directory prefix is empty or contains `/`.
    #[error("invalid runtime directory prefix {0:?}: use a plain name")]
    InvalidPrefix(String),
    /// A file system or process operation failed.
    #[error("{op} failed")]
    Io {
        /// What was being done, with its path.
        op: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The seccomp filter could not be compiled for this machine.
    #[error("compiling the seccomp filter failed")]
    Seccomp(#[source] seccompiler::BackendError),
}

impl SandboxError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let op = op.into();
        move |source| SandboxError::Io { op, source }
    }
}

/// What keeps user namespaces from this user (the preflight's diagnosis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernsBlock {
    /// Ubuntu 23.10+: AppArmor confines unprivileged user namespaces
    /// (`kernel.apparmor_restrict_unprivileged_userns=1`).
    AppArmorRestricted,
    /// `user.max_user_namespaces=0`: no user namespaces at all.
    MaxUserNamespacesZero,
    /// Debian's older knob `kernel.unprivileged_userns_clone=0`.
    UnprivilegedCloneDisabled,
    /// bwrap reports a namespace failure and no sysctl explains it (a container's seccomp
    /// policy, a kernel without user namespaces, a security module).
    Unknown,
}

impl UsernsBlock {
    /// The command that lifts the block.
    pub fn fix(&self) -> &'static str {
        match self {
            UsernsBlock::AppArmorRestricted => {
                "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
            }
            UsernsBlock::MaxUserNamespacesZero => "sudo sysctl -w user.max_user_namespaces=16384",
            UsernsBlock::UnprivilegedCloneDisabled => {
                "sudo sysctl -w kernel.unprivileged_userns_clone=1"
            }
            UsernsBlock::Unknown => {
                "allow user namespaces: check `sysctl user.max_user_namespaces` and, in a \
                 container, its seccomp/AppArmor policy"
            }
        }
    }
}

impl fmt::Display for UsernsBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsernsBlock::AppArmorRestricted => {
                "AppArmor restricts them (kernel.apparmor_restrict_unprivileged_userns = 1)"
            }
            UsernsBlock::MaxUserNamespacesZero => "user.max_user_namespaces = 0",
            UsernsBlock::UnprivilegedCloneDisabled => "kernel.unprivileged_userns_clone = 0",
            UsernsBlock::Unknown => "no sysctl explains it (a container or security policy?)",
        })
    }
}

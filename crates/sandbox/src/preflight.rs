//! The startup check: is bwrap there, and can it make its namespaces on this machine?

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crosscast_ipc::os::sandbox::SandboxLevel;

use crate::bwrap::{self, HostFacts};
use crate::error::UsernsBlock;
use crate::{filter, os, SandboxError};

/// What the sandbox will enforce, for one log line at startup (its `Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// The level in force.
    pub level: SandboxLevel,
    /// The bwrap binary (strict only).
    pub bwrap: Option<PathBuf>,
    /// `bwrap --version`'s answer, e.g. `bubblewrap 0.8.0` (strict only).
    pub bwrap_version: Option<String>,
    /// `/dev/dri` exists and is bound into the sandbox (GPU rendering); otherwise the game
    /// renders in software.
    pub gpu: bool,
    /// How many syscalls the seccomp filter denies (strict only).
    pub denied_syscalls: usize,
}

impl fmt::Display for SandboxInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            SandboxLevel::Off => f.write_str(
                "sandbox OFF (--sandbox off): the game runs unsandboxed as your user, with your \
                 files, your processes and the network",
            ),
            SandboxLevel::Strict => write!(
                f,
                "sandbox strict: {} ({}); user, pid, mount, network, ipc and uts namespaces; \
                 system read-only; private /tmp, /run, /dev/shm and $HOME; only the game's \
                 runtime and data dirs writable; no network; {}; seccomp denies {} syscalls \
                 (EPERM); dies with the host",
                self.bwrap_version.as_deref().unwrap_or("bwrap"),
                self.bwrap.as_deref().unwrap_or(Path::new("?")).display(),
                if self.gpu {
                    "/dev/dri bound (GPU)"
                } else {
                    "no /dev/dri (software rendering)"
                },
                self.denied_syscalls
            ),
        }
    }
}

/// Finds `bwrap` on this process's `PATH`.
pub(crate) fn find_bwrap() -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH");
    bwrap::resolve_program("bwrap".as_ref(), path.as_deref(), Path::new("/"))
        .map_err(|_| SandboxError::BwrapMissing)
}

/// Checks once, at startup, that `level` can be enforced here. See [`crate::preflight`].
pub(crate) fn run(level: SandboxLevel) -> Result<SandboxInfo, SandboxError> {
    if level == SandboxLevel::Off {
        let info = SandboxInfo {
            level,
            bwrap: None,
            bwrap_version: None,
            gpu: false,
            denied_syscalls: 0,
        };
        log::warn!("{info}");
        return Ok(info);
    }
    let bwrap_path = find_bwrap()?;
    let facts = HostFacts::gather(&bwrap_path);
    let filter = filter::build()?;
    let version = Command::new(&bwrap_path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());

    // The trial run: the same namespaces, mounts and filter as a game, running `true`.
    let true_path = bwrap::resolve_program(
        "true".as_ref(),
        std::env::var_os("PATH").as_deref(),
        Path::new("/"),
    )?;
    let mut cmd = Command::new(&bwrap_path);
    let fd = os::sealed_memfd("crosscast-seccomp", &filter::to_bytes(&filter.program))
        .map_err(SandboxError::io("creating the seccomp memfd"))?;
    let fd_number = os::inherit_at_start(&mut cmd, fd);
    cmd.args(bwrap::base_args(&facts, fd_number))
        .arg("--")
        .arg(&true_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (status, stderr) = run_with_timeout(cmd, Duration::from_secs(10))?;
    if let Some(status) = status {
        log::debug!("sandbox preflight: {status}");
        return Err(classify(&UsernsSysctls::read(), &status, &stderr));
    }
    Ok(SandboxInfo {
        level,
        bwrap: Some(bwrap_path),
        bwrap_version: version,
        gpu: facts.dri,
        denied_syscalls: filter.denied_syscalls,
    })
}

/// Runs `cmd`; `Ok((None, _))` when it exited 0, else how it failed and its stderr.
fn run_with_timeout(
    mut cmd: Command,
    limit: Duration,
) -> Result<(Option<String>, String), SandboxError> {
    let mut child = cmd.spawn().map_err(SandboxError::io(
        "running the sandbox's trial `bwrap … true`",
    ))?;
    let mut stderr_pipe = child.stderr.take();
    // bwrap writes a line or two at most, far below a pipe's capacity, so reading after the
    // exit cannot deadlock.
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(SandboxError::io("waiting for the trial bwrap")(e)),
        }
    };
    let mut stderr = String::new();
    if let Some(pipe) = stderr_pipe.as_mut() {
        let _ = pipe.take(64 * 1024).read_to_string(&mut stderr);
    }
    let stderr = stderr.trim().to_owned();
    Ok(match status {
        Some(s) if s.success() => (None, stderr),
        Some(s) => (Some(s.to_string()), stderr),
        None => (Some(format!("no answer within {limit:?}")), stderr),
    })
}

/// The sysctls that can forbid unprivileged user namespaces (`None`: not on this kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UsernsSysctls {
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+).
    pub(crate) apparmor_restrict: Option<u64>,
    /// `user.max_user_namespaces`.
    pub(crate) max_user_namespaces: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian kernels before 6.x patches went away).
    pub(crate) unprivileged_userns_clone: Option<u64>,
}

impl UsernsSysctls {
    /// Reads them from `/proc/sys`.
    pub(crate) fn read() -> UsernsSysctls {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        UsernsSysctls {
            apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
        }
    }

    /// The first setting that blocks user namespaces, if any.
    fn blocking(&self) -> Option<UsernsBlock> {
        if self.max_user_namespaces == Some(0) {
            Some(UsernsBlock::MaxUserNamespacesZero)
        } else if self.unprivileged_userns_clone == Some(0) {
            Some(UsernsBlock::UnprivilegedCloneDisabled)
        } else if self.apparmor_restrict == Some(1) {
            Some(UsernsBlock::AppArmorRestricted)
        } else {
            None
        }
    }
}

/// bwrap's messages (0.4 to 0.11) when it cannot set up its user or network namespace:
/// clone refused (EPERM, EINVAL, ENOSPC), the uid map refused (AppArmor's restriction lets
/// the namespace be created but not used), or the loopback set-up refused for the same reason.
const USERNS_MESSAGES: &[&str] = &[
    "No permissions to create new namespace",
    "No permissions to creating new namespace",
    "Creating new namespace failed",
    "setting up uid map",
    "setting up gid map",
    "max_*_namespaces exceeded",
    "loopback: Failed RTM_NEWADDR",
    "loopback: Failed RTM_NEWLINK",
    "Can't mount proc on /newroot/proc: Operation not permitted",
];

/// Turns a failed trial run into the error to show: a sysctl that blocks user namespaces is
/// named with its fix; a namespace failure nothing explains is still reported as one; any
/// other failure is passed on with bwrap's own words.
pub(crate) fn classify(sysctls: &UsernsSysctls, status: &str, stderr: &str) -> SandboxError {
    let stderr = stderr.trim().to_owned();
    if let Some(cause) = sysctls.blocking() {
        return SandboxError::UserNamespacesBlocked { cause, stderr };
    }
    if USERNS_MESSAGES.iter().any(|m| stderr.contains(m)) {
        return SandboxError::UserNamespacesBlocked {
            cause: UsernsBlock::Unknown,
            stderr,
        };
    }
    SandboxError::ProbeFailed {
        status: status.to_owned(),
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT1: &str = "exit status: 1";

    #[test]
    fn ubuntu_apparmor_restriction_is_named_with_both_ways_out() {
        let s = UsernsSysctls {
            apparmor_restrict: Some(1),
            max_user_namespaces: Some(63000),
            unprivileged_userns_clone: Some(1),
        };
        let e = classify(&s, EXIT1, "bwrap: setting up uid map: Permission denied\n");
        assert!(matches!(
            e,
            SandboxError::UserNamespacesBlocked {
                cause: UsernsBlock::AppArmorRestricted,
                ..
            }
        ));
        let text = e.to_string();
        for needle in [
            "kernel.apparmor_restrict_unprivileged_userns = 1",
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
            "--sandbox off",
            "bwrap said: bwrap: setting up uid map: Permission denied",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
        // Ubuntu 24.04 with --unshare-net fails one step later, at the loopback.
        let e = classify(
            &s,
            EXIT1,
            "bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted",
        );
        assert!(e
            .to_string()
            .contains("apparmor_restrict_unprivileged_userns=0"));
    }

    #[test]
    fn max_user_namespaces_zero() {
        let s = UsernsSysctls {
            apparmor_restrict: None,
            max_user_namespaces: Some(0),
            unprivileged_userns_clone: None,
        };
        let e = classify(
            &s,
            EXIT1,
            "bwrap: Creating new namespace failed: nesting depth or \
             /proc/sys/user/max_*_namespaces exceeded (ENOSPC)",
        );
        let text = e.to_string();
        assert!(text.contains("user.max_user_namespaces = 0"), "{text}");
        assert!(
            text.contains("sudo sysctl -w user.max_user_namespaces="),
            "{text}"
        );
        assert!(text.contains("--sandbox off"), "{text}");
    }

    #[test]
    fn debian_unprivileged_userns_clone_zero() {
        let s = UsernsSysctls {
            apparmor_restrict: None,
            max_user_namespaces: Some(63000),
            unprivileged_userns_clone: Some(0),
        };
        let e = classify(
            &s,
            EXIT1,
            "bwrap: No permissions to create new namespace, likely because the kernel does not \
             allow non-privileged user namespaces. See <https://deb.li/bubblewrap> or \
             <file:///usr/share/doc/bubblewrap/README.Debian.gz>.",
        );
        let text = e.to_string();
        assert!(
            text.contains("kernel.unprivileged_userns_clone = 0"),
            "{text}"
        );
        assert!(
            text.contains("sudo sysctl -w kernel.unprivileged_userns_clone=1"),
            "{text}"
        );
        assert!(text.contains("--sandbox off"), "{text}");
    }

    #[test]
    fn namespace_failure_without_a_sysctl_is_still_a_namespace_error() {
        // AppArmor-style refusals seen without a readable sysctl, and a kernel without userns.
        for stderr in [
            "bwrap: setting up uid map: Permission denied",
            "bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted",
            "bwrap: Creating new namespace failed, likely because the kernel does not support \
             user namespaces.  bwrap must be installed setuid on such systems.",
        ] {
            let e = classify(&UsernsSysctls::default(), EXIT1, stderr);
            assert!(
                matches!(
                    e,
                    SandboxError::UserNamespacesBlocked {
                        cause: UsernsBlock::Unknown,
                        ..
                    }
                ),
                "{stderr}: {e}"
            );
        }
        // E.g. inside a container whose seccomp policy refuses clone(CLONE_NEWUSER).
        let e = classify(
            &UsernsSysctls::default(),
            EXIT1,
            "bwrap: No permissions to creating new namespace, likely because the kernel does \
             not allow non-privileged user namespaces.",
        );
        assert!(matches!(
            e,
            SandboxError::UserNamespacesBlocked {
                cause: UsernsBlock::Unknown,
                ..
            }
        ));
        assert!(e.to_string().contains("--sandbox off"));
    }

    #[test]
    fn other_failures_keep_bwraps_words() {
        let e = classify(
            &UsernsSysctls {
                max_user_namespaces: Some(1000),
                ..UsernsSysctls::default()
            },
            EXIT1,
            "bwrap: Can't find source path /nope: No such file or directory\n",
        );
        assert_eq!(
            e.to_string(),
            "the sandbox's trial run (`bwrap ... true`) failed (exit status: 1): bwrap: Can't \
             find source path /nope: No such file or directory"
        );
    }

    #[test]
    fn sysctls_are_read_from_proc() {
        // Every Linux kernel with user namespaces has this one.
        assert!(UsernsSysctls::read().max_user_namespaces.is_some());
    }

    #[test]
    fn info_line_says_what_is_enforced() {
        let info = SandboxInfo {
            level: SandboxLevel::Strict,
            bwrap: Some("/usr/bin/bwrap".into()),
            bwrap_version: Some("bubblewrap 0.8.0".into()),
            gpu: false,
            denied_syscalls: 39,
        };
        let line = info.to_string();
        assert!(
            line.starts_with("sandbox strict: bubblewrap 0.8.0 (/usr/bin/bwrap)"),
            "{line}"
        );
        assert!(
            line.contains("no network") && line.contains("seccomp denies 39"),
            "{line}"
        );
        let off = SandboxInfo {
            level: SandboxLevel::Off,
            ..info
        };
        assert!(off.to_string().starts_with("sandbox OFF"));
    }
}

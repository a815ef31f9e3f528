//! Processes: spawning the game with fds on fixed numbers, the session-key pipe, adopting
//! inherited fds, the shared clock, priorities and dropping privileges.
//!
//! Spawn mode in one picture: the host creates a socketpair and a [`key_pipe`], then
//! [`spawn_with_fds`] puts the game's socket end on fd [`GAME_SOCKET_FD`] and the key pipe on
//! fd [`GAME_KEY_FD`] of the child, and nothing else of the host's (every fd this process opens
//! is close-on-exec). The game calls [`take_inherited_fd`] for both at start-up and
//! [`read_key_from_fd`] for the key. The key never appears in argv or the environment.
//!
//! ```
//! use crosscast_ipc::os::process::{key_pipe, read_key_from_fd};
//!
//! let key = [7u8; 32];
//! let read_end = key_pipe(&key)?;
//! assert_eq!(read_key_from_fd(read_end)?, key);
//! # Ok::<(), crosscast_ipc::os::OsError>(())
//! ```
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use super::{OsError, Result};

/// The fd number on which the spawned game finds its end of the socketpair.
pub const GAME_SOCKET_FD: i32 = 3;
/// The fd number on which the spawned game finds the read end of the key pipe.
pub const GAME_KEY_FD: i32 = 4;
/// Length of the session key.
pub const KEY_LEN: usize = 32;

/// Spawns `cmd` with each given fd placed on its target number in the child, inheritable there;
/// all other fds of this process stay behind (they are close-on-exec).
///
/// Targets must be distinct and at least 3 (stdio is configured on `cmd` itself). The fds are
/// consumed: the parent's copies are closed once the child has its own.
///
/// The child side runs between `fork` and `exec`, where only async-signal-safe calls are
/// allowed: it does nothing but `dup2` on numbers prepared in the parent, no allocation, no
/// locks.
/// See [dup2(2)](https://man7.org/linux/man-pages/man2/dup2.2.html).
#[doc(alias = "dup2")]
#[doc(alias = "fork")]
#[doc(alias = "execve")]
pub fn spawn_with_fds(mut cmd: Command, fds: Vec<(OwnedFd, i32)>) -> Result<Child> {
    let mut targets: Vec<i32> = Vec::with_capacity(fds.len());
    for (_, target) in &fds {
        if *target < 3 {
            return Err(OsError::InvalidFdTarget {
                target: *target,
                reason: "0, 1 and 2 are stdio; configure them on the Command",
            });
        }
        if targets.contains(target) {
            return Err(OsError::InvalidFdTarget {
                target: *target,
                reason: "two fds for the same number",
            });
        }
        targets.push(*target);
    }
    let Some(&max_target) = targets.iter().max() else {
        return cmd.spawn().map_err(spawn_error);
    };
    let above = max_target.checked_add(1).ok_or(OsError::InvalidFdTarget {
        target: max_target,
        reason: "too large",
    })?;

    // Move every source above all targets, so no dup2 in the child can overwrite a source
    // that a later dup2 still needs.
    let mut sources: Vec<(OwnedFd, i32)> = Vec::with_capacity(fds.len());
    for (fd, target) in fds {
        let high = rustix::io::fcntl_dupfd_cloexec(&fd, above)
            .map_err(OsError::sys("fcntl(F_DUPFD_CLOEXEC)"))?;
        sources.push((high, target));
    }
    // Occupy every free target number in the parent for the duration of the spawn, so that
    // std's own pipes (the exec-error pipe, piped stdio) cannot land on a target in the child
    // and be silently replaced by our dup2.
    let mut placeholders: Vec<OwnedFd> = Vec::new();
    for &target in &targets {
        if let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(&sources[0].0, target) {
            if fd.as_raw_fd() == target {
                placeholders.push(fd);
            }
            // Otherwise `target` was already in use, which protects it just as well.
        }
    }

    let pairs: Vec<(RawFd, RawFd)> = sources
        .iter()
        .map(|(fd, target)| (fd.as_raw_fd(), *target))
        .collect();
    let child_side = move || -> io::Result<()> {
        for &(src, dst) in &pairs {
            // SAFETY: dup2 is async-signal-safe and takes plain integers; `src` is open in the
            // child (inherited from the parent, where `sources` keeps it open until after the
            // spawn) and `dst` is a number we are entitled to replace in the fresh child. The
            // new fd has FD_CLOEXEC clear, so it survives exec; the source stays
            // close-on-exec and vanishes. `io::Error::last_os_error` does not allocate.
            if unsafe { libc::dup2(src, dst) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: `child_side` only calls async-signal-safe functions (dup2, reading errno), does
    // not allocate or take locks, and touches only the `pairs` vector, which was built before
    // the fork and is only read.
    unsafe {
        cmd.pre_exec(child_side);
    }
    let child = cmd.spawn().map_err(spawn_error);
    drop(placeholders);
    drop(sources);
    child
}

fn spawn_error(e: io::Error) -> OsError {
    OsError::Sys {
        op: "spawn",
        errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
    }
}

/// A pipe holding the 32-byte session key: the key is written and the write end closed
/// before this returns, so the reader sees exactly the key and then end-of-file. Give the
/// returned read end to the child (e.g. on [`GAME_KEY_FD`]).
///
/// The pipe buffer (at least a page) holds the key without a reader, so this never blocks.
/// See [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html).
#[doc(alias = "pipe2")]
pub fn key_pipe(key: &[u8; KEY_LEN]) -> Result<OwnedFd> {
    let (read_end, write_end) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(OsError::sys("pipe2"))?;
    let mut rest: &[u8] = key;
    while !rest.is_empty() {
        match rustix::io::write(&write_end, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(OsError::Sys {
                    op: "write",
                    errno: e,
                })
            }
        }
    }
    drop(write_end);
    Ok(read_end)
}

/// Reads the session key: exactly 32 bytes followed by end-of-file, anything else is
/// [`OsError::KeyLength`]. Blocks until the writer closes its end.
/// See [read(2)](https://man7.org/linux/man-pages/man2/read.2.html).
#[doc(alias = "read")]
pub fn read_key_from_fd(fd: OwnedFd) -> Result<[u8; KEY_LEN]> {
    // One byte more than the key, to tell "exactly 32" from "32 and more".
    let mut buf = [0u8; KEY_LEN + 1];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(OsError::Sys {
                    op: "read",
                    errno: e,
                })
            }
        }
    }
    if got != KEY_LEN {
        buf.fill(0);
        return Err(OsError::KeyLength {
            got,
            more: got > KEY_LEN,
        });
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&buf[..KEY_LEN]);
    buf.fill(0);
    Ok(key)
}

/// Serialises `take_inherited_fd` so two threads cannot adopt the same number.
static TAKE_LOCK: Mutex<()> = Mutex::new(());

/// Adopts fd `n`, inherited from the parent across `exec`, as an [`OwnedFd`] and makes it
/// close-on-exec, so it does not leak further.
///
/// Ownership is claimed only for an fd that is open and *not* close-on-exec: every fd this
/// process opened itself through std or rustix is close-on-exec, and an fd that survived
/// `exec` cannot be. A second call for the same number therefore fails too (the first one set
/// the flag). Call it at start-up, before loading any C library that might open fds without
/// `O_CLOEXEC`.
/// See [fcntl(2) F_GETFD](https://man7.org/linux/man-pages/man2/fcntl.2.html).
#[doc(alias = "F_GETFD")]
#[doc(alias = "F_SETFD")]
pub fn take_inherited_fd(n: i32) -> Result<OwnedFd> {
    if n < 3 {
        return Err(OsError::NotInherited {
            fd: n,
            reason: "0, 1 and 2 are stdio",
        });
    }
    let _guard = TAKE_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: F_GETFD only reads the descriptor flags of a number; any integer is allowed and
    // a closed one yields EBADF. No memory is passed.
    let flags = unsafe { libc::fcntl(n, libc::F_GETFD) };
    if flags < 0 {
        return Err(OsError::NotInherited {
            fd: n,
            reason: "not open",
        });
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Err(OsError::NotInherited {
            fd: n,
            reason: "close-on-exec is set: opened by this process, or already taken",
        });
    }
    // SAFETY: as above, F_SETFD on a number we just saw open; no memory is passed.
    if unsafe { libc::fcntl(n, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(OsError::Sys {
            op: "fcntl(F_SETFD)",
            errno: Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO),
        });
    }
    // SAFETY: `n` is open (checked above) and nothing else in this process owns it: it was not
    // close-on-exec, so it was inherited rather than opened here, and no earlier call adopted
    // it (that would have set close-on-exec, under the same lock).
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// `CLOCK_MONOTONIC` in nanoseconds: the timestamp of every frame and audio block, shared by
/// both processes so no clock sync is needed.
/// See [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html).
#[doc(alias = "clock_gettime")]
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative.
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Asks a child process to finish (SIGTERM); a child that already left is no error.
pub fn terminate(child: &std::process::Child) {
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    );
}

/// Stops a child the host started: SIGTERM, then SIGKILL if it is still there after `grace`;
/// reaps it either way.
pub fn stop_child(child: &mut std::process::Child, grace: Duration) {
    terminate(child);
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sets the nice value (-20 highest .. 19 lowest priority). On Linux this applies to the
/// calling thread and the threads it creates afterwards; raising priority (negative values)
/// needs `CAP_SYS_NICE` or a suitable `RLIMIT_NICE`.
/// See [setpriority(2)](https://man7.org/linux/man-pages/man2/setpriority.2.html).
#[doc(alias = "setpriority")]
pub fn set_nice(nice: i32) -> Result<()> {
    rustix::process::setpriority_process(None, nice).map_err(OsError::sys("setpriority"))
}

/// Sets the calling thread's timer slack (how late the kernel may fire its timed waits to
/// batch wake-ups; 50 µs by default) to `slack`, at least 1 ns.
/// See [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html) `PR_SET_TIMERSLACK`.
#[doc(alias = "PR_SET_TIMERSLACK")]
pub fn set_timer_slack(slack: Duration) -> Result<()> {
    let ns = u64::try_from(slack.as_nanos()).unwrap_or(u64::MAX).max(1);
    rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(ns))
        .map_err(OsError::sys("prctl(PR_SET_TIMERSLACK)"))
}

/// The real user id of this process (the host compares a peer's `SO_PEERCRED` uid with it).
#[doc(alias = "getuid")]
pub fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Whose resource usage [`resource_usage`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOf {
    /// This process, all threads.
    Process,
    /// All children of this process that have terminated and been waited for.
    Children,
    /// The calling thread only (its peak RSS is the process's).
    Thread,
}

/// CPU time and peak memory, for the pipeline-cost and flood figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceUsage {
    /// CPU time spent in user mode, in nanoseconds.
    pub user_ns: u64,
    /// CPU time spent in the kernel, in nanoseconds.
    pub system_ns: u64,
    /// Peak resident set size in bytes (for `Children`, of the largest child).
    pub max_rss_bytes: u64,
}

/// CPU time and peak RSS of this process or of its waited-for children.
/// See [getrusage(2)](https://man7.org/linux/man-pages/man2/getrusage.2.html).
#[doc(alias = "getrusage")]
pub fn resource_usage(of: UsageOf) -> Result<ResourceUsage> {
    let who = match of {
        UsageOf::Process => libc::RUSAGE_SELF,
        UsageOf::Children => libc::RUSAGE_CHILDREN,
        UsageOf::Thread => libc::RUSAGE_THREAD,
    };
    // SAFETY: `libc::rusage` is plain integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable `rusage`, exactly what getrusage fills in.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Err(OsError::Sys {
            op: "getrusage",
            errno: Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO),
        });
    }
    let ns = |tv: libc::timeval| {
        (tv.tv_sec.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(tv.tv_usec.max(0) as u64 * 1_000)
    };
    Ok(ResourceUsage {
        user_ns: ns(usage.ru_utime),
        system_ns: ns(usage.ru_stime),
        // Linux reports kilobytes.
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64).saturating_mul(1024),
    })
}

/// Drops this process to `uid`/`gid` for good: clears supplementary groups, then sets the
/// group, then the user (real, effective and saved ids). Needs root (or `CAP_SETUID` and
/// `CAP_SETGID`); for tests that run a client as another user, e.g. 65534.
///
/// Uses the C library's `setgroups`/`setgid`/`setuid`, which apply to every thread of the
/// process (glibc broadcasts them), unlike the raw per-thread syscalls. Verifies the result,
/// including that root cannot be regained.
/// See [setuid(2)](https://man7.org/linux/man-pages/man2/setuid.2.html).
#[doc(alias = "setuid")]
#[doc(alias = "setgid")]
#[doc(alias = "setgroups")]
pub fn drop_privileges_to(uid: u32, gid: u32) -> Result<()> {
    // SAFETY: with a count of 0 the list pointer is never read.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(priv_error("setgroups([])"));
    }
    // SAFETY: plain integer argument, no memory involved.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(priv_error("setgid"));
    }
    // SAFETY: plain integer argument, no memory involved.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(priv_error("setuid"));
    }
    let now_uid = rustix::process::getuid().as_raw();
    let now_euid = rustix::process::geteuid().as_raw();
    let now_gid = rustix::process::getgid().as_raw();
    if now_uid != uid || now_euid != uid || now_gid != gid {
        return Err(OsError::PrivilegeDrop {
            reason: format!("ids are uid {now_uid} euid {now_euid} gid {now_gid} afterwards"),
        });
    }
    // SAFETY: plain integer argument; this call is expected to fail.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(OsError::PrivilegeDrop {
            reason: "root could be regained".to_owned(),
        });
    }
    Ok(())
}

fn priv_error(step: &str) -> OsError {
    OsError::PrivilegeDrop {
        reason: format!("{step}: {}", io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_is_monotonic() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn resource_usage_grows_with_work_and_memory() {
        let before = resource_usage(UsageOf::Process).unwrap();
        let mut buf = vec![1u8; 16 << 20];
        // Touch every page so it counts towards the peak RSS.
        for i in (0..buf.len()).step_by(4096) {
            buf[i] = i as u8;
        }
        let mut acc = 0u64;
        for round in 0..2 {
            acc = buf
                .iter()
                .fold(acc, |a, b| a.wrapping_add(u64::from(*b) + round));
        }
        assert_ne!(acc, 1);
        let after = resource_usage(UsageOf::Process).unwrap();
        assert!(after.max_rss_bytes >= 16 << 20, "{after:?}");
        assert!(after.user_ns + after.system_ns > before.user_ns + before.system_ns);
        drop(buf);
        resource_usage(UsageOf::Children).unwrap();
    }

    #[test]
    fn take_refuses_stdio_closed_and_own_fds() {
        assert!(matches!(
            take_inherited_fd(2),
            Err(OsError::NotInherited { fd: 2, .. })
        ));
        // An fd this process opened is close-on-exec, hence not inherited.
        let (r, _w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap();
        let n = r.as_raw_fd();
        assert!(matches!(
            take_inherited_fd(n),
            Err(OsError::NotInherited { .. })
        ));
        drop(r);
        drop(_w);
        assert!(matches!(
            take_inherited_fd(n),
            Err(OsError::NotInherited {
                reason: "not open",
                ..
            })
        ));
    }

    #[test]
    fn spawn_refuses_bad_targets() {
        let (a, b) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let e = spawn_with_fds(Command::new("true"), vec![(a, 1)]).unwrap_err();
        assert!(matches!(e, OsError::InvalidFdTarget { target: 1, .. }));
        let (c, d) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let e = spawn_with_fds(Command::new("true"), vec![(b, 5), (c, 5)]).unwrap_err();
        assert!(matches!(e, OsError::InvalidFdTarget { target: 5, .. }));
        drop(d);
    }

    #[test]
    fn short_and_long_keys_refused() {
        for len in [0usize, 31, 33, 100] {
            let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap();
            rustix::io::write(&w, &vec![1u8; len]).unwrap();
            drop(w);
            let err = read_key_from_fd(r).unwrap_err();
            assert_eq!(
                err,
                OsError::KeyLength {
                    got: len.min(KEY_LEN + 1),
                    more: len > KEY_LEN
                }
            );
        }
    }
}

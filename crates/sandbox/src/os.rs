//! The crate's only `unsafe`: handing the seccomp program to bwrap on an inherited fd.
//!
//! The program lives in a sealed memfd, close-on-exec in this process, on a number of at
//! least [`MIN_SECCOMP_FD`]: above the game's fixed fds (3 = protocol socket, 4 = key pipe,
//! placed by `crosscast_ipc::os::process::spawn_with_fds`) and, because the fd is open in the
//! parent until the `Command` is dropped, never a number another source fd of that spawn can
//! take. Only in the forked child, just before exec, is close-on-exec cleared, so the fd
//! reaches bwrap and no other program the host spawns; bwrap reads it and closes it before
//! it runs the game.
//!
//! bwrap passes every other inherited fd on to the game, including any the host itself
//! inherited without close-on-exec from whatever started it (a terminal, a supervisor's
//! pipe). So the same child-side step marks every fd from [`FIRST_PRIVATE_FD`] up
//! close-on-exec: the game gets stdio, the protocol's fds 3 and 4, and nothing else.
#![allow(unsafe_code)]

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::{MemfdFlags, SealFlags};

/// Lowest fd number the seccomp program is placed on.
pub(crate) const MIN_SECCOMP_FD: i32 = 10;

/// The first fd number that does not reach a strict game (0-2 are stdio, 3 and 4 the
/// protocol socket and key pipe of `crosscast_ipc::connect`).
pub(crate) const FIRST_PRIVATE_FD: u32 = 5;

/// `CLOSE_RANGE_CLOEXEC` (linux/close_range.h, Linux 5.11).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Where the fallback loop stops on kernels without `close_range`: the fd limit, capped.
fn fd_limit() -> i32 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    limit.min(1 << 16) as i32
}

/// A sealed memfd holding `bytes`, close-on-exec, on a number `>= MIN_SECCOMP_FD`.
pub(crate) fn sealed_memfd(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    let fd = OwnedFd::from(file);
    // Sealed so that nothing (not even a bug of ours) can change the filter after the fact.
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, MIN_SECCOMP_FD)?)
}

/// Makes `fd` reach the program `cmd` runs, on its current number, read from its start, and
/// keeps every other fd from [`FIRST_PRIVATE_FD`] up from reaching it.
///
/// The fd is owned by the `Command` from now on (closed when it is dropped), so every spawn
/// of `cmd` finds it open. Returns the number to name on the command line.
pub(crate) fn inherit_at_start(cmd: &mut Command, fd: OwnedFd) -> i32 {
    let number = fd.as_raw_fd();
    let limit = fd_limit();
    let child_side = move || -> io::Result<()> {
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing, it only sets a flag on
        // fds of this (forked, single-threaded) child, and takes plain integers.
        let marked = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                FIRST_PRIVATE_FD,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        };
        if marked != 0 {
            // Kernels before 5.11: one fcntl per possible fd; EBADF for the unused ones.
            for n in FIRST_PRIVATE_FD as i32..limit {
                // SAFETY: F_SETFD on a number that may not be open only fails with EBADF;
                // it closes nothing and is async-signal-safe.
                unsafe { libc::fcntl(n, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
        // The file offset is shared with the parent's description: a second spawn of the same
        // Command must not find it at the end, where the first bwrap left it.
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty())?;
        Ok(())
    };
    // SAFETY: `child_side` runs between fork and exec and only makes raw syscalls
    // (close_range or fcntl, lseek), which neither allocate nor take locks; on failure it
    // builds an `io::Error` from an errno, which does not allocate either. The fd it touches
    // is owned by the closure, hence open in the parent at fork time and so in the child.
    unsafe {
        cmd.pre_exec(child_side);
    }
    number
}

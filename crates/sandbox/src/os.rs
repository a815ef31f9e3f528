//! The crate's only `unsafe`: handing the seccomp program to bwrap on an inherited fd.
//!
//! The program lives in a sealed memfd, close-on-exec in this process, on a number of at
//! least [`MIN_SECCOMP_FD`]: above the game's fixed fds (3 = protocol socket, 4 = key pipe,
//! placed by `crosscast_ipc::os::process::spawn_with_fds`) and, because the fd is open in the
//! parent until the `Command` is dropped, never a number another source fd of that spawn can
//! take. Only in the forked child, just before exec, is close-on-exec cleared, so the fd
//! reaches bwrap and no other program the host spawns; bwrap reads it and closes it before
//! it runs the game.
#![allow(unsafe_code)]

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::fs::{MemfdFlags, SealFlags};

/// Lowest fd number the seccomp program is placed on.
pub(crate) const MIN_SECCOMP_FD: i32 = 10;

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

/// Makes `fd` reach the program `cmd` runs, on its current number, read from its start.
///
/// The fd is owned by the `Command` from now on (closed when it is dropped), so every spawn
/// of `cmd` finds it open. Returns the number to name on the command line.
pub(crate) fn inherit_at_start(cmd: &mut Command, fd: OwnedFd) -> i32 {
    let number = fd.as_raw_fd();
    let child_side = move || -> io::Result<()> {
        // The file offset is shared with the parent's description: a second spawn of the same
        // Command must not find it at the end, where the first bwrap left it.
        rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty())?;
        Ok(())
    };
    // SAFETY: `child_side` runs between fork and exec and only makes two raw syscalls
    // (lseek, fcntl) through rustix, which neither allocate nor take locks; on failure it
    // builds an `io::Error` from an errno, which does not allocate either. The fd it touches
    // is owned by the closure, hence open in the parent at fork time and so in the child.
    unsafe {
        cmd.pre_exec(child_side);
    }
    number
}

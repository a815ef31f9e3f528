//! The control channel between the bench and its peer: a Unix stream socketpair whose child
//! end is the peer's stdin. It carries one-byte steps (ready, go, done) and the transport's
//! file descriptors (SCM_RIGHTS), so no fd number ever travels in argv and neither side needs
//! `unsafe` to adopt an inherited descriptor.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Most fds one step carries.
const MAX_FDS: usize = 4;

/// A step of the control protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    /// Parent → peer: the transport's fds (possibly none) are attached.
    Setup = b'S',
    /// Peer → parent: the sender is set up and waits for `Go`.
    Ready = b'R',
    /// Parent → peer: the receiver is waiting; start sending.
    Go = b'G',
    /// Peer → parent: every message was sent.
    Done = b'D',
}

impl Step {
    fn from_byte(b: u8) -> Option<Step> {
        [Step::Setup, Step::Ready, Step::Go, Step::Done]
            .into_iter()
            .find(|s| *s as u8 == b)
    }
}

/// Sends `step` with `fds` attached.
pub(crate) fn send(ctl: BorrowedFd<'_>, step: Step, fds: &[BorrowedFd<'_>]) -> Result<(), String> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(format!("too many fds for one control step: {}", fds.len()));
    }
    let byte = [step as u8];
    loop {
        match sendmsg(
            ctl,
            &[IoSlice::new(&byte)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(1) => return Ok(()),
            Ok(n) => return Err(format!("control channel wrote {n} bytes")),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(format!("control channel send: {e}")),
        }
    }
}

/// Waits up to `timeout` for the next step, which must be `want`, and returns its fds.
pub(crate) fn recv(
    ctl: BorrowedFd<'_>,
    want: Step,
    timeout: Duration,
) -> Result<Vec<OwnedFd>, String> {
    if !wait_readable(ctl, timeout)? {
        return Err(format!(
            "timed out after {timeout:?} waiting for the {want:?} step"
        ));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        match recvmsg(ctl, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(r) => break r,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(format!("control channel receive: {e}")),
        }
    };
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    if got.bytes == 0 {
        return Err(format!("peer closed the control channel before {want:?}"));
    }
    match Step::from_byte(byte[0]) {
        Some(s) if s == want => Ok(fds),
        Some(s) => Err(format!("expected the {want:?} step, got {s:?}")),
        None => Err(format!("unknown control byte {:#x}", byte[0])),
    }
}

/// Waits until `fd` is readable (or hung up); `false` when `timeout` passes first.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}

/// Borrows a list of owned fds for [`send`].
pub(crate) fn borrow_all(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(|f| f.as_fd()).collect()
}

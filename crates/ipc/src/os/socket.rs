//! `SOCK_SEQPACKET` Unix sockets: message boundaries kept by the kernel, fds passed with
//! `SCM_RIGHTS`, peer credentials with `SO_PEERCRED`.
//!
//! SEQPACKET rather than STREAM because every protocol message arrives whole or not at all,
//! and the fds of a message arrive with that message; the wire layer never has to reassemble.
//!
//! ```
//! use crosscast_ipc::os::socket::{Recv, SeqPacket};
//! use std::os::fd::AsFd;
//!
//! let (a, b) = SeqPacket::pair()?;
//! let (x, _y) = SeqPacket::pair()?;
//! a.send(b"take this", &[x.as_fd()])?;
//! let mut buf = [0u8; 16];
//! let mut fds = Vec::new();
//! let got = b.recv(&mut buf, &mut fds)?;
//! assert_eq!(got, Recv::Message { len: 9, truncated: false, fds_truncated: false });
//! assert_eq!(fds.len(), 1);
//! # Ok::<(), crosscast_ipc::os::OsError>(())
//! ```
//!
//! Rustix types the ancillary data; the only `unsafe` is reading `SO_PEERCRED` (see
//! [`SeqPacket::peer_cred`]).
#![allow(unsafe_code)]

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketAddrUnix, SocketFlags,
    SocketType,
};

use super::{OsError, Result};

/// Most fds one message may carry; a peer sending more gets the rest closed by the kernel and
/// the receiver sees `fds_truncated`.
pub const MAX_FDS: usize = 8;

/// Pending connections the kernel queues on a [`Listener`] before refusing new ones; keeps a
/// connection flood from costing the host more than this many sockets.
pub const LISTEN_BACKLOG: i32 = 16;

/// Longest abstract socket name (`sun_path` minus the leading NUL).
pub const MAX_ABSTRACT_NAME: usize = 107;

/// An owned, connected `SOCK_SEQPACKET | SOCK_CLOEXEC` Unix socket.
#[derive(Debug)]
pub struct SeqPacket {
    fd: OwnedFd,
}

/// What one [`SeqPacket::recv`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// One message. `len` bytes were written to the buffer.
    Message {
        /// Bytes placed in the buffer (at most its length).
        len: usize,
        /// The message was longer than the buffer and its tail is lost (`MSG_TRUNC`): treat as a
        /// protocol error.
        truncated: bool,
        /// The message carried more fds than [`MAX_FDS`] (`MSG_CTRUNC`); the kernel closed the
        /// extra ones: treat as a protocol error.
        fds_truncated: bool,
    },
    /// The peer closed its end (or reset it); no more messages will come.
    Eof,
    /// The socket is non-blocking and no message is queued.
    WouldBlock,
}

/// Credentials of the peer process, as the kernel recorded them at `connect`/`socketpair` time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id as seen from our pid namespace (0 when the peer's is not visible from it).
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

impl SeqPacket {
    /// A connected pair, for spawn mode: one end stays in the host, one goes to the game.
    ///
    /// See [socketpair(2)](https://man7.org/linux/man-pages/man2/socketpair.2.html).
    #[doc(alias = "socketpair")]
    pub fn pair() -> Result<(SeqPacket, SeqPacket)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(OsError::sys("socketpair"))?;
        Ok((SeqPacket { fd: a }, SeqPacket { fd: b }))
    }

    /// Connects to a [`Listener`] bound to the abstract name `name` (named mode).
    ///
    /// Returns [`OsError::NoListener`] when nobody listens there, so the caller can retry.
    /// See [connect(2)](https://man7.org/linux/man-pages/man2/connect.2.html).
    #[doc(alias = "connect")]
    pub fn connect_abstract(name: &str) -> Result<SeqPacket> {
        let addr = abstract_addr(name)?;
        let fd = new_socket()?;
        loop {
            match rustix::net::connect(&fd, &addr) {
                Ok(()) => return Ok(SeqPacket { fd }),
                Err(Errno::INTR) => continue,
                Err(Errno::CONNREFUSED) | Err(Errno::NOENT) => return Err(OsError::NoListener),
                // The listener's backlog is full; the host sheds load, the caller may retry.
                Err(Errno::AGAIN) => return Err(OsError::WouldBlock { op: "connect" }),
                Err(e) => {
                    return Err(OsError::Sys {
                        op: "connect",
                        errno: e,
                    })
                }
            }
        }
    }

    /// Adopts an fd after checking that it is a Unix `SOCK_SEQPACKET` socket, for an fd that
    /// came from outside (an inherited one); `From<OwnedFd>` skips the check.
    pub fn from_checked(fd: OwnedFd) -> Result<SeqPacket> {
        let ty = rustix::net::sockopt::socket_type(&fd).map_err(|e| match e {
            Errno::NOTSOCK => OsError::NotSeqPacket {
                reason: "not a socket",
            },
            e => OsError::Sys {
                op: "getsockopt(SO_TYPE)",
                errno: e,
            },
        })?;
        let domain = rustix::net::sockopt::socket_domain(&fd)
            .map_err(OsError::sys("getsockopt(SO_DOMAIN)"))?;
        if ty != SocketType::SEQPACKET || domain != AddressFamily::UNIX {
            return Err(OsError::NotSeqPacket {
                reason: "not a unix SOCK_SEQPACKET socket",
            });
        }
        Ok(SeqPacket { fd })
    }

    /// Sends one message with up to [`MAX_FDS`] fds attached (`SCM_RIGHTS`), whole or not at all.
    ///
    /// Never raises `SIGPIPE` (`MSG_NOSIGNAL`): a closed peer is [`OsError::Disconnected`]. On a
    /// non-blocking socket a full peer queue is [`OsError::WouldBlock`]. Empty messages are
    /// refused ([`OsError::EmptyMessage`]) because the peer would read them as end-of-file.
    /// The fds stay open here; the peer gets duplicates.
    /// See [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html).
    #[doc(alias = "sendmsg")]
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.send_with(bytes, fds, SendFlags::NOSIGNAL)
    }

    /// Like [`send`](Self::send), but never waits, whatever the socket's mode
    /// (`MSG_DONTWAIT`): a full peer queue is [`OsError::WouldBlock`]. For the host, so a game
    /// that stops reading cannot stall it.
    #[doc(alias = "MSG_DONTWAIT")]
    pub fn try_send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.send_with(bytes, fds, SendFlags::NOSIGNAL | SendFlags::DONTWAIT)
    }

    fn send_with(&self, bytes: &[u8], fds: &[BorrowedFd<'_>], flags: SendFlags) -> Result<()> {
        if bytes.is_empty() {
            return Err(OsError::EmptyMessage);
        }
        if fds.len() > MAX_FDS {
            return Err(OsError::TooManyFds { count: fds.len() });
        }
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            // Cannot happen: the buffer is sized for MAX_FDS, checked above.
            return Err(OsError::TooManyFds { count: fds.len() });
        }
        let iov = [IoSlice::new(bytes)];
        loop {
            match rustix::net::sendmsg(&self.fd, &iov, &mut control, flags) {
                Ok(n) if n == bytes.len() => return Ok(()),
                // SEQPACKET is all-or-nothing; a short count means the kernel broke that promise.
                Ok(_) => return Err(OsError::MessageTooLarge { len: bytes.len() }),
                Err(Errno::INTR) => continue,
                Err(Errno::PIPE) | Err(Errno::CONNRESET) | Err(Errno::NOTCONN) => {
                    return Err(OsError::Disconnected { op: "sendmsg" })
                }
                Err(Errno::AGAIN) => return Err(OsError::WouldBlock { op: "sendmsg" }),
                Err(Errno::MSGSIZE) => return Err(OsError::MessageTooLarge { len: bytes.len() }),
                Err(e) => {
                    return Err(OsError::Sys {
                        op: "sendmsg",
                        errno: e,
                    })
                }
            }
        }
    }

    /// Receives one message into `buf` and its fds into `fds` (cleared first).
    ///
    /// Received fds are close-on-exec (`MSG_CMSG_CLOEXEC`), so they never leak into a process
    /// we spawn. At most [`MAX_FDS`] fds are accepted; the kernel closes any extra ones and
    /// reports `fds_truncated`. A message longer than `buf` reports `truncated` (its tail is
    /// gone). An empty read without fds is end-of-file: [`SeqPacket::send`] never sends an empty
    /// message, so a peer that does is treated as gone.
    /// See [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html).
    #[doc(alias = "recvmsg")]
    pub fn recv(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<Recv> {
        self.recv_with(buf, fds, RecvFlags::empty())
    }

    /// Like [`recv`](Self::recv), but never waits, whatever the socket's mode
    /// (`MSG_DONTWAIT`): no queued message is [`Recv::WouldBlock`].
    #[doc(alias = "MSG_DONTWAIT")]
    pub fn try_recv(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<Recv> {
        self.recv_with(buf, fds, RecvFlags::DONTWAIT)
    }

    fn recv_with(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>, flags: RecvFlags) -> Result<Recv> {
        fds.clear();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let buf_len = buf.len();
        let mut iov = [IoSliceMut::new(buf)];
        let msg = loop {
            match rustix::net::recvmsg(
                &self.fd,
                &mut iov,
                &mut control,
                flags | RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
            ) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(Recv::WouldBlock),
                Err(Errno::CONNRESET) => return Ok(Recv::Eof),
                Err(e) => {
                    return Err(OsError::Sys {
                        op: "recvmsg",
                        errno: e,
                    })
                }
            }
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                // Anything past MAX_FDS (only possible if the kernel split the cmsgs) is dropped,
                // which closes it.
                for fd in received {
                    if fds.len() < MAX_FDS {
                        fds.push(fd);
                    }
                }
            }
        }
        let truncated = msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > buf_len;
        let fds_truncated = msg.flags.contains(ReturnFlags::CTRUNC);
        if msg.bytes == 0 && fds.is_empty() && !fds_truncated {
            return Ok(Recv::Eof);
        }
        Ok(Recv::Message {
            len: msg.bytes.min(buf_len),
            truncated,
            fds_truncated,
        })
    }

    /// Switches `O_NONBLOCK`: a non-blocking socket reports [`Recv::WouldBlock`] and
    /// [`OsError::WouldBlock`] instead of waiting.
    #[doc(alias = "FIONBIO")]
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        rustix::io::ioctl_fionbio(&self.fd, nonblocking).map_err(OsError::sys("ioctl(FIONBIO)"))
    }

    /// Waits until a message (or end-of-file, or an error) can be read; `None` waits forever.
    /// Returns `false` on timeout.
    /// See [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html).
    #[doc(alias = "poll")]
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        poll_one(self.fd.as_fd(), PollFlags::IN, timeout)
    }

    /// Waits until a message can be sent without blocking; `None` waits forever.
    /// Returns `false` on timeout.
    #[doc(alias = "poll")]
    pub fn wait_writable(&self, timeout: Option<Duration>) -> Result<bool> {
        poll_one(self.fd.as_fd(), PollFlags::OUT, timeout)
    }

    /// The peer's pid, uid and gid as recorded by the kernel when the connection was made;
    /// the peer cannot forge them.
    ///
    /// The pid is 0 when the peer lives in a pid namespace that is not visible from ours
    /// (e.g. the host runs in a container and the peer outside it, sharing the network
    /// namespace and hence the abstract socket names).
    /// See [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html).
    #[doc(alias = "SO_PEERCRED")]
    #[doc(alias = "getsockopt")]
    pub fn peer_cred(&self) -> Result<PeerCred> {
        // Not rustix's `socket_peercred`: its `UCred` holds the pid as a non-zero type, and a
        // peer from an invisible pid namespace makes the kernel report 0, which would be an
        // invalid value there. Reading plain integers has no such failure mode.
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are live, writable locals; `len` holds the exact size of
        // `cred`, so the kernel writes at most that many bytes into it. `libc::ucred` is plain
        // integers, valid for any bytes written. The fd is open for the duration of the call
        // because `self` borrows it.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            let errno = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO);
            return Err(OsError::Sys {
                op: "getsockopt(SO_PEERCRED)",
                errno,
            });
        }
        if len as usize != std::mem::size_of::<libc::ucred>() {
            return Err(OsError::Sys {
                op: "getsockopt(SO_PEERCRED)",
                errno: Errno::INVAL,
            });
        }
        Ok(PeerCred {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
        })
    }

    /// Bytes this end has sent that the peer has not read yet: `SIOCOUTQ`, which on a Unix
    /// socket is the kernel's charge for the messages still queued at the peer (payload plus
    /// per-message overhead, the unit of [`send_buffer_size`](Self::send_buffer_size)). A send
    /// blocks, or fails with [`OsError::WouldBlock`], once this reaches the send buffer size; the
    /// host keeps optional traffic (input) below a share of it so that the messages a session
    /// needs (slot releases) always fit.
    /// See [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html).
    #[doc(alias = "SIOCOUTQ")]
    #[doc(alias = "ioctl")]
    pub fn unread_sent_bytes(&self) -> Result<usize> {
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (defined as TIOCOUTQ in linux/sockios.h, the number libc exports)
        // takes a pointer to one `int` and writes exactly that `int`; `queued` is a live,
        // writable local of that type for the whole call. The fd is open for the duration of
        // the call because `self` borrows it. The call changes no state of the socket.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if rc != 0 {
            let errno = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO);
            return Err(OsError::Sys {
                op: "ioctl(SIOCOUTQ)",
                errno,
            });
        }
        // The kernel never reports a negative charge; treat one as empty rather than wrap.
        Ok(usize::try_from(queued).unwrap_or(0))
    }

    /// The socket's send buffer size (`SO_SNDBUF`, as the kernel holds it, i.e. doubled from
    /// what was set): how many bytes of unread messages ([`unread_sent_bytes`](Self::unread_sent_bytes))
    /// the peer may have before sends block.
    #[doc(alias = "SO_SNDBUF")]
    pub fn send_buffer_size(&self) -> Result<usize> {
        rustix::net::sockopt::socket_send_buffer_size(&self.fd)
            .map_err(OsError::sys("getsockopt(SO_SNDBUF)"))
    }

    /// Shuts both directions down: the peer reads end-of-file even while other duplicates of
    /// this socket stay open (for example in a reader thread).
    /// See [shutdown(2)](https://man7.org/linux/man-pages/man2/shutdown.2.html).
    pub fn shutdown(&self) -> Result<()> {
        match rustix::net::shutdown(&self.fd, Shutdown::Both) {
            Ok(()) | Err(Errno::NOTCONN) => Ok(()),
            Err(e) => Err(OsError::Sys {
                op: "shutdown",
                errno: e,
            }),
        }
    }

    /// A second handle on the same socket (close-on-exec), e.g. for a dedicated reader thread.
    #[doc(alias = "dup")]
    pub fn try_clone(&self) -> Result<SeqPacket> {
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map_err(OsError::sys("fcntl(F_DUPFD_CLOEXEC)"))?;
        Ok(SeqPacket { fd })
    }
}

impl AsFd for SeqPacket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<OwnedFd> for SeqPacket {
    /// Adopts an fd that the caller knows is a connected SEQPACKET socket (see
    /// [`SeqPacket::from_checked`] for one that came from outside).
    fn from(fd: OwnedFd) -> Self {
        SeqPacket { fd }
    }
}

impl From<SeqPacket> for OwnedFd {
    fn from(socket: SeqPacket) -> Self {
        socket.fd
    }
}

/// A listening `SOCK_SEQPACKET` socket in the abstract namespace (named mode).
///
/// Abstract names need no file and vanish with the socket; they are visible in
/// `/proc/net/unix`, so the name is no secret: the handshake is the defence.
#[derive(Debug)]
pub struct Listener {
    // Always O_NONBLOCK, so `try_accept` never blocks; `accept` polls before accepting.
    fd: OwnedFd,
}

impl Listener {
    /// Binds and listens on the abstract name `name` with a backlog of [`LISTEN_BACKLOG`].
    ///
    /// [`OsError::AddressInUse`] when another socket holds the name.
    /// See [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html),
    /// [listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html).
    #[doc(alias = "bind")]
    #[doc(alias = "listen")]
    pub fn bind_abstract(name: &str) -> Result<Listener> {
        let addr = abstract_addr(name)?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(OsError::sys("socket"))?;
        rustix::net::bind(&fd, &addr).map_err(|e| match e {
            Errno::ADDRINUSE => OsError::AddressInUse,
            e => OsError::Sys {
                op: "bind",
                errno: e,
            },
        })?;
        rustix::net::listen(&fd, LISTEN_BACKLOG).map_err(OsError::sys("listen"))?;
        Ok(Listener { fd })
    }

    /// Waits for and accepts one connection. The new socket is blocking and close-on-exec.
    /// See [accept4(2)](https://man7.org/linux/man-pages/man2/accept4.2.html).
    #[doc(alias = "accept4")]
    pub fn accept(&self) -> Result<SeqPacket> {
        loop {
            if let Some(socket) = self.try_accept()? {
                return Ok(socket);
            }
            self.wait_readable(None)?;
        }
    }

    /// Accepts one pending connection, or returns `None` at once when none is pending.
    #[doc(alias = "accept4")]
    pub fn try_accept(&self) -> Result<Option<SeqPacket>> {
        loop {
            match rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC) {
                Ok(fd) => return Ok(Some(SeqPacket { fd })),
                Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => {
                    return Err(OsError::Sys {
                        op: "accept4",
                        errno: e,
                    })
                }
            }
        }
    }

    /// Waits until a connection is pending; `None` waits forever. Returns `false` on timeout.
    #[doc(alias = "poll")]
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        poll_one(self.fd.as_fd(), PollFlags::IN, timeout)
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn new_socket() -> Result<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(OsError::sys("socket"))
}

fn abstract_addr(name: &str) -> Result<SocketAddrUnix> {
    if name.is_empty() {
        return Err(OsError::InvalidName { reason: "empty" });
    }
    if name.len() > MAX_ABSTRACT_NAME {
        return Err(OsError::InvalidName {
            reason: "longer than 107 bytes",
        });
    }
    SocketAddrUnix::new_abstract_name(name.as_bytes()).map_err(OsError::sys("sockaddr_un"))
}

/// Polls one fd for `events`; readiness includes hang-up and error, so the following call
/// returns at once (with end-of-file or the error) instead of blocking.
fn poll_one(fd: BorrowedFd<'_>, events: PollFlags, timeout: Option<Duration>) -> Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let remaining = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Durations beyond Timespec's range are "forever" for our purposes.
                Some(
                    rustix::time::Timespec::try_from(left).unwrap_or(rustix::time::Timespec {
                        tv_sec: i64::MAX,
                        tv_nsec: 0,
                    }),
                )
            }
        };
        let mut fds = [PollFd::new(&fd, events)];
        match rustix::event::poll(&mut fds, remaining.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => {
                let got = fds[0].revents();
                if got.intersects(events | PollFlags::HUP | PollFlags::ERR) {
                    return Ok(true);
                }
                if got.contains(PollFlags::NVAL) {
                    return Err(OsError::Sys {
                        op: "poll",
                        errno: Errno::BADF,
                    });
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(OsError::Sys {
                    op: "poll",
                    errno: e,
                })
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_message_is_refused_not_sent() {
        let (a, b) = SeqPacket::pair().unwrap();
        assert_eq!(a.send(b"", &[]), Err(OsError::EmptyMessage));
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(&mut buf, &mut Vec::new()).unwrap(), Recv::WouldBlock);
    }

    #[test]
    fn try_send_reports_a_full_peer_instead_of_blocking() {
        let (a, b) = SeqPacket::pair().unwrap();
        let mut sent = 0usize;
        // The peer never reads; the kernel's send buffer fills up after a few hundred messages.
        let err = loop {
            match a.try_send(&[0u8; 1024], &[]) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1_000_000, "send buffer never filled");
        };
        assert_eq!(err, OsError::WouldBlock { op: "sendmsg" });
        assert!(!a.wait_writable(Some(Duration::from_millis(1))).unwrap());
        let mut buf = [0u8; 2048];
        assert!(matches!(
            b.try_recv(&mut buf, &mut Vec::new()).unwrap(),
            Recv::Message { len: 1024, .. }
        ));
        let (_c, d) = SeqPacket::pair().unwrap();
        assert_eq!(
            d.try_recv(&mut buf, &mut Vec::new()).unwrap(),
            Recv::WouldBlock
        );
    }

    #[test]
    fn unread_sent_bytes_grow_until_the_peer_reads() {
        let (a, b) = SeqPacket::pair().unwrap();
        let sndbuf = a.send_buffer_size().unwrap();
        assert!(sndbuf > 4096, "SO_SNDBUF {sndbuf}");
        assert_eq!(a.unread_sent_bytes().unwrap(), 0);
        a.send(&[1u8; 100], &[]).unwrap();
        let one = a.unread_sent_bytes().unwrap();
        assert!(one >= 100, "one unread message charges {one} bytes");
        a.send(&[1u8; 100], &[]).unwrap();
        assert_eq!(a.unread_sent_bytes().unwrap(), 2 * one);
        let mut buf = [0u8; 256];
        assert!(matches!(
            b.recv(&mut buf, &mut Vec::new()).unwrap(),
            Recv::Message { len: 100, .. }
        ));
        assert_eq!(a.unread_sent_bytes().unwrap(), one);
        // A full buffer is what makes a non-blocking send fail.
        while a.try_send(&[1u8; 100], &[]).is_ok() {}
        assert!(a.unread_sent_bytes().unwrap() + one >= sndbuf);
    }

    #[test]
    fn too_many_fds_refused() {
        let (a, _b) = SeqPacket::pair().unwrap();
        let fds: Vec<BorrowedFd<'_>> = (0..=MAX_FDS).map(|_| a.as_fd()).collect();
        assert_eq!(
            a.send(b"x", &fds),
            Err(OsError::TooManyFds { count: MAX_FDS + 1 })
        );
    }

    #[test]
    fn send_to_closed_peer_is_disconnected() {
        let (a, b) = SeqPacket::pair().unwrap();
        drop(b);
        assert_eq!(
            a.send(b"x", &[]),
            Err(OsError::Disconnected { op: "sendmsg" })
        );
    }

    #[test]
    fn abstract_names_are_checked() {
        assert_eq!(
            SeqPacket::connect_abstract("").unwrap_err(),
            OsError::InvalidName { reason: "empty" }
        );
        let long = "x".repeat(MAX_ABSTRACT_NAME + 1);
        assert!(matches!(
            Listener::bind_abstract(&long),
            Err(OsError::InvalidName { .. })
        ));
    }

    #[test]
    fn wait_readable_times_out_then_sees_data() {
        let (a, b) = SeqPacket::pair().unwrap();
        assert!(!b.wait_readable(Some(Duration::from_millis(1))).unwrap());
        a.send(b"x", &[]).unwrap();
        assert!(b.wait_readable(Some(Duration::from_secs(30))).unwrap());
        assert!(a.wait_writable(Some(Duration::from_secs(30))).unwrap());
    }

    #[test]
    fn from_checked_rejects_other_sockets_and_pipes() {
        let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert!(matches!(
            SeqPacket::from_checked(r),
            Err(OsError::NotSeqPacket { .. })
        ));
        let (s, _t) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        assert!(matches!(
            SeqPacket::from_checked(s),
            Err(OsError::NotSeqPacket { .. })
        ));
        let (p, _q) = SeqPacket::pair().unwrap();
        assert!(SeqPacket::from_checked(OwnedFd::from(p)).is_ok());
    }
}

//! A socket that speaks [`Message`]s: one SEQPACKET datagram per message, fds beside it.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crosscast_wire::{limits::MAX_MESSAGE_LEN, Message};

use crate::os::socket::{Recv, SeqPacket};
use crate::IpcError;

/// A connected message socket, shareable between the thread that reads and those that send.
#[derive(Debug, Clone)]
pub struct Channel {
    sock: Arc<SeqPacket>,
}

/// One received message with the fds that came with it.
#[derive(Debug)]
pub struct Incoming {
    /// The raw datagram (already length-checked against the limit).
    pub bytes: Vec<u8>,
    /// Fds received beside it (close-on-exec).
    pub fds: Vec<OwnedFd>,
}

impl Channel {
    /// Wraps a connected socket.
    pub fn new(sock: SeqPacket) -> Self {
        Channel {
            sock: Arc::new(sock),
        }
    }

    /// The underlying socket.
    pub fn socket(&self) -> &SeqPacket {
        &self.sock
    }

    /// A handle on the socket that does not keep it open: an [`crate::host::InputSender`]
    /// held by another thread must not keep a finished session's fd alive.
    pub(crate) fn downgrade(&self) -> Weak<SeqPacket> {
        Arc::downgrade(&self.sock)
    }

    /// Sends one message.
    pub fn send(&self, msg: &Message) -> Result<(), IpcError> {
        self.sock.send(&msg.encode_to_vec(), &[])?;
        Ok(())
    }

    /// Sends one message with fds attached.
    pub fn send_with_fds(&self, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), IpcError> {
        self.sock.send(&msg.encode_to_vec(), fds)?;
        Ok(())
    }

    /// Sends one message (with fds) without ever waiting: the host uses this so that a game
    /// that stops reading its socket cannot stall the host's threads; a full socket buffer
    /// means the peer is misbehaving and ends the session.
    pub fn try_send(&self, msg: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), IpcError> {
        match self.sock.try_send(&msg.encode_to_vec(), fds) {
            Ok(()) => Ok(()),
            Err(crate::os::OsError::WouldBlock { .. }) => Err(IpcError::Protocol(
                "the peer stopped reading its socket (send buffer full)".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends raw bytes; for tests that play a hostile peer.
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), IpcError> {
        self.sock.send(bytes, &[])?;
        Ok(())
    }

    /// Best-effort error report before closing; never waits, and failures are ignored because
    /// the session is ending anyway.
    pub fn send_error(&self, err: &IpcError) {
        let _ = self.try_send(
            &Message::Error {
                code: err.code(),
                reason: err.to_string(),
            },
            &[],
        );
    }

    /// Refuses the peer: sends the error, then reads and discards what the peer still sends
    /// (for at most `linger`) so that closing with unread data does not turn into a reset
    /// that would destroy the error message before the peer reads it.
    pub fn refuse(&self, err: &IpcError, linger: Duration) {
        self.send_error(err);
        let until = Instant::now() + linger;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.recv(Some(left)) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Waits up to `timeout` (forever if `None`) for one message. `Ok(None)` on timeout.
    /// An oversize message or a closed peer is an error.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Option<Incoming>, IpcError> {
        // With no timeout the blocking recvmsg is the wait: one syscall per message.
        if timeout.is_some() && !self.sock.wait_readable(timeout)? {
            return Ok(None);
        }
        let mut buf = vec![0u8; MAX_MESSAGE_LEN];
        let mut fds = Vec::new();
        match self.sock.recv(&mut buf, &mut fds)? {
            Recv::Message {
                len,
                truncated,
                fds_truncated,
            } => {
                if truncated {
                    return Err(IpcError::Protocol(format!(
                        "message larger than the {MAX_MESSAGE_LEN}-byte limit"
                    )));
                }
                if fds_truncated {
                    return Err(IpcError::Protocol("too many fds in one message".into()));
                }
                buf.truncate(len);
                Ok(Some(Incoming { bytes: buf, fds }))
            }
            Recv::Eof => Err(IpcError::Disconnected),
            Recv::WouldBlock => Ok(None),
        }
    }

    /// Waits until `deadline` for one message; `Timeout(what)` when it passes.
    pub fn recv_until(&self, deadline: Instant, what: &'static str) -> Result<Incoming, IpcError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IpcError::Timeout(what));
            }
            if let Some(m) = self.recv(Some(left))? {
                return Ok(m);
            }
        }
    }

    /// Reads and handles messages until handling one fails or the peer leaves; tells the peer
    /// why (unless it left), shuts the socket and returns the reason. The loop of both
    /// sessions' I/O threads. Before each read `wait` says how long to wait for a message
    /// (`None`: until one comes; zero: just check), so the host can poll around expected frames.
    pub(crate) fn serve(
        &self,
        mut wait: impl FnMut() -> Option<Duration>,
        mut handle: impl FnMut(Incoming) -> Result<(), IpcError>,
    ) -> IpcError {
        let err = loop {
            let timeout = wait();
            match self.recv(timeout) {
                Ok(None) => {
                    if timeout.is_some_and(|t| t.is_zero()) {
                        // Polling: a thread waiting for this CPU may be the very game thread
                        // about to send the frame; let it run rather than spin over it.
                        std::thread::yield_now();
                    }
                }
                Ok(Some(msg)) => {
                    if let Err(e) = handle(msg) {
                        if !e.is_peer_end() {
                            self.send_error(&e);
                        }
                        break e;
                    }
                }
                Err(e) => break e,
            }
        };
        self.shutdown();
        err
    }

    /// Shuts the socket down both ways so a thread blocked reading it wakes up.
    pub fn shutdown(&self) {
        let _ = self.sock.shutdown();
    }
}

//! Byte-stream transports: `uds-stream`, `tcp` and `pipe`.
//!
//! The receiver deserialises as the bytes arrive, the way the article's ObjectStream did: it
//! reads the 32-byte header, then reads the payload straight into its object buffer, with no
//! intermediate copy. The sender writes header and payload with one `writev` loop.

use std::io::IoSlice;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use serde_json::Value;

use super::ctl::wait_readable;
use super::msg::{now_ns, Header, Outgoing, HEADER_LEN};
use super::{Receive, Received, Setup, Transmit};

/// Pipe buffer asked for: big enough for a 10 MiB object and its header, so the sender's one
/// `write` can complete without waiting for the reader.
const PIPE_TARGET: usize = 16 << 20;

/// Parent side of `uds-stream`: a stream socketpair with the kernel's default buffers, as an
/// application would use it.
pub(crate) fn setup_uds(size: usize) -> Result<Setup, String> {
    let (rx, tx) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    Ok(Setup::new(Box::new(StreamRx::new(rx, size)), vec![tx]))
}

/// Parent side of `tcp`: a loopback connection with Nagle off; the peer gets the connected
/// client socket.
pub(crate) fn setup_tcp(size: usize) -> Result<Setup, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let client = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let (server, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    for s in [&client, &server] {
        s.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    }
    Ok(Setup::new(
        Box::new(StreamRx::new(OwnedFd::from(server), size)),
        vec![OwnedFd::from(client)],
    ))
}

/// Parent side of `pipe`: an anonymous pipe whose buffer is raised with `F_SETPIPE_SZ` as far as
/// the kernel allows this process (16 MiB, else `/proc/sys/fs/pipe-max-size`).
pub(crate) fn setup_pipe(size: usize) -> Result<Setup, String> {
    let (rx, tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    let want = (size + HEADER_LEN)
        .next_power_of_two()
        .clamp(1 << 16, PIPE_TARGET);
    let got = match rustix::pipe::fcntl_setpipe_size(&tx, want) {
        Ok(n) => n,
        Err(_) => {
            // Without CAP_SYS_RESOURCE the ceiling is pipe-max-size.
            let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(1 << 20);
            rustix::pipe::fcntl_setpipe_size(&tx, want.min(max))
                .or_else(|_| rustix::pipe::fcntl_getpipe_size(&tx))
                .map_err(|e| format!("F_GETPIPE_SZ: {e}"))?
        }
    };
    let mut setup = Setup::new(Box::new(StreamRx::new(rx, size)), vec![tx]);
    setup
        .extra
        .insert("pipe_buffer_bytes".into(), Value::from(got));
    Ok(setup)
}

/// Receiver of any byte stream.
pub(crate) struct StreamRx {
    fd: OwnedFd,
    object: Vec<u8>,
}

impl StreamRx {
    fn new(fd: OwnedFd, size: usize) -> StreamRx {
        StreamRx {
            fd,
            object: vec![0; size],
        }
    }
}

impl Receive for StreamRx {
    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String> {
        if !wait_readable(self.fd.as_fd(), timeout)? {
            return Err(format!("no message {expect_seq} within {timeout:?}"));
        }
        let mut head = [0u8; HEADER_LEN];
        read_exact(self.fd.as_fd(), &mut head)?;
        let header = Header::decode(&head)?;
        if header.len != self.object.len() as u64 {
            return Err(format!(
                "message {} announces {} bytes, expected {}",
                header.seq,
                header.len,
                self.object.len()
            ));
        }
        read_exact(self.fd.as_fd(), &mut self.object)?;
        let received_ns = now_ns();
        header.validate(expect_seq, &self.object)?;
        Ok(Received {
            sent_ns: header.sent_ns,
            received_ns,
            io_thread_ns: None,
            checked_from_ns: received_ns,
            valid_ns: now_ns(),
        })
    }
}

/// Sender onto any byte stream.
pub(crate) struct StreamTx {
    fd: OwnedFd,
    object: Outgoing,
}

impl StreamTx {
    /// A sender writing `size`-byte objects to `fd`.
    pub(crate) fn new(fd: OwnedFd, size: usize) -> StreamTx {
        StreamTx {
            fd,
            object: Outgoing::new(size),
        }
    }
}

impl Transmit for StreamTx {
    fn prepare(&mut self, seq: u32) -> Result<(), String> {
        self.object.prepare(seq);
        Ok(())
    }

    fn send(&mut self, seq: u32, _due_ns: u64) -> Result<(), String> {
        let header = self.object.header(seq)?;
        write_all2(self.fd.as_fd(), &header, &self.object.bytes)
    }
}

/// Reads exactly `buf.len()` bytes.
pub(crate) fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::read(fd, &mut buf[done..]) {
            Ok(0) => {
                return Err(format!(
                    "peer closed the stream after {done} of {} bytes",
                    buf.len()
                ))
            }
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(())
}

/// Writes `a` then `b` completely, as few syscalls as the kernel allows.
pub(crate) fn write_all2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> Result<(), String> {
    let total = a.len() + b.len();
    let mut done = 0;
    while done < total {
        let r = if done < a.len() {
            rustix::io::writev(fd, &[IoSlice::new(&a[done..]), IoSlice::new(b)])
        } else {
            rustix::io::write(fd, &b[done - a.len()..])
        };
        match r {
            Ok(0) => return Err("write returned 0".into()),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Ok(())
}

//! `uds-seqpacket`: a Unix SEQPACKET socketpair, crosscast's own control-channel type.
//!
//! A SEQPACKET datagram must fit in the sender's `SO_SNDBUF` (less 32 bytes), and the kernel
//! allocates all but 68 KiB of each datagram in one physically contiguous piece, which tops out
//! at 4 MiB (a 10 MiB datagram fails with `ENOBUFS`; a 4 MiB one needs an order-10 allocation,
//! which a fragmented machine may not have). So objects larger than one datagram are sent as a
//! run of datagrams of [`DATAGRAM`] bytes (the first one carries the header), and the receiver
//! reads each datagram straight into its place in the object with a scatter `recvmsg`, still
//! without an intermediate copy. `SO_SNDBUF` is raised to [`SNDBUF`] (with `SO_SNDBUFFORCE` when
//! the process may, else as far as `net.core.wmem_max` allows) so a run can be queued without
//! the sender waiting on every datagram. The datagram size actually used is reported in the row.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{
    recvmsg, send, sendmsg, socketpair, sockopt, AddressFamily, RecvAncillaryBuffer, RecvFlags,
    ReturnFlags, SendAncillaryBuffer, SendFlags, SocketFlags, SocketType,
};
use serde_json::Value;

use super::msg::{now_ns, Header, Outgoing, HEADER_LEN};
use super::{Receive, Received, Setup, Transmit};

/// Largest datagram used: a size the kernel allocates reliably, large enough that per-datagram
/// overhead stays small next to the copy.
pub(crate) const DATAGRAM: usize = 256 << 10;
/// Send buffer asked for.
const SNDBUF: usize = 4 << 20;

/// Parent side: the socketpair, buffers raised, and the datagram size the peer must use.
pub(crate) fn setup(size: usize) -> Result<Setup, String> {
    let (rx, tx) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    let forced = sockopt::set_socket_send_buffer_size_force(&tx, SNDBUF).is_ok();
    if !forced {
        sockopt::set_socket_send_buffer_size(&tx, SNDBUF).map_err(|e| format!("SO_SNDBUF: {e}"))?;
    }
    let sndbuf =
        sockopt::socket_send_buffer_size(&tx).map_err(|e| format!("SO_SNDBUF read: {e}"))?;
    // The kernel refuses a datagram longer than sndbuf - 32; keep a page of slack for its
    // bookkeeping and stay page-aligned.
    let limit = sndbuf.saturating_sub(4096) & !4095;
    if limit < HEADER_LEN + 1 {
        return Err(format!(
            "SO_SNDBUF of {sndbuf} bytes is too small to send anything"
        ));
    }
    let datagram = (size + HEADER_LEN).min(DATAGRAM).min(limit);
    let mut s = Setup::new(Box::new(SeqRx::new(rx, size, datagram)), vec![tx]);
    s.args = vec!["--datagram".into(), datagram.to_string()];
    s.extra
        .insert("datagram_bytes".into(), Value::from(datagram));
    s.extra.insert(
        "datagrams_per_message".into(),
        Value::from((size + HEADER_LEN).div_ceil(datagram)),
    );
    s.extra.insert("sndbuf_bytes".into(), Value::from(sndbuf));
    Ok(s)
}

/// Receiver: one header-plus-head datagram, then the rest of the object datagram by datagram.
struct SeqRx {
    fd: OwnedFd,
    object: Vec<u8>,
    datagram: usize,
}

impl SeqRx {
    fn new(fd: OwnedFd, size: usize, datagram: usize) -> SeqRx {
        SeqRx {
            fd,
            object: vec![0; size],
            datagram,
        }
    }
}

/// One `recvmsg` into `iov`; a datagram longer than `iov` is an error, never silently cut.
fn recv_datagram(fd: &OwnedFd, iov: &mut [IoSliceMut<'_>]) -> Result<usize, String> {
    let mut space: [MaybeUninit<u8>; 0] = [];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    loop {
        match recvmsg(fd, iov, &mut control, RecvFlags::empty()) {
            Ok(r) if r.flags.contains(ReturnFlags::TRUNC) => {
                return Err("datagram longer than expected: truncated".into())
            }
            Ok(r) if r.bytes == 0 => return Err("peer closed the socket".into()),
            Ok(r) => return Ok(r.bytes),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err("no datagram within the time limit".into()),
            Err(e) => return Err(format!("recvmsg: {e}")),
        }
    }
}

impl Receive for SeqRx {
    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String> {
        // A sleeping receiver blocked in `recvmsg` itself (no poll first), so that with no
        // payload this case is the platform's floor: one datagram, one wake-up.
        sockopt::set_socket_timeout(&self.fd, sockopt::Timeout::Recv, Some(timeout))
            .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
        let size = self.object.len();
        let first = size.min(self.datagram - HEADER_LEN);
        let mut head = [0u8; HEADER_LEN];
        let n = {
            let (body, _) = self.object.split_at_mut(first);
            let mut iov = [IoSliceMut::new(&mut head), IoSliceMut::new(body)];
            recv_datagram(&self.fd, &mut iov)?
        };
        if n != HEADER_LEN + first {
            return Err(format!(
                "first datagram has {n} bytes, expected {}",
                HEADER_LEN + first
            ));
        }
        let header = Header::decode(&head)?;
        let mut got = first;
        while got < size {
            let end = (got + self.datagram).min(size);
            let mut iov = [IoSliceMut::new(&mut self.object[got..end])];
            let n = recv_datagram(&self.fd, &mut iov)?;
            if n != end - got {
                return Err(format!(
                    "datagram at offset {got} has {n} bytes, expected {}",
                    end - got
                ));
            }
            got = end;
        }
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

/// Sender: the same cut into datagrams as the receiver expects.
pub(crate) struct SeqTx {
    fd: OwnedFd,
    object: Outgoing,
    datagram: usize,
}

impl SeqTx {
    /// A sender of `size`-byte objects in datagrams of at most `datagram` bytes.
    pub(crate) fn new(fd: OwnedFd, size: usize, datagram: usize) -> Result<SeqTx, String> {
        // Only the payload-free floor sends header-only datagrams.
        if datagram < HEADER_LEN || (datagram == HEADER_LEN && size > 0) {
            return Err(format!("datagram size {datagram} leaves no room for data"));
        }
        Ok(SeqTx {
            fd,
            object: Outgoing::new(size),
            datagram,
        })
    }
}

impl Transmit for SeqTx {
    fn prepare(&mut self, seq: u32) -> Result<(), String> {
        self.object.prepare(seq);
        Ok(())
    }

    fn send(&mut self, seq: u32, _due_ns: u64) -> Result<(), String> {
        let header = self.object.header(seq)?;
        let object = &self.object.bytes;
        let size = object.len();
        let first = size.min(self.datagram - HEADER_LEN);
        let iov = [IoSlice::new(&header), IoSlice::new(&object[..first])];
        let mut space: [MaybeUninit<u8>; 0] = [];
        let mut control = SendAncillaryBuffer::new(&mut space);
        loop {
            match sendmsg(&self.fd, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(_) => break,
                Err(Errno::INTR) => {}
                Err(e) => return Err(format!("sendmsg first datagram: {e}")),
            }
        }
        let mut off = first;
        while off < size {
            let end = (off + self.datagram).min(size);
            match send(&self.fd, &object[off..end], SendFlags::NOSIGNAL) {
                Ok(_) => off = end,
                Err(Errno::INTR) => {}
                Err(e) => return Err(format!("send datagram at {off}: {e}")),
            }
        }
        Ok(())
    }
}

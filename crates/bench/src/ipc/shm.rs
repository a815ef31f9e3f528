//! `shm-ring`: a shared-memory transport that still copies (`mmap-file` is its sibling).
//!
//! Both are what an application builds when it wants shared memory but keeps its objects in
//! private memory: the sender copies each object in, the receiver copies it out into its own
//! object (the "deserialisation"), and a small kernel object carries the wake-up. Only the
//! copies and the wake-up separate them from the zero-copy transports.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crosscast_ipc::os::memfd::SealedMemfd;
use rustix::event::{eventfd, EventfdFlags};
use rustix::io::Errno;
use serde_json::Value;

use super::ctl::wait_readable;
use super::msg::{now_ns, Header, Outgoing, HEADER_LEN};
use super::{Receive, Received, Setup, Transmit};

/// Ring size for an object of `size` bytes: room for two messages, so the sender can write the
/// next one while the receiver still copies the last, page-rounded, at least 64 KiB.
fn ring_len(size: usize) -> usize {
    (2 * (HEADER_LEN + size))
        .max(64 << 10)
        .next_multiple_of(4096)
}

/// Parent side of `shm-ring`: a sealed memfd ring and two eventfds, `data` (a message was
/// published) and `space` (a message was consumed), all passed to the peer.
pub(crate) fn setup_ring(size: usize) -> Result<Setup, String> {
    let len = ring_len(size);
    let ring = SealedMemfd::create("crosscast-bench-ring", len).map_err(|e| e.to_string())?;
    let data = eventfd(0, EventfdFlags::CLOEXEC).map_err(|e| format!("eventfd: {e}"))?;
    let space = eventfd(0, EventfdFlags::CLOEXEC).map_err(|e| format!("eventfd: {e}"))?;
    let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map_err(|e| format!("dup: {e}"));
    let fds = vec![dup(ring.as_fd())?, dup(data.as_fd())?, dup(space.as_fd())?];
    let rx = RingRx {
        ring,
        data,
        space,
        read_pos: 0,
        pending: 0,
        object: vec![0; size],
    };
    let mut s = Setup::new(Box::new(rx), fds);
    s.extra.insert("ring_bytes".into(), Value::from(len));
    Ok(s)
}

/// Copies `dst.len()` bytes out of the ring starting at byte `pos` (mod ring length).
fn ring_copy_out(ring: &[u8], pos: usize, dst: &mut [u8]) {
    let cap = ring.len();
    let start = pos % cap;
    let first = dst.len().min(cap - start);
    let (a, b) = dst.split_at_mut(first);
    a.copy_from_slice(&ring[start..start + first]);
    b.copy_from_slice(&ring[..b.len()]);
}

/// Copies `src` into the ring starting at byte `pos` (mod ring length).
fn ring_copy_in(ring: &mut [u8], pos: usize, src: &[u8]) {
    let cap = ring.len();
    let start = pos % cap;
    let first = src.len().min(cap - start);
    let (a, b) = src.split_at(first);
    ring[start..start + first].copy_from_slice(a);
    ring[..b.len()].copy_from_slice(b);
}

fn eventfd_add(fd: BorrowedFd<'_>, n: u64) -> Result<(), String> {
    loop {
        match rustix::io::write(fd, &n.to_ne_bytes()) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(format!("eventfd write: {e}")),
        }
    }
}

/// Waits up to `timeout` for the eventfd's counter and takes all of it.
fn eventfd_take(fd: BorrowedFd<'_>, timeout: Duration, what: &str) -> Result<u64, String> {
    if !wait_readable(fd, timeout)? {
        return Err(format!("no {what} within {timeout:?}"));
    }
    let mut b = [0u8; 8];
    loop {
        match rustix::io::read(fd, &mut b) {
            Ok(8) => return Ok(u64::from_ne_bytes(b)),
            Ok(n) => return Err(format!("eventfd read {n} bytes")),
            Err(Errno::INTR) => {}
            Err(e) => return Err(format!("eventfd read: {e}")),
        }
    }
}

struct RingRx {
    ring: SealedMemfd,
    data: OwnedFd,
    space: OwnedFd,
    read_pos: usize,
    /// Messages announced by `data` but not yet taken.
    pending: u64,
    object: Vec<u8>,
}

impl Receive for RingRx {
    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String> {
        if self.pending == 0 {
            self.pending = eventfd_take(self.data.as_fd(), timeout, "message")?;
        }
        self.pending -= 1;
        // The header is interpreted, so it is snapshotted with the ring's atomic reader.
        let cap = self.ring.len();
        let mut head = [0u8; HEADER_LEN];
        let start = self.read_pos % cap;
        let first = HEADER_LEN.min(cap - start);
        self.ring
            .read_at(start, &mut head[..first])
            .and_then(|()| self.ring.read_at(0, &mut head[first..]))
            .map_err(|e| e.to_string())?;
        let header = Header::decode(&head)?;
        if header.len != self.object.len() as u64 {
            return Err(format!(
                "message {} announces {} bytes, expected {}",
                header.seq,
                header.len,
                self.object.len()
            ));
        }
        ring_copy_out(
            self.ring.as_slice(),
            self.read_pos + HEADER_LEN,
            &mut self.object,
        );
        let received_ns = now_ns();
        self.read_pos += HEADER_LEN + self.object.len();
        eventfd_add(self.space.as_fd(), 1)?;
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

/// Peer side of `shm-ring`.
pub(crate) struct RingTx {
    ring: SealedMemfd,
    data: OwnedFd,
    space: OwnedFd,
    write_pos: usize,
    read_pos: usize,
    /// Lengths of messages written but not yet consumed, oldest first.
    in_flight: VecDeque<usize>,
    object: Outgoing,
}

impl RingTx {
    /// Maps the ring the parent created (checking its seals and size) for `size`-byte objects.
    pub(crate) fn new(
        ring: OwnedFd,
        data: OwnedFd,
        space: OwnedFd,
        size: usize,
    ) -> Result<RingTx, String> {
        let ring = SealedMemfd::from_received(ring, ring_len(size)).map_err(|e| e.to_string())?;
        Ok(RingTx {
            ring,
            data,
            space,
            write_pos: 0,
            read_pos: 0,
            in_flight: VecDeque::new(),
            object: Outgoing::new(size),
        })
    }
}

impl Transmit for RingTx {
    fn prepare(&mut self, seq: u32) -> Result<(), String> {
        self.object.prepare(seq);
        Ok(())
    }

    fn send(&mut self, seq: u32, _due_ns: u64) -> Result<(), String> {
        let header = self.object.header(seq)?;
        let len = HEADER_LEN + self.object.bytes.len();
        // Wait for room: the receiver reports each message it has copied out.
        while self.ring.len() - (self.write_pos - self.read_pos) < len {
            let freed = eventfd_take(self.space.as_fd(), Duration::from_secs(10), "ring space")?;
            for _ in 0..freed {
                let Some(l) = self.in_flight.pop_front() else {
                    return Err("receiver consumed more messages than were sent".into());
                };
                self.read_pos += l;
            }
        }
        let ring = self.ring.as_mut_slice();
        ring_copy_in(ring, self.write_pos, &header);
        ring_copy_in(ring, self.write_pos + HEADER_LEN, &self.object.bytes);
        self.write_pos += len;
        self.in_flight.push_back(len);
        eventfd_add(self.data.as_fd(), 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_copies_wrap_around() {
        let mut ring = vec![0u8; 10];
        ring_copy_in(&mut ring, 7, &[1, 2, 3, 4, 5]);
        assert_eq!(ring, [4, 5, 0, 0, 0, 0, 0, 1, 2, 3]);
        let mut out = [0u8; 5];
        ring_copy_out(&ring, 17, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5]);
        // Positions grow without bound; only their remainder matters.
        ring_copy_in(&mut ring, 20, &[9, 9]);
        assert_eq!(&ring[..2], &[9, 9]);
    }

    #[test]
    fn sizes_hold_two_messages() {
        for size in [1, 3072, 4 << 20, 10 << 20] {
            assert!(ring_len(size) >= 2 * (HEADER_LEN + size));
            assert_eq!(ring_len(size) % 4096, 0);
        }
    }
}

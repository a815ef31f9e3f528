//! Shared-memory transports that still copy: `shm-ring` and `mmap-file`.
//!
//! Both are what an application builds when it wants shared memory but keeps its objects in
//! private memory: the sender copies each object in, the receiver copies it out into its own
//! object (the "deserialisation"), and a small kernel object carries the wake-up. Only the
//! copies and the wake-up separate them from the zero-copy transports.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crosscast_ipc::os::memfd::SealedMemfd;
use iceoryx2_bb_posix::memory_mapping::{
    AccessMode, FilePath, MappingBehavior, MappingPermission, MemoryMapping, MemoryMappingBuilder,
    SemanticString,
};
use rustix::event::{eventfd, EventfdFlags};
use rustix::io::Errno;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use serde_json::Value;

use super::ctl::wait_readable;
use super::msg::{now_ns, Header, Outgoing, HEADER_LEN};
use super::stream::{read_exact, write_all2};
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

/// The file `mmap-file` maps: two regions, so the sender can write one while the receiver copies
/// the other out, like a double-buffered key-value store.
fn file_len(size: usize) -> usize {
    2 * region_len(size)
}

fn region_len(size: usize) -> usize {
    (HEADER_LEN + size).next_multiple_of(4096)
}

fn map_file(path: &Path, len: usize) -> Result<MemoryMapping, String> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let fp = FilePath::new(bytes).map_err(|e| format!("path {}: {e:?}", path.display()))?;
    MemoryMappingBuilder::from_file(&fp)
        .file_access_mode(AccessMode::ReadWrite)
        .mapping_behavior(MappingBehavior::Shared)
        .initial_mapping_permission(MappingPermission::ReadWrite)
        .size(len)
        .create()
        .map_err(|e| format!("mmap {}: {e:?}", path.display()))
}

/// Parent side of `mmap-file`, the MMKV analogue: a regular file in the system temp dir (on this
/// machine's disk, so its dirty pages are written back like MMKV's), mapped shared by both
/// processes, and a stream socketpair for the notification ("message N is in region N % 2")
/// and its acknowledgement.
pub(crate) fn setup_file(size: usize) -> Result<Setup, String> {
    let dir = tempfile::Builder::new()
        .prefix("crosscast-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let path = dir.path().join("store.mmap");
    let len = file_len(size);
    let file = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    file.set_len(len as u64)
        .map_err(|e| format!("size {}: {e}", path.display()))?;
    drop(file);
    let map = map_file(&path, len)?;
    let (note_rx, note_tx) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    let rx = FileRx {
        map,
        note: note_rx,
        object: vec![0; size],
        _dir: dir,
    };
    let mut s = Setup::new(Box::new(rx), vec![note_tx]);
    s.args = vec!["--file".into(), path.to_string_lossy().into_owned()];
    s.extra.insert(
        "file_dir".into(),
        Value::from(std::env::temp_dir().to_string_lossy().into_owned()),
    );
    Ok(s)
}

struct FileRx {
    // Unmapped before the temp dir is removed (field order is drop order).
    map: MemoryMapping,
    note: OwnedFd,
    object: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Receive for FileRx {
    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String> {
        if !wait_readable(self.note.as_fd(), timeout)? {
            return Err(format!("no message {expect_seq} within {timeout:?}"));
        }
        let mut note = [0u8; 4];
        read_exact(self.note.as_fd(), &mut note)?;
        let seq = u32::from_le_bytes(note);
        let off = (seq as usize % 2) * region_len(self.object.len());
        let mem = self.map.as_slice();
        let header = Header::decode(&mem[off..off + HEADER_LEN])?;
        if header.len != self.object.len() as u64 {
            return Err(format!(
                "message {} announces {} bytes, expected {}",
                header.seq,
                header.len,
                self.object.len()
            ));
        }
        let body = off + HEADER_LEN;
        let len = self.object.len();
        self.object.copy_from_slice(&mem[body..body + len]);
        let received_ns = now_ns();
        // The region is free again as soon as the object is out.
        write_all2(self.note.as_fd(), &note, &[])?;
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

/// Peer side of `mmap-file`.
pub(crate) struct FileTx {
    map: MemoryMapping,
    note: OwnedFd,
    object: Outgoing,
    /// Messages the receiver has acknowledged.
    acked: u32,
}

impl FileTx {
    /// Maps `path` (created by the parent) for `size`-byte objects; `note` is the notification
    /// socket.
    pub(crate) fn new(path: &str, note: OwnedFd, size: usize) -> Result<FileTx, String> {
        let map = map_file(&PathBuf::from(path), file_len(size))?;
        Ok(FileTx {
            map,
            note,
            object: Outgoing::new(size),
            acked: 0,
        })
    }
}

impl Transmit for FileTx {
    fn prepare(&mut self, seq: u32) -> Result<(), String> {
        self.object.prepare(seq);
        Ok(())
    }

    fn send(&mut self, seq: u32, _due_ns: u64) -> Result<(), String> {
        let header = self.object.header(seq)?;
        // Region seq % 2 last held message seq - 2: wait until the receiver has copied it out.
        while self.acked + 2 <= seq {
            if !wait_readable(self.note.as_fd(), Duration::from_secs(10))? {
                return Err(format!("no acknowledgement of message {}", self.acked));
            }
            let mut ack = [0u8; 4];
            read_exact(self.note.as_fd(), &mut ack)?;
            self.acked += 1;
        }
        let object = &self.object.bytes;
        let off = (seq as usize % 2) * region_len(object.len());
        let mem = self.map.as_mut_slice();
        mem[off..off + HEADER_LEN].copy_from_slice(&header);
        mem[off + HEADER_LEN..off + HEADER_LEN + object.len()].copy_from_slice(object);
        write_all2(self.note.as_fd(), &seq.to_le_bytes(), &[])
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
            assert!(region_len(size) >= HEADER_LEN + size);
        }
    }
}

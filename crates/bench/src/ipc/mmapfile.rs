//! `mmap-file`, the MMKV analogue: a shared regular file that still copies.
//!
//! The file is mapped through iceoryx2's POSIX layer (a safe mapping API; this crate forbids
//! `unsafe`), so this transport comes with the `iceoryx2` feature.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use iceoryx2_bb_posix::memory_mapping::{
    AccessMode, FilePath, MappingBehavior, MappingPermission, MemoryMapping, MemoryMappingBuilder,
    SemanticString,
};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use serde_json::Value;

use super::ctl::wait_readable;
use super::msg::{now_ns, Header, Outgoing, HEADER_LEN};
use super::stream::{read_exact, write_all2};
use super::{Receive, Received, Setup, Transmit};

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
    fn regions_hold_a_message() {
        for size in [1, 3072, 4 << 20, 10 << 20] {
            assert!(region_len(size) >= HEADER_LEN + size);
            assert_eq!(file_len(size), 2 * region_len(size));
        }
    }
}

//! Host-owned frame memory: a memfd sealed against shrink and grow, mapped shared by both
//! processes.
//!
//! The host [`create`](SealedMemfd::create)s each slot, seals it and passes the fd once per
//! surface configuration; the game checks it with [`from_received`](SealedMemfd::from_received)
//! and renders straight into it. No pixel crosses the socket.
//!
//! ```
//! use crosscast_ipc::os::memfd::SealedMemfd;
//! use std::os::fd::{AsFd, OwnedFd};
//!
//! let mut host = SealedMemfd::create("slot-0", 4096)?;
//! // The game gets a duplicate of the fd over the socket; here we duplicate it by hand.
//! let dup: OwnedFd = host.as_fd().try_clone_to_owned().expect("dup");
//! let mut game = SealedMemfd::from_received(dup, 4096)?;
//! game.as_mut_slice()[..4].copy_from_slice(b"RGBA");
//! assert_eq!(&host.as_slice()[..4], b"RGBA");
//! # Ok::<(), crosscast_ipc::os::OsError>(())
//! ```
//!
//! # Aliasing contract
//!
//! Both processes map the same pages. Who may write which slot when is decided by the
//! BufferQueue protocol (safe code, outside this module): the game writes only slots it has
//! dequeued, the host reads only slots it has acquired. A well-behaved peer therefore never
//! writes while we hold a view. A hostile or buggy game, however, can write a slot at any
//! moment, including one the host is reading, and nothing in our address space can prevent
//! that. What it can and cannot do:
//!
//! - It cannot unmap, shrink or grow our mapping: the mapping is ours, and the seals
//!   (`F_SEAL_SHRINK | F_SEAL_GROW`, checked on receipt) keep every mapped byte backed by the
//!   file for the mapping's life, so no access within [`len`](SealedMemfd::len) can fault
//!   (no `SIGBUS`, unlike Wayland shm pools, which need a `SIGBUS` handler for this).
//! - It can change byte values under a `&[u8]`. Every bit pattern is a valid `u8`, so no
//!   invalid value can appear; what the optimiser may get wrong is only that two reads of the
//!   same byte through one borrow return the same value. For pixel and sample data that means
//!   torn or wrong pixels, never a wild pointer, as long as consumers treat the bytes as values
//!   and never as lengths, offsets or indices checked once and used later. This is the stance
//!   Smithay and every Wayland compositor take for client shm buffers, and the only one that
//!   keeps the frame path zero-copy (the renderer and the colour converter need plain slices).
//! - Anything that *is* interpreted (a header, a sequence number, a checksum stamped into the
//!   frame) must be read once into private memory with [`read_at`](SealedMemfd::read_at),
//!   which uses atomic loads (sound against concurrent writers), and validated there.
//!
//! Control data (slot index, sizes, timestamps) never lives in this memory: it travels over the
//! socket and is validated by the wire layer.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use rustix::fs::{FileType, MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use super::{OsError, Result};

/// The seals a frame memfd must carry: its size can never change, so a mapping of it can never
/// fault.
pub const REQUIRED_SEALS: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

/// A sealed memfd mapped read-write and shared. Unmapped on drop; the fd closes with it.
#[derive(Debug)]
pub struct SealedMemfd {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to the process, not to a thread, and `SealedMemfd` owns it
// exclusively (it is unmapped only in `drop`); moving the owner to another thread is as sound as
// moving a `Vec<u8>`.
unsafe impl Send for SealedMemfd {}
// SAFETY: `&SealedMemfd` only hands out shared reads (`as_slice`, `read_at`); writes need
// `&mut self`. Sharing it between threads is as sound as sharing a `&[u8]` (the cross-process
// writer is covered by the module's aliasing contract, not by `Sync`).
unsafe impl Sync for SealedMemfd {}

impl SealedMemfd {
    /// Creates a memfd of `len` bytes (zero-filled), seals it against shrink, grow and further
    /// sealing, and maps it read-write shared. Host side.
    ///
    /// The fd is close-on-exec; pass it to the game with `SCM_RIGHTS`.
    /// See [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html),
    /// [fcntl(2) F_ADD_SEALS](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    #[doc(alias = "memfd_create")]
    #[doc(alias = "F_ADD_SEALS")]
    pub fn create(name: &str, len: usize) -> Result<SealedMemfd> {
        let size = check_len(len)?;
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(OsError::sys("memfd_create"))?;
        rustix::fs::ftruncate(&fd, size).map_err(OsError::sys("ftruncate"))?;
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS | SealFlags::SEAL)
            .map_err(OsError::sys("fcntl(F_ADD_SEALS)"))?;
        map(fd, len)
    }

    /// Checks that a received fd is a memfd sealed against shrink and grow, of exactly
    /// `expected_len` bytes, then maps it read-write shared. Game side.
    ///
    /// A pipe, socket, regular file, or unsealed memfd is refused with
    /// [`OsError::NotSealedMemfd`]; a wrong size with [`OsError::SizeMismatch`]. Seals can only
    /// ever be added, so what is checked here stays true for the mapping's life.
    /// See [fcntl(2) F_GET_SEALS](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    #[doc(alias = "F_GET_SEALS")]
    #[doc(alias = "fstat")]
    pub fn from_received(fd: OwnedFd, expected_len: usize) -> Result<SealedMemfd> {
        let expected = check_len(expected_len)?;
        let stat = rustix::fs::fstat(&fd).map_err(OsError::sys("fstat"))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Fifo => return Err(not_memfd("a pipe")),
            FileType::Socket => return Err(not_memfd("a socket")),
            FileType::Directory => return Err(not_memfd("a directory")),
            _ => return Err(not_memfd("not a regular file")),
        }
        // Only shmem files (memfd) support seals beyond F_SEAL_SEAL; files on other file
        // systems fail with EINVAL, tmpfs files opened by path carry F_SEAL_SEAL alone.
        let seals = match rustix::fs::fcntl_get_seals(&fd) {
            Ok(seals) => seals,
            Err(Errno::INVAL) => return Err(not_memfd("a file that does not support sealing")),
            Err(e) => {
                return Err(OsError::Sys {
                    op: "fcntl(F_GET_SEALS)",
                    errno: e,
                })
            }
        };
        if !seals.contains(REQUIRED_SEALS) {
            return Err(not_memfd("not sealed against shrink and grow"));
        }
        if seals.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
            return Err(not_memfd("sealed against writing"));
        }
        let actual = u64::try_from(stat.st_size).unwrap_or(0);
        if actual != expected {
            return Err(OsError::SizeMismatch { expected, actual });
        }
        map(fd, expected_len)
    }

    /// Length of the mapping in bytes (never 0).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a zero-length memfd is refused at creation.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole mapping for reading, zero-copy (the host's colour conversion reads from here).
    ///
    /// The peer process may write these bytes concurrently if it breaks the protocol; see the
    /// module's aliasing contract for why that yields wrong values but nothing worse, and use
    /// [`read_at`](Self::read_at) for bytes that are interpreted rather than displayed.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to a live mapping of `len` readable bytes, owned by `self` and
        // unmapped only in `drop`, so it outlives the borrow. No `&mut` to it exists while
        // `&self` is borrowed. Concurrent writes by the peer process can only change the values
        // of these `u8`s (every bit pattern valid, pages cannot go away thanks to the seals);
        // this is the documented aliasing contract of this module.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole mapping for writing, zero-copy (the game renders straight into it).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` guarantees no other view exists in this
        // process. The peer reads or writes these pages only as the aliasing contract allows.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Copies `dst.len()` bytes at `offset` out of the mapping with atomic loads: a private
    /// snapshot that a concurrently writing peer cannot change after it is taken. Use it for
    /// anything that is parsed or validated, and for copy-out transports. Aligned words are
    /// copied 8 bytes at a time (a few GB/s); it is still a copy, so frames are read in place
    /// through [`as_slice`](Self::as_slice).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let start = self.check_range(offset, dst.len())?;
        let base = self.ptr.as_ptr();
        let (head, words, tail) = split_aligned(base as usize + start, dst.len());
        let mut i = 0;
        for _ in 0..head {
            // SAFETY: `start + i < start + dst.len() <= len` (checked above): inside the live
            // mapping; `u8` needs no alignment. Atomic loads are sound whatever another process
            // writes; in this process no `&mut` view exists while `&self` is borrowed, so no
            // non-atomic write races with them.
            dst[i] = unsafe { AtomicU8::from_ptr(base.add(start + i)) }.load(Ordering::Relaxed);
            i += 1;
        }
        for _ in 0..words {
            // SAFETY: as above, and `split_aligned` made `base + start + i` 8-byte aligned with
            // 8 bytes left before the end of the range. Concurrent loads of other widths in
            // this process are reads as well, which may overlap.
            let word = unsafe { AtomicU64::from_ptr(base.add(start + i).cast::<u64>()) }
                .load(Ordering::Relaxed);
            dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
            i += 8;
        }
        for _ in 0..tail {
            // SAFETY: as for the head bytes.
            dst[i] = unsafe { AtomicU8::from_ptr(base.add(start + i)) }.load(Ordering::Relaxed);
            i += 1;
        }
        Ok(())
    }

    /// Copies `src` into the mapping at `offset` with atomic stores, the counterpart of
    /// [`read_at`](Self::read_at) for headers and copy-in transports; render frames in place
    /// through [`as_mut_slice`](Self::as_mut_slice).
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let start = self.check_range(offset, src.len())?;
        let base = self.ptr.as_ptr();
        let (head, words, tail) = split_aligned(base as usize + start, src.len());
        let mut i = 0;
        for _ in 0..head {
            // SAFETY: in bounds (checked above); `&mut self` excludes every other access in
            // this process, so nothing here races with these atomic stores.
            unsafe { AtomicU8::from_ptr(base.add(start + i)) }.store(src[i], Ordering::Relaxed);
            i += 1;
        }
        for _ in 0..words {
            let mut word = [0u8; 8];
            word.copy_from_slice(&src[i..i + 8]);
            // SAFETY: as above, and 8-byte aligned with 8 bytes in range (`split_aligned`).
            unsafe { AtomicU64::from_ptr(base.add(start + i).cast::<u64>()) }
                .store(u64::from_ne_bytes(word), Ordering::Relaxed);
            i += 8;
        }
        for _ in 0..tail {
            // SAFETY: as for the head bytes.
            unsafe { AtomicU8::from_ptr(base.add(start + i)) }.store(src[i], Ordering::Relaxed);
            i += 1;
        }
        Ok(())
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<usize> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(offset),
            _ => Err(OsError::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }
}

impl AsFd for SealedMemfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SealedMemfd {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `map`, and `&mut self` in
        // `drop` means no slice borrowed from it is alive any more. An error (impossible for a
        // valid mapping) leaves the mapping in place, which leaks but stays sound.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Splits a copy of `len` bytes starting at address `addr` into leading bytes up to 8-byte
/// alignment, whole aligned words, and trailing bytes.
fn split_aligned(addr: usize, len: usize) -> (usize, usize, usize) {
    let head = (addr.wrapping_neg() % 8).min(len);
    let words = (len - head) / 8;
    (head, words, len - head - words * 8)
}

fn not_memfd(reason: &'static str) -> OsError {
    OsError::NotSealedMemfd { reason }
}

/// A mapping must be non-empty and its size must fit `off_t`.
fn check_len(len: usize) -> Result<u64> {
    match u64::try_from(len) {
        Ok(size) if len > 0 && size <= i64::MAX as u64 => Ok(size),
        _ => Err(OsError::InvalidLength { len }),
    }
}

fn map(fd: OwnedFd, len: usize) -> Result<SealedMemfd> {
    // SAFETY: a fresh mapping at an address the kernel picks (null hint, no MAP_FIXED), so no
    // existing memory of this process is replaced. The file is at least `len` bytes and sealed
    // against shrinking (checked by both callers), so every page stays backed.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .map_err(OsError::sys("mmap"))?;
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(OsError::Sys {
        op: "mmap",
        errno: Errno::FAULT,
    })?;
    Ok(SealedMemfd { fd, ptr, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_zeroed_sealed_and_sized() {
        let m = SealedMemfd::create("t", 10_000).unwrap();
        assert_eq!(m.len(), 10_000);
        assert!(!m.is_empty());
        assert!(m.as_slice().iter().all(|b| *b == 0));
        let seals = rustix::fs::fcntl_get_seals(&m).unwrap();
        assert!(seals.contains(REQUIRED_SEALS | SealFlags::SEAL));
        assert_eq!(rustix::fs::ftruncate(&m, 20_000), Err(Errno::PERM));
        assert_eq!(rustix::fs::ftruncate(&m, 10), Err(Errno::PERM));
        let flags = rustix::io::fcntl_getfd(&m).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }

    #[test]
    fn zero_length_refused() {
        assert_eq!(
            SealedMemfd::create("t", 0).unwrap_err(),
            OsError::InvalidLength { len: 0 }
        );
    }

    #[test]
    fn read_write_at_bounds() {
        let mut m = SealedMemfd::create("t", 16).unwrap();
        m.write_at(12, b"abcd").unwrap();
        let mut out = [0u8; 4];
        m.read_at(12, &mut out).unwrap();
        assert_eq!(&out, b"abcd");
        assert_eq!(&m.as_slice()[12..], b"abcd");
        assert!(matches!(
            m.read_at(13, &mut out),
            Err(OsError::OutOfBounds { .. })
        ));
        assert!(matches!(
            m.write_at(usize::MAX, b"a"),
            Err(OsError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn read_write_at_every_alignment_and_length() {
        let mut m = SealedMemfd::create("t", 256).unwrap();
        for offset in 0..17 {
            for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 31, 64, 100] {
                let src: Vec<u8> = (0..len).map(|i| (i * 31 + offset) as u8).collect();
                m.as_mut_slice().fill(0xFF);
                m.write_at(offset, &src).unwrap();
                assert_eq!(&m.as_slice()[offset..offset + len], &src[..]);
                assert!(m.as_slice()[..offset].iter().all(|b| *b == 0xFF));
                assert!(m.as_slice()[offset + len..].iter().all(|b| *b == 0xFF));
                let mut out = vec![0u8; len];
                m.read_at(offset, &mut out).unwrap();
                assert_eq!(out, src);
            }
        }
        assert_eq!(split_aligned(0x1001, 3), (3, 0, 0));
        assert_eq!(split_aligned(0x1001, 20), (7, 1, 5));
        assert_eq!(split_aligned(0x1000, 16), (0, 2, 0));
    }

    #[test]
    fn unsealed_memfd_refused() {
        let fd =
            rustix::fs::memfd_create("u", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&fd, 64).unwrap();
        assert_eq!(
            SealedMemfd::from_received(fd, 64).unwrap_err(),
            OsError::NotSealedMemfd {
                reason: "not sealed against shrink and grow"
            }
        );
        // Without ALLOW_SEALING the memfd carries F_SEAL_SEAL only.
        let fd = rustix::fs::memfd_create("v", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 64).unwrap();
        assert!(matches!(
            SealedMemfd::from_received(fd, 64),
            Err(OsError::NotSealedMemfd { .. })
        ));
    }

    #[test]
    fn write_sealed_memfd_refused() {
        let fd =
            rustix::fs::memfd_create("w", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&fd, 64).unwrap();
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS | SealFlags::WRITE).unwrap();
        assert_eq!(
            SealedMemfd::from_received(fd, 64).unwrap_err(),
            OsError::NotSealedMemfd {
                reason: "sealed against writing"
            }
        );
    }

    #[test]
    fn wrong_size_refused() {
        let m = SealedMemfd::create("t", 4096).unwrap();
        let dup = m.as_fd().try_clone_to_owned().unwrap();
        assert_eq!(
            SealedMemfd::from_received(dup, 8192).unwrap_err(),
            OsError::SizeMismatch {
                expected: 8192,
                actual: 4096
            }
        );
    }
}

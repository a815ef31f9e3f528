//! The pixels of `crosscast-input-probe`, the Wayland client of the input-latency bench.
//!
//! The probe shows what the demo game shows: a dark gray frame with a solid white
//! [`MARKER`]x[`MARKER`] square at the top-left corner while any key or button is held, so one
//! detector serves both. Frames are XRGB8888 (`wl_shm`'s little-endian B, G, R, X bytes).
//!
//! The drawing functions work on plain byte slices (unit-tested); [`ShmFile`] writes the same
//! bytes into a memfd with positioned writes, so the probe needs neither `mmap` nor `unsafe`:
//! the compositor maps the fd, the probe only writes to it.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;

use crate::BenchError;

/// Side of the white square, in pixels (the demo game's marker).
pub const MARKER: u32 = 32;
/// Bytes per XRGB8888 pixel.
pub const BYTES_PER_PIXEL: usize = 4;
/// The background pixel: gray at luma 40, as B, G, R, X bytes.
pub const BACKGROUND: [u8; 4] = [40, 40, 40, 0xff];
/// The marker pixel: white, as B, G, R, X bytes.
pub const WHITE: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

/// A frame's size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// Bytes per row (no padding).
    pub fn stride(self) -> usize {
        self.width as usize * BYTES_PER_PIXEL
    }

    /// Bytes of one whole frame.
    pub fn frame_bytes(self) -> usize {
        self.stride() * self.height as usize
    }

    /// The marker's width and height, clipped to the frame (a window smaller than the marker).
    pub fn marker(self) -> (u32, u32) {
        (self.width.min(MARKER), self.height.min(MARKER))
    }
}

/// The pixel of the marker region for this input state.
fn marker_pixel(held: bool) -> [u8; 4] {
    if held {
        WHITE
    } else {
        BACKGROUND
    }
}

/// Draws a whole frame into `buf` (at least `size.frame_bytes()` long): background, and the
/// marker white if `held`.
pub fn draw_frame(buf: &mut [u8], size: Size, held: bool) {
    // Row by row with one prepared row: memcpy speed even in a debug build.
    let row = BACKGROUND.repeat(size.width as usize);
    if !row.is_empty() {
        for line in buf[..size.frame_bytes()].chunks_exact_mut(row.len()) {
            line.copy_from_slice(&row);
        }
    }
    draw_marker(buf, size, held);
}

/// One row of the marker region for this input state (`marker().0` pixels).
pub fn marker_row(size: Size, held: bool) -> Vec<u8> {
    marker_pixel(held).repeat(size.marker().0 as usize)
}

/// Byte offsets, within a frame, of the start of each row of the marker region.
pub fn marker_row_offsets(size: Size) -> impl Iterator<Item = usize> {
    let stride = size.stride();
    (0..size.marker().1 as usize).map(move |y| y * stride)
}

/// Redraws only the marker region of a frame whose background is already drawn.
pub fn draw_marker(buf: &mut [u8], size: Size, held: bool) {
    let row = marker_row(size, held);
    for at in marker_row_offsets(size) {
        buf[at..at + row.len()].copy_from_slice(&row);
    }
}

/// A memfd holding `count` frames back to back: the one `wl_shm` pool of the probe.
#[derive(Debug)]
pub struct ShmFile {
    file: File,
    size: Size,
    count: usize,
}

impl ShmFile {
    /// Creates the memfd, sized for `count` frames of `size` (zero-filled).
    pub fn new(size: Size, count: usize) -> Result<Self, BenchError> {
        let err = |what: &'static str| move |source| BenchError::ProbeShm { what, source };
        let fd = rustix::fs::memfd_create("crosscast-input-probe", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| err("memfd_create")(e.into()))?;
        let file = File::from(fd);
        file.set_len((size.frame_bytes() * count) as u64)
            .map_err(err("ftruncate"))?;
        Ok(Self { file, size, count })
    }

    /// The fd to hand to `wl_shm.create_pool`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The pool's length in bytes.
    pub fn len(&self) -> usize {
        self.size.frame_bytes() * self.count
    }

    /// Whether the pool holds no bytes (a zero-sized frame or no buffers).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame size every buffer of the pool has.
    pub fn size(&self) -> Size {
        self.size
    }

    /// The byte offset of buffer `index` in the pool.
    pub fn offset(&self, index: usize) -> usize {
        assert!(index < self.count, "buffer {index} of {}", self.count);
        index * self.size.frame_bytes()
    }

    /// Writes a whole frame into buffer `index` (a fresh buffer, or after a resize).
    pub fn write_frame(&self, index: usize, held: bool) -> Result<(), BenchError> {
        let mut frame = vec![0; self.size.frame_bytes()];
        draw_frame(&mut frame, self.size, held);
        self.file
            .write_all_at(&frame, self.offset(index) as u64)
            .map_err(|source| BenchError::ProbeShm {
                what: "write a frame",
                source,
            })
    }

    /// Rewrites only the marker region of buffer `index`, whose background is already drawn:
    /// one 128-byte `pwrite` per marker row (32), about 8.5 us in all on the 2-core CI machine
    /// in a dev build (`marker_write_is_cheap_at_1280x720`), where a whole 1280x720 frame is
    /// 3.7 MB and 2 to 3 ms. This is all the probe adds between an input event and its commit.
    pub fn write_marker(&self, index: usize, held: bool) -> Result<(), BenchError> {
        let base = self.offset(index);
        let row = marker_row(self.size, held);
        for at in marker_row_offsets(self.size) {
            self.file
                .write_all_at(&row, (base + at) as u64)
                .map_err(|source| BenchError::ProbeShm {
                    what: "write the marker",
                    source,
                })?;
        }
        Ok(())
    }
}

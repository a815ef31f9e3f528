//! Asynchronous readback of a GL-rendered frame into a crosscast slot.
//!
//! A game that renders with OpenGL has its pixels on the GPU, while crosscast's native protocol
//! wants them in a host-owned shared-memory slot (RGBA8, `stride` bytes a row, top row first).
//! The obvious copy, `glReadPixels` into client memory (or `glFinish` then read), makes the
//! render thread wait until the GPU has finished the frame and the copy: the whole pipeline
//! drains every frame, and the game's frame time grows by the GPU's latency. That stall is what
//! this crate avoids.
//!
//! [`Readback`] keeps a ring of pixel-pack buffers (`GL_PIXEL_PACK_BUFFER`, `GL_STREAM_READ`,
//! `width * height * 4` bytes each):
//!
//! * [`Readback::start`] binds the game's framebuffer for reading and issues `glReadPixels`
//!   into the next free buffer. With a pack buffer bound, `glReadPixels` only *queues* the copy
//!   and returns at once. A fence (`glFenceSync`) is inserted after it and the commands are
//!   flushed (not finished), so the fence reaches the GPU.
//! * [`Readback::poll`] asks the oldest fence whether it has signalled, with a zero timeout
//!   (`glClientWaitSync(.., 0)`): the fence is how the CPU learns that the copy is done without
//!   waiting for it. Only then is the buffer mapped (`glMapBufferRange`, read-only), which no
//!   longer stalls, and its rows are copied into the slot bottom-up, since GL's origin is the
//!   bottom-left corner and the slot's first row is the top.
//! * The ring depth (default [`DEFAULT_DEPTH`]) is the most frames that can be in flight,
//!   which is the latency the stream may add, in frames. When every buffer is still in flight
//!   (the game has not polled), the *new* frame is dropped and counted instead of waiting, so
//!   the render thread never blocks on the GPU (see [`Start::Dropped`]).
//! * [`Readback::finish`] is the one call that waits: for shutdown, to drain the ring.
//!
//! Whether `glReadPixels` into a buffer really runs in the background is the driver's
//! choice. A GPU copies with its DMA engine while the CPU goes on; Mesa's llvmpipe (software
//! rendering) instead finishes the frame and copies inside `glReadPixels`, so there `start`
//! takes as long as the synchronous read and frames arrive with no delay: the ring costs
//! nothing but brings nothing either (`examples/frame_time.rs` measures it).
//!
//! # Usage with crosscast's SDK
//!
//! ```text
//! let mut readback = Readback::new(&gl, width, height, DEFAULT_DEPTH)?;
//! loop {
//!     render frame N into fbo;                       // the game's own work
//!     readback.start(&gl, Some(fbo), (n, pts_n))?;   // queues the copy, returns at once
//!     while a slot can be dequeued {
//!         match readback.poll(&gl, slot.bytes_mut(), slot.stride())? {
//!             Some((seq, pts)) => queue the slot with pts,  // frame seq, finished by now
//!             None => { give the slot back; break }        // nothing finished yet
//!         }
//!     }
//!     swap / next frame;
//! }
//! while let Some((seq, pts)) = readback.finish(&gl, slot, stride)? { queue it }
//! readback.delete(&gl);
//! ```
//!
//! The tag `T` travels with the frame from `start` to the `poll` that delivers it, so the
//! presentation time queued with the slot is the one of the frame whose pixels are in it.
//!
//! # The GL context
//!
//! This crate loads no GL and creates no context or window: it takes the game's
//! [`glow::Context`]. Every method must be called on the thread where that context is current,
//! which the game vouched for when it built the `glow::Context` (an `unsafe` constructor);
//! the GL objects belong to that context and [`Readback::delete`] frees them. It needs
//! OpenGL ES 3.0 or desktop OpenGL 3.2 (pixel-pack buffers, `glMapBufferRange`, fences).
#![deny(unsafe_code)]

mod calls;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use calls::Wait;

/// The ring depth used when the game has no reason to choose: three frames in flight.
pub const DEFAULT_DEPTH: usize = 3;

/// How long [`Readback::finish`] waits for one frame before it gives up.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the readback helper; GL errors carry the `glGetError` code.
#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    /// The context's GL version lacks pixel-pack buffers, mapping or fences.
    #[error("GL {major}.{minor}{es} lacks PBOs, glMapBufferRange or fences (needs ES 3.0 or GL 3.2)", es = if *.embedded { " ES" } else { "" })]
    Unsupported {
        /// Major version of the context.
        major: u32,
        /// Minor version of the context.
        minor: u32,
        /// Whether it is OpenGL ES.
        embedded: bool,
    },
    /// The frame size is zero or too large for one GL buffer.
    #[error("frame size {width}x{height} is empty or over 2 GiB of RGBA8")]
    Size {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// A ring of zero buffers could hold no frame.
    #[error("the ring needs at least one buffer")]
    Depth,
    /// GL could not create a buffer or a fence.
    #[error("GL could not create a {what}: {message}")]
    Create {
        /// What was being created.
        what: &'static str,
        /// The message glow returned.
        message: String,
    },
    /// A GL call set an error flag.
    #[error("GL error 0x{code:04x} while {op}")]
    Gl {
        /// What the helper was doing.
        op: &'static str,
        /// The `glGetError` code.
        code: u32,
    },
    /// `glClientWaitSync` returned `GL_WAIT_FAILED`; the frame is lost.
    #[error("waiting on the frame's fence failed (GL error 0x{code:04x})")]
    WaitFailed {
        /// The `glGetError` code after the failure.
        code: u32,
    },
    /// `glMapBufferRange` returned null; the frame is lost.
    #[error("mapping the pixel-pack buffer failed (GL error 0x{code:04x})")]
    Map {
        /// The `glGetError` code after the failure.
        code: u32,
    },
    /// The fence did not signal within [`FINISH_TIMEOUT`]; the frame stays in flight.
    #[error("the frame's copy did not finish within {0:?}")]
    Timeout(Duration),
    /// The destination cannot hold one frame at this stride.
    #[error("destination of {len} bytes with stride {stride} cannot hold {width}x{height} RGBA8")]
    Destination {
        /// Length of the destination.
        len: usize,
        /// Bytes a row the caller gave.
        stride: usize,
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
    },
}

/// What [`Readback::start`] did with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Start<T> {
    /// The copy is queued; a later `poll` or `finish` returns the tag.
    Queued,
    /// Every buffer was still in flight, so this frame was not read back (counted in
    /// [`Stats::dropped`]); the tag comes back to the caller. Waiting for the oldest buffer
    /// instead would put exactly the GPU stall this crate exists to avoid on the render thread.
    Dropped(T),
}

/// Counters of the readback, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `start` (queued or dropped).
    pub started: u64,
    /// Frames copied into a destination by `poll` or `finish`.
    pub delivered: u64,
    /// Frames not read back: the ring was full at `start`, or `resize` discarded them.
    pub dropped: u64,
    /// Frames queued but lost to a GL error (fence or mapping failure).
    pub lost: u64,
    /// Delay of the last delivered frame: how many later frames had been started when it was
    /// delivered (0: delivered before the next `start`).
    pub delay_last: u64,
    /// Largest delay of any delivered frame, in frames.
    pub delay_max: u64,
    /// Sum of the delays of all delivered frames, for the mean.
    pub delay_total: u64,
}

impl Stats {
    /// Mean start→delivery delay in frames, or `None` before the first delivery.
    pub fn delay_mean(&self) -> Option<f64> {
        (self.delivered > 0).then(|| self.delay_total as f64 / self.delivered as f64)
    }
}

/// A frame whose copy is queued on the GPU.
struct InFlight<T> {
    /// Index into `Readback::buffers`.
    buffer: usize,
    fence: glow::Fence,
    tag: T,
    /// Value of `Stats::started` before this frame's `start`: its sequence number.
    seq: u64,
}

/// A ring of pixel-pack buffers that reads frames back from GL without stalling the caller.
///
/// `T` is the game's tag for a frame (sequence number, presentation time...), returned by
/// the `poll` that delivers that frame's pixels. See the crate docs for the pattern.
pub struct Readback<T> {
    width: u32,
    height: u32,
    buffers: Vec<glow::Buffer>,
    /// Buffers not in flight, oldest-freed first.
    free: VecDeque<usize>,
    /// Frames in flight, oldest first (GL completes commands in order, so fences signal in
    /// this order too).
    in_flight: VecDeque<InFlight<T>>,
    stats: Stats,
}

impl<T> Readback<T> {
    /// Creates `depth` pixel-pack buffers for `width`x`height` RGBA8 frames.
    pub fn new(
        gl: &glow::Context,
        width: u32,
        height: u32,
        depth: usize,
    ) -> Result<Self, ReadbackError> {
        check_version(gl)?;
        if depth == 0 {
            return Err(ReadbackError::Depth);
        }
        frame_bytes(width, height)?;
        let mut readback = Self {
            width,
            height,
            buffers: Vec::with_capacity(depth),
            free: VecDeque::with_capacity(depth),
            in_flight: VecDeque::with_capacity(depth),
            stats: Stats::default(),
        };
        if let Err(e) = readback.allocate(gl, depth) {
            readback.delete(gl);
            return Err(e);
        }
        Ok(readback)
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of buffers in the ring: the most frames in flight.
    pub fn depth(&self) -> usize {
        self.buffers.len()
    }

    /// Frames queued and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Queues the read-back of `fbo` (`None`: the default framebuffer) as it is now, tagged
    /// `tag`. Reads the framebuffer's current read buffer (`GL_COLOR_ATTACHMENT0` unless the
    /// game changed it), `width`x`height` from the bottom-left corner. Returns at once; the
    /// game's read-framebuffer and pack bindings are left as they were.
    pub fn start(
        &mut self,
        gl: &glow::Context,
        fbo: Option<glow::Framebuffer>,
        tag: T,
    ) -> Result<Start<T>, ReadbackError> {
        let seq = self.stats.started;
        self.stats.started += 1;
        let Some(buffer) = self.free.pop_front() else {
            self.stats.dropped += 1;
            return Ok(Start::Dropped(tag));
        };
        // An error left by the game's own calls must not be blamed on this readback.
        calls::take_error(gl);
        let saved = calls::save_pack_state(gl);
        let queued = calls::read_into(
            gl,
            fbo,
            self.buffers[buffer],
            gl_int(self.width),
            gl_int(self.height),
        );
        calls::restore_pack_state(gl, &saved);
        let code = calls::take_error(gl);
        match queued {
            Ok(fence) if code == glow::NO_ERROR => {
                self.in_flight.push_back(InFlight {
                    buffer,
                    fence,
                    tag,
                    seq,
                });
                Ok(Start::Queued)
            }
            Ok(fence) => {
                calls::delete_fence(gl, fence);
                self.free.push_front(buffer);
                self.stats.lost += 1;
                Err(ReadbackError::Gl {
                    op: "queueing glReadPixels",
                    code,
                })
            }
            Err(message) => {
                self.free.push_front(buffer);
                self.stats.lost += 1;
                Err(ReadbackError::Create {
                    what: "fence",
                    message,
                })
            }
        }
    }

    /// Delivers the oldest frame into `dst` (`stride` bytes a row, top row first) if its copy
    /// has finished, and returns its tag; `Ok(None)` if nothing is in flight or the oldest
    /// copy is still running. Never waits.
    pub fn poll(
        &mut self,
        gl: &glow::Context,
        dst: &mut [u8],
        stride: usize,
    ) -> Result<Option<T>, ReadbackError> {
        self.check_destination(dst.len(), stride)?;
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        match calls::wait_fence(gl, oldest.fence, 0) {
            Wait::Pending => {
                self.in_flight.push_front(oldest);
                Ok(None)
            }
            Wait::Signalled => self.deliver(gl, oldest, dst, stride).map(Some),
            Wait::Failed => Err(self.fail(gl, oldest)),
        }
    }

    /// Like [`Readback::poll`] but waits (up to [`FINISH_TIMEOUT`]) for the oldest frame's
    /// copy; `Ok(None)` only when nothing is in flight. For shutdown: call until `None`.
    pub fn finish(
        &mut self,
        gl: &glow::Context,
        dst: &mut [u8],
        stride: usize,
    ) -> Result<Option<T>, ReadbackError> {
        self.check_destination(dst.len(), stride)?;
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let deadline = Instant::now() + FINISH_TIMEOUT;
        loop {
            // GL's timeout is an i32 of nanoseconds here: wait in slices of 100 ms.
            match calls::wait_fence(gl, oldest.fence, 100_000_000) {
                Wait::Signalled => return self.deliver(gl, oldest, dst, stride).map(Some),
                Wait::Failed => return Err(self.fail(gl, oldest)),
                Wait::Pending if Instant::now() >= deadline => {
                    self.in_flight.push_front(oldest);
                    return Err(ReadbackError::Timeout(FINISH_TIMEOUT));
                }
                Wait::Pending => {}
            }
        }
    }

    /// Changes the frame size: frames in flight are discarded (their tags returned, oldest
    /// first, and counted as dropped) and the buffers are made anew at the new size.
    pub fn resize(
        &mut self,
        gl: &glow::Context,
        width: u32,
        height: u32,
    ) -> Result<Vec<T>, ReadbackError> {
        frame_bytes(width, height)?;
        let depth = self.buffers.len();
        let discarded = self.release(gl);
        self.stats.dropped += discarded.len() as u64;
        self.width = width;
        self.height = height;
        self.allocate(gl, depth)?;
        Ok(discarded)
    }

    /// Frees the GL objects (frames in flight are abandoned, and their tags returned). The
    /// objects would otherwise live until the context is destroyed: GL objects cannot be freed
    /// from `Drop`, which has no context.
    pub fn delete(mut self, gl: &glow::Context) -> Vec<T> {
        self.release(gl)
    }

    /// Deletes every fence and buffer; returns the tags of the frames that were in flight.
    fn release(&mut self, gl: &glow::Context) -> Vec<T> {
        let tags = self
            .in_flight
            .drain(..)
            .map(|frame| {
                calls::delete_fence(gl, frame.fence);
                frame.tag
            })
            .collect();
        for buffer in self.buffers.drain(..) {
            calls::delete_buffer(gl, buffer);
        }
        self.free.clear();
        tags
    }

    /// Creates `depth` buffers at the current size, all free.
    fn allocate(&mut self, gl: &glow::Context, depth: usize) -> Result<(), ReadbackError> {
        let size = frame_bytes(self.width, self.height)?;
        calls::take_error(gl);
        for _ in 0..depth {
            let buffer =
                calls::create_pack_buffer(gl, size).map_err(|message| ReadbackError::Create {
                    what: "pixel-pack buffer",
                    message,
                })?;
            self.free.push_back(self.buffers.len());
            self.buffers.push(buffer);
            // GL_OUT_OF_MEMORY for the storage shows only here.
            let code = calls::take_error(gl);
            if code != glow::NO_ERROR {
                return Err(ReadbackError::Gl {
                    op: "allocating a pixel-pack buffer",
                    code,
                });
            }
        }
        Ok(())
    }

    /// Copies `frame` (taken off the ring, its copy finished) into `dst`, flipping rows, and
    /// frees its buffer.
    fn deliver(
        &mut self,
        gl: &glow::Context,
        frame: InFlight<T>,
        dst: &mut [u8],
        stride: usize,
    ) -> Result<T, ReadbackError> {
        calls::delete_fence(gl, frame.fence);
        self.free.push_back(frame.buffer);
        let row = self.width as usize * 4;
        let rows = self.height as usize;
        calls::take_error(gl);
        let mapped = calls::with_mapped(
            gl,
            self.buffers[frame.buffer],
            frame_bytes(self.width, self.height)?,
            |src| {
                // GL's row 0 is the bottom of the image; the slot's row 0 is the top.
                for (y, src_row) in src.chunks_exact(row).enumerate() {
                    let at = (rows - 1 - y) * stride;
                    dst[at..at + row].copy_from_slice(src_row);
                }
            },
        );
        let code = calls::take_error(gl);
        if mapped.is_none() || code != glow::NO_ERROR {
            self.stats.lost += 1;
            return Err(ReadbackError::Map { code });
        }
        self.stats.delivered += 1;
        let delay = self.stats.started - 1 - frame.seq;
        self.stats.delay_last = delay;
        self.stats.delay_max = self.stats.delay_max.max(delay);
        self.stats.delay_total += delay;
        Ok(frame.tag)
    }

    /// Drops `frame` (taken off the ring) after its fence wait failed, and builds the error.
    fn fail(&mut self, gl: &glow::Context, frame: InFlight<T>) -> ReadbackError {
        let code = calls::take_error(gl);
        calls::delete_fence(gl, frame.fence);
        self.free.push_back(frame.buffer);
        self.stats.lost += 1;
        ReadbackError::WaitFailed { code }
    }

    /// Checks that `len` bytes at `stride` hold one frame.
    fn check_destination(&self, len: usize, stride: usize) -> Result<(), ReadbackError> {
        let row = self.width as usize * 4;
        let need = stride
            .checked_mul(self.height as usize - 1)
            .and_then(|n| n.checked_add(row));
        if stride < row || need.is_none_or(|need| len < need) {
            return Err(ReadbackError::Destination {
                len,
                stride,
                width: self.width,
                height: self.height,
            });
        }
        Ok(())
    }
}

/// Fails unless the context has PBOs, `glMapBufferRange` and fences.
fn check_version(gl: &glow::Context) -> Result<(), ReadbackError> {
    use glow::HasContext;
    let v = gl.version();
    let needed = if v.is_embedded { (3, 0) } else { (3, 2) };
    if (v.major, v.minor) < needed {
        return Err(ReadbackError::Unsupported {
            major: v.major,
            minor: v.minor,
            embedded: v.is_embedded,
        });
    }
    Ok(())
}

/// Bytes of one RGBA8 frame, as GL's buffer size type; errors on empty or too large frames.
fn frame_bytes(width: u32, height: u32) -> Result<i32, ReadbackError> {
    u64::from(width)
        .checked_mul(u64::from(height))
        .and_then(|n| n.checked_mul(4))
        .filter(|&n| n > 0)
        .and_then(|n| i32::try_from(n).ok())
        .ok_or(ReadbackError::Size { width, height })
}

/// A dimension already checked by `frame_bytes` (so below 2^31), as GL's integer type.
fn gl_int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

//! The one place this crate calls FFmpeg's C API directly: opening an output whose blocking
//! network I/O can be interrupted, and (at the end) the video encoder's fields and VAAPI
//! hardware frames that ffmpeg-next does not reach.
//!
//! `ffmpeg-next` offers interrupt callbacks only for inputs. An RTMP output without one can
//! block for minutes in `connect` or `write` when the server stops answering without closing
//! the connection (a black-holed address, a frozen ingest). With the callback, FFmpeg polls
//! [`IoWatch`] about every 100 ms and gives up with an error, which the RTMP writer turns into
//! a reconnect.

#![allow(unsafe_code)]

use ff::ffi;
use ffmpeg_next as ff;
use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deadline for one blocking FFmpeg I/O operation, plus an abort switch for shutdown.
#[derive(Debug)]
pub(crate) struct IoWatch {
    epoch: Instant,
    timeout: Duration,
    /// Milliseconds since `epoch` when the current operation started, plus one; 0 when idle.
    started: AtomicU64,
    abort: AtomicBool,
    timed_out: AtomicBool,
}

impl IoWatch {
    pub(crate) fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            timeout,
            started: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Marks the start of a blocking operation.
    pub(crate) fn begin(&self) {
        self.timed_out.store(false, Ordering::Relaxed);
        self.started.store(self.now_ms() + 1, Ordering::Relaxed);
    }

    /// Marks the end of the operation.
    pub(crate) fn end(&self) {
        self.started.store(0, Ordering::Relaxed);
    }

    /// Makes every current and later operation fail at once (shutdown).
    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Whether the last interrupted operation was stopped by the timeout.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// FFmpeg's question: give up now?
    fn should_interrupt(&self) -> bool {
        if self.aborted() {
            return true;
        }
        let started = self.started.load(Ordering::Relaxed);
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        if started != 0 && self.now_ms() + 1 - started > timeout_ms {
            self.timed_out.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// An output context plus the keep-alive of its interrupt callback.
pub(crate) struct InterruptibleOutput {
    ctx: ff::format::context::Output,
    guard: InterruptibleOutputGuard,
}

/// Keeps the interrupt callback's state alive; must be dropped after the context it serves.
pub(crate) struct InterruptibleOutputGuard {
    _guard: ff::util::interrupt::InterruptGuard,
}

impl InterruptibleOutput {
    /// Splits into the context and the guard; the owner must drop the context first.
    pub(crate) fn into_parts(self) -> (ff::format::context::Output, InterruptibleOutputGuard) {
        (self.ctx, self.guard)
    }
}

/// Like `ffmpeg_next::format::output_as_with`, with `watch` installed as interrupt callback
/// before the protocol connects.
pub(crate) fn output_as_with_interrupt(
    url: &str,
    format: &str,
    options: ff::Dictionary<'_>,
    watch: Arc<IoWatch>,
) -> Result<InterruptibleOutput, ff::Error> {
    let url_c = CString::new(url).map_err(|_| ff::Error::InvalidData)?;
    let format_c = CString::new(format).map_err(|_| ff::Error::InvalidData)?;
    let interrupt = ff::util::interrupt::new(Box::new(move || watch.should_interrupt()));

    let mut ps: *mut ffi::AVFormatContext = ptr::null_mut();
    // SAFETY: `ps` is a valid out-pointer; both C strings are NUL-terminated and live across the
    // call; a null `oformat` makes FFmpeg look the muxer up by `format_name`.
    let r = unsafe {
        ffi::avformat_alloc_output_context2(
            &mut ps,
            ptr::null_mut(),
            format_c.as_ptr(),
            url_c.as_ptr(),
        )
    };
    if r < 0 || ps.is_null() {
        return Err(ff::Error::from(r.min(-1)));
    }
    // SAFETY: `ps` was just allocated by FFmpeg and is non-null; nothing else references it.
    // The callback's state is owned by `interrupt.guard`, which `InterruptibleOutput` keeps
    // alive until after the context is freed.
    unsafe {
        (*ps).interrupt_callback = interrupt.interrupt;
    }
    // SAFETY: `ps` is valid; `pb` is its (null) I/O slot that avio_open2 fills; the callback
    // pointer refers to the struct inside the live context; the dictionary's ownership goes to
    // FFmpeg for the call and comes back (with unused entries) to be freed by `Dictionary::own`.
    let r = unsafe {
        let mut opts = options.disown();
        let r = ffi::avio_open2(
            &mut (*ps).pb,
            url_c.as_ptr(),
            ffi::AVIO_FLAG_WRITE,
            &(*ps).interrupt_callback,
            &mut opts,
        );
        drop(ff::Dictionary::own(opts));
        r
    };
    if r < 0 {
        // SAFETY: the context came from avformat_alloc_output_context2, avio_open2 failed so
        // `pb` is still null, and `ps` is not used after this.
        unsafe { ffi::avformat_free_context(ps) };
        return Err(ff::Error::from(r));
    }
    // SAFETY: `ps` is a complete output context with an open `pb`; `Output` takes sole
    // ownership and closes `pb` and frees the context on drop.
    let ctx = unsafe { ff::format::context::Output::wrap(ps) };
    Ok(InterruptibleOutput {
        ctx,
        guard: InterruptibleOutputGuard {
            _guard: interrupt.guard,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Video encoder fields and hardware frames that ffmpeg-next does not reach (see `video.rs`):
// the VBV buffer size (`rc_buffer_size`), the opened encoder's extradata (SPS/PPS), and VAAPI's
// hwcontext (a device, a frames pool on the encoder, and the per-frame upload).

/// Sets `rc_buffer_size` (bits) on a codec context; libx264 reads it at open and compares it
/// before every frame, reconfiguring x264's VBV when it changed.
pub(crate) fn set_rc_buffer_size(ctx: &mut ff::codec::Context, bits: i32) {
    // SAFETY: `ctx` wraps a live AVCodecContext that we borrow mutably; `rc_buffer_size` is a
    // plain int field the encoder reads only from this (its only) thread, inside its calls.
    unsafe {
        (*ctx.as_mut_ptr()).rc_buffer_size = bits;
    }
}

/// The opened encoder's global header (for H.264: SPS and PPS), empty if it has none.
pub(crate) fn extradata(ctx: &ff::codec::Context) -> Vec<u8> {
    // SAFETY: `ctx` wraps a live AVCodecContext; `extradata` is either null or points at
    // `extradata_size` bytes owned by the context, which we copy while the borrow holds.
    unsafe {
        let c = ctx.as_ptr();
        let (p, n) = ((*c).extradata, (*c).extradata_size);
        if p.is_null() || n <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts(p, n as usize).to_vec()
    }
}

/// One counted reference to an FFmpeg buffer (a hw device or frames context), unref'd on drop.
pub(crate) struct BufferRef(*mut ffi::AVBufferRef);

// SAFETY: AVBufferRef reference counting is atomic and hw device/frames contexts are meant to be
// shared between threads; the pointer is owned by this value alone.
unsafe impl Send for BufferRef {}

impl Drop for BufferRef {
    fn drop(&mut self) {
        // SAFETY: the pointer came from an FFmpeg allocation that gave us one reference, which
        // this value owns; av_buffer_unref nulls it and frees the buffer at the last reference.
        unsafe { ffi::av_buffer_unref(&mut self.0) };
    }
}

/// Opens a VAAPI device on a DRM render node (`/dev/dri/renderD128`).
pub(crate) fn vaapi_device(node: &str) -> Result<BufferRef, ff::Error> {
    let node_c = CString::new(node).map_err(|_| ff::Error::InvalidData)?;
    let mut dev: *mut ffi::AVBufferRef = ptr::null_mut();
    // SAFETY: `dev` is a valid out-pointer; the node string is NUL-terminated and outlives the
    // call; no options dictionary.
    let r = unsafe {
        ffi::av_hwdevice_ctx_create(
            &mut dev,
            ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
            node_c.as_ptr(),
            ptr::null_mut(),
            0,
        )
    };
    if r < 0 || dev.is_null() {
        return Err(ff::Error::from(r.min(-1)));
    }
    Ok(BufferRef(dev))
}

/// Gives an unopened encoder a pool of `width × height` VAAPI surfaces holding `sw_format`
/// pixels, and returns the pool for [`upload`]. The encoder keeps its own reference.
pub(crate) fn attach_hw_frames(
    ctx: &mut ff::codec::Context,
    device: &BufferRef,
    (width, height): (u32, u32),
    sw_format: ff::format::Pixel,
) -> Result<BufferRef, ff::Error> {
    let w = i32::try_from(width).map_err(|_| ff::Error::InvalidData)?;
    let h = i32::try_from(height).map_err(|_| ff::Error::InvalidData)?;
    // SAFETY: `device.0` is a live device reference; av_hwframe_ctx_alloc returns a new
    // reference (or null) whose `data` is an AVHWFramesContext we fill before init.
    let frames = unsafe { ffi::av_hwframe_ctx_alloc(device.0) };
    if frames.is_null() {
        return Err(ff::Error::from(-libc_enomem()));
    }
    let frames = BufferRef(frames);
    // SAFETY: `frames.0` is the fresh, uninitialised frames context we own; its fields are set
    // as av_hwframe_ctx_init expects, then it is initialised once.
    let r = unsafe {
        let fc = (*frames.0).data as *mut ffi::AVHWFramesContext;
        (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
        (*fc).sw_format = sw_format.into();
        (*fc).width = w;
        (*fc).height = h;
        (*fc).initial_pool_size = 16;
        ffi::av_hwframe_ctx_init(frames.0)
    };
    if r < 0 {
        return Err(ff::Error::from(r));
    }
    // SAFETY: the codec context is live and not opened yet; it takes its own new reference to
    // the initialised frames context (av_buffer_ref), which avcodec_free_context releases.
    unsafe {
        let own = ffi::av_buffer_ref(frames.0);
        if own.is_null() {
            return Err(ff::Error::from(-libc_enomem()));
        }
        (*ctx.as_mut_ptr()).hw_frames_ctx = own;
    }
    Ok(frames)
}

/// ENOMEM without a libc dependency (Linux's value).
fn libc_enomem() -> i32 {
    12
}

/// Copies `sw` into a fresh surface of `frames` and returns it as a frame to send.
pub(crate) fn upload(
    frames: &BufferRef,
    sw: &ff::frame::Video,
) -> Result<ff::frame::Video, ff::Error> {
    let mut hw = ff::frame::Video::empty();
    // SAFETY: `hw` is an empty, owned AVFrame; av_hwframe_get_buffer attaches a surface from the
    // live pool `frames.0`; av_hwframe_transfer_data reads `sw` (a complete frame of the pool's
    // sw_format and size, borrowed for the call) into it. `hw` frees both on drop.
    let r = unsafe {
        let r = ffi::av_hwframe_get_buffer(frames.0, hw.as_mut_ptr(), 0);
        if r < 0 {
            r
        } else {
            ffi::av_hwframe_transfer_data(hw.as_mut_ptr(), sw.as_ptr(), 0)
        }
    };
    if r < 0 {
        return Err(ff::Error::from(r));
    }
    Ok(hw)
}

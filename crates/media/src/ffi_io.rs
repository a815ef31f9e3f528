//! The one place this crate calls FFmpeg's C API directly: opening an output whose blocking
//! network I/O can be interrupted.
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

// ---- Rate control of a running H.264 encode (adaptive bitrate) ----

/// Sets the bitrate of an open video encoder to `kbps` (target, VBV max rate and a one-second
/// VBV buffer). FFmpeg's libx264 wrapper compares these context fields with x264's before
/// every frame and calls `x264_encoder_reconfig` when they differ, so the next frame is
/// encoded at the new rate; ffmpeg-next has no setter for `rc_buffer_size`.
pub(crate) fn set_video_rate(enc: &mut ff::encoder::Video, kbps: u32) {
    let bps = i64::from(kbps) * 1000;
    // SAFETY: `enc` is an open encoder context owned by the caller and used by this thread
    // only; these are plain integer fields FFmpeg reads at the next `send_frame`.
    unsafe {
        let ctx = enc.as_mut_ptr();
        (*ctx).bit_rate = bps;
        (*ctx).rc_max_rate = bps;
        (*ctx).rc_buffer_size = i32::try_from(bps).unwrap_or(i32::MAX);
    }
}

/// The encoder's global header (SPS/PPS for H.264): two encodes whose headers match can feed
/// the same stream one after the other.
pub(crate) fn video_extradata(enc: &ff::encoder::Video) -> Vec<u8> {
    // SAFETY: the context is open and owned by the caller; FFmpeg sets `extradata` (or leaves
    // it null) at open and owns it until close, and `extradata_size` is its length.
    unsafe {
        let ctx = enc.as_ptr();
        let (data, size) = ((*ctx).extradata, (*ctx).extradata_size);
        match usize::try_from(size) {
            Ok(n) if !data.is_null() && n > 0 => std::slice::from_raw_parts(data, n).to_vec(),
            _ => Vec::new(),
        }
    }
}

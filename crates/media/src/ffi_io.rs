//! The one place this crate calls FFmpeg's C API directly: opening an output whose blocking
//! network I/O can be interrupted, capturing FFmpeg's own error messages, and (at the end) the
//! video encoder's fields and VAAPI hardware frames that ffmpeg-next does not reach.
//!
//! `ffmpeg-next` offers interrupt callbacks only for inputs. A push output without one can
//! block for minutes in `connect` or `write` when the server stops answering without closing
//! the connection (a black-holed address, a frozen ingest). With the callback, FFmpeg polls
//! [`IoWatch`] about every 100 ms and gives up with an error, which the push writer turns into
//! a reconnect.
//!
//! FFmpeg reports the cause of a failure (a certificate that failed verification, an SRT
//! connection rejected for its passphrase) only through `av_log`; the error code that comes
//! back is a bare "I/O error". [`install_log_capture`] replaces FFmpeg's logger with one that
//! prints nothing and keeps the first few error-level lines per thread since
//! [`clear_log_errors`], which the writer attaches to its error ([`take_log_errors`]).

#![allow(unsafe_code)]

use ff::ffi;
use ffmpeg_next as ff;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
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
    /// I/O options no protocol layer took (FFmpeg ignores unknown options silently).
    pub(crate) unused_options: Vec<String>,
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
    let (r, unused_options) = unsafe {
        let mut opts = options.disown();
        let r = ffi::avio_open2(
            &mut (*ps).pb,
            url_c.as_ptr(),
            ffi::AVIO_FLAG_WRITE,
            &(*ps).interrupt_callback,
            &mut opts,
        );
        let left = ff::Dictionary::own(opts);
        let unused: Vec<String> = left.iter().map(|(k, _)| k.to_owned()).collect();
        (r, unused)
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
        unused_options,
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

/// Error-level lines kept per thread between `clear_log_errors` and `take_log_errors`.
const LOG_LINES: usize = 3;
/// Longest line kept, in bytes (FFmpeg's lines are short; a URL in one may be long).
const LOG_LINE_MAX: usize = 300;

thread_local! {
    /// This thread's error-level lines from FFmpeg, oldest first, at most `LOG_LINES`.
    static LOG_ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Forgets this thread's captured FFmpeg errors (call before an operation).
pub(crate) fn clear_log_errors() {
    let _ = LOG_ERRORS.try_with(|l| l.borrow_mut().clear());
}

/// This thread's FFmpeg error lines since `clear_log_errors`, root cause first, joined by
/// `; `; `None` when FFmpeg said nothing.
pub(crate) fn take_log_errors() -> Option<String> {
    let lines = LOG_ERRORS
        .try_with(|l| std::mem::take(&mut *l.borrow_mut()))
        .unwrap_or_default();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// `[tls @ 0x55d…] Peer certificate failed verification` → `Peer certificate failed
/// verification (tls)`: the context's name says which layer failed, its address nothing.
fn tidy_line(line: &str) -> Option<String> {
    let mut rest = line.trim();
    let mut name = None;
    while let Some(inner) = rest.strip_prefix('[') {
        let Some((tag, after)) = inner.split_once(']') else {
            break;
        };
        match tag.split_once(" @ ") {
            Some((n, _)) => name = Some(n),
            None => break,
        }
        rest = after.trim_start();
    }
    if rest.is_empty() {
        return None;
    }
    let mut msg = match name {
        Some(n) => format!("{rest} ({n})"),
        None => rest.to_owned(),
    };
    if msg.len() > LOG_LINE_MAX {
        let mut cut = LOG_LINE_MAX;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    Some(msg)
}

fn record_log_line(line: &str) {
    let Some(msg) = tidy_line(line) else {
        return;
    };
    let _ = LOG_ERRORS.try_with(|l| {
        let mut l = l.borrow_mut();
        // The first lines name the cause; later ones are the layers above giving up.
        if l.len() < LOG_LINES && !l.contains(&msg) {
            l.push(msg);
        }
    });
}

/// The `va_list` argument as bindgen declares it for this target.
#[cfg(target_arch = "x86_64")]
type VaListArg = *mut ffi::__va_list_tag;
#[cfg(not(target_arch = "x86_64"))]
type VaListArg = ffi::va_list;

/// FFmpeg's log callback: keeps error-level lines for this thread, prints nothing.
unsafe extern "C" fn log_callback(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: VaListArg,
) {
    if level > ffi::AV_LOG_ERROR || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    let mut print_prefix: c_int = 1;
    // SAFETY: FFmpeg calls us with the context, format and va_list of one av_log call, valid for
    // the duration of this call; av_log_format_line2 consumes `vl` once (we never touch it
    // again), writes at most `buf.len()` bytes and always NUL-terminates within them.
    let n = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as c_int,
            &mut print_prefix,
        )
    };
    if n < 0 {
        return;
    }
    // SAFETY: `buf` is NUL-terminated by av_log_format_line2 (zeroed beforehand as well), and
    // lives across the borrow.
    let line = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    record_log_line(&line);
}

/// syslog's `LOG_CRIT`: libsrt logs only critical lines at this level.
const SRT_LOG_CRIT: c_int = 2;

/// libsrt (loaded with libavformat when FFmpeg was built with it) writes its own warnings and
/// errors to stderr, in the middle of the status line; FFmpeg already reports the failure
/// through `av_log`. Lower its level if it is there.
fn quiet_libsrt() {
    // SAFETY: dlsym with RTLD_DEFAULT only looks a symbol up in the already loaded objects;
    // the name is a NUL-terminated literal.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"srt_setloglevel".as_ptr()) };
    if sym.is_null() {
        return;
    }
    // SAFETY: `srt_setloglevel` is libsrt's `void srt_setloglevel(int)` (a stable part of its C
    // API since 1.3), so the pointer has exactly this type; it only stores the level.
    unsafe {
        let set = std::mem::transmute::<*mut c_void, unsafe extern "C" fn(c_int)>(sym);
        set(SRT_LOG_CRIT);
    }
}

/// Replaces FFmpeg's logger (stderr) with the capture; once per process.
pub(crate) fn install_log_capture() {
    quiet_libsrt();
    // Errors only: nothing below them is kept, and some FFmpeg code skips formatting below it.
    ff::log::set_level(ff::log::Level::Error);
    // SAFETY: `log_callback` has the signature av_log expects, is thread-safe (it only touches
    // thread-local state) and never unwinds (no panicking operation on its path); FFmpeg may
    // call it from any thread at any time, which the function allows.
    unsafe { ffi::av_log_set_callback(Some(log_callback)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tidied() {
        assert_eq!(
            tidy_line("[tls @ 0x55d0c0ffee00] Peer certificate failed verification\n").unwrap(),
            "Peer certificate failed verification (tls)"
        );
        assert_eq!(tidy_line("plain message\n").unwrap(), "plain message");
        assert_eq!(tidy_line("[tls @ 0x1] \n"), None);
        let long = tidy_line(&"x".repeat(5000)).unwrap();
        assert!(long.len() <= LOG_LINE_MAX + '…'.len_utf8());
    }

    #[test]
    fn capture_is_per_thread_and_bounded() {
        clear_log_errors();
        for i in 0..10 {
            record_log_line(&format!("[srt @ 0x1] failure {i}\n"));
        }
        record_log_line("[srt @ 0x1] failure 0\n");
        std::thread::spawn(|| {
            record_log_line("other thread\n");
            assert_eq!(take_log_errors().as_deref(), Some("other thread"));
        })
        .join()
        .unwrap();
        assert_eq!(
            take_log_errors().as_deref(),
            Some("failure 0 (srt); failure 1 (srt); failure 2 (srt)")
        );
        assert_eq!(take_log_errors(), None);
    }

    #[test]
    fn ffmpeg_errors_reach_the_capture_and_nothing_else() {
        install_log_capture();
        clear_log_errors();
        // An FFmpeg call that logs an error: an unknown output format name.
        let c = CString::new("x.nothing").unwrap();
        let f = CString::new("no-such-muxer").unwrap();
        let mut ps: *mut ffi::AVFormatContext = ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated strings alive across the call.
        let r = unsafe {
            ffi::avformat_alloc_output_context2(&mut ps, ptr::null_mut(), f.as_ptr(), c.as_ptr())
        };
        assert!(r < 0 && ps.is_null());
        let e = take_log_errors().expect("FFmpeg logged nothing");
        assert!(e.contains("no-such-muxer"), "{e}");
    }
}

//! The crosscast game SDK as a C ABI: `libcrosscast` (shared and static) with the header
//! `include/crosscast.h`, generated from this file by cbindgen.
//!
//! The API is small and opaque-handle based: no Rust type crosses it. Every function returns
//! a [`CcStatus`] (0 is success, errors are negative) and leaves a message for
//! [`cc_last_error`] on the calling thread. A panic inside the library never unwinds into C:
//! it becomes [`CcStatus::CC_ERR_PANIC`].
//!
//! **Threads.** A `cc_game` may be used from several threads at once: frames from the render
//! thread, audio from an audio thread, input from either (the session underneath is shared and
//! locked). The exceptions are stated on each function: [`cc_close`] must be the last call on
//! a handle, and a `cc_frame` belongs to the thread that dequeued it until it is queued.
//!
//! `unsafe` is confined to this file: every pointer from C is checked for null and documented
//! with the lifetime the caller must guarantee.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crosscast_sdk::{
    AudioConfig, AudioOut, ConnectOptions, Connection, Frame, Game, Input, InputEvent,
    SampleFormat, SandboxLevel, SdkError, SessionKey,
};

/// The version of this API; pass it to the connect functions, which refuse a header from
/// another version (`CC_ERR_VERSION`). It changes whenever a signature or struct does.
pub const CC_ABI_VERSION: u32 = 1;

/// The exit status of a game whose host went away without a goodbye; a supervisor (named
/// mode) reconnects when its game exits with it.
pub const CC_EXIT_HOST_LOST: i32 = 3;

/// crosscast's wire protocol version, checked with the host during the handshake.
pub const CC_PROTOCOL_VERSION: u32 = 1;

// The literals above are what cbindgen can put in the header; they must stay the SDK's.
const _: () = assert!(CC_EXIT_HOST_LOST == crosscast_sdk::EXIT_HOST_LOST);
const _: () = assert!(CC_PROTOCOL_VERSION == crosscast_sdk::PROTOCOL_VERSION as u32);

/// What every function returns.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum CcStatus {
    /// Success.
    CC_OK = 0,
    /// Nothing within the timeout (no free slot): not an error, try again later.
    CC_TIMEOUT = 1,
    /// A null pointer, a bad value, or a call the protocol does not allow.
    CC_ERR_INVALID = -1,
    /// The header's `CC_ABI_VERSION` is not this library's.
    CC_ERR_VERSION = -2,
    /// Not started by a crosscast host (no connection on fd 3 and key on fd 4).
    CC_ERR_NOT_SPAWNED = -3,
    /// No host listens under this key, app id and user id; or the key file is bad.
    CC_ERR_NO_HOST = -4,
    /// The sandbox could not be applied.
    CC_ERR_SANDBOX = -5,
    /// The handshake failed: wrong key, another protocol version, or a timeout.
    CC_ERR_HANDSHAKE = -6,
    /// The host ended the session with a goodbye: exit normally.
    CC_ERR_HOST_GONE = -7,
    /// The host went away without a goodbye: exit with `CC_EXIT_HOST_LOST` to be reconnected.
    CC_ERR_HOST_LOST = -8,
    /// Any other transport error.
    CC_ERR_SESSION = -9,
    /// A bug in the library (it panicked); the handle should not be used further.
    CC_ERR_PANIC = -10,
}

use CcStatus::*;

/// The sandbox a game puts itself in after connecting.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum CcSandbox {
    /// `no_new_privs`, Landlock where available, and a seccomp filter (the default).
    CC_SANDBOX_STRICT = 0,
    /// None: for debugging outside the sandbox.
    CC_SANDBOX_OFF = 1,
}

/// Sample formats for [`cc_audio_start`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum CcSampleFormat {
    /// 32-bit float, little-endian, [-1, 1].
    CC_AUDIO_F32 = 0,
    /// 16-bit signed integer, little-endian.
    CC_AUDIO_S16 = 1,
}

/// What a [`CcInput`] is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum CcInputKind {
    /// The stream's window gained (`pressed` 1) or lost (0) focus.
    CC_INPUT_FOCUS = 0,
    /// A key: `code` is its Linux evdev code, `pressed` 1 or 0.
    CC_INPUT_KEY = 1,
    /// The pointer entered the game at `x`, `y` (game pixels).
    CC_INPUT_POINTER_ENTER = 2,
    /// The pointer left the game.
    CC_INPUT_POINTER_LEAVE = 3,
    /// The pointer moved to `x`, `y`.
    CC_INPUT_POINTER_MOTION = 4,
    /// A button: `code` is its evdev code (0x110 left), `pressed` 1 or 0.
    CC_INPUT_POINTER_BUTTON = 5,
    /// Scrolling: `code` 0 vertical, 1 horizontal; `x` the amount; `discrete` wheel clicks.
    CC_INPUT_SCROLL = 6,
    /// Relative motion while the game holds the pointer: `x`, `y` are dx, dy.
    CC_INPUT_RELATIVE_MOTION = 7,
    /// A touch point: `code` its id, `pressed` the phase (0 down, 1 motion, 2 up, 3 cancel).
    CC_INPUT_TOUCH = 8,
}

/// One input event from the streamer, flattened (see [`CcInputKind`] for the fields' meaning).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CcInput {
    /// When the host took it (CLOCK_MONOTONIC ns).
    pub time_ns: u64,
    /// What it is.
    pub kind: CcInputKind,
    /// Key or button code, scroll axis, or touch id.
    pub code: u32,
    /// Pressed (1) or released (0); focus gained; touch phase.
    pub pressed: u32,
    /// Wheel clicks of a scroll.
    pub discrete: i32,
    /// x position, dx, or scroll amount.
    pub x: f64,
    /// y position or dy.
    pub y: f64,
}

/// A game's session with its host (opaque).
pub struct CcGame {
    game: Game,
    audio: Mutex<Option<AudioOut>>,
}

/// A slot dequeued for drawing (opaque); it belongs to the dequeuing thread until queued.
pub struct CcFrame {
    frame: Frame,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: String) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Records `e` (with its sources) for `cc_last_error` and returns its status.
fn fail(e: &SdkError) -> CcStatus {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    set_error(msg);
    match e {
        SdkError::NotSpawned(_) => CC_ERR_NOT_SPAWNED,
        SdkError::NoHost(_) | SdkError::Key(_) => CC_ERR_NO_HOST,
        SdkError::Sandbox(_) => CC_ERR_SANDBOX,
        SdkError::Handshake(_) => CC_ERR_HANDSHAKE,
        SdkError::HostGone { goodbye: true } => CC_ERR_HOST_GONE,
        SdkError::HostGone { goodbye: false } => CC_ERR_HOST_LOST,
        SdkError::Invalid(_) => CC_ERR_INVALID,
        SdkError::Session(_) | SdkError::Os { .. } => CC_ERR_SESSION,
    }
}

fn invalid(msg: &str) -> CcStatus {
    set_error(msg.to_owned());
    CC_ERR_INVALID
}

/// Runs `f`, turning a panic into `CC_ERR_PANIC` (unwinding into C is undefined behaviour).
fn guard(f: impl FnOnce() -> CcStatus) -> CcStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(s) => s,
        Err(_) => {
            set_error("the library panicked (a bug in crosscast)".into());
            CC_ERR_PANIC
        }
    }
}

fn version_mismatch(abi_version: u32) -> CcStatus {
    set_error(format!(
        "crosscast.h is ABI version {abi_version}, this libcrosscast is {CC_ABI_VERSION}: \
         rebuild against the installed header"
    ));
    CC_ERR_VERSION
}

fn connect(
    abi_version: u32,
    connection: Connection,
    sandbox: u32,
    out: *mut *mut CcGame,
) -> CcStatus {
    if abi_version != CC_ABI_VERSION {
        return version_mismatch(abi_version);
    }
    if out.is_null() {
        return invalid("out is null");
    }
    // Enums arrive as plain integers: C may pass any value, and an out-of-range one must be
    // an error, not an invalid Rust enum.
    let sandbox = match sandbox {
        s if s == CcSandbox::CC_SANDBOX_STRICT as u32 => SandboxLevel::Strict,
        s if s == CcSandbox::CC_SANDBOX_OFF as u32 => SandboxLevel::Off,
        s => return invalid(&format!("sandbox {s} is not a CcSandbox value")),
    };
    let opts = ConnectOptions {
        sandbox,
        ..ConnectOptions::default()
    };
    match Game::connect(connection, &opts) {
        Ok(game) => {
            let handle = Box::into_raw(Box::new(CcGame {
                game,
                audio: Mutex::new(None),
            }));
            // SAFETY: `out` is non-null (checked above) and the caller guarantees it points to
            // writable storage for one pointer.
            unsafe { *out = handle };
            CC_OK
        }
        Err(e) => fail(&e),
    }
}

/// Reads a C string argument; `None` for null or invalid UTF-8.
///
/// # Safety
/// `s` is null or a NUL-terminated string valid for the call.
unsafe fn arg_str<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller guarantees a NUL-terminated string alive for the call.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

/// Borrows a game handle; `None` for null.
///
/// # Safety
/// `g` is null or a handle from a connect function not yet passed to [`cc_close`].
unsafe fn handle<'a>(g: *const CcGame) -> Option<&'a CcGame> {
    // SAFETY: the caller guarantees `g` is null or a live handle (shared use is fine: every
    // method takes `&self` and locks what it mutates).
    unsafe { g.as_ref() }
}

/// Connects to the host that started this game (`crosscast live -- ./game`: fd 3 and 4),
/// sandboxes the process (`sandbox`: a `CcSandbox` value) and authenticates. Pass
/// `CC_ABI_VERSION`. On success `*out` is the
/// session, to be closed with [`cc_close`]. Call once, before any other thread uses the SDK.
///
/// # Safety
/// `out` must point to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn cc_connect_spawned(
    abi_version: u32,
    sandbox: u32,
    out: *mut *mut CcGame,
) -> CcStatus {
    guard(|| connect(abi_version, Connection::Spawned, sandbox, out))
}

/// Connects in named mode to `crosscast host --listen` with the key in `key_file` (made by
/// `crosscast keygen`) for `app_id` and `user_id`, then sandboxes and authenticates as
/// [`cc_connect_spawned`]. It connects once: to survive host restarts, start the game under
/// [`cc_supervise`] instead.
///
/// # Safety
/// The strings must be NUL-terminated and valid for the call; `out` as in
/// [`cc_connect_spawned`].
#[no_mangle]
pub unsafe extern "C" fn cc_connect_named(
    abi_version: u32,
    key_file: *const c_char,
    app_id: *const c_char,
    user_id: *const c_char,
    sandbox: u32,
    out: *mut *mut CcGame,
) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees the three pointers are null or valid C strings.
        let (key_file, app_id, user_id) =
            unsafe { (arg_str(key_file), arg_str(app_id), arg_str(user_id)) };
        let (Some(key_file), Some(app_id), Some(user_id)) = (key_file, app_id, user_id) else {
            return invalid("key_file, app_id and user_id must be non-null UTF-8 strings");
        };
        let key = match SessionKey::read_file(Path::new(key_file)) {
            Ok(k) => k,
            Err(e) => return fail(&SdkError::Key(e)),
        };
        let connection = Connection::Named {
            key,
            app_id: app_id.to_owned(),
            user_id: user_id.to_owned(),
        };
        connect(abi_version, connection, sandbox, out)
    })
}

/// Named mode that survives host restarts: call it first thing in `main`, before anything
/// else. This process stays a small unsandboxed supervisor: it connects to the host listening
/// for `app_id`/`user_id` with the key in `key_file` (retrying while none listens), runs
/// `argv` (a NULL-terminated program and arguments; usually the game itself with a flag that
/// makes it call [`cc_connect_spawned`]) with the connection, and runs it again whenever it
/// exits with `CC_EXIT_HOST_LOST`. It returns when the game exits with 0 (`CC_OK`) or another
/// status (`CC_ERR_INVALID`, with the status in [`cc_last_error`]). Not thread-safe: call it
/// from the main thread of a process with no other threads.
///
/// # Safety
/// The strings must be NUL-terminated and valid for the call; `argv` is an array of them
/// ending with NULL, with at least the program.
#[no_mangle]
pub unsafe extern "C" fn cc_supervise(
    abi_version: u32,
    key_file: *const c_char,
    app_id: *const c_char,
    user_id: *const c_char,
    argv: *const *const c_char,
) -> CcStatus {
    guard(|| {
        if abi_version != CC_ABI_VERSION {
            return version_mismatch(abi_version);
        }
        // SAFETY: the caller guarantees the three pointers are null or valid C strings.
        let (key_file, app_id, user_id) =
            unsafe { (arg_str(key_file), arg_str(app_id), arg_str(user_id)) };
        let (Some(key_file), Some(app_id), Some(user_id)) = (key_file, app_id, user_id) else {
            return invalid("key_file, app_id and user_id must be non-null UTF-8 strings");
        };
        let mut args = Vec::new();
        if !argv.is_null() {
            for i in 0.. {
                // SAFETY: the caller guarantees a NULL-terminated array: every index up to
                // and including the NULL is readable.
                let arg = unsafe { *argv.add(i) };
                if arg.is_null() {
                    break;
                }
                // SAFETY: a non-null entry is a valid C string, as the caller guarantees.
                let arg = unsafe { CStr::from_ptr(arg) };
                args.push(std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned());
            }
        }
        let Some((program, rest)) = args.split_first() else {
            return invalid("argv must name the program");
        };
        let key = match SessionKey::read_file(Path::new(key_file)) {
            Ok(k) => k,
            Err(e) => return fail(&SdkError::Key(e)),
        };
        let run = crosscast_sdk::supervise(
            &key,
            app_id,
            user_id,
            None,
            |_| {
                let mut cmd = std::process::Command::new(program);
                cmd.args(rest);
                cmd
            },
            |line| eprintln!("crosscast: {line}"),
        );
        match run {
            Ok(_) => CC_OK,
            Err(e) => fail(&e),
        }
    })
}

/// The current surface: width and height in pixels, and the bytes per row of every slot.
/// Any output pointer may be null. Thread-safe.
///
/// # Safety
/// `g` is a live handle; non-null outputs point to writable `uint32_t`s.
#[no_mangle]
pub unsafe extern "C" fn cc_surface(
    g: *const CcGame,
    width: *mut u32,
    height: *mut u32,
    stride: *mut u32,
) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        let c = g.game.surface();
        for (p, v) in [(width, c.width), (height, c.height), (stride, c.stride)] {
            // SAFETY: each output is null (skipped) or writable, as the caller guarantees.
            if let Some(p) = unsafe { p.as_mut() } {
                *p = v;
            }
        }
        CC_OK
    })
}

/// Takes a free slot to draw into, waiting up to `timeout_ms`; `CC_TIMEOUT` (and `*out` null)
/// when none came free (the host is behind: skip the frame). Thread-safe; the frame belongs
/// to the calling thread until [`cc_queue`]. Queue every frame you dequeue: one never queued
/// keeps its slot out of use until the host's next surface configuration.
///
/// # Safety
/// `g` is a live handle; `out` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn cc_dequeue(
    g: *const CcGame,
    timeout_ms: u32,
    out: *mut *mut CcFrame,
) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        // SAFETY: the caller guarantees `out` is null or writable.
        let Some(out) = (unsafe { out.as_mut() }) else {
            return invalid("out is null");
        };
        *out = std::ptr::null_mut();
        match g.game.dequeue(Duration::from_millis(u64::from(timeout_ms))) {
            Ok(Some(frame)) => {
                *out = Box::into_raw(Box::new(CcFrame { frame }));
                CC_OK
            }
            Ok(None) => CC_TIMEOUT,
            Err(e) => fail(&e),
        }
    })
}

/// The frame's pixels: `height * stride` bytes of RGBA, top row first, valid until the frame
/// is queued. The size outputs may be null. Returns null for a null frame.
///
/// # Safety
/// `f` is a frame from [`cc_dequeue`] not yet queued; non-null outputs are writable.
#[no_mangle]
pub unsafe extern "C" fn cc_frame_pixels(
    f: *mut CcFrame,
    width: *mut u32,
    height: *mut u32,
    stride: *mut u32,
) -> *mut u8 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller guarantees `f` is null or a frame it owns (not yet queued).
        let f = unsafe { f.as_mut() }?;
        let c = f.frame.config().clone();
        for (p, v) in [(width, c.width), (height, c.height), (stride, c.stride)] {
            // SAFETY: each output is null (skipped) or writable, as the caller guarantees.
            if let Some(p) = unsafe { p.as_mut() } {
                *p = v;
            }
        }
        Some(f.frame.pixels().as_mut_ptr())
    }));
    r.ok().flatten().unwrap_or(std::ptr::null_mut())
}

/// Hands a drawn frame to the host and frees it (also on error): `seq` counts frames from 1
/// (+1 each; a gap says frames were skipped), `pts_ns` is when it is shown
/// ([`cc_monotonic_ns`] clock). Thread-safe.
///
/// # Safety
/// `g` is a live handle and `f` a frame dequeued from it, not used after this call.
#[no_mangle]
pub unsafe extern "C" fn cc_queue(
    g: *const CcGame,
    f: *mut CcFrame,
    seq: u64,
    pts_ns: u64,
) -> CcStatus {
    guard(|| {
        if f.is_null() {
            return invalid("frame is null");
        }
        // SAFETY: `f` came from `Box::into_raw` in `cc_dequeue` and the caller hands it back
        // exactly once.
        let frame = unsafe { Box::from_raw(f) };
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        match g.game.queue(frame.frame, seq, pts_ns) {
            Ok(()) => CC_OK,
            Err(e) => fail(&e),
        }
    })
}

/// Announces the game's audio format: `sample_rate` 44100 or 48000, `channels` 1 or 2,
/// `format` a `CcSampleFormat` value. Call
/// once before [`cc_audio_send`]. Thread-safe.
///
/// # Safety
/// `g` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn cc_audio_start(
    g: *const CcGame,
    sample_rate: u32,
    channels: u32,
    format: u32,
) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        let Ok(channels) = u8::try_from(channels) else {
            return invalid("channels must be 1 or 2");
        };
        let config = AudioConfig {
            sample_rate,
            channels,
            format: match format {
                f if f == CcSampleFormat::CC_AUDIO_F32 as u32 => SampleFormat::F32,
                f if f == CcSampleFormat::CC_AUDIO_S16 as u32 => SampleFormat::S16,
                f => return invalid(&format!("format {f} is not a CcSampleFormat value")),
            },
        };
        let mut audio = g.audio.lock().unwrap_or_else(|p| p.into_inner());
        if audio.is_some() {
            return invalid("cc_audio_start was already called");
        }
        match g.game.audio(config) {
            Ok(out) => {
                *audio = Some(out);
                CC_OK
            }
            Err(e) => fail(&e),
        }
    })
}

/// Sends one block of `frames` interleaved float samples in [-1, 1] (converted to the
/// announced format) whose first sample is heard at `pts_ns`. A block is 5 to 40 ms (10 ms is
/// a good choice); consecutive blocks' times should follow from their sample counts.
/// Thread-safe (typically called from the game's audio thread).
///
/// # Safety
/// `g` is a live handle; `samples` points to `frames * channels` floats.
#[no_mangle]
pub unsafe extern "C" fn cc_audio_send(
    g: *const CcGame,
    samples: *const f32,
    frames: usize,
    pts_ns: u64,
) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        if samples.is_null() {
            return invalid("samples is null");
        }
        let mut audio = g.audio.lock().unwrap_or_else(|p| p.into_inner());
        let Some(out) = audio.as_mut() else {
            return invalid("call cc_audio_start first");
        };
        let Some(len) = frames.checked_mul(usize::from(out.config().channels)) else {
            return invalid("frames is too large");
        };
        // SAFETY: non-null, and the caller guarantees `frames * channels` readable floats.
        let samples = unsafe { std::slice::from_raw_parts(samples, len) };
        match out.send(samples, pts_ns) {
            Ok(()) => CC_OK,
            Err(e) => fail(&e),
        }
    })
}

/// Asks the host for the streamer's input (`enabled` true) or stops it. Thread-safe.
///
/// # Safety
/// `g` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn cc_want_input(g: *const CcGame, enabled: bool) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        match g.game.want_input(enabled) {
            Ok(()) => CC_OK,
            Err(e) => fail(&e),
        }
    })
}

fn flatten(input: &Input) -> CcInput {
    use CcInputKind::*;
    let mut c = CcInput {
        time_ns: input.time_ns,
        kind: CC_INPUT_FOCUS,
        code: 0,
        pressed: 0,
        discrete: 0,
        x: 0.0,
        y: 0.0,
    };
    match input.event {
        InputEvent::Focus { focused } => c.pressed = u32::from(focused),
        InputEvent::Key { code, pressed } => {
            (c.kind, c.code, c.pressed) = (CC_INPUT_KEY, code, u32::from(pressed));
        }
        InputEvent::PointerEnter { x, y } => {
            (c.kind, c.x, c.y) = (CC_INPUT_POINTER_ENTER, x.to_f64(), y.to_f64());
        }
        InputEvent::PointerLeave => c.kind = CC_INPUT_POINTER_LEAVE,
        InputEvent::PointerMotion { x, y } => {
            (c.kind, c.x, c.y) = (CC_INPUT_POINTER_MOTION, x.to_f64(), y.to_f64());
        }
        InputEvent::PointerButton { button, pressed } => {
            (c.kind, c.code, c.pressed) = (CC_INPUT_POINTER_BUTTON, button, u32::from(pressed));
        }
        InputEvent::Scroll {
            axis,
            value,
            discrete,
        } => {
            (c.kind, c.code, c.x, c.discrete) =
                (CC_INPUT_SCROLL, axis as u32, value.to_f64(), discrete);
        }
        InputEvent::RelativeMotion { dx, dy } => {
            (c.kind, c.x, c.y) = (CC_INPUT_RELATIVE_MOTION, dx.to_f64(), dy.to_f64());
        }
        InputEvent::Touch { id, phase, x, y } => {
            (c.kind, c.code, c.pressed, c.x, c.y) =
                (CC_INPUT_TOUCH, id, phase as u32, x.to_f64(), y.to_f64());
        }
    }
    c
}

/// Copies up to `max` input events received since the last call into `out`, oldest first,
/// and stores how many in `*count`. Events beyond `max` stay queued for the next call.
/// Thread-safe, but events go to whichever thread takes them.
///
/// # Safety
/// `g` is a live handle; `out` points to `max` writable `cc_input`s; `count` is writable.
#[no_mangle]
pub unsafe extern "C" fn cc_take_input(
    g: *const CcGame,
    out: *mut CcInput,
    max: usize,
    count: *mut usize,
) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        // SAFETY: the caller guarantees `count` is null or writable.
        let Some(count) = (unsafe { count.as_mut() }) else {
            return invalid("count is null");
        };
        if out.is_null() && max > 0 {
            return invalid("out is null");
        }
        let mut taken = Vec::new();
        g.game.take_input_up_to(&mut taken, max);
        for (i, input) in taken.iter().enumerate() {
            // SAFETY: `i < max` (take_input_up_to takes at most `max`) and the caller
            // guarantees `max` writable elements at `out`.
            unsafe { out.add(i).write(flatten(input)) };
        }
        *count = taken.len();
        CC_OK
    })
}

/// Asks the host for a new surface size; frames dequeued after it arrives have it (read
/// [`cc_frame_pixels`]'s sizes). Thread-safe.
///
/// # Safety
/// `g` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn cc_request_resize(g: *const CcGame, width: u32, height: u32) -> CcStatus {
    guard(|| {
        // SAFETY: the caller guarantees `g` is null or live.
        let Some(g) = (unsafe { handle(g) }) else {
            return invalid("game is null");
        };
        match g.game.request_resize(width, height) {
            Ok(()) => CC_OK,
            Err(e) => fail(&e),
        }
    })
}

/// Says goodbye to the host and frees the session. It must be the last call on `g`, made when
/// no other thread uses it. A null `g` is ignored.
///
/// # Safety
/// `g` is null or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn cc_close(g: *mut CcGame) -> CcStatus {
    guard(|| {
        if g.is_null() {
            return CC_OK;
        }
        // SAFETY: `g` came from `Box::into_raw` in a connect function and the caller hands it
        // back exactly once, with no other thread using it.
        let g = unsafe { Box::from_raw(g) };
        drop(g.audio);
        g.game.close();
        CC_OK
    })
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of every `pts_ns`. Thread-safe.
#[no_mangle]
pub extern "C" fn cc_monotonic_ns() -> u64 {
    crosscast_sdk::monotonic_ns()
}

/// A message about the last error on the calling thread (empty if none); valid until the
/// next failing call on this thread.
#[no_mangle]
pub extern "C" fn cc_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: cc_last_error returns this thread's NUL-terminated message, alive until the
        // next failing call on this thread.
        unsafe { CStr::from_ptr(cc_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_is_touched() {
        let mut g: *mut CcGame = std::ptr::null_mut();
        // SAFETY: `g` is writable; the calls fail before using any fd.
        unsafe {
            assert_eq!(
                cc_connect_spawned(CC_ABI_VERSION + 1, 0, &mut g),
                CC_ERR_VERSION
            );
            assert!(last_error().contains("ABI version 2"), "{}", last_error());
            assert_eq!(
                cc_connect_spawned(CC_ABI_VERSION, 7, &mut g),
                CC_ERR_INVALID
            );
            assert!(last_error().contains("sandbox 7"), "{}", last_error());
            assert_eq!(
                cc_connect_spawned(CC_ABI_VERSION, 0, std::ptr::null_mut()),
                CC_ERR_INVALID
            );
            assert_eq!(
                cc_surface(
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut()
                ),
                CC_ERR_INVALID
            );
            assert_eq!(
                cc_queue(std::ptr::null(), std::ptr::null_mut(), 1, 0),
                CC_ERR_INVALID
            );
            assert!(cc_frame_pixels(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut()
            )
            .is_null());
            assert_eq!(cc_close(std::ptr::null_mut()), CC_OK);
        }
        assert!(g.is_null());
    }

    #[test]
    fn input_events_flatten_to_their_documented_fields() {
        use crosscast_sdk::InputEvent;
        let key = flatten(&Input {
            time_ns: 5,
            event: InputEvent::Key {
                code: 30,
                pressed: true,
            },
        });
        assert_eq!(
            (key.kind, key.code, key.pressed, key.time_ns),
            (CcInputKind::CC_INPUT_KEY, 30, 1, 5)
        );
    }
}

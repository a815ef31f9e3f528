//! A small headless Wayland compositor that streams an unmodified game.
//!
//! Any Wayland client (SDL2, GLFW, Mesa EGL on llvmpipe, weston's demos) connects to the socket
//! [`Compositor::start`] creates, gets one fullscreen output at the stream's size and rate, and
//! draws into `wl_shm` buffers. The newest buffer committed by the most recently mapped
//! toplevel is the game's frame: the host's output clock [`acquire`](Compositor::acquire)s it
//! and reads it in place with [`with_held`](Compositor::with_held), straight from the client's
//! pool, without a copy. [`present`](Compositor::present) is the output's vblank: it is the
//! only pacing clients get (frame callbacks and presentation feedback).
//!
//! The compositor runs on its own thread (a calloop loop around smithay's `Display`); the
//! handle shares "newest committed frame / held frame" with it through a mutex and condvar.
//!
//! Pacing, as clients see it: a frame callback requested with a streamed frame fires when the
//! host takes that frame (or a newer one) with `acquire`, after the buffer it replaced was
//! released, so a client with two buffers always has one free and draws at the output rate;
//! other frame callbacks (cursor, subsurfaces, commits without a buffer) fire at the next
//! `present`. Presentation feedback fires at `present`: `presented` (time = the `now_ns`
//! given, refresh = the stream period, sequence = the output frame) for frames taken since
//! the last one, `discarded` for frames replaced before the host took them. The host can call
//! `present` and `acquire` in either order within a tick.
//!
//! A toplevel with subsurfaces (rare in games) is the exception to "no copy": each of its
//! surfaces is copied at commit and the frame composed from the copies, bottom to top, within
//! memory caps; popups are not composed.
//!
//! Input: [`Compositor::input`] is a cheap handle the host's preview window calls directly
//! with [`Input`] events in the game surface's pixels; they go through a bounded queue (never
//! blocking the caller, drops counted) to the compositor thread, which delivers them with
//! smithay's seat (keyboard with the [`Keymap`] of the options, pointer, relative pointer,
//! touch) to the streamed toplevel only. A client that locks or confines the pointer is
//! reported by [`Compositor::pointer_grab`] so the host can grab its own cursor.
//!
//! When the streamed client goes away (disconnect, protocol error, truncated pool), its
//! pending and held frames are dropped: `with_held` returns `Ok(None)` and the host repeats
//! the last frame it converted. Every live shm pool is a file descriptor and a mapping in the
//! host process, so a client may hold at most 128 pools plus buffers; at most `max_clients`
//! clients are connected at once.

#![deny(unsafe_code)]

mod compose;
mod input;
mod shared;
#[allow(unsafe_code)]
mod shm_view;
mod state;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crosscast_wire::{FrameRate, Input};
use smithay::input::keyboard::xkb;
use smithay::reexports::calloop::channel::SyncSender;

pub use crate::shared::CompositorCounters;
use crate::shared::{Shared, Source};

/// How to start a [`Compositor`].
#[derive(Debug, Clone)]
pub struct CompositorOptions {
    /// Width of the stream (the output's mode and the toplevels' fullscreen size), pixels.
    pub width: u32,
    /// Height of the stream, pixels.
    pub height: u32,
    /// The stream's frame rate (the output's refresh).
    pub fps: FrameRate,
    /// An existing directory, mode 0700, that the socket goes in (the clients'
    /// `XDG_RUNTIME_DIR`).
    pub runtime_dir: PathBuf,
    /// The socket's file name in `runtime_dir` (the clients' `WAYLAND_DISPLAY`), e.g.
    /// `wayland-0`.
    pub socket_name: String,
    /// How many clients may be connected at once; more are refused at accept.
    pub max_clients: usize,
    /// The keyboard layout clients get (compiled once at start).
    pub keymap: Keymap,
}

/// An xkb keyboard layout by name, e.g. `de` / `nodeadkeys` (rules and model are
/// xkbcommon's defaults, `evdev` and `pc105`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    /// The xkb layout, e.g. `us`, `de`, `fr`.
    pub layout: String,
    /// The layout's variant, e.g. `dvorak`; empty for the default one.
    pub variant: String,
}

impl Default for Keymap {
    fn default() -> Keymap {
        Keymap {
            layout: "us".into(),
            variant: String::new(),
        }
    }
}

/// Whether the streamed client holds the pointer (see [`Compositor::pointer_grab`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerGrab {
    /// The pointer is free.
    None,
    /// Locked in place (`zwp_locked_pointer_v1` active): the host should hide and hold its
    /// cursor and send [`crosscast_wire::InputEvent::RelativeMotion`].
    Locked,
    /// Confined to the surface (`zwp_confined_pointer_v1` active): the host should keep its
    /// cursor inside the game's rectangle.
    Confined,
}

impl PointerGrab {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            PointerGrab::None => 0,
            PointerGrab::Locked => 1,
            PointerGrab::Confined => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> PointerGrab {
        match v {
            1 => PointerGrab::Locked,
            2 => PointerGrab::Confined,
            _ => PointerGrab::None,
        }
    }
}

/// Input events queued to the compositor thread at most; beyond, [`InputSender::send`] drops
/// (a second of a 1000 Hz mouse: only a stalled compositor thread fills it).
pub(crate) const INPUT_QUEUE: usize = 1024;

/// Sends input to the compositor thread without ever blocking; cheap to clone and share
/// between threads.
#[derive(Clone)]
pub struct InputSender {
    tx: SyncSender<Input>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InputSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSender").finish_non_exhaustive()
    }
}

impl InputSender {
    /// Queues `input` for the streamed surface; `false` if it was dropped (queue full or the
    /// compositor stopped), which is counted in [`CompositorCounters::input_dropped`].
    pub fn send(&self, input: Input) -> bool {
        // Full or disconnected alike: the event is dropped.
        if self.tx.try_send(input).is_ok() {
            return true;
        }
        // An atomic, not the shared mutex: the caller is the preview window's thread and must
        // not wait for the compositor thread.
        self.shared.input_dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// [`Compositor::pointer_grab`], for the thread that sends input (an atomic load).
    pub fn pointer_grab(&self) -> PointerGrab {
        PointerGrab::from_u8(self.shared.grab.load(Ordering::Relaxed))
    }
}

/// Checks that `keymap` compiles with this machine's xkb data (what [`Compositor::start`]
/// would do), so the host can refuse a bad `--keymap` before starting anything.
pub fn keymap_check(keymap: &Keymap) -> Result<(), CompositorError> {
    let mut context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
    // The error below says what went wrong; xkbcommon's own lines on stderr would only
    // repeat it at length before it.
    context.set_log_level(xkb::LogLevel::Critical);
    xkb::Keymap::new_from_names(
        &context,
        "",
        "",
        &keymap.layout,
        &keymap.variant,
        None,
        xkb::KEYMAP_COMPILE_NO_FLAGS,
    )
    .map(|_| ())
    .ok_or_else(|| CompositorError::Keymap {
        layout: keymap.layout.clone(),
        variant: keymap.variant.clone(),
    })
}

/// Pixel layout of an shm frame; little-endian, so bytes in memory are B,G,R,A / B,G,R,X.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmFormat {
    /// `WL_SHM_FORMAT_ARGB8888`: B,G,R,A in memory.
    Argb8888,
    /// `WL_SHM_FORMAT_XRGB8888`: B,G,R,X in memory (X is undefined).
    Xrgb8888,
}

/// A held frame's pixels, borrowed in place from the client's pool.
#[derive(Debug)]
pub struct ShmFrame<'a> {
    /// `stride * height` bytes, from the buffer's first row.
    pub data: &'a [u8],
    /// The buffer's own width in pixels (not necessarily the stream's).
    pub width: u32,
    /// The buffer's own height in pixels.
    pub height: u32,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Pixel layout.
    pub format: ShmFormat,
}

/// What [`Compositor::acquire`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Commit number of the streamed surface's buffers, from 1.
    pub seq: u64,
    /// CLOCK_MONOTONIC time of the commit, nanoseconds.
    pub commit_ns: u64,
    /// The buffer's width in pixels.
    pub width: u32,
    /// The buffer's height in pixels.
    pub height: u32,
}

/// Everything that can go wrong in the compositor.
#[derive(Debug, thiserror::Error)]
pub enum CompositorError {
    /// The options cannot work (zero size, bad socket name, no room for a client).
    #[error("invalid compositor options: {0}")]
    Options(String),
    /// The runtime directory is missing, not a directory, or open to other users.
    #[error("runtime dir {path}: {reason}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The I/O error, when there is one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The Wayland socket could not be bound (in use, or no permission).
    #[error("cannot bind the Wayland socket {path}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: smithay::reexports::wayland_server::BindError,
    },
    /// The event loop or the Wayland display could not be set up.
    #[error("cannot set up the compositor's event loop: {what}")]
    Setup {
        /// Which part failed.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The keyboard layout is unknown to xkb (or the variant to the layout).
    #[error(
        "keyboard layout {layout:?} (variant {variant:?}) cannot be compiled by xkbcommon: \
         unknown layout or variant, or xkb-data missing"
    )]
    Keymap {
        /// The layout asked for.
        layout: String,
        /// The variant asked for.
        variant: String,
    },
    /// The keyboard could not be set up (the keymap file for clients).
    #[error("cannot set up the keyboard")]
    Keyboard(#[source] smithay::input::keyboard::Error),
    /// The compositor thread could not be spawned.
    #[error("cannot spawn the compositor thread")]
    Spawn(#[source] std::io::Error),
    /// The held frame's client shrank its shm pool under it: reading faulted (caught), the
    /// client was disconnected and the frame dropped.
    #[error("client (pid {pid:?}) truncated the shm pool of the held frame; client disconnected")]
    ClientMemory {
        /// The client's pid, when known.
        pid: Option<i32>,
    },
    /// The held buffer went away (destroyed, client gone) before it could be read.
    #[error("the held buffer is gone")]
    BufferGone,
    /// The held buffer has a geometry or format that cannot be read.
    #[error("the held buffer is not a readable ARGB8888/XRGB8888 shm buffer")]
    BadBuffer,
    /// The compositor thread has stopped.
    #[error("compositor stopped: {0}")]
    Closed(String),
}

/// Messages from the handle to the compositor thread.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Events were queued from the handle's thread (buffer releases, errors), or a frame was
    /// taken (its frame callbacks fire): flush them.
    Flush,
    /// One output vblank.
    Present {
        /// Output frame number.
        frame: u64,
        /// CLOCK_MONOTONIC time of the vblank, ns.
        now_ns: u64,
    },
}

/// A running compositor; dropping it stops the compositor thread and joins it.
pub struct Compositor {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Cmd>>,
    input: InputSender,
    thread: Option<JoinHandle<()>>,
    socket_path: PathBuf,
}

impl std::fmt::Debug for Compositor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compositor")
            .field("socket_path", &self.socket_path)
            .finish_non_exhaustive()
    }
}

/// The current CLOCK_MONOTONIC time in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

impl Compositor {
    /// Binds the socket, advertises the globals and starts the compositor thread.
    pub fn start(opts: CompositorOptions) -> Result<Compositor, CompositorError> {
        check_options(&opts)?;
        let socket_path = opts.runtime_dir.join(&opts.socket_name);
        let shared = Arc::new(Shared::new());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
        let thread_opts = opts.clone();
        let thread = std::thread::Builder::new()
            .name("compositor".into())
            .spawn(move || state::run(thread_opts, thread_shared, ready_tx))
            .map_err(CompositorError::Spawn)?;
        match ready_rx.recv() {
            Ok(Ok((tx, input_tx))) => Ok(Compositor {
                input: InputSender {
                    tx: input_tx,
                    shared: shared.clone(),
                },
                shared,
                tx: Some(tx),
                thread: Some(thread),
                socket_path,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(CompositorError::Closed(
                    "compositor thread ended during setup".into(),
                ))
            }
        }
    }

    /// Where the socket is: `runtime_dir/socket_name`.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Blocks up to `timeout` until a committed frame is waiting to be acquired; `true` if one
    /// is (or the compositor is closed with nothing pending: `false`).
    pub fn wait_frame(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            if g.pending.is_some() {
                return true;
            }
            if g.closed.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .shared
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes the newest frame committed since the last call and holds it; the buffer held
    /// before goes back to its client (`wl_buffer.release`). `None` when nothing new came.
    pub fn acquire(&mut self) -> Result<Option<FrameInfo>, CompositorError> {
        let (info, to_release) = {
            let mut g = self.shared.lock();
            let Some(new) = g.pending.take() else {
                return match &g.closed {
                    Some(reason) => Err(CompositorError::Closed(reason.clone())),
                    None => Ok(None),
                };
            };
            let info = new.info;
            let old = g.held.replace(new);
            // The same buffer committed again stays with us.
            let to_release = old.and_then(|o| o.shm().cloned()).filter(|b| !g.uses(b));
            g.counters.frames_acquired += 1;
            (info, to_release)
        };
        // Sent outside our lock: wayland-server calls `ClientData::disconnected` (which takes
        // our lock) with its own lock held, so we must never wait for it while holding ours.
        if let Some(old) = to_release {
            old.release();
        }
        // Only now may the frame's callbacks fire (the compositor thread fires those up to
        // `last_acquired_seq`): a client that gets `done` before the release of the buffer
        // the host let go has both its buffers busy (weston-simple-shm aborts on that).
        self.shared.lock().note_acquired(info.seq);
        self.send(Cmd::Flush);
        Ok(Some(info))
    }

    /// Calls `f` with the held frame's pixels, read in place from the client's pool; `Ok(None)`
    /// when no frame is held. If the client truncated its pool, the read is caught, the client
    /// is disconnected, the frame dropped and [`CompositorError::ClientMemory`] returned.
    pub fn with_held<R>(
        &self,
        f: impl FnOnce(&ShmFrame<'_>) -> R,
    ) -> Result<Option<R>, CompositorError> {
        // Cloned out so the compositor thread is not blocked for the whole conversion.
        let Some((source, pid)) = self
            .shared
            .lock()
            .held
            .as_ref()
            .map(|h| (h.source.clone(), h.pid))
        else {
            return Ok(None);
        };
        let buffer = match source {
            Source::Shm(b) => b,
            Source::Composed(image) => return Ok(Some(f(&image.frame()))),
        };
        match shm_view::read(&buffer, f) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let err = {
                    let mut g = self.shared.lock();
                    if g.held.as_ref().and_then(shared::Committed::shm) == Some(&buffer) {
                        g.held = None;
                    }
                    match e {
                        shm_view::ReadError::BadMap => {
                            g.counters.bad_buffers += 1;
                            g.log(format!(
                                "client pid {} truncated the shm pool under its held frame: read \
                                 faulted (SIGBUS caught), wl_shm.invalid_fd posted, frame dropped",
                                pid_str(pid)
                            ));
                            CompositorError::ClientMemory { pid }
                        }
                        shm_view::ReadError::Invalid => {
                            g.counters.bad_buffers += 1;
                            g.log(format!(
                                "client pid {}: held buffer unreadable (geometry or format), \
                                 frame dropped",
                                pid_str(pid)
                            ));
                            CompositorError::BadBuffer
                        }
                        shm_view::ReadError::Gone => CompositorError::BufferGone,
                    }
                };
                // The protocol error smithay posted must reach the client (and kill it).
                self.send(Cmd::Flush);
                Err(err)
            }
        }
    }

    /// One output vblank at `now_ns` (CLOCK_MONOTONIC): clients get their frame callbacks'
    /// `done` and presentation feedback (`presented` with the stream period and `output_frame`
    /// as the sequence, or `discarded` for frames replaced before the host took them).
    pub fn present(&self, output_frame: u64, now_ns: u64) {
        self.send(Cmd::Present {
            frame: output_frame,
            now_ns,
        });
    }

    /// Why the compositor thread stopped, once it has.
    pub fn closed(&self) -> Option<String> {
        self.shared.lock().closed.clone()
    }

    /// The counters so far.
    pub fn counters(&self) -> CompositorCounters {
        let mut c = self.shared.lock().counters.clone();
        c.input_dropped = self.shared.input_dropped.load(Ordering::Relaxed);
        c
    }

    /// A handle that delivers [`Input`] to the streamed surface from any thread.
    pub fn input(&self) -> InputSender {
        self.input.clone()
    }

    /// Whether the streamed client holds the pointer locked or confined right now (its
    /// constraint is active: it has pointer focus); an atomic load.
    pub fn pointer_grab(&self) -> PointerGrab {
        PointerGrab::from_u8(self.shared.grab.load(Ordering::Relaxed))
    }

    /// Human-readable events since the last call (clients connected and gone, protocol
    /// errors, truncated pools).
    pub fn take_log(&self) -> Vec<String> {
        self.shared.lock().take_log()
    }

    /// Clients connected right now.
    pub fn client_count(&self) -> usize {
        self.shared.lock().clients
    }

    fn send(&self, cmd: Cmd) {
        if let Some(tx) = &self.tx {
            // A full queue means the loop is behind and will flush anyway; a closed one means
            // it stopped, which `closed` reports.
            let _ = tx.try_send(cmd);
        }
    }
}

impl Drop for Compositor {
    fn drop(&mut self) {
        // Dropping the sender closes the channel, which ends the loop.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn pid_str(pid: Option<i32>) -> String {
    pid.map_or_else(|| "?".into(), |p| p.to_string())
}

fn check_options(opts: &CompositorOptions) -> Result<(), CompositorError> {
    if opts.width == 0 || opts.height == 0 || opts.width > 16384 || opts.height > 16384 {
        return Err(CompositorError::Options(format!(
            "stream size {}x{} is outside 1..=16384",
            opts.width, opts.height
        )));
    }
    if opts.max_clients == 0 {
        return Err(CompositorError::Options("max_clients is 0".into()));
    }
    let name = &opts.socket_name;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.len() > 64 {
        return Err(CompositorError::Options(format!(
            "socket name {name:?} is not a plain file name"
        )));
    }
    let path = &opts.runtime_dir;
    let meta = std::fs::metadata(path).map_err(|e| CompositorError::RuntimeDir {
        path: path.clone(),
        reason: "cannot stat it".into(),
        source: Some(e),
    })?;
    if !meta.is_dir() {
        return Err(CompositorError::RuntimeDir {
            path: path.clone(),
            reason: "not a directory".into(),
            source: None,
        });
    }
    // Anyone who can reach the socket can draw into the stream.
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(CompositorError::RuntimeDir {
            path: path.clone(),
            reason: format!(
                "mode {:o} lets other users in (want 0700)",
                meta.permissions().mode() & 0o777
            ),
            source: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host moves the handle to its output-clock thread.
    #[test]
    fn handle_is_send() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync + Clone>() {}
        send::<Compositor>();
        send_sync::<InputSender>();
    }

    #[test]
    fn keymaps_are_checked() {
        keymap_check(&Keymap::default()).expect("us compiles");
        let de = Keymap {
            layout: "de".into(),
            variant: "nodeadkeys".into(),
        };
        keymap_check(&de).expect("de nodeadkeys compiles");
        let bad = Keymap {
            layout: "nosuchlayout".into(),
            variant: String::new(),
        };
        let err = keymap_check(&bad).expect_err("unknown layout refused");
        assert!(err.to_string().contains("nosuchlayout"), "{err}");
    }

    #[test]
    fn options_are_checked() {
        let dir = std::env::temp_dir().join(format!("crosscast-comp-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut opts = CompositorOptions {
            width: 64,
            height: 64,
            fps: FrameRate::integer(60),
            runtime_dir: dir.clone(),
            socket_name: "wayland-x".into(),
            max_clients: 1,
            keymap: Keymap::default(),
        };
        // Open to other users: refused.
        assert!(matches!(
            Compositor::start(opts.clone()),
            Err(CompositorError::RuntimeDir { .. })
        ));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        opts.socket_name = "../escape".into();
        assert!(matches!(
            Compositor::start(opts.clone()),
            Err(CompositorError::Options(_))
        ));
        opts.socket_name = "wayland-x".into();
        let c = Compositor::start(opts).expect("start");
        assert!(c.socket_path().exists());
        let path = c.socket_path().to_path_buf();
        drop(c);
        assert!(!path.exists(), "socket removed when the compositor stops");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

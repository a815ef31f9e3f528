//! `crosscast-input-probe`: a Wayland client with a known, immediate reaction to input.
//!
//! It shows a dark gray toplevel with a solid white 32x32 square at the top-left corner while
//! any key or pointer button is held, as crosscast's demo game does, so that the input-to-stream
//! latency bench can use one detector for both. On a press or release it commits at once (no
//! waiting for a frame callback), so what it adds to the measured latency is at most one write of
//! the 32 marker rows (about 8.5 us at 1280x720, see `ShmFile::write_marker`), and none when a
//! free buffer already shows the wanted state. Its stderr line at exit sums these writes.
//!
//! Output on stdout, one flushed line each: `probe ready WxH` once the first frame is
//! committed; `probe key CODE pressed|released` and `probe button CODE pressed|released` per
//! input event (evdev codes); `probe size WxH` after a resize. It exits 0 when the compositor
//! goes away or closes the window, non-zero with a message on stderr on any error.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use crosscast_bench::probe::{ShmFile, Size};
use crosscast_bench::BenchError;
use wayland_client::backend::WaylandError;
use wayland_client::globals::{registry_queue_init, BindError, GlobalError, GlobalListContents};
use wayland_client::protocol::{
    wl_buffer, wl_callback, wl_compositor, wl_keyboard, wl_pointer, wl_registry, wl_seat, wl_shm,
    wl_shm_pool, wl_surface,
};
use wayland_client::{
    delegate_noop, ConnectError, Connection, Dispatch, DispatchError, Proxy, QueueHandle, WEnum,
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

/// Size used when the compositor leaves it to the client (a 0x0 configure).
const FALLBACK: Size = Size {
    width: 1280,
    height: 720,
};
/// Buffers in the pool: one the compositor shows, one it may still hold until its next
/// repaint or output tick, and one to draw the next change into without waiting.
const BUFFERS: usize = 3;
/// wl_seat versions bound: version 10 adds repeated key events, which a held key does not need.
const SEAT_VERSIONS: std::ops::RangeInclusive<u32> = 1..=7;

/// A Wayland client that shows a white square at the top-left while a key or button is held.
///
/// Connects to $WAYLAND_SOCKET or $WAYLAND_DISPLAY (under $XDG_RUNTIME_DIR). Prints `probe
/// ready WxH` once its first frame is committed, then `probe key CODE pressed|released` and
/// `probe button CODE pressed|released` (evdev codes) per input event.
#[derive(Debug, Parser)]
#[command(name = "crosscast-input-probe", version)]
struct Cli {
    /// The toplevel's app id (and title).
    #[arg(long, default_value = "crosscast-input-probe")]
    app_id: String,
}

/// Why the probe stopped with an error.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// No compositor to talk to (unset or wrong WAYLAND_DISPLAY / WAYLAND_SOCKET).
    #[error("cannot connect to the Wayland compositor (check WAYLAND_DISPLAY, WAYLAND_SOCKET and XDG_RUNTIME_DIR): {0}")]
    Connect(#[from] ConnectError),
    /// The initial registry round trip failed.
    #[error("cannot list the compositor's globals: {0}")]
    Globals(#[from] GlobalError),
    /// A global the probe needs is missing or too old.
    #[error("the compositor lacks {name}: {source}")]
    Bind {
        /// The interface.
        name: &'static str,
        /// What the registry said.
        #[source]
        source: BindError,
    },
    /// The connection failed for another reason than the compositor leaving (a protocol error).
    #[error("Wayland connection failed: {0}")]
    Dispatch(#[from] DispatchError),
    /// Flushing requests failed.
    #[error("cannot send to the compositor: {0}")]
    Flush(#[source] WaylandError),
    /// The shared-memory pool could not be made or written.
    #[error(transparent)]
    Shm(#[from] BenchError),
    /// Stdout is gone (the reader of the event lines quit).
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

/// One buffer of the pool and what the probe knows of it.
#[derive(Debug)]
struct Buffer {
    wl: wl_buffer::WlBuffer,
    /// Attached and not yet released: the compositor may read it, so it is not written.
    busy: bool,
    /// The marker state it holds (its background is always drawn).
    drawn: bool,
}

/// The pool of one frame size; a resize makes a new one.
#[derive(Debug)]
struct Pool {
    file: ShmFile,
    wl: wl_shm_pool::WlShmPool,
    buffers: Vec<Buffer>,
    /// Tells this pool's buffer events from those of a pool replaced by a resize.
    generation: u64,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Destroying a buffer the compositor still shows is allowed: it keeps the content it
        // has (and its own mapping of the memfd); the probe never writes these again.
        for b in &self.buffers {
            b.wl.destroy();
        }
        self.wl.destroy();
    }
}

/// Time spent writing buffers, reported on stderr at exit.
#[derive(Debug, Default)]
struct Cost {
    count: u32,
    total: Duration,
    max: Duration,
}

impl Cost {
    fn add(&mut self, took: Duration) {
        self.count += 1;
        self.total += took;
        self.max = self.max.max(took);
    }

    fn summary(&self) -> String {
        if self.count == 0 {
            return "none".to_owned();
        }
        format!(
            "{} in {:.1} us avg, {:.1} us max",
            self.count,
            self.total.as_secs_f64() * 1e6 / f64::from(self.count),
            self.max.as_secs_f64() * 1e6
        )
    }
}

/// The probe's whole state, the target of every Wayland event.
struct Probe {
    conn: Connection,
    shm: wl_shm::WlShm,
    surface: wl_surface::WlSurface,
    seat: Option<wl_seat::WlSeat>,
    keyboard: Option<wl_keyboard::WlKeyboard>,
    pointer: Option<wl_pointer::WlPointer>,
    /// Size from the latest xdg_toplevel.configure, applied at the xdg_surface.configure.
    pending: Option<Size>,
    pool: Option<Pool>,
    generation: u64,
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u32>,
    /// Marker state of the last committed buffer (`None` before the first, or after a resize:
    /// then the whole buffer is damaged and the size announced).
    shown: Option<bool>,
    frame_pending: bool,
    ready: bool,
    closed: bool,
    /// The first error met inside an event handler; the main loop returns it.
    error: Option<ProbeError>,
    marker_cost: Cost,
    frame_cost: Cost,
}

impl Probe {
    fn held(&self) -> bool {
        !self.keys.is_empty() || !self.buttons.is_empty()
    }

    fn fail(&mut self, e: ProbeError) {
        self.error.get_or_insert(e);
    }

    fn say(&mut self, line: std::fmt::Arguments<'_>) {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_fmt(line).and_then(|()| out.flush()) {
            self.fail(ProbeError::Stdout(e));
        }
    }

    /// A new pool for `size` with a whole frame in every buffer, so that every later change
    /// writes only the marker; the old pool (if any) is dropped.
    fn resize(&mut self, size: Size, qh: &QueueHandle<Self>) -> Result<(), ProbeError> {
        self.pool = None;
        self.generation += 1;
        let held = self.held();
        let file = ShmFile::new(size, BUFFERS)?;
        let wl = self.shm.create_pool(file.fd(), file.len() as i32, qh, ());
        let mut buffers = Vec::with_capacity(BUFFERS);
        for i in 0..BUFFERS {
            let started = Instant::now();
            file.write_frame(i, held)?;
            self.frame_cost.add(started.elapsed());
            buffers.push(Buffer {
                wl: wl.create_buffer(
                    file.offset(i) as i32,
                    size.width as i32,
                    size.height as i32,
                    size.stride() as i32,
                    wl_shm::Format::Xrgb8888,
                    qh,
                    (self.generation, i),
                ),
                busy: false,
                drawn: held,
            });
        }
        self.pool = Some(Pool {
            file,
            wl,
            buffers,
            generation: self.generation,
        });
        self.shown = None;
        Ok(())
    }

    /// Shows the current input state if it is not what the surface shows: writes the marker
    /// of a free buffer (if it holds the other state), attaches, damages, commits and
    /// flushes right away. Returns whether it committed. With no free buffer it does nothing;
    /// the next release or frame callback calls it again.
    fn update(&mut self, qh: &QueueHandle<Self>) -> Result<bool, ProbeError> {
        let want = self.held();
        if self.shown == Some(want) {
            return Ok(false);
        }
        let Some(pool) = &mut self.pool else {
            return Ok(false); // not configured yet
        };
        // A free buffer that already shows the wanted state needs no write at all (with a
        // compositor that releases promptly, two buffers alternate and nothing is written).
        let free = |b: &Buffer| !b.busy;
        let Some(index) = (pool.buffers.iter().position(|b| free(b) && b.drawn == want))
            .or_else(|| pool.buffers.iter().position(free))
        else {
            return Ok(false);
        };
        let size = pool.file.size();
        if pool.buffers[index].drawn != want {
            let started = Instant::now();
            pool.file.write_marker(index, want)?;
            self.marker_cost.add(started.elapsed());
        }
        let buffer = &mut pool.buffers[index];
        buffer.drawn = want;
        buffer.busy = true;
        self.surface.attach(Some(&buffer.wl), 0, 0);
        // Every buffer with a drawn background differs from the shown one only in the marker,
        // so the compositor need only recompose (and a streamer re-encode) that region.
        let first = self.shown.is_none();
        let (w, h) = if first {
            (size.width, size.height)
        } else {
            size.marker()
        };
        self.surface.damage_buffer(0, 0, w as i32, h as i32);
        if !self.frame_pending {
            self.surface.frame(qh, ());
            self.frame_pending = true;
        }
        self.surface.commit();
        self.conn.flush().map_err(ProbeError::Flush)?;
        self.shown = Some(want);
        if !self.ready {
            self.ready = true;
            self.say(format_args!("probe ready {}x{}\n", size.width, size.height));
        } else if first {
            self.say(format_args!("probe size {}x{}\n", size.width, size.height));
        }
        Ok(true)
    }

    /// [`Probe::update`] from an event handler: errors end the main loop.
    fn refresh(&mut self, qh: &QueueHandle<Self>) {
        if let Err(e) = self.update(qh) {
            self.fail(e);
        }
    }

    /// Records a key or button event, prints it and shows it.
    fn input(&mut self, kind: &str, code: u32, pressed: bool, qh: &QueueHandle<Self>) {
        let set = if kind == "key" {
            &mut self.keys
        } else {
            &mut self.buttons
        };
        if pressed {
            set.insert(code);
        } else {
            set.remove(&code);
        }
        // Commit before printing: the line is for tests to sync on, the frame is what is timed.
        self.refresh(qh);
        let word = if pressed { "pressed" } else { "released" };
        self.say(format_args!("probe {kind} {code} {word}\n"));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crosscast-input-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether an I/O error on the socket means the compositor went away (a normal end).
fn disconnected(e: &DispatchError) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(e, DispatchError::Backend(WaylandError::Io(io))
        if matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof))
}

fn run(cli: &Cli) -> Result<(), ProbeError> {
    let conn = Connection::connect_to_env()?;
    let (globals, mut queue) = registry_queue_init::<Probe>(&conn)?;
    let qh = queue.handle();
    let bind_err = |name| move |source| ProbeError::Bind { name, source };
    // Version 4 for damage_buffer.
    let compositor: wl_compositor::WlCompositor = globals
        .bind(&qh, 4..=6, ())
        .map_err(bind_err("wl_compositor (version 4 or later)"))?;
    let shm: wl_shm::WlShm = globals.bind(&qh, 1..=1, ()).map_err(bind_err("wl_shm"))?;
    let wm_base: xdg_wm_base::XdgWmBase = globals
        .bind(&qh, 1..=6, ())
        .map_err(bind_err("xdg_wm_base"))?;
    // A compositor with no seat yet (weston headless has none) still gets a probe: it shows
    // the idle frame, and binds a seat that appears later (see the registry handler).
    let seat = match globals.bind(&qh, SEAT_VERSIONS, ()) {
        Ok(seat) => Some(seat),
        Err(BindError::NotPresent) => {
            eprintln!("crosscast-input-probe: the compositor has no wl_seat yet: no input until one appears");
            None
        }
        Err(e) => return Err(bind_err("wl_seat")(e)),
    };

    let surface = compositor.create_surface(&qh, ());
    let xdg = wm_base.get_xdg_surface(&surface, &qh, ());
    let toplevel = xdg.get_toplevel(&qh, ());
    toplevel.set_app_id(cli.app_id.clone());
    toplevel.set_title(cli.app_id.clone());
    surface.commit(); // no buffer: asks for the first configure

    let mut probe = Probe {
        conn: conn.clone(),
        seat,
        shm,
        surface,
        keyboard: None,
        pointer: None,
        pending: None,
        pool: None,
        generation: 0,
        keys: BTreeSet::new(),
        buttons: BTreeSet::new(),
        shown: None,
        frame_pending: false,
        ready: false,
        closed: false,
        error: None,
        marker_cost: Cost::default(),
        frame_cost: Cost::default(),
    };
    let result = loop {
        match queue.blocking_dispatch(&mut probe) {
            Ok(_) => {}
            Err(e) if disconnected(&e) => break Ok("the compositor closed the connection"),
            Err(e) => break Err(e.into()),
        }
        if let Some(e) = probe.error.take() {
            break Err(e);
        }
        if probe.closed {
            break Ok("the compositor closed the window");
        }
    };
    eprintln!(
        "crosscast-input-probe: {}; marker writes: {}; whole-frame writes: {}",
        result.as_ref().map_or("error", |why| why),
        probe.marker_cost.summary(),
        probe.frame_cost.summary()
    );
    result.map(|_| ())
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Probe {
    fn event(
        probe: &mut Self,
        registry: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        // A seat that comes after startup is the probe's input; other late globals (outputs,
        // more seats) do not matter to it.
        if let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        {
            if probe.seat.is_none() && interface == wl_seat::WlSeat::interface().name {
                let version = version.min(*SEAT_VERSIONS.end());
                probe.seat = Some(registry.bind(name, version, qh, ()));
            }
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for Probe {
    fn event(
        _: &mut Self,
        wm_base: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm_base.pong(serial);
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for Probe {
    fn event(
        probe: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_toplevel::Event::Configure { width, height, .. } => {
                probe.pending = match (u32::try_from(width), u32::try_from(height)) {
                    (Ok(width @ 1..), Ok(height @ 1..)) => Some(Size { width, height }),
                    _ => None, // 0x0 (or nonsense): the client picks
                };
            }
            xdg_toplevel::Event::Close => probe.closed = true,
            _ => {}
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for Probe {
    fn event(
        probe: &mut Self,
        xdg: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let xdg_surface::Event::Configure { serial } = event else {
            return;
        };
        xdg.ack_configure(serial);
        let size = probe.pending.unwrap_or(FALLBACK);
        if probe.pool.as_ref().map(|p| p.file.size()) != Some(size) {
            if let Err(e) = probe.resize(size, qh) {
                return probe.fail(e);
            }
        }
        match probe.update(qh) {
            // The ack takes effect with the next commit; nothing new to show, so commit it bare.
            Ok(false) => probe.surface.commit(),
            Ok(true) => {}
            Err(e) => probe.fail(e),
        }
    }
}

impl Dispatch<wl_buffer::WlBuffer, (u64, usize)> for Probe {
    fn event(
        probe: &mut Self,
        _: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        &(generation, index): &(u64, usize),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let wl_buffer::Event::Release = event else {
            return;
        };
        let Some(pool) = probe.pool.as_mut().filter(|p| p.generation == generation) else {
            return; // a buffer of a pool replaced by a resize
        };
        pool.buffers[index].busy = false;
        // A change that found every buffer busy is shown now.
        probe.refresh(qh);
    }
}

impl Dispatch<wl_callback::WlCallback, ()> for Probe {
    fn event(
        probe: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            probe.frame_pending = false;
            probe.refresh(qh);
        }
    }
}

impl Dispatch<wl_seat::WlSeat, ()> for Probe {
    fn event(
        probe: &mut Self,
        seat: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        else {
            return;
        };
        let has_keyboard = caps.contains(wl_seat::Capability::Keyboard);
        match (&probe.keyboard, has_keyboard) {
            (None, true) => probe.keyboard = Some(seat.get_keyboard(qh, ())),
            (Some(k), false) => {
                if k.version() >= 3 {
                    k.release();
                }
                probe.keyboard = None;
                probe.keys.clear();
                probe.refresh(qh);
            }
            _ => {}
        }
        let has_pointer = caps.contains(wl_seat::Capability::Pointer);
        match (&probe.pointer, has_pointer) {
            (None, true) => probe.pointer = Some(seat.get_pointer(qh, ())),
            (Some(p), false) => {
                if p.version() >= 3 {
                    p.release();
                }
                probe.pointer = None;
                probe.buttons.clear();
                probe.refresh(qh);
            }
            _ => {}
        }
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for Probe {
    fn event(
        probe: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        match event {
            wl_keyboard::Event::Key {
                key,
                state: WEnum::Value(state),
                ..
            } => probe.input("key", key, state == wl_keyboard::KeyState::Pressed, qh),
            // The keys already down when focus arrives are held too (no line: they are not
            // events the probe saw happen).
            wl_keyboard::Event::Enter { keys, .. } => {
                probe.keys = keys
                    .chunks_exact(4)
                    .map(|k| u32::from_ne_bytes([k[0], k[1], k[2], k[3]]))
                    .collect();
                probe.refresh(qh);
            }
            // Without focus no release will come: nothing is held any more.
            wl_keyboard::Event::Leave { .. } => {
                probe.keys.clear();
                probe.refresh(qh);
            }
            // The keymap's fd is closed when the event is dropped; evdev codes need no keymap.
            _ => {}
        }
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for Probe {
    fn event(
        probe: &mut Self,
        _: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        match event {
            wl_pointer::Event::Button {
                button,
                state: WEnum::Value(state),
                ..
            } => probe.input(
                "button",
                button,
                state == wl_pointer::ButtonState::Pressed,
                qh,
            ),
            // The pointer leaves only with no button down (an implicit grab keeps it), so this
            // only drops what a compositor forgot to release.
            wl_pointer::Event::Leave { .. } => {
                probe.buttons.clear();
                probe.refresh(qh);
            }
            _ => {}
        }
    }
}

delegate_noop!(Probe: wl_compositor::WlCompositor);
delegate_noop!(Probe: wl_shm_pool::WlShmPool);
delegate_noop!(Probe: ignore wl_shm::WlShm);
delegate_noop!(Probe: ignore wl_surface::WlSurface);

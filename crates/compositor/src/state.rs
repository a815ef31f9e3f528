//! The compositor thread: smithay's protocol state, the handlers, and the event loop.

use std::collections::HashMap;
use std::sync::mpsc::Sender;

use smithay::reexports::wayland_server::{DataInit, Dispatch};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use smithay::delegate_compositor;
use smithay::delegate_data_device;
use smithay::delegate_output;
use smithay::delegate_pointer_constraints;
use smithay::delegate_presentation;
use smithay::delegate_relative_pointer;
use smithay::delegate_seat;
use smithay::delegate_viewporter;
use smithay::delegate_xdg_decoration;
use smithay::delegate_xdg_shell;
use smithay::input::keyboard::XkbConfig;
use smithay::input::pointer::PointerHandle;
use smithay::input::{Seat, SeatHandler, SeatState};
use smithay::output::{Mode as OutputMode, Output, PhysicalProperties, Scale, Subpixel};
use smithay::reexports::calloop::channel::{self, Channel, SyncSender};
use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::{EventLoop, Interest, Mode, PostAction};
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
use smithay::reexports::wayland_protocols::xdg::decoration::zv1::server::zxdg_toplevel_decoration_v1::Mode as DecorationMode;
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::reexports::wayland_server::backend::{
    ClientData, ClientId, DisconnectReason, ObjectId,
};
use smithay::reexports::wayland_server::protocol::wl_buffer::{self, WlBuffer};
use smithay::reexports::wayland_server::protocol::wl_shm::{self, WlShm};
use smithay::reexports::wayland_server::protocol::wl_shm_pool::{self, WlShmPool};
use smithay::reexports::wayland_server::protocol::wl_callback::WlCallback;

use smithay::reexports::wayland_server::protocol::wl_seat::WlSeat;
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::reexports::wayland_server::{
    Client, Display, DisplayHandle, ListeningSocket, Resource,
};
use smithay::utils::{Logical, Point, Serial, Transform};
use smithay::wayland::buffer::BufferHandler;
use smithay::wayland::compositor::{
    get_parent, with_surface_tree_downward, with_surface_tree_upward, BufferAssignment,
    CompositorClientState, CompositorHandler, CompositorState, SubsurfaceCachedState,
    SurfaceAttributes, SurfaceData, TraversalAction,
};
use smithay::wayland::output::{OutputHandler, OutputManagerState};
use smithay::wayland::pointer_constraints::{PointerConstraintsHandler, PointerConstraintsState};
use smithay::wayland::presentation::{
    PresentationFeedbackCachedState, PresentationFeedbackCallback, PresentationState, Refresh,
};
use smithay::wayland::relative_pointer::RelativePointerManagerState;
use smithay::wayland::selection::data_device::{
    ClientDndGrabHandler, DataDeviceHandler, DataDeviceState, ServerDndGrabHandler,
};
use smithay::wayland::selection::SelectionHandler;
use smithay::wayland::shell::xdg::decoration::{XdgDecorationHandler, XdgDecorationState};
use smithay::wayland::shell::xdg::{
    PopupSurface, PositionerState, ToplevelSurface, XdgShellHandler, XdgShellState,
};
use smithay::wayland::shm::{
    with_buffer_contents, ShmBufferUserData, ShmHandler, ShmPoolUserData, ShmState,
};
use smithay::wayland::viewporter::ViewporterState;

use crate::compose::Image;
use crate::shared::{Committed, Shared, Source};
use crate::shm_view;
use crate::{
    monotonic_ns, pid_str, Cmd, CompositorError, CompositorOptions, FrameInfo, INPUT_QUEUE,
};
use crosscast_wire::Input;
use smithay::input::keyboard::KeyboardHandle;
use smithay::input::touch::TouchHandle;

/// Frame callbacks waiting for the next vblank; beyond this a client that requests callbacks
/// without waiting for them gets them answered at once rather than growing our list.
const CALLBACK_CAP: usize = 1024;
/// Presentation feedbacks waiting for their frame's fate; the oldest are discarded beyond.
const FEEDBACK_CAP: usize = 256;
/// Live shm pools plus buffers one client may have. Each live pool holds a file descriptor
/// and a mapping in the host process, so this bounds both per client (games use a handful).
pub(crate) const SHM_OBJECTS_CAP: usize = 128;
/// The largest surface composition copies (a 4096x4096 surface, 64 MiB).
const COMPOSE_MAX_PIXELS: i64 = 4096 * 4096;
/// The most memory one streamed tree's copies may take (the composed frame is one more copy of
/// its toplevel); a client cannot make the compositor allocate beyond.
const COMPOSE_MAX_BYTES: usize = 256 << 20;
/// CLOCK_MONOTONIC's id, what wp_presentation advertises.
const CLOCK_MONOTONIC: u32 = 1;

/// Per-client data: smithay's compositor state and what the log needs.
struct ClientState {
    compositor: CompositorClientState,
    shared: Arc<Shared>,
    pid: OnceLock<i32>,
}

impl ClientData for ClientState {
    fn disconnected(&self, client_id: ClientId, reason: DisconnectReason) {
        let pid = pid_str(self.pid.get().copied());
        let mut g = self.shared.lock();
        g.clients = g.clients.saturating_sub(1);
        g.counters.clients_disconnected += 1;
        g.drop_client(&client_id);
        match reason {
            DisconnectReason::ConnectionClosed => {
                // wayland-backend reports both the same way: the client closed its socket, or
                // it stopped reading and the events for it overflowed its bounded output
                // buffer (4 KiB beyond the socket's), so it was cut off.
                g.log(format!(
                    "client pid {pid} gone: connection closed (by the client, or cut off \
                     because it stopped reading its events)"
                ));
            }
            DisconnectReason::ProtocolError(e) => {
                g.counters.protocol_errors += 1;
                g.log(format!(
                    "client pid {pid} disconnected: protocol error {} on {}@{}: {}",
                    e.code, e.object_interface, e.object_id, e.message
                ));
            }
        }
        drop(g);
        self.shared.cond.notify_all();
    }
}

/// What one surface of a committed tree handed over: its new buffer, frame callbacks and
/// presentation feedbacks.
type Taken = (
    WlSurface,
    Option<BufferAssignment>,
    Vec<WlCallback>,
    Vec<PresentationFeedbackCallback>,
);

/// A surface's streaming role, in the order toplevels were mapped.
struct Toplevel {
    surface: ToplevelSurface,
    mapped: bool,
}

/// The compositor thread's state.
pub(crate) struct State {
    dh: DisplayHandle,
    pub(crate) shared: Arc<Shared>,
    width: u32,
    height: u32,
    period: Duration,
    compositor_state: CompositorState,
    shm_state: ShmState,
    xdg_shell_state: XdgShellState,
    seat_state: SeatState<State>,
    /// Kept: it owns the wl_seat global (the handles below are its devices).
    _seat: Seat<State>,
    pub(crate) keyboard: KeyboardHandle<State>,
    pub(crate) pointer: PointerHandle<State>,
    pub(crate) touch: TouchHandle<State>,
    /// Whether the host's window has focus (`InputEvent::Focus`); input is delivered only then.
    pub(crate) focused: bool,
    /// The surface keyboard focus was last given to (the streamed one while focused).
    pub(crate) kb_focus: Option<WlSurface>,
    /// Touch points down on the streamed surface (for cancel on focus loss).
    pub(crate) touching: usize,
    /// The streamed toplevel's newest buffer size, pixels: what the host's coordinates are in.
    pub(crate) buffer_size: Option<(u32, u32)>,
    data_device_state: DataDeviceState,
    output: Output,
    /// Toplevels in map order; the last mapped one is streamed.
    toplevels: Vec<Toplevel>,
    next_seq: u64,
    /// Live shm pools and buffers per client.
    shm_objects: HashMap<ClientId, usize>,
    /// Copies of the streamed tree's surfaces, kept only while it has subsurfaces with
    /// content (then frames are composed); keyed by surface.
    images: HashMap<ObjectId, Image>,
    /// The toplevel `images` belongs to.
    images_root: Option<WlSurface>,
    /// The streamed toplevel's newest buffer while it is streamed in place: pending or held,
    /// so still ours, the base to compose on when a subsurface appears.
    last_root_buffer: Option<WlBuffer>,
    /// Frame callbacks waiting to fire: `Some(seq)` for those committed with a streamed frame
    /// (they fire once the host took that frame or a newer one, so a client with two buffers
    /// always has one free), `None` for the rest (they fire at the next vblank).
    frame_callbacks: Vec<(Option<u64>, WlCallback)>,
    /// Feedback of commits: `Some(seq)` for streamed frames, `None` for other surfaces.
    feedbacks: Vec<(Option<u64>, PresentationFeedbackCallback)>,
    // Kept alive: dropping them would not remove the globals, but they own the state.
    _xdg_decoration_state: XdgDecorationState,
    _output_manager_state: OutputManagerState,
    _viewporter_state: ViewporterState,
    _presentation_state: PresentationState,
    _relative_pointer_state: RelativePointerManagerState,
    _pointer_constraints_state: PointerConstraintsState,
    stop: bool,
}

fn setup_err(what: &'static str) -> impl FnOnce(std::io::Error) -> CompositorError {
    move |source| CompositorError::Setup { what, source }
}

/// The handle's ends of the command and input channels.
pub(crate) type Channels = (SyncSender<Cmd>, SyncSender<Input>);

/// Runs the compositor thread: sets up, reports readiness on `ready`, then serves clients
/// until the handle's channel closes or an I/O error ends it (recorded in `shared.closed`).
pub(crate) fn run(
    opts: CompositorOptions,
    shared: Arc<Shared>,
    ready: Sender<Result<Channels, CompositorError>>,
) {
    // Whatever ends this thread, a panic included, the handle must learn that it did.
    let _closer = Closer(shared.clone());
    let (tx, rx) = channel::sync_channel::<Cmd>(256);
    let (input_tx, input_rx) = channel::sync_channel::<Input>(INPUT_QUEUE);
    let setup = setup(&opts, shared.clone(), rx, input_rx);
    let (mut event_loop, mut display, mut state) = match setup {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok((tx, input_tx))).is_err() {
        return;
    }
    let reason = loop {
        if let Err(e) = event_loop.dispatch(None, &mut state) {
            break format!("event loop: {e}");
        }
        if let Err(e) = display.dispatch_clients(&mut state) {
            break format!("dispatching clients: {e}");
        }
        // Requests may have mapped, unmapped or destroyed the streamed toplevel, or made or
        // destroyed a pointer constraint: focus and the grab follow.
        state.sync_focus();
        if let Err(e) = display.flush_clients() {
            break format!("flushing clients: {e}");
        }
        if state.stop {
            break "stopped".to_string();
        }
    };
    let mut g = shared.lock();
    g.log(format!("compositor stopped: {reason}"));
    g.closed = Some(reason);
    drop(g);
    shared.cond.notify_all();
}

/// Marks the compositor closed when the thread ends without saying why (a panic).
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        if g.closed.is_none() {
            let why = if std::thread::panicking() {
                "compositor thread panicked"
            } else {
                "compositor thread ended"
            };
            g.log(why.to_string());
            g.closed = Some(why.to_string());
        }
        drop(g);
        self.0.cond.notify_all();
    }
}

type Setup = (EventLoop<'static, State>, Display<State>, State);

fn setup(
    opts: &CompositorOptions,
    shared: Arc<Shared>,
    rx: Channel<Cmd>,
    input_rx: Channel<Input>,
) -> Result<Setup, CompositorError> {
    let event_loop: EventLoop<'static, State> =
        EventLoop::try_new().map_err(|e| CompositorError::Setup {
            what: "calloop event loop",
            source: e.into(),
        })?;
    let mut display: Display<State> = Display::new().map_err(|e| CompositorError::Setup {
        what: "Wayland display",
        source: std::io::Error::other(e),
    })?;
    let dh = display.handle();

    let compositor_state = CompositorState::new::<State>(&dh);
    // ARGB8888 and XRGB8888 are always advertised; nothing else is read.
    let shm_state = ShmState::new::<State>(&dh, Vec::new());
    let xdg_shell_state = XdgShellState::new::<State>(&dh);
    let xdg_decoration_state = XdgDecorationState::new::<State>(&dh);
    let mut seat_state = SeatState::new();
    let mut seat = seat_state.new_wl_seat(&dh, "seat0");
    // Key events carry no auto-repeat (a held key is one press), so clients repeat keys
    // themselves from this: 600 ms before 25 per second is the classic X server default
    // (660/25) rounded, long enough that a key held a little long in a game does not repeat
    // in its text fields.
    let keyboard = seat
        .add_keyboard(
            XkbConfig {
                layout: &opts.keymap.layout,
                variant: &opts.keymap.variant,
                ..XkbConfig::default()
            },
            600,
            25,
        )
        .map_err(|e| match e {
            smithay::input::keyboard::Error::BadKeymap => CompositorError::Keymap {
                layout: opts.keymap.layout.clone(),
                variant: opts.keymap.variant.clone(),
            },
            other => CompositorError::Keyboard(other),
        })?;
    let pointer = seat.add_pointer();
    let touch = seat.add_touch();
    let data_device_state = DataDeviceState::new::<State>(&dh);
    let output_manager_state = OutputManagerState::new_with_xdg_output::<State>(&dh);
    let output = Output::new(
        "crosscast-0".into(),
        PhysicalProperties {
            size: (0, 0).into(),
            subpixel: Subpixel::Unknown,
            make: "crosscast".into(),
            model: "stream".into(),
        },
    );
    let fps = opts.fps;
    let millihertz =
        (u64::from(fps.num()) * 1000 + u64::from(fps.den()) / 2) / u64::from(fps.den());
    let mode = OutputMode {
        size: (opts.width as i32, opts.height as i32).into(),
        refresh: millihertz as i32,
    };
    output.change_current_state(
        Some(mode),
        Some(Transform::Normal),
        Some(Scale::Integer(1)),
        Some((0, 0).into()),
    );
    output.set_preferred(mode);
    let _output_global = output.create_global::<State>(&dh);
    let viewporter_state = ViewporterState::new::<State>(&dh);
    let presentation_state = PresentationState::new::<State>(&dh, CLOCK_MONOTONIC);
    let relative_pointer_state = RelativePointerManagerState::new::<State>(&dh);
    let pointer_constraints_state = PointerConstraintsState::new::<State>(&dh);

    // The socket: a plain path in the caller's runtime dir (smithay's ListeningSocketSource
    // only knows $XDG_RUNTIME_DIR, which we do not want to depend on).
    let socket_path = opts.runtime_dir.join(&opts.socket_name);
    let listener = ListeningSocket::bind_absolute(socket_path.clone()).map_err(|source| {
        CompositorError::Bind {
            path: socket_path.clone(),
            source,
        }
    })?;
    let handle = event_loop.handle();
    let max_clients = opts.max_clients;
    handle
        .insert_source(
            Generic::new(listener, Interest::READ, Mode::Level),
            move |_, listener, state: &mut State| {
                while let Some(stream) = listener.accept()? {
                    state.accept(stream, max_clients);
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| CompositorError::Setup {
            what: "listening socket source",
            source: e.error.into(),
        })?;
    // Client requests: the loop wakes on the display's fd and dispatches after each round.
    let poll_fd = display
        .backend()
        .poll_fd()
        .try_clone_to_owned()
        .map_err(setup_err("display fd"))?;
    handle
        .insert_source(
            Generic::new(poll_fd, Interest::READ, Mode::Level),
            |_, _, _| Ok(PostAction::Continue),
        )
        .map_err(|e| CompositorError::Setup {
            what: "display source",
            source: e.error.into(),
        })?;
    handle
        .insert_source(rx, |event, _, state: &mut State| match event {
            channel::Event::Msg(Cmd::Flush) => state.fire_callbacks(monotonic_ns(), false),
            channel::Event::Msg(Cmd::Present { frame, now_ns }) => state.present(frame, now_ns),
            channel::Event::Closed => state.stop = true,
        })
        .map_err(|e| CompositorError::Setup {
            what: "command channel",
            source: e.error.into(),
        })?;
    handle
        .insert_source(input_rx, |event, _, state: &mut State| {
            if let channel::Event::Msg(input) = event {
                state.input(input);
            }
        })
        .map_err(|e| CompositorError::Setup {
            what: "input channel",
            source: e.error.into(),
        })?;

    let state = State {
        dh,
        shared,
        width: opts.width,
        height: opts.height,
        period: Duration::from_nanos(fps.period_ns()),
        compositor_state,
        shm_state,
        xdg_shell_state,
        seat_state,
        _seat: seat,
        keyboard,
        pointer,
        touch,
        focused: true,
        kb_focus: None,
        touching: 0,
        buffer_size: None,
        data_device_state,
        output,
        toplevels: Vec::new(),
        next_seq: 1,
        shm_objects: HashMap::new(),
        images: HashMap::new(),
        images_root: None,
        last_root_buffer: None,
        frame_callbacks: Vec::new(),
        feedbacks: Vec::new(),
        _xdg_decoration_state: xdg_decoration_state,
        _output_manager_state: output_manager_state,
        _viewporter_state: viewporter_state,
        _presentation_state: presentation_state,
        _relative_pointer_state: relative_pointer_state,
        _pointer_constraints_state: pointer_constraints_state,
        stop: false,
    };
    Ok((event_loop, display, state))
}

impl State {
    fn accept(&mut self, stream: std::os::unix::net::UnixStream, max_clients: usize) {
        {
            let mut g = self.shared.lock();
            if g.clients >= max_clients {
                g.counters.clients_refused += 1;
                g.log(format!(
                    "connection refused: {max_clients} clients already connected"
                ));
                return;
            }
        }
        let data = Arc::new(ClientState {
            compositor: CompositorClientState::default(),
            shared: self.shared.clone(),
            pid: OnceLock::new(),
        });
        match self.dh.insert_client(stream, data.clone()) {
            Ok(client) => {
                let pid = client.get_credentials(&self.dh).ok().map(|c| c.pid);
                if let Some(p) = pid {
                    let _ = data.pid.set(p);
                }
                let mut g = self.shared.lock();
                g.clients += 1;
                g.counters.clients_connected += 1;
                g.log(format!("client pid {} connected", pid_str(pid)));
            }
            Err(e) => {
                self.shared
                    .lock()
                    .log(format!("could not add a client: {e}"));
            }
        }
    }

    /// The streamed surface: the most recently mapped toplevel still alive.
    pub(crate) fn streamed(&self) -> Option<&WlSurface> {
        self.toplevels
            .iter()
            .rev()
            .find(|t| t.mapped)
            .map(|t| t.surface.wl_surface())
    }

    /// One vblank: frame callbacks of commits without a streamed frame fire; presentation
    /// feedback of frames the host took since the last vblank says `presented`, of frames
    /// replaced before it took them `discarded`.
    fn present(&mut self, frame: u64, now_ns: u64) {
        let (taken, skipped) = {
            let mut g = self.shared.lock();
            g.counters.presents += 1;
            (g.last_acquired_seq, std::mem::take(&mut g.skipped_seqs))
        };
        self.fire_callbacks(now_ns, true);
        let time = Duration::from_nanos(now_ns);
        let mut kept = Vec::with_capacity(self.feedbacks.len());
        for (seq, fb) in self.feedbacks.drain(..) {
            match seq {
                Some(s) if skipped.contains(&s) => fb.discarded(),
                // Not taken yet: it may still be shown (or replaced).
                Some(s) if s > taken => kept.push((seq, fb)),
                _ => fb.presented(
                    &self.output,
                    time,
                    Refresh::Fixed(self.period),
                    frame,
                    wp_presentation_feedback::Kind::Vsync,
                ),
            }
        }
        self.feedbacks = kept;
    }

    /// Fires the frame callbacks whose frame the host has taken (and, at a vblank, those of
    /// commits without a streamed frame).
    pub(crate) fn fire_callbacks(&mut self, now_ns: u64, vblank: bool) {
        // Frame callbacks carry milliseconds that wrap (u32), as the protocol says.
        let ms = (now_ns / 1_000_000) as u32;
        let taken = self.shared.lock().last_acquired_seq;
        self.frame_callbacks.retain(|(seq, cb)| {
            let ready = match seq {
                None => vblank,
                Some(s) => *s <= taken,
            };
            if ready {
                cb.done(ms);
            }
            !ready
        });
    }

    fn add_feedbacks(&mut self, seq: Option<u64>, fbs: Vec<PresentationFeedbackCallback>) {
        for fb in fbs {
            if self.feedbacks.len() >= FEEDBACK_CAP {
                self.feedbacks.remove(0).1.discarded();
            }
            self.feedbacks.push((seq, fb));
        }
    }

    fn add_callbacks(&mut self, seq: Option<u64>, cbs: Vec<WlCallback>) {
        for cb in cbs {
            if self.frame_callbacks.len() >= CALLBACK_CAP {
                cb.done((monotonic_ns() / 1_000_000) as u32);
            } else {
                self.frame_callbacks.push((seq, cb));
            }
        }
    }

    /// A new frame of the streamed surface: it replaces the pending frame. Returns its
    /// sequence number, `None` if there is nothing to stream.
    fn stream(&mut self, surface: &WlSurface, source: Source) -> Option<u64> {
        let dims = match &source {
            Source::Shm(b) => with_buffer_contents(b, |_, _, d| (d.width, d.height))
                .ok()
                .map(|(w, h)| (w.max(0) as u32, h.max(0) as u32)),
            Source::Composed(img) => Some((img.width, img.height)),
        };
        let client = surface.client();
        let (Some((width, height)), Some(client)) = (dims, client) else {
            // Not shm (we advertise nothing else) or already gone: nothing to stream.
            if let Source::Shm(b) = source {
                b.release();
            }
            return None;
        };
        // The host's pointer and touch coordinates are in these pixels.
        self.buffer_size = Some((width, height));
        let seq = self.next_seq;
        self.next_seq += 1;
        let pid = client
            .get_data::<ClientState>()
            .and_then(|d| d.pid.get().copied());
        let committed = Committed {
            source,
            info: FrameInfo {
                seq,
                commit_ns: monotonic_ns(),
                width,
                height,
            },
            client: client.id(),
            pid,
        };
        let mut g = self.shared.lock();
        g.counters.commits += 1;
        let mut to_release = None;
        if let Some(old) = g.pending.replace(committed) {
            g.counters.frames_skipped += 1;
            g.note_skipped(old.info.seq);
            to_release = old.shm().filter(|b| !g.uses(b)).cloned();
        }
        drop(g);
        self.shared.cond.notify_all();
        // Outside our lock (see `Compositor::acquire`).
        if let Some(old) = to_release {
            old.release();
        }
        Some(seq)
    }

    /// Copies a client buffer (on this thread, under smithay's SIGBUS guard) and releases it;
    /// `None` (and a log line) past the composition memory caps.
    fn copy_and_release(&mut self, buffer: WlBuffer) -> Option<Image> {
        let pixels = with_buffer_contents(&buffer, |_, _, d| {
            i64::from(d.width.max(0)) * i64::from(d.height.max(0))
        })
        .unwrap_or(0);
        let held: usize = self.images.values().map(|i| i.data.len()).sum();
        let fits = pixels <= COMPOSE_MAX_PIXELS && held + pixels as usize * 4 <= COMPOSE_MAX_BYTES;
        let img = if fits {
            shm_view::read(&buffer, Image::copy).ok()
        } else {
            self.shared.lock().log(format!(
                "surface buffer of {pixels} pixels not composed: over the composition caps \
                 ({COMPOSE_MAX_PIXELS} pixels a surface, {COMPOSE_MAX_BYTES} bytes a tree)"
            ));
            None
        };
        let in_use = self.shared.lock().uses(&buffer);
        if !in_use {
            buffer.release();
        }
        img
    }

    /// The streamed tree's surfaces drawn over its toplevel, bottom to top.
    fn compose(&self, root: &WlSurface) -> Option<Image> {
        let mut out = self.images.get(&root.id())?.clone();
        let offset = |states: &SurfaceData, loc: Point<i32, Logical>| {
            if states.role == Some("subsurface") {
                loc + states
                    .cached_state
                    .get::<SubsurfaceCachedState>()
                    .current()
                    .location
            } else {
                loc
            }
        };
        with_surface_tree_upward(
            root,
            Point::<i32, Logical>::from((0, 0)),
            |_, states, loc| TraversalAction::DoChildren(offset(states, *loc)),
            |s, states, loc| {
                if s != root {
                    if let Some(img) = self.images.get(&s.id()) {
                        let at = offset(states, *loc);
                        out.draw(img, at.x, at.y);
                    }
                }
            },
            |_, _, _| true,
        );
        Some(out)
    }

    fn configure_toplevel(&self, t: &ToplevelSurface) {
        let (w, h) = (self.width as i32, self.height as i32);
        t.with_pending_state(|s| {
            s.states.set(xdg_toplevel::State::Fullscreen);
            s.states.set(xdg_toplevel::State::Activated);
            s.size = Some((w, h).into());
            s.decoration_mode = Some(DecorationMode::ServerSide);
        });
    }
}

impl CompositorHandler for State {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        // Every client is inserted by `accept` with a ClientState.
        &client
            .get_data::<ClientState>()
            .expect("client inserted without ClientState")
            .compositor
    }

    fn commit(&mut self, surface: &WlSurface) {
        // xdg: the first commit gets the initial configure (fullscreen at the stream size).
        if let Some(t) = self
            .toplevels
            .iter()
            .find(|t| t.surface.wl_surface() == surface)
        {
            if !t.surface.is_initial_configure_sent() {
                t.surface.send_configure();
            }
        }
        let mut root = surface.clone();
        while let Some(parent) = get_parent(&root) {
            root = parent;
        }
        // Take what each surface of the tree committed: buffers are ours to release from now
        // on (smithay would release a replaced one itself otherwise), callbacks wait for the
        // next vblank.
        let mut taken: Vec<Taken> = Vec::new();
        with_surface_tree_downward(
            &root,
            (),
            |_, _, _| TraversalAction::DoChildren(()),
            |s, states, _| {
                let mut attrs = states.cached_state.get::<SurfaceAttributes>();
                let cur = attrs.current();
                let buffer = cur.buffer.take();
                let cbs = std::mem::take(&mut cur.frame_callbacks);
                let fbs = std::mem::take(
                    &mut states
                        .cached_state
                        .get::<PresentationFeedbackCachedState>()
                        .current()
                        .callbacks,
                );
                if buffer.is_some() || !cbs.is_empty() || !fbs.is_empty() {
                    taken.push((s.clone(), buffer, cbs, fbs));
                }
            },
            |_, _, _| true,
        );
        self.map_or_unmap(&root, &taken);
        if self.streamed() != Some(&root) {
            // Not streamed: every buffer goes straight back, callbacks fire at the next vblank.
            for (_, buffer, cbs, fbs) in taken {
                if let Some(BufferAssignment::NewBuffer(buf)) = buffer {
                    self.shared.lock().counters.other_buffers += 1;
                    buf.release();
                }
                self.add_callbacks(None, cbs);
                self.add_feedbacks(None, fbs);
            }
            return;
        }
        if self.images_root.as_ref() != Some(&root) {
            self.images.clear();
            self.images_root = Some(root.clone());
            self.last_root_buffer = None;
        }
        let mut root_buf = None;
        let mut dirty = false;
        let mut rest = Vec::with_capacity(taken.len());
        for (s, buffer, cbs, fbs) in taken {
            match buffer {
                Some(BufferAssignment::NewBuffer(buf)) if s == root => root_buf = Some(buf),
                Some(BufferAssignment::NewBuffer(buf)) => {
                    // A subsurface: its pixels are copied, from now on the tree is composed.
                    self.shared.lock().counters.other_buffers += 1;
                    match self.copy_and_release(buf) {
                        Some(img) => self.images.insert(s.id(), img),
                        None => self.images.remove(&s.id()),
                    };
                    dirty = true;
                }
                Some(BufferAssignment::Removed) if s != root => {
                    dirty |= self.images.remove(&s.id()).is_some();
                }
                _ => {}
            }
            rest.push((cbs, fbs));
        }
        let root_id = root.id();
        let composed = self.images.keys().any(|k| *k != root_id);
        let seq = if composed {
            if let Some(buf) = root_buf {
                if let Some(img) = self.copy_and_release(buf) {
                    self.images.insert(root_id.clone(), img);
                }
                dirty = true;
            } else if !self.images.contains_key(&root_id) {
                // Streamed in place until now: copy its newest buffer (pending or held, so
                // not released) as the base.
                if let Some(buf) = self.last_root_buffer.clone() {
                    if let Ok(img) = shm_view::read(&buf, Image::copy) {
                        self.images.insert(root_id.clone(), img);
                    }
                }
            }
            self.last_root_buffer = None;
            match self.compose(&root) {
                Some(img) if dirty => self.stream(&root, Source::Composed(Arc::new(img))),
                _ => None,
            }
        } else if let Some(buf) = root_buf {
            // The one-surface path: the client's buffer itself, no copy.
            self.images.remove(&root_id);
            self.last_root_buffer = Some(buf.clone());
            self.stream(&root, Source::Shm(buf))
        } else if dirty {
            // The last subsurface went away: the toplevel alone, from its copy.
            let img = self.images.get(&root_id).cloned();
            img.and_then(|img| self.stream(&root, Source::Composed(Arc::new(img))))
        } else {
            None
        };
        for (cbs, fbs) in rest {
            self.add_callbacks(seq, cbs);
            self.add_feedbacks(seq, fbs);
        }
    }

    fn destroyed(&mut self, surface: &WlSurface) {
        self.images.remove(&surface.id());
        if self.images_root.as_ref() == Some(surface) {
            self.images.clear();
            self.images_root = None;
            self.last_root_buffer = None;
        }
    }
}

impl State {
    /// A toplevel's first buffer maps it (it becomes the streamed one); a null buffer
    /// unmaps it (the previously mapped one, if any, is streamed again).
    fn map_or_unmap(&mut self, root: &WlSurface, taken: &[Taken]) {
        let Some((_, Some(buffer), _, _)) = taken.iter().find(|t| &t.0 == root) else {
            return;
        };
        let Some(i) = self
            .toplevels
            .iter()
            .position(|t| t.surface.wl_surface() == root)
        else {
            return;
        };
        match buffer {
            BufferAssignment::NewBuffer(_) if !self.toplevels[i].mapped => {
                let mut t = self.toplevels.remove(i);
                t.mapped = true;
                self.toplevels.push(t);
                let pid = root.client().and_then(|c| {
                    c.get_data::<ClientState>()
                        .and_then(|d| d.pid.get().copied())
                });
                self.shared.lock().log(format!(
                    "client pid {}: toplevel mapped, now streamed",
                    pid_str(pid)
                ));
            }
            BufferAssignment::Removed => self.toplevels[i].mapped = false,
            BufferAssignment::NewBuffer(_) => {}
        }
    }
}

impl BufferHandler for State {
    fn buffer_destroyed(&mut self, buffer: &WlBuffer) {
        if self.last_root_buffer.as_ref() == Some(buffer) {
            self.last_root_buffer = None;
        }
        let mut g = self.shared.lock();
        if g.pending.as_ref().and_then(Committed::shm) == Some(buffer) {
            g.pending = None;
        }
        // The held frame stays even when its buffer is destroyed (its client left, or let go
        // of it): it is what the output repeats until a newer frame comes, the standby slate.
        // Our handle keeps smithay's pool, and so the mapping, alive; reads stay guarded.
    }
}

impl ShmHandler for State {
    fn shm_state(&self) -> &ShmState {
        &self.shm_state
    }
}

impl XdgShellHandler for State {
    fn xdg_shell_state(&mut self) -> &mut XdgShellState {
        &mut self.xdg_shell_state
    }

    fn new_toplevel(&mut self, surface: ToplevelSurface) {
        self.configure_toplevel(&surface);
        self.toplevels.push(Toplevel {
            surface,
            mapped: false,
        });
    }

    fn new_popup(&mut self, surface: PopupSurface, _positioner: PositionerState) {
        // Popups are not streamed yet; configure them so the client can go on.
        let _ = surface.send_configure();
    }

    fn grab(&mut self, _surface: PopupSurface, _seat: WlSeat, _serial: Serial) {}

    fn reposition_request(
        &mut self,
        surface: PopupSurface,
        positioner: PositionerState,
        token: u32,
    ) {
        surface.with_pending_state(|s| s.geometry = positioner.get_geometry());
        surface.send_repositioned(token);
    }

    fn fullscreen_request(
        &mut self,
        surface: ToplevelSurface,
        _output: Option<smithay::reexports::wayland_server::protocol::wl_output::WlOutput>,
    ) {
        // Already fullscreen; answer with the same state.
        self.configure_toplevel(&surface);
        if surface.is_initial_configure_sent() {
            surface.send_pending_configure();
        }
    }

    fn unfullscreen_request(&mut self, surface: ToplevelSurface) {
        // The stream is the only "screen": stay fullscreen.
        if surface.is_initial_configure_sent() {
            surface.send_configure();
        }
    }

    fn maximize_request(&mut self, surface: ToplevelSurface) {
        if surface.is_initial_configure_sent() {
            surface.send_configure();
        }
    }

    fn toplevel_destroyed(&mut self, surface: ToplevelSurface) {
        self.toplevels
            .retain(|t| t.surface.wl_surface() != surface.wl_surface());
    }
}

impl XdgDecorationHandler for State {
    fn new_decoration(&mut self, toplevel: ToplevelSurface) {
        // We draw no decorations and want the client to draw none either: server-side.
        toplevel.with_pending_state(|s| s.decoration_mode = Some(DecorationMode::ServerSide));
        if toplevel.is_initial_configure_sent() {
            toplevel.send_pending_configure();
        }
    }

    fn request_mode(&mut self, toplevel: ToplevelSurface, _mode: DecorationMode) {
        self.new_decoration(toplevel);
    }

    fn unset_mode(&mut self, toplevel: ToplevelSurface) {
        self.new_decoration(toplevel);
    }
}

impl SeatHandler for State {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<State> {
        &mut self.seat_state
    }
}

impl SelectionHandler for State {
    type SelectionUserData = ();
}

impl DataDeviceHandler for State {
    fn data_device_state(&self) -> &DataDeviceState {
        &self.data_device_state
    }
}

impl ClientDndGrabHandler for State {}
impl ServerDndGrabHandler for State {}

impl OutputHandler for State {}

impl PointerConstraintsHandler for State {
    fn new_constraint(&mut self, surface: &WlSurface, pointer: &PointerHandle<Self>) {
        // Active at once if the pointer is on that surface already, else when it enters.
        if pointer.current_focus().as_ref() == Some(surface) {
            self.activate_constraint();
        }
    }

    fn cursor_position_hint(
        &mut self,
        _surface: &WlSurface,
        _pointer: &PointerHandle<Self>,
        _location: Point<f64, Logical>,
    ) {
    }
}

delegate_compositor!(State);
smithay::reexports::wayland_server::delegate_global_dispatch!(State: [WlShm: ()] => ShmState);

/// Counts a client's shm objects after smithay handled the request that made one, and
/// disconnects the client beyond [`SHM_OBJECTS_CAP`].
fn count_shm_object<R: Resource>(state: &mut State, client: &Client, resource: &R) {
    let n = state.shm_objects.entry(client.id()).or_insert(0);
    *n += 1;
    if *n > SHM_OBJECTS_CAP {
        resource.post_error(
            wl_shm::Error::InvalidFd,
            format!("too many shm pools and buffers (limit {SHM_OBJECTS_CAP})"),
        );
    }
}

fn uncount_shm_object(state: &mut State, client: &ClientId) {
    if let Some(n) = state.shm_objects.get_mut(client) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            state.shm_objects.remove(client);
        }
    }
}

// wl_shm, wl_shm_pool and wl_buffer go to smithay's ShmState (what `delegate_shm!` does),
// with a count of each client's pools and buffers on the way: every live pool holds one of
// our file descriptors and one mapping, and a live buffer keeps its pool's alive.
impl Dispatch<WlShm, (), State> for State {
    fn request(
        state: &mut State,
        client: &Client,
        resource: &WlShm,
        request: wl_shm::Request,
        data: &(),
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, State>,
    ) {
        let creates = matches!(request, wl_shm::Request::CreatePool { .. });
        <ShmState as Dispatch<WlShm, (), State>>::request(
            state, client, resource, request, data, dh, data_init,
        );
        if creates {
            count_shm_object(state, client, resource);
        }
    }
}

impl Dispatch<WlShmPool, ShmPoolUserData, State> for State {
    fn request(
        state: &mut State,
        client: &Client,
        resource: &WlShmPool,
        request: wl_shm_pool::Request,
        data: &ShmPoolUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, State>,
    ) {
        let creates = matches!(request, wl_shm_pool::Request::CreateBuffer { .. });
        <ShmState as Dispatch<WlShmPool, ShmPoolUserData, State>>::request(
            state, client, resource, request, data, dh, data_init,
        );
        if creates {
            count_shm_object(state, client, resource);
        }
    }

    fn destroyed(
        state: &mut State,
        client: ClientId,
        resource: &WlShmPool,
        data: &ShmPoolUserData,
    ) {
        <ShmState as Dispatch<WlShmPool, ShmPoolUserData, State>>::destroyed(
            state,
            client.clone(),
            resource,
            data,
        );
        uncount_shm_object(state, &client);
    }
}

impl Dispatch<WlBuffer, ShmBufferUserData, State> for State {
    fn request(
        state: &mut State,
        client: &Client,
        resource: &WlBuffer,
        request: wl_buffer::Request,
        data: &ShmBufferUserData,
        dh: &DisplayHandle,
        data_init: &mut DataInit<'_, State>,
    ) {
        <ShmState as Dispatch<WlBuffer, ShmBufferUserData, State>>::request(
            state, client, resource, request, data, dh, data_init,
        );
    }

    fn destroyed(
        state: &mut State,
        client: ClientId,
        resource: &WlBuffer,
        data: &ShmBufferUserData,
    ) {
        <ShmState as Dispatch<WlBuffer, ShmBufferUserData, State>>::destroyed(
            state,
            client.clone(),
            resource,
            data,
        );
        uncount_shm_object(state, &client);
    }
}
delegate_xdg_shell!(State);
delegate_xdg_decoration!(State);
delegate_seat!(State);
delegate_data_device!(State);
delegate_output!(State);
delegate_viewporter!(State);
delegate_presentation!(State);
delegate_relative_pointer!(State);
delegate_pointer_constraints!(State);

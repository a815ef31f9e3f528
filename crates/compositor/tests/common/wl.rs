//! A minimal Wayland client written for the tests (wayland-client): an xdg toplevel drawing
//! into memfd-backed wl_shm buffers, optionally asking for presentation feedback, and
//! recording what its seat's keyboard, pointer, touch, relative pointer and locked pointer get.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::{
    wl_buffer::WlBuffer, wl_compositor::WlCompositor, wl_registry::WlRegistry, wl_shm,
    wl_shm::WlShm, wl_shm_pool::WlShmPool, wl_subcompositor::WlSubcompositor,
    wl_subsurface::WlSubsurface, wl_surface::WlSurface,
};
use wayland_client::protocol::{wl_keyboard, wl_pointer, wl_seat, wl_touch};
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, QueueHandle, WEnum};
use wayland_protocols::wp::pointer_constraints::zv1::client::{
    zwp_confined_pointer_v1, zwp_locked_pointer_v1, zwp_pointer_constraints_v1,
};
use wayland_protocols::wp::presentation_time::client::{wp_presentation, wp_presentation_feedback};
use wayland_protocols::wp::relative_pointer::zv1::client::{
    zwp_relative_pointer_manager_v1, zwp_relative_pointer_v1,
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

/// What a presentation feedback said about commit number `.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Shown at `ns` (CLOCK_MONOTONIC) with that refresh and output sequence.
    Presented {
        commit: u32,
        ns: u64,
        refresh_ns: u32,
        seq: u64,
    },
    /// Never shown.
    Discarded { commit: u32 },
}

/// Events the client collected.
#[derive(Default)]
pub struct Events {
    pub configured: Option<u32>,
    pub configure_size: Option<(i32, i32)>,
    pub fullscreen: bool,
    pub feedback: Vec<Feedback>,
    pub released: u32,
    pub seat: SeatEvents,
}

impl Dispatch<WlRegistry, GlobalListContents> for Events {
    fn event(
        _: &mut Self,
        _: &WlRegistry,
        _: wayland_client::protocol::wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for Events {
    fn event(
        _: &mut Self,
        wm: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for Events {
    fn event(
        state: &mut Self,
        _: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            state.configured = Some(serial);
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for Events {
    fn event(
        state: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Configure {
            width,
            height,
            states,
        } = event
        {
            state.configure_size = Some((width, height));
            let fs = xdg_toplevel::State::Fullscreen as u32;
            state.fullscreen = states
                .chunks_exact(4)
                .any(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) == fs);
        }
    }
}

impl Dispatch<WlBuffer, ()> for Events {
    fn event(
        state: &mut Self,
        _: &WlBuffer,
        event: wayland_client::protocol::wl_buffer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wayland_client::protocol::wl_buffer::Event::Release = event {
            state.released += 1;
        }
    }
}

impl Dispatch<wp_presentation_feedback::WpPresentationFeedback, u32> for Events {
    fn event(
        state: &mut Self,
        _: &wp_presentation_feedback::WpPresentationFeedback,
        event: wp_presentation_feedback::Event,
        commit: &u32,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wp_presentation_feedback::Event::Presented {
                tv_sec_hi,
                tv_sec_lo,
                tv_nsec,
                refresh,
                seq_hi,
                seq_lo,
                ..
            } => state.feedback.push(Feedback::Presented {
                commit: *commit,
                ns: ((u64::from(tv_sec_hi) << 32) | u64::from(tv_sec_lo)) * 1_000_000_000
                    + u64::from(tv_nsec),
                refresh_ns: refresh,
                seq: (u64::from(seq_hi) << 32) | u64::from(seq_lo),
            }),
            wp_presentation_feedback::Event::Discarded => {
                state.feedback.push(Feedback::Discarded { commit: *commit })
            }
            _ => {}
        }
    }
}

delegate_noop!(Events: ignore WlCompositor);
delegate_noop!(Events: ignore WlSubcompositor);
delegate_noop!(Events: ignore WlSubsurface);
delegate_noop!(Events: ignore WlSurface);
delegate_noop!(Events: ignore WlShm);
delegate_noop!(Events: ignore WlShmPool);
delegate_noop!(Events: ignore wp_presentation::WpPresentation);

/// A connected client with one configured (not yet mapped) toplevel.
pub struct TestClient {
    pub conn: Connection,
    pub queue: EventQueue<Events>,
    pub events: Events,
    pub surface: WlSurface,
    pub shm: WlShm,
    pub presentation: wp_presentation::WpPresentation,
    pub compositor: WlCompositor,
    pub subcompositor: WlSubcompositor,
    commits: u32,
}

impl TestClient {
    /// Connects to the socket at `path` and gets a toplevel configured.
    pub fn connect(path: &Path) -> TestClient {
        let stream = UnixStream::connect(path).expect("connect");
        let conn = Connection::from_socket(stream).expect("wayland connection");
        let (globals, mut queue) = registry_queue_init::<Events>(&conn).expect("registry");
        let qh = queue.handle();
        let compositor: WlCompositor = globals.bind(&qh, 1..=4, ()).expect("wl_compositor");
        let shm: WlShm = globals.bind(&qh, 1..=1, ()).expect("wl_shm");
        let wm: xdg_wm_base::XdgWmBase = globals.bind(&qh, 1..=1, ()).expect("xdg_wm_base");
        let presentation: wp_presentation::WpPresentation =
            globals.bind(&qh, 1..=1, ()).expect("wp_presentation");
        let subcompositor: WlSubcompositor =
            globals.bind(&qh, 1..=1, ()).expect("wl_subcompositor");
        let surface = compositor.create_surface(&qh, ());
        let xdg = wm.get_xdg_surface(&surface, &qh, ());
        let _toplevel = xdg.get_toplevel(&qh, ());
        surface.commit();
        let mut events = Events::default();
        while events.configured.is_none() {
            queue
                .blocking_dispatch(&mut events)
                .expect("dispatch until configured");
        }
        xdg.ack_configure(events.configured.expect("configured"));
        TestClient {
            conn,
            queue,
            events,
            surface,
            shm,
            presentation,
            compositor,
            subcompositor,
            commits: 0,
        }
    }

    /// A `w`x`h` XRGB8888 buffer in its own memfd, filled with a gradient offset by `shade`.
    pub fn buffer(&self, w: i32, h: i32, shade: u8) -> (WlBuffer, OwnedFd) {
        let qh = self.queue.handle();
        let size = (w * h * 4) as usize;
        let memfd = rustix::fs::memfd_create("test-client", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        let pixels: Vec<u8> = (0..size)
            .map(|i| ((i % 251) as u8).wrapping_add(shade))
            .collect();
        let mut file = std::fs::File::from(memfd.try_clone().expect("dup memfd"));
        file.write_all(&pixels).expect("fill memfd");
        let pool = self.shm.create_pool(memfd.as_fd(), size as i32, &qh, ());
        let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, &qh, ());
        pool.destroy();
        (buffer, memfd)
    }

    /// Attaches `buffer` and commits, with a presentation feedback request if `feedback`;
    /// returns the commit's number (from 1).
    pub fn commit(&mut self, buffer: Option<&WlBuffer>, feedback: bool) -> u32 {
        self.commits += 1;
        if let Some(b) = buffer {
            self.surface.attach(Some(b), 0, 0);
            self.surface.damage(0, 0, i32::MAX, i32::MAX);
        }
        if feedback {
            let _ = self
                .presentation
                .feedback(&self.surface, &self.queue.handle(), self.commits);
        }
        self.surface.commit();
        self.conn.flush().expect("flush");
        self.commits
    }

    /// A desynchronized subsurface of the toplevel at (`x`, `y`).
    pub fn subsurface(&self, x: i32, y: i32) -> (WlSurface, WlSubsurface) {
        let qh = self.queue.handle();
        let surface = self.compositor.create_surface(&qh, ());
        let sub = self
            .subcompositor
            .get_subsurface(&surface, &self.surface, &qh, ());
        sub.set_position(x, y);
        sub.set_desync();
        (surface, sub)
    }

    /// A `w`x`h` buffer of one XRGB8888 colour (bytes B, G, R, X).
    pub fn solid(&self, w: i32, h: i32, bgrx: [u8; 4]) -> (WlBuffer, OwnedFd) {
        let qh = self.queue.handle();
        let size = (w * h * 4) as usize;
        let memfd = rustix::fs::memfd_create("test-solid", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        let mut file = std::fs::File::from(memfd.try_clone().expect("dup memfd"));
        file.write_all(&bgrx.repeat(size / 4)).expect("fill memfd");
        let pool = self.shm.create_pool(memfd.as_fd(), size as i32, &qh, ());
        let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, &qh, ());
        pool.destroy();
        (buffer, memfd)
    }

    /// A `w`x`h` XRGB8888 buffer in a sparse memfd (zeros, costs no memory until read).
    pub fn sparse(&self, w: i32, h: i32) -> (WlBuffer, OwnedFd) {
        let qh = self.queue.handle();
        let size = w as u64 * h as u64 * 4;
        let memfd = rustix::fs::memfd_create("test-sparse", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&memfd, size).expect("ftruncate");
        let pool = self.shm.create_pool(memfd.as_fd(), size as i32, &qh, ());
        let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, &qh, ());
        pool.destroy();
        (buffer, memfd)
    }

    /// One round trip: everything the compositor sent so far is in `events`.
    pub fn roundtrip(&mut self) -> Result<(), String> {
        self.queue
            .roundtrip(&mut self.events)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// An input event a [`Seated`] client received, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    KbEnter,
    KbLeave,
    Key { key: u32, pressed: bool },
    Modifiers { depressed: u32 },
    RepeatInfo { rate: i32, delay: i32 },
    PtrEnter { x: f64, y: f64 },
    PtrLeave,
    Motion { x: f64, y: f64 },
    Button { button: u32, pressed: bool },
    Axis { vertical: bool, value: f64 },
    AxisSource { wheel: bool },
    AxisV120 { vertical: bool, v: i32 },
    AxisStop,
    Frame,
    TouchDown { id: i32, x: f64, y: f64 },
    TouchMotion { id: i32, x: f64, y: f64 },
    TouchUp { id: i32 },
    TouchFrame,
    TouchCancel,
    Relative { dx: f64, dy: f64 },
    Locked,
    Unlocked,
    Confined,
    Unconfined,
}

/// What the seat's devices received.
#[derive(Default)]
pub struct SeatEvents {
    pub caps: Option<u32>,
    /// The keymap's fd and size, from `wl_keyboard.keymap`.
    pub keymap: Option<(OwnedFd, u32)>,
    pub got: Vec<Got>,
}

impl Dispatch<wl_seat::WlSeat, ()> for Events {
    fn event(
        state: &mut Self,
        _: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(c),
        } = event
        {
            state.seat.caps = Some(c.bits());
        }
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for Events {
    fn event(
        state: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let got = match event {
            wl_keyboard::Event::Keymap { fd, size, .. } => {
                state.seat.keymap = Some((fd, size));
                return;
            }
            wl_keyboard::Event::Enter { .. } => Got::KbEnter,
            wl_keyboard::Event::Leave { .. } => Got::KbLeave,
            wl_keyboard::Event::Key { key, state: s, .. } => Got::Key {
                key,
                pressed: s == WEnum::Value(wl_keyboard::KeyState::Pressed),
            },
            wl_keyboard::Event::Modifiers { mods_depressed, .. } => Got::Modifiers {
                depressed: mods_depressed,
            },
            wl_keyboard::Event::RepeatInfo { rate, delay } => Got::RepeatInfo { rate, delay },
            _ => return,
        };
        state.seat.got.push(got);
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for Events {
    fn event(
        state: &mut Self,
        _: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let vertical =
            |a: WEnum<wl_pointer::Axis>| a == WEnum::Value(wl_pointer::Axis::VerticalScroll);
        let got = match event {
            wl_pointer::Event::Enter {
                surface_x,
                surface_y,
                ..
            } => Got::PtrEnter {
                x: surface_x,
                y: surface_y,
            },
            wl_pointer::Event::Leave { .. } => Got::PtrLeave,
            wl_pointer::Event::Motion {
                surface_x,
                surface_y,
                ..
            } => Got::Motion {
                x: surface_x,
                y: surface_y,
            },
            wl_pointer::Event::Button {
                button, state: s, ..
            } => Got::Button {
                button,
                pressed: s == WEnum::Value(wl_pointer::ButtonState::Pressed),
            },
            wl_pointer::Event::Axis { axis, value, .. } => Got::Axis {
                vertical: vertical(axis),
                value,
            },
            wl_pointer::Event::AxisSource { axis_source } => Got::AxisSource {
                wheel: axis_source == WEnum::Value(wl_pointer::AxisSource::Wheel),
            },
            wl_pointer::Event::AxisValue120 { axis, value120 } => Got::AxisV120 {
                vertical: vertical(axis),
                v: value120,
            },
            wl_pointer::Event::AxisStop { .. } => Got::AxisStop,
            wl_pointer::Event::Frame => Got::Frame,
            _ => return,
        };
        state.seat.got.push(got);
    }
}

impl Dispatch<wl_touch::WlTouch, ()> for Events {
    fn event(
        state: &mut Self,
        _: &wl_touch::WlTouch,
        event: wl_touch::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        let got = match event {
            wl_touch::Event::Down { id, x, y, .. } => Got::TouchDown { id, x, y },
            wl_touch::Event::Motion { id, x, y, .. } => Got::TouchMotion { id, x, y },
            wl_touch::Event::Up { id, .. } => Got::TouchUp { id },
            wl_touch::Event::Frame => Got::TouchFrame,
            wl_touch::Event::Cancel => Got::TouchCancel,
            _ => return,
        };
        state.seat.got.push(got);
    }
}

impl Dispatch<zwp_relative_pointer_v1::ZwpRelativePointerV1, ()> for Events {
    fn event(
        state: &mut Self,
        _: &zwp_relative_pointer_v1::ZwpRelativePointerV1,
        event: zwp_relative_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_relative_pointer_v1::Event::RelativeMotion { dx, dy, .. } = event {
            state.seat.got.push(Got::Relative { dx, dy });
        }
    }
}

impl Dispatch<zwp_locked_pointer_v1::ZwpLockedPointerV1, ()> for Events {
    fn event(
        state: &mut Self,
        _: &zwp_locked_pointer_v1::ZwpLockedPointerV1,
        event: zwp_locked_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        state.seat.got.push(match event {
            zwp_locked_pointer_v1::Event::Locked => Got::Locked,
            _ => Got::Unlocked,
        });
    }
}

impl Dispatch<zwp_confined_pointer_v1::ZwpConfinedPointerV1, ()> for Events {
    fn event(
        state: &mut Self,
        _: &zwp_confined_pointer_v1::ZwpConfinedPointerV1,
        event: zwp_confined_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        state.seat.got.push(match event {
            zwp_confined_pointer_v1::Event::Confined => Got::Confined,
            _ => Got::Unconfined,
        });
    }
}

delegate_noop!(Events: ignore zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1);
delegate_noop!(Events: ignore zwp_pointer_constraints_v1::ZwpPointerConstraintsV1);

/// The seat's devices of a [`TestClient`].
pub struct Seated {
    pub seat: wl_seat::WlSeat,
    pub keyboard: wl_keyboard::WlKeyboard,
    pub pointer: wl_pointer::WlPointer,
    pub touch: wl_touch::WlTouch,
    pub relative: zwp_relative_pointer_v1::ZwpRelativePointerV1,
    pub constraints: zwp_pointer_constraints_v1::ZwpPointerConstraintsV1,
}

impl TestClient {
    /// Binds wl_seat (v9) and gets its keyboard, pointer and touch, a relative pointer and
    /// the pointer constraints global; panics if a capability is missing.
    pub fn seat(&mut self) -> Seated {
        let qh = self.queue.handle();
        let (globals, _) =
            wayland_client::globals::registry_queue_init::<Events>(&self.conn).expect("registry");
        let seat: wl_seat::WlSeat = globals.bind(&qh, 9..=9, ()).expect("wl_seat v9");
        let rel_mgr: zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1 = globals
            .bind(&qh, 1..=1, ())
            .expect("zwp_relative_pointer_manager_v1");
        let constraints: zwp_pointer_constraints_v1::ZwpPointerConstraintsV1 = globals
            .bind(&qh, 1..=1, ())
            .expect("zwp_pointer_constraints_v1");
        self.roundtrip()
            .expect("roundtrip for the seat's capabilities");
        let caps = self.events.seat.caps.expect("wl_seat.capabilities");
        let all = (wl_seat::Capability::Keyboard
            | wl_seat::Capability::Pointer
            | wl_seat::Capability::Touch)
            .bits();
        assert_eq!(caps & all, all, "seat capabilities {caps:#b}");
        let keyboard = seat.get_keyboard(&qh, ());
        let pointer = seat.get_pointer(&qh, ());
        let touch = seat.get_touch(&qh, ());
        let relative = rel_mgr.get_relative_pointer(&pointer, &qh, ());
        self.roundtrip().expect("roundtrip for the devices");
        Seated {
            seat,
            keyboard,
            pointer,
            touch,
            relative,
            constraints,
        }
    }

    /// Locks the pointer on the toplevel (persistent, no region).
    pub fn lock_pointer(&mut self, s: &Seated) -> zwp_locked_pointer_v1::ZwpLockedPointerV1 {
        let qh = self.queue.handle();
        let locked = s.constraints.lock_pointer(
            &self.surface,
            &s.pointer,
            None,
            zwp_pointer_constraints_v1::Lifetime::Persistent,
            &qh,
            (),
        );
        self.conn.flush().expect("flush");
        locked
    }

    /// Confines the pointer to the toplevel (oneshot, no region).
    pub fn confine_pointer(&mut self, s: &Seated) -> zwp_confined_pointer_v1::ZwpConfinedPointerV1 {
        let qh = self.queue.handle();
        let confined = s.constraints.confine_pointer(
            &self.surface,
            &s.pointer,
            None,
            zwp_pointer_constraints_v1::Lifetime::Oneshot,
            &qh,
            (),
        );
        self.conn.flush().expect("flush");
        confined
    }

    /// Round trips until `done` says the received input is complete, or `timeout`; returns
    /// whether it was.
    pub fn wait_input(
        &mut self,
        timeout: std::time::Duration,
        mut done: impl FnMut(&[Got]) -> bool,
    ) -> bool {
        let end = std::time::Instant::now() + timeout;
        loop {
            if done(&self.events.seat.got) {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            self.roundtrip().expect("roundtrip");
        }
    }

    /// Takes the input received so far.
    pub fn take_input(&mut self) -> Vec<Got> {
        std::mem::take(&mut self.events.seat.got)
    }
}

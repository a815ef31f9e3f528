//! The preview window: winit (X11) + softbuffer on a thread of its own, showing the newest
//! frame from the slot scaled to the window with its aspect ratio kept (letterboxed).

use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crosscast_input::{CursorGrab, InputHub, Letterbox, WindowInput};
use crosscast_wire::TouchPhase;
use winit::application::ApplicationHandler;
use winit::dpi::LogicalSize;
use winit::event::{
    DeviceEvent, DeviceId, ElementState, MouseButton, MouseScrollDelta, WindowEvent,
};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::platform::scancode::PhysicalKeyExtScancode;
use winit::platform::x11::EventLoopBuilderExtX11;
use winit::window::{CursorGrabMode, Window, WindowId};

use crate::preview::{panic_text, Frame, Slot};
use crate::PreviewError;

/// How long opening the window may take before `Preview::start` gives up (a slow X server on
/// a loaded machine can take seconds; a missing one fails at once).
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Window size before the first frame arrives; the user can resize it freely afterwards.
const INITIAL_SIZE: LogicalSize<u32> = LogicalSize::new(1280, 720);

#[derive(Debug, Clone, Copy)]
enum UserEvent {
    /// A new frame is in the slot.
    Frame,
    /// `Preview::stop` was called.
    Stop,
}

/// The submitting side's handle on the window thread.
pub(crate) struct WindowHandle {
    proxy: EventLoopProxy<UserEvent>,
    /// A wake-up is already queued; further frames need none until it is handled.
    wake_pending: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), PreviewError>>,
}

impl WindowHandle {
    pub(crate) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A closed event loop only means the window is gone; `closed()` says so.
            let _ = self.proxy.send_event(UserEvent::Frame);
        }
    }

    pub(crate) fn stop(self) -> Result<(), PreviewError> {
        let _ = self.proxy.send_event(UserEvent::Stop);
        self.thread
            .join()
            .map_err(|p| PreviewError::ThreadPanicked(panic_text(&p)))?
    }
}

type Startup = SyncSender<Result<EventLoopProxy<UserEvent>, PreviewError>>;

pub(crate) fn start(
    slot: Arc<Slot>,
    closed: Arc<AtomicBool>,
    title: &str,
    input: Option<Arc<InputHub>>,
) -> Result<WindowHandle, PreviewError> {
    let (tx, rx) = sync_channel(1);
    let wake_pending = Arc::new(AtomicBool::new(false));
    let wake2 = Arc::clone(&wake_pending);
    let title = title.to_string();
    let thread = std::thread::Builder::new()
        .name("preview-window".into())
        .spawn(move || run(slot, closed, wake2, title, input, tx))
        .map_err(|source| PreviewError::Spawn {
            what: "preview window",
            source,
        })?;
    match rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(proxy)) => Ok(WindowHandle {
            proxy,
            wake_pending,
            thread,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(RecvTimeoutError::Disconnected) => Err(match thread.join() {
            Ok(Err(e)) => e,
            Ok(Ok(())) => {
                PreviewError::Window("the window thread ended before opening a window".into())
            }
            Err(p) => PreviewError::ThreadPanicked(panic_text(&p)),
        }),
        // The thread is left to finish on its own: joining could hang as long as the X server does.
        Err(RecvTimeoutError::Timeout) => Err(PreviewError::Window(format!(
            "no window after {OPEN_TIMEOUT:?}"
        ))),
    }
}

fn run(
    slot: Arc<Slot>,
    closed: Arc<AtomicBool>,
    wake_pending: Arc<AtomicBool>,
    title: String,
    input: Option<Arc<InputHub>>,
    startup: Startup,
) -> Result<(), PreviewError> {
    let built = EventLoop::<UserEvent>::with_user_event()
        .with_any_thread(true)
        .build();
    let event_loop = match built {
        Ok(l) => l,
        Err(e) => {
            let _ = startup.send(Err(PreviewError::Window(e.to_string())));
            return Ok(());
        }
    };
    event_loop.set_control_flow(ControlFlow::Wait);
    let mut app = App {
        slot,
        closed: Arc::clone(&closed),
        wake_pending,
        title,
        proxy: Some(event_loop.create_proxy()),
        startup: Some(startup),
        win: None,
        frame: Frame::default(),
        error: None,
        input,
        grab: CursorGrab::None,
    };
    let ran = event_loop.run_app(&mut app);
    // However the loop ended, there is no window any more: the host must not wait for one.
    closed.store(true, Ordering::Relaxed);
    if let Some(tx) = app.startup.take() {
        let _ = tx
            .send(Err(app.error.take().unwrap_or_else(|| {
                PreviewError::Window("event loop ended".into())
            })));
        return Ok(());
    }
    ran.map_err(|e| PreviewError::Window(e.to_string()))?;
    app.error.map_or(Ok(()), Err)
}

struct Win {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
}

struct App {
    slot: Arc<Slot>,
    closed: Arc<AtomicBool>,
    wake_pending: Arc<AtomicBool>,
    title: String,
    proxy: Option<EventLoopProxy<UserEvent>>,
    startup: Option<Startup>,
    win: Option<Win>,
    /// The frame on screen; swapped with the slot's when a newer one is there.
    frame: Frame,
    error: Option<PreviewError>,
    /// Where the streamer's input goes (the game with focus), when the host wants it.
    input: Option<Arc<InputHub>>,
    /// How the window holds the cursor now.
    grab: CursorGrab,
}

impl App {
    fn open(&mut self, el: &ActiveEventLoop) -> Result<Win, PreviewError> {
        let err = |e: &dyn std::fmt::Display| PreviewError::Window(e.to_string());
        let attrs = Window::default_attributes()
            .with_title(self.title.clone())
            .with_inner_size(INITIAL_SIZE);
        let window = Rc::new(el.create_window(attrs).map_err(|e| err(&e))?);
        let context = softbuffer::Context::new(Rc::clone(&window)).map_err(|e| err(&e))?;
        let surface =
            softbuffer::Surface::new(&context, Rc::clone(&window)).map_err(|e| err(&e))?;
        Ok(Win { window, surface })
    }

    fn draw(&mut self) -> Result<(), PreviewError> {
        let Some(win) = self.win.as_mut() else {
            return Ok(());
        };
        let size = win.window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(());
        };
        let err = |e: softbuffer::SoftBufferError| PreviewError::Window(e.to_string());
        win.surface.resize(w, h).map_err(err)?;
        self.slot.take_newer(self.frame.seq, &mut self.frame);
        if let Some(hub) = &self.input {
            // Input maps through exactly what is on screen: this frame in this window.
            hub.set_window_size(w.get(), h.get());
            if self.frame.width > 0 {
                hub.set_game_size(self.frame.width, self.frame.height);
            }
        }
        let mut buf = win.surface.buffer_mut().map_err(err)?;
        letterbox(&self.frame, &mut buf, w.get(), h.get());
        buf.present().map_err(err)
    }

    /// Hands one window event to the game with focus, then holds the cursor as it asks.
    fn input(&mut self, ev: WindowInput) {
        let Some(hub) = &self.input else {
            return;
        };
        let grab = hub.window_event(ev, crosscast_input::monotonic_ns());
        self.apply_grab(grab);
    }

    fn apply_grab(&mut self, grab: CursorGrab) {
        if grab == self.grab {
            return;
        }
        let Some(win) = &self.win else {
            return;
        };
        self.grab = grab;
        let w = &win.window;
        // X11 cannot lock the cursor in place: a confined, hidden cursor plus raw (device)
        // motion is the same thing to the game, which only sees relative motion then.
        let _ = match grab {
            CursorGrab::None => w.set_cursor_grab(CursorGrabMode::None),
            CursorGrab::Confine => w.set_cursor_grab(CursorGrabMode::Confined),
            CursorGrab::Lock => w
                .set_cursor_grab(CursorGrabMode::Locked)
                .or_else(|_| w.set_cursor_grab(CursorGrabMode::Confined)),
        };
        w.set_cursor_visible(grab != CursorGrab::Lock);
        // The streamer must be able to find the way out of a grab without reading the docs.
        match grab {
            CursorGrab::None => w.set_title(&self.title),
            CursorGrab::Confine | CursorGrab::Lock => w.set_title(&format!(
                "{} (the game holds the cursor: Ctrl+Shift+Escape)",
                self.title
            )),
        }
    }

    fn fail(&mut self, el: &ActiveEventLoop, e: PreviewError) {
        self.error = Some(e);
        el.exit();
    }
}

impl ApplicationHandler<UserEvent> for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.win.is_some() {
            return;
        }
        match self.open(el) {
            Ok(win) => {
                self.win = Some(win);
                if let (Some(tx), Some(proxy)) = (self.startup.take(), self.proxy.take()) {
                    let _ = tx.send(Ok(proxy));
                }
            }
            Err(e) => self.fail(el, e),
        }
    }

    fn user_event(&mut self, el: &ActiveEventLoop, event: UserEvent) {
        match event {
            UserEvent::Frame => {
                self.wake_pending.store(false, Ordering::Release);
                if let Some(win) = &self.win {
                    win.window.request_redraw();
                }
                // The game may have locked or released the pointer since the last event.
                if let Some(grab) = self.input.as_ref().map(|hub| hub.cursor_grab()) {
                    self.apply_grab(grab);
                }
            }
            UserEvent::Stop => el.exit(),
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested | WindowEvent::Destroyed => {
                self.closed.store(true, Ordering::Relaxed);
                self.win = None;
                el.exit();
            }
            WindowEvent::Resized(_) => {
                if let Some(win) = &self.win {
                    win.window.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.draw() {
                    self.fail(el, e);
                }
            }
            WindowEvent::Focused(focused) => self.input(WindowInput::Focus(focused)),
            WindowEvent::KeyboardInput {
                event,
                is_synthetic,
                ..
            } => {
                // winit invents presses for keys already down when focus comes, and the
                // router releases everything itself when focus goes; auto-repeat is the
                // game's business (Wayland's repeat info), so one press per press.
                if is_synthetic || event.repeat {
                    return;
                }
                // On Linux winit's scancode is the evdev code (the X keycode - 8).
                if let Some(code) = event.physical_key.to_scancode() {
                    self.input(WindowInput::Key {
                        code,
                        pressed: event.state == ElementState::Pressed,
                    });
                }
            }
            WindowEvent::CursorMoved { position, .. } => self.input(WindowInput::CursorMoved {
                x: position.x,
                y: position.y,
            }),
            WindowEvent::CursorLeft { .. } => self.input(WindowInput::CursorLeft),
            WindowEvent::MouseInput { state, button, .. } => {
                let code = match button {
                    MouseButton::Left => 0x110,
                    MouseButton::Right => 0x111,
                    MouseButton::Middle => 0x112,
                    MouseButton::Back => 0x113,
                    MouseButton::Forward => 0x114,
                    MouseButton::Other(_) => return,
                };
                self.input(WindowInput::Button {
                    button: code,
                    pressed: state == ElementState::Pressed,
                });
            }
            WindowEvent::MouseWheel { delta, .. } => {
                // winit's positive is "content moves right/down", Wayland's is "scroll
                // right/down" (content moves left/up): opposite signs.
                let (dx, dy, lines) = match delta {
                    MouseScrollDelta::LineDelta(x, y) => (-f64::from(x), -f64::from(y), true),
                    MouseScrollDelta::PixelDelta(p) => (-p.x, -p.y, false),
                };
                self.input(WindowInput::Scroll { dx, dy, lines });
            }
            WindowEvent::Touch(t) => {
                let phase = match t.phase {
                    winit::event::TouchPhase::Started => TouchPhase::Down,
                    winit::event::TouchPhase::Moved => TouchPhase::Motion,
                    winit::event::TouchPhase::Ended => TouchPhase::Up,
                    winit::event::TouchPhase::Cancelled => TouchPhase::Cancel,
                };
                self.input(WindowInput::Touch {
                    id: t.id,
                    phase,
                    x: t.location.x,
                    y: t.location.y,
                });
            }
            _ => {}
        }
    }

    fn device_event(&mut self, _el: &ActiveEventLoop, _id: DeviceId, event: DeviceEvent) {
        if let DeviceEvent::MouseMotion { delta } = event {
            if self.grab == CursorGrab::Lock {
                self.input(WindowInput::RawMotion {
                    dx: delta.0,
                    dy: delta.1,
                });
            }
        }
    }

    fn about_to_wait(&mut self, el: &ActiveEventLoop) {
        if self.slot.is_stopping() {
            el.exit();
        }
    }
}

/// Scales `src` (RGBA8) into `dst` (softbuffer's 0RGB u32, `dw` x `dh`) with nearest-neighbour
/// sampling, aspect ratio kept, centred, black bars around. No frame yet: all black.
pub(crate) fn letterbox(src: &Frame, dst: &mut [u32], dw: u32, dh: u32) {
    let (sw, sh) = (u64::from(src.width), u64::from(src.height));
    let fit = Letterbox::fit(src.width, src.height, dw, dh);
    let Some(fit) = fit.filter(|_| src.data.len() >= (sw * sh * 4) as usize) else {
        dst.fill(0);
        return;
    };
    // The same rectangle input maps through, so a click lands where it is shown.
    let (iw, ih, ox, oy) = (
        u64::from(fit.w),
        u64::from(fit.h),
        u64::from(fit.x),
        u64::from(fit.y),
    );
    let xmap: Vec<usize> = (0..iw).map(|x| (x * sw / iw) as usize * 4).collect();
    for (y, row) in dst.chunks_exact_mut(dw as usize).enumerate() {
        let y = y as u64;
        if y < oy || y >= oy + ih {
            row.fill(0);
            continue;
        }
        let sy = (y - oy) * sh / ih;
        let src_row = &src.data[(sy * sw * 4) as usize..((sy + 1) * sw * 4) as usize];
        let (left, rest) = row.split_at_mut(ox as usize);
        let (img, right) = rest.split_at_mut(iw as usize);
        left.fill(0);
        right.fill(0);
        for (d, &sx) in img.iter_mut().zip(&xmap) {
            *d = (u32::from(src_row[sx]) << 16)
                | (u32::from(src_row[sx + 1]) << 8)
                | u32::from(src_row[sx + 2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, rgb: [u8; 3]) -> Frame {
        Frame {
            data: (0..w * h)
                .flat_map(|_| [rgb[0], rgb[1], rgb[2], 255])
                .collect(),
            width: w,
            height: h,
            seq: 1,
        }
    }

    fn lit(dst: &[u32], dw: u32) -> (u32, u32, u32, u32) {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for (i, &p) in dst.iter().enumerate() {
            if p != 0 {
                let (x, y) = (i as u32 % dw, i as u32 / dw);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
        (x0, y0, x1, y1)
    }

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        let f = frame(160, 90, [255, 0, 128]);
        // Wider window: bars left and right.
        let mut dst = vec![7u32; 400 * 90];
        letterbox(&f, &mut dst, 400, 90);
        assert_eq!(lit(&dst, 400), (120, 0, 280, 90));
        assert_eq!(dst[200], 0x00FF_0080);
        // Taller window: bars top and bottom.
        let mut dst = vec![7u32; 160 * 300];
        letterbox(&f, &mut dst, 160, 300);
        assert_eq!(lit(&dst, 160), (0, 105, 160, 195));
        // Same aspect, scaled up: no bars.
        let mut dst = vec![7u32; 320 * 180];
        letterbox(&f, &mut dst, 320, 180);
        assert_eq!(lit(&dst, 320), (0, 0, 320, 180));
    }

    #[test]
    fn letterbox_without_frame_is_black() {
        let mut dst = vec![7u32; 64];
        letterbox(&Frame::default(), &mut dst, 8, 8);
        assert!(dst.iter().all(|&p| p == 0));
    }

    #[test]
    fn letterbox_samples_nearest_pixel() {
        let mut f = frame(2, 1, [0, 0, 0]);
        f.data[4..7].copy_from_slice(&[1, 2, 3]);
        let mut dst = vec![0u32; 4 * 2];
        letterbox(&f, &mut dst, 4, 2);
        assert_eq!(dst, [0, 0, 0x010203, 0x010203, 0, 0, 0x010203, 0x010203]);
    }
}

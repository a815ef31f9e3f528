//! The host's input, delivered to the streamed surface on the compositor thread: keyboard,
//! pointer (absolute, relative, buttons, axes), touch, focus, and pointer constraints.
//!
//! Focus: keyboard focus is the streamed toplevel while the host's window has focus
//! (`Focus{true}`, the initial state); it follows when another toplevel is streamed.
//! `Focus{false}` takes keyboard and pointer focus away (`wl_keyboard.leave`,
//! `wl_pointer.leave`) and cancels touches; nothing is delivered until `Focus{true}`. Pointer
//! focus is given by the host's enter/motion events. A pointer constraint of the streamed
//! surface is active while that surface has pointer focus (and the pointer is in the
//! constraint's region); smithay deactivates it on leave (dropping a oneshot one), and a
//! persistent one is activated again at the next enter.

use crosscast_wire::{Fixed, Input, InputEvent, ScrollAxis, TouchPhase};
use smithay::backend::input::{Axis, AxisSource, ButtonState, KeyState};
use smithay::input::keyboard::{FilterResult, Keycode};
use smithay::input::pointer::{AxisFrame, ButtonEvent, MotionEvent, RelativeMotionEvent};
use smithay::input::touch::{DownEvent, MotionEvent as TouchMotionEvent, UpEvent};
use smithay::reexports::wayland_server::protocol::wl_surface::WlSurface;
use smithay::utils::{Logical, Point, SERIAL_COUNTER};
use smithay::wayland::compositor::{with_states, SurfaceAttributes};
use smithay::wayland::pointer_constraints::{with_pointer_constraint, PointerConstraint};
use smithay::wayland::viewporter::ViewportCachedState;
use std::sync::atomic::Ordering;

use crate::state::State;
use crate::PointerGrab;

/// Where the streamed surface is in the compositor's space: the origin (it is fullscreen on
/// the only output), so global and surface-local coordinates are the same.
const ORIGIN: Point<f64, Logical> = Point::new(0.0, 0.0);

impl State {
    /// Delivers one input event (or counts it as ignored) and updates the grab the host sees.
    pub(crate) fn input(&mut self, input: Input) {
        let delivered = self.deliver(input);
        {
            let mut g = self.shared.lock();
            if delivered {
                g.counters.input_delivered += 1;
            } else {
                g.counters.input_ignored += 1;
            }
        }
        self.update_grab();
    }

    fn deliver(&mut self, input: Input) -> bool {
        // Wayland's event times are milliseconds with an undefined base, wrapping (u32).
        let time = (input.time_ns / 1_000_000) as u32;
        if let InputEvent::Focus { focused } = input.event {
            self.focused = focused;
            if !focused {
                self.unfocus(time);
            }
            self.sync_focus();
            return true;
        }
        if !self.focused {
            return false;
        }
        let Some(surface) = self.streamed().cloned() else {
            return false;
        };
        let pointer = self.pointer.clone();
        let pointer_on_it = pointer.current_focus().as_ref() == Some(&surface);
        match input.event {
            // Handled above.
            InputEvent::Focus { .. } => true,
            InputEvent::Key { code, pressed } => {
                if self.kb_focus.as_ref() != Some(&surface) {
                    return false;
                }
                let state = if pressed {
                    KeyState::Pressed
                } else {
                    KeyState::Released
                };
                // xkb keycodes are evdev codes + 8 (an X11 heritage); smithay tracks the
                // modifiers and sends wl_keyboard.modifiers when they change.
                let keyboard = self.keyboard.clone();
                keyboard.input::<(), _>(
                    self,
                    Keycode::new(code + 8),
                    state,
                    SERIAL_COUNTER.next_serial(),
                    time,
                    |_, _, _| FilterResult::Forward,
                );
                true
            }
            InputEvent::PointerEnter { x, y } | InputEvent::PointerMotion { x, y } => {
                let location = self.to_local(&surface, x, y);
                if pointer_on_it {
                    match self.active_constraint(&surface) {
                        // Locked: the client's pointer must not move (protocol rule); the
                        // host sends RelativeMotion instead.
                        Some(PointerGrab::Locked) => return false,
                        Some(PointerGrab::Confined) if !self.in_region(&surface, location) => {
                            return false;
                        }
                        _ => {}
                    }
                }
                self.move_pointer(Some(surface), location, time);
                true
            }
            InputEvent::PointerLeave => {
                if pointer.current_focus().is_none() {
                    return false;
                }
                self.pointer_leave(time);
                true
            }
            InputEvent::PointerButton { button, pressed } => {
                if !pointer_on_it {
                    return false;
                }
                let state = if pressed {
                    ButtonState::Pressed
                } else {
                    ButtonState::Released
                };
                pointer.button(
                    self,
                    &ButtonEvent {
                        serial: SERIAL_COUNTER.next_serial(),
                        time,
                        button,
                        state,
                    },
                );
                pointer.frame(self);
                true
            }
            InputEvent::Scroll {
                axis,
                value,
                discrete,
            } => {
                if !pointer_on_it {
                    return false;
                }
                let axis = match axis {
                    ScrollAxis::Vertical => Axis::Vertical,
                    ScrollAxis::Horizontal => Axis::Horizontal,
                };
                let source = if discrete != 0 {
                    AxisSource::Wheel
                } else {
                    AxisSource::Finger
                };
                let mut frame = AxisFrame::new(time).source(source);
                frame = if discrete == 0 && value.0 == 0 {
                    // A finger lifted: kinetic scrolling may start (wl_pointer.axis_stop).
                    frame.stop(axis)
                } else if discrete != 0 {
                    // v120 for clients of wl_pointer v8+, smithay turns it into axis_discrete
                    // for older ones.
                    frame.value(axis, value.to_f64()).v120(axis, discrete * 120)
                } else {
                    frame.value(axis, value.to_f64())
                };
                pointer.axis(self, frame);
                pointer.frame(self);
                true
            }
            InputEvent::RelativeMotion { dx, dy } => {
                if !pointer_on_it {
                    return false;
                }
                let (fx, fy) = self.pixel_scale(&surface);
                let delta = Point::from((dx.to_f64() * fx, dy.to_f64() * fy));
                pointer.relative_motion(
                    self,
                    Some((surface, ORIGIN)),
                    &RelativeMotionEvent {
                        delta,
                        // The host sends the unaccelerated motion (what games want).
                        delta_unaccel: delta,
                        utime: input.time_ns / 1_000,
                    },
                );
                pointer.frame(self);
                true
            }
            InputEvent::Touch { id, phase, x, y } => {
                let touch = self.touch.clone();
                let slot = Some(id).into();
                match phase {
                    TouchPhase::Down => {
                        let location = self.to_local(&surface, x, y);
                        touch.down(
                            self,
                            Some((surface, ORIGIN)),
                            &DownEvent {
                                slot,
                                location,
                                serial: SERIAL_COUNTER.next_serial(),
                                time,
                            },
                        );
                        self.touching = self.touching.saturating_add(1);
                    }
                    TouchPhase::Motion => {
                        let location = self.to_local(&surface, x, y);
                        touch.motion(
                            self,
                            Some((surface, ORIGIN)),
                            &TouchMotionEvent {
                                slot,
                                location,
                                time,
                            },
                        );
                    }
                    TouchPhase::Up => {
                        touch.up(
                            self,
                            &UpEvent {
                                slot,
                                serial: SERIAL_COUNTER.next_serial(),
                                time,
                            },
                        );
                        self.touching = self.touching.saturating_sub(1);
                    }
                    TouchPhase::Cancel => {
                        // wl_touch.cancel has no id: it cancels every point of the sequence.
                        touch.cancel(self);
                        self.touching = 0;
                        return true;
                    }
                }
                touch.frame(self);
                true
            }
        }
    }

    /// Moves the pointer to `location` on `surface` (entering it if needed; `None` leaves),
    /// ends the pointer frame and activates a constraint the surface asked for.
    fn move_pointer(
        &mut self,
        surface: Option<WlSurface>,
        location: Point<f64, Logical>,
        time: u32,
    ) {
        let pointer = self.pointer.clone();
        pointer.motion(
            self,
            surface.map(|s| (s, ORIGIN)),
            &MotionEvent {
                location,
                serial: SERIAL_COUNTER.next_serial(),
                time,
            },
        );
        pointer.frame(self);
        self.activate_constraint();
    }

    /// Focus lost: keyboard and pointer leave, touches are cancelled.
    fn unfocus(&mut self, time: u32) {
        if self.pointer.current_focus().is_some() {
            self.pointer_leave(time);
        }
        if self.touching > 0 {
            let touch = self.touch.clone();
            touch.cancel(self);
            self.touching = 0;
        }
    }

    fn pointer_leave(&mut self, time: u32) {
        let pointer = self.pointer.clone();
        let location = pointer.current_location();
        // smithay deactivates the surface's constraint on leave (and drops a oneshot one).
        pointer.motion(
            self,
            None,
            &MotionEvent {
                location,
                serial: SERIAL_COUNTER.next_serial(),
                time,
            },
        );
        pointer.frame(self);
    }

    /// Keyboard focus on the streamed toplevel while the host has focus, and the pointer moved
    /// off a surface that is no longer streamed onto the one that is; then the grab.
    pub(crate) fn sync_focus(&mut self) {
        let streamed = self.streamed().cloned();
        let want = if self.focused { streamed.clone() } else { None };
        if want != self.kb_focus {
            let keyboard = self.keyboard.clone();
            keyboard.set_focus(self, want.clone(), SERIAL_COUNTER.next_serial());
            self.kb_focus = want;
        }
        let pointer = self.pointer.clone();
        if let Some(on) = pointer.current_focus() {
            if Some(&on) != streamed.as_ref() {
                let location = pointer.current_location();
                let time = (crate::monotonic_ns() / 1_000_000) as u32;
                self.move_pointer(streamed, location, time);
            }
        }
        self.update_grab();
    }

    /// Activates the pointer constraint of the surface under the pointer, if it has one that
    /// is inactive and the pointer is in its region.
    pub(crate) fn activate_constraint(&mut self) {
        let Some(surface) = self.pointer.current_focus() else {
            return;
        };
        let location = self.pointer.current_location().to_i32_floor::<i32>();
        with_pointer_constraint(&surface, &self.pointer, |c| {
            if let Some(c) = c {
                let inside = c.region().is_none_or(|r| r.contains(location));
                if !c.is_active() && inside {
                    c.activate();
                }
            }
        });
        self.update_grab();
    }

    /// The active constraint of `surface` for our pointer, if any.
    fn active_constraint(&self, surface: &WlSurface) -> Option<PointerGrab> {
        with_pointer_constraint(surface, &self.pointer, |c| {
            c.filter(|c| c.is_active()).map(|c| match &*c {
                PointerConstraint::Locked(_) => PointerGrab::Locked,
                PointerConstraint::Confined(_) => PointerGrab::Confined,
            })
        })
    }

    /// Whether `location` is inside the active confinement region of `surface` (anywhere,
    /// when the region is the whole surface).
    fn in_region(&self, surface: &WlSurface, location: Point<f64, Logical>) -> bool {
        let at = location.to_i32_floor::<i32>();
        with_pointer_constraint(surface, &self.pointer, |c| {
            c.and_then(|c| c.region().map(|r| r.contains(at)))
                .unwrap_or(true)
        })
    }

    /// Publishes the grab of the surface under the pointer for [`crate::Compositor::pointer_grab`].
    pub(crate) fn update_grab(&self) {
        let grab = self
            .pointer
            .current_focus()
            .and_then(|s| self.active_constraint(&s))
            .unwrap_or(PointerGrab::None);
        self.shared.grab.store(grab.to_u8(), Ordering::Relaxed);
    }

    /// Surface-local units per buffer pixel: the host's coordinates are the streamed buffer's
    /// pixels; a viewport destination or a buffer scale makes them differ. (A viewport's
    /// source crop and buffer transforms are not taken into account: games use neither.)
    fn pixel_scale(&self, surface: &WlSurface) -> (f64, f64) {
        let (scale, dst) = with_states(surface, |states| {
            let scale = states
                .cached_state
                .get::<SurfaceAttributes>()
                .current()
                .buffer_scale
                .max(1);
            let dst = states
                .cached_state
                .get::<ViewportCachedState>()
                .current()
                .dst;
            (scale, dst)
        });
        match (dst, self.buffer_size) {
            (Some(d), Some((bw, bh))) if bw > 0 && bh > 0 => (
                f64::from(d.w) / f64::from(bw),
                f64::from(d.h) / f64::from(bh),
            ),
            _ => (1.0 / f64::from(scale), 1.0 / f64::from(scale)),
        }
    }

    /// A position in the streamed buffer's pixels, in surface-local coordinates.
    fn to_local(&self, surface: &WlSurface, x: Fixed, y: Fixed) -> Point<f64, Logical> {
        let (fx, fy) = self.pixel_scale(surface);
        Point::from((x.to_f64() * fx, y.to_f64() * fy))
    }
}

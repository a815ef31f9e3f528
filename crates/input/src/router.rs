//! The sans-io heart of input: window-level events in, game-surface events out.
//!
//! A [`Router`] knows the window's and the game's sizes, whether the window has focus, which
//! keys and buttons are down and whether the pointer is over the game. From that it makes the
//! rules true that a game relies on: nothing outside the game's rectangle, enter/leave as the
//! pointer crosses it, every press released exactly once (focus loss releases everything),
//! relative motion only while the game holds the pointer, and a rate limit that never drops a
//! release.

use std::collections::{BTreeMap, BTreeSet};

use crosscast_wire::input::{BTN_LAST, BTN_LEFT, KEY_MAX};
use crosscast_wire::limits::MAX_TOUCH_ID;
use crosscast_wire::{Fixed, Input, InputEvent, ScrollAxis, TouchPhase};

use crate::geometry::Letterbox;

/// evdev `KEY_ESC`.
pub const KEY_ESC: u32 = 1;
/// evdev `KEY_LEFTCTRL`.
pub const KEY_LEFTCTRL: u32 = 29;
/// evdev `KEY_RIGHTCTRL`.
pub const KEY_RIGHTCTRL: u32 = 97;
/// evdev `KEY_LEFTSHIFT`.
pub const KEY_LEFTSHIFT: u32 = 42;
/// evdev `KEY_RIGHTSHIFT`.
pub const KEY_RIGHTSHIFT: u32 = 54;
/// Wayland scroll units per wheel click (what weston and most compositors send).
pub const SCROLL_PER_CLICK: f64 = 10.0;

/// One event as the window (or a script) reports it, in window pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowInput {
    /// The window gained or lost keyboard focus.
    Focus(bool),
    /// A key went down or up (evdev code; auto-repeats are not reported).
    Key {
        /// evdev code.
        code: u32,
        /// Down or up.
        pressed: bool,
    },
    /// The cursor is at this window point.
    CursorMoved {
        /// Window x.
        x: f64,
        /// Window y.
        y: f64,
    },
    /// The cursor left the window.
    CursorLeft,
    /// A mouse button (evdev code) went down or up.
    Button {
        /// evdev code.
        button: u32,
        /// Down or up.
        pressed: bool,
    },
    /// Scrolling: `lines` true for wheel clicks, false for pixels. Positive `dy` scrolls
    /// down, positive `dx` right (Wayland's sense).
    Scroll {
        /// Horizontal amount.
        dx: f64,
        /// Vertical amount.
        dy: f64,
        /// Wheel clicks rather than pixels.
        lines: bool,
    },
    /// Unaccelerated device motion (counts only while the game holds the pointer).
    RawMotion {
        /// Horizontal distance.
        dx: f64,
        /// Vertical distance.
        dy: f64,
    },
    /// A touch point, with the window system's id for the finger.
    Touch {
        /// The window system's finger id.
        id: u64,
        /// What happened.
        phase: TouchPhase,
        /// Window x.
        x: f64,
        /// Window y.
        y: f64,
    },
}

/// What a game asks of the pointer (Wayland's pointer-constraints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointerGrab {
    /// Nothing: the pointer moves freely.
    #[default]
    None,
    /// The pointer is locked in place; the game reads relative motion.
    Locked,
    /// The pointer is confined to the game.
    Confined,
}

/// How the window should hold the cursor right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CursorGrab {
    /// Free.
    #[default]
    None,
    /// Kept inside the window, visible.
    Confine,
    /// Kept inside the window and hidden; the game sees relative motion only.
    Lock,
}

/// Counters of what the router did with its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Events produced for the game.
    pub events: u64,
    /// Events dropped by the rate limit (never a release).
    pub rate_dropped: u64,
    /// Events with nowhere to go: outside the game's rectangle, without focus, or invalid.
    pub ignored: u64,
}

/// Bounds on input volume.
#[derive(Debug, Clone, Copy)]
pub struct RouterLimits {
    /// Sustained events per second a game can receive.
    pub max_per_second: u32,
    /// Burst above the sustained rate.
    pub burst: u32,
}

impl Default for RouterLimits {
    fn default() -> Self {
        // A 1000 Hz gaming mouse plus typing fits; a flood of 100k/s does not reach the game.
        RouterLimits {
            max_per_second: 2000,
            burst: 500,
        }
    }
}

/// Window events → game events, with the state that keeps them consistent.
#[derive(Debug)]
pub struct Router {
    limits: RouterLimits,
    /// Window size; `None` for a script whose coordinates are already game pixels.
    window: Option<(u32, u32)>,
    game: (u32, u32),
    focused: bool,
    keys: BTreeSet<u32>,
    buttons: BTreeSet<u32>,
    inside: bool,
    /// The last game position sent, for clamping while a button is held.
    pos: (f64, f64),
    /// Window finger id → game touch id.
    touches: BTreeMap<u64, u32>,
    /// What the game asks for.
    wanted: PointerGrab,
    /// The streamer released the grab (Escape chord, focus loss) until the next click.
    released: bool,
    /// Escape was swallowed as the release chord; swallow its key-up too.
    swallow_esc: bool,
    tokens: f64,
    last_ns: u64,
    stats: RouterStats,
}

impl Router {
    /// A router for a window (`window` true) or for a script in game pixels.
    pub fn new(window: bool, limits: RouterLimits) -> Router {
        Router {
            limits,
            window: window.then_some((0, 0)),
            game: (0, 0),
            // A script's game is focused from the start; a window says when it has focus.
            focused: !window,
            keys: BTreeSet::new(),
            buttons: BTreeSet::new(),
            inside: false,
            pos: (0.0, 0.0),
            touches: BTreeMap::new(),
            wanted: PointerGrab::None,
            released: false,
            swallow_esc: false,
            tokens: f64::from(limits.burst),
            last_ns: 0,
            stats: RouterStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Whether the game has keyboard focus.
    pub fn focused(&self) -> bool {
        self.focused
    }

    /// The window's inner size changed.
    pub fn set_window_size(&mut self, w: u32, h: u32) {
        if self.window.is_some() {
            self.window = Some((w, h));
        }
    }

    /// The game's surface size changed (the frame shown is this big).
    pub fn set_game_size(&mut self, w: u32, h: u32) {
        self.game = (w, h);
    }

    /// The game's wish for the pointer; returns the window's cursor grab after it.
    pub fn set_wanted_grab(&mut self, wanted: PointerGrab) -> CursorGrab {
        if wanted == PointerGrab::None {
            // A new lock after an unlock grabs again.
            self.released = false;
        }
        self.wanted = wanted;
        self.cursor_grab()
    }

    /// How the window should hold the cursor now.
    pub fn cursor_grab(&self) -> CursorGrab {
        if !self.focused || self.released || self.window.is_none() {
            return CursorGrab::None;
        }
        match self.wanted {
            PointerGrab::None => CursorGrab::None,
            PointerGrab::Confined => CursorGrab::Confine,
            PointerGrab::Locked => CursorGrab::Lock,
        }
    }

    fn letterbox(&self) -> Option<Letterbox> {
        let (gw, gh) = self.game;
        let (ww, wh) = self.window.unwrap_or(self.game);
        Letterbox::fit(gw, gh, ww, wh)
    }

    /// The game point under window point (`x`, `y`), `None` outside the game's rectangle.
    fn map(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        self.letterbox()?.to_game(x, y)
    }

    /// Takes one token; releases always pass (a stuck key is worse than a flood).
    fn admit(&mut self, now_ns: u64, release: bool) -> bool {
        let dt = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.last_ns = now_ns;
        self.tokens = (self.tokens + dt * f64::from(self.limits.max_per_second))
            .min(f64::from(self.limits.burst));
        if release {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return true;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.stats.rate_dropped += 1;
            false
        }
    }

    fn emit(&mut self, out: &mut Vec<Input>, time_ns: u64, event: InputEvent) {
        let input = Input { time_ns, event };
        if input.validate().is_ok() {
            self.stats.events += 1;
            out.push(input);
        } else {
            self.stats.ignored += 1;
        }
    }

    fn ignore(&mut self) {
        self.stats.ignored += 1;
    }

    /// Handles one window event at `now_ns` (CLOCK_MONOTONIC), appending what the game gets.
    pub fn handle(&mut self, ev: WindowInput, now_ns: u64, out: &mut Vec<Input>) {
        match ev {
            WindowInput::Focus(true) => {
                if !self.focused {
                    self.focused = true;
                    self.emit(out, now_ns, InputEvent::Focus { focused: true });
                }
            }
            WindowInput::Focus(false) => {
                if self.focused {
                    self.release_all(now_ns, out);
                    self.focused = false;
                    // A grab ends with focus, and comes back with the next click.
                    self.released = true;
                    self.emit(out, now_ns, InputEvent::Focus { focused: false });
                }
            }
            WindowInput::Key { code, pressed } => self.key(code, pressed, now_ns, out),
            WindowInput::CursorMoved { x, y } => self.motion(x, y, now_ns, out),
            WindowInput::CursorLeft => {
                if self.inside && self.buttons.is_empty() {
                    self.leave(now_ns, out);
                }
            }
            WindowInput::Button { button, pressed } => self.button(button, pressed, now_ns, out),
            WindowInput::Scroll { dx, dy, lines } => {
                if !self.inside || !self.focused || !self.admit(now_ns, false) {
                    return self.ignore();
                }
                for (axis, v) in [(ScrollAxis::Horizontal, dx), (ScrollAxis::Vertical, dy)] {
                    if v == 0.0 || !v.is_finite() {
                        continue;
                    }
                    let (value, discrete) = if lines {
                        (v * SCROLL_PER_CLICK, v.round() as i32)
                    } else {
                        (v, 0)
                    };
                    let event = InputEvent::Scroll {
                        axis,
                        value: Fixed::from_f64(value),
                        discrete,
                    };
                    self.emit(out, now_ns, event);
                }
            }
            WindowInput::RawMotion { dx, dy } => {
                if self.cursor_grab() != CursorGrab::Lock || !self.admit(now_ns, false) {
                    return self.ignore();
                }
                let Some(l) = self.letterbox() else {
                    return self.ignore();
                };
                let (dx, dy) = l.scale_delta(dx, dy);
                let event = InputEvent::RelativeMotion {
                    dx: Fixed::from_f64(dx),
                    dy: Fixed::from_f64(dy),
                };
                self.emit(out, now_ns, event);
            }
            WindowInput::Touch { id, phase, x, y } => self.touch(id, phase, x, y, now_ns, out),
        }
    }

    fn key(&mut self, code: u32, pressed: bool, now_ns: u64, out: &mut Vec<Input>) {
        if code > KEY_MAX || !self.focused {
            return self.ignore();
        }
        if pressed {
            let chord = [KEY_LEFTCTRL, KEY_RIGHTCTRL]
                .iter()
                .any(|k| self.keys.contains(k))
                && [KEY_LEFTSHIFT, KEY_RIGHTSHIFT]
                    .iter()
                    .any(|k| self.keys.contains(k));
            if code == KEY_ESC && chord && self.cursor_grab() != CursorGrab::None {
                // Ctrl+Shift+Escape gives the cursor back; the game never sees this Escape.
                self.released = true;
                self.swallow_esc = true;
                return;
            }
            if self.keys.contains(&code) || !self.admit(now_ns, false) {
                return;
            }
            self.keys.insert(code);
        } else {
            if code == KEY_ESC && std::mem::take(&mut self.swallow_esc) {
                return;
            }
            // A key pressed before the game had focus was never seen by it.
            if !self.keys.remove(&code) {
                return self.ignore();
            }
            self.admit(now_ns, true);
        }
        self.emit(out, now_ns, InputEvent::Key { code, pressed });
    }

    fn motion(&mut self, x: f64, y: f64, now_ns: u64, out: &mut Vec<Input>) {
        if self.cursor_grab() == CursorGrab::Lock {
            // A locked pointer does not move; the game reads relative motion.
            return self.ignore();
        }
        let at = match self.map(x, y) {
            Some(p) => Some(p),
            // Dragging out of the rectangle keeps the pointer on its edge (the implicit grab
            // of a held button), so the game never sees a position outside itself.
            None if self.inside && !self.buttons.is_empty() => self.clamped(x, y),
            None => None,
        };
        match at {
            Some((gx, gy)) => {
                let (fx, fy) = (Fixed::from_f64(gx), Fixed::from_f64(gy));
                if !self.inside {
                    self.inside = true;
                    self.pos = (gx, gy);
                    self.emit(out, now_ns, InputEvent::PointerEnter { x: fx, y: fy });
                } else if self.admit(now_ns, false) {
                    self.pos = (gx, gy);
                    self.emit(out, now_ns, InputEvent::PointerMotion { x: fx, y: fy });
                }
            }
            None if self.inside => self.leave(now_ns, out),
            None => self.ignore(),
        }
    }

    fn clamped(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let l = self.letterbox()?;
        let cx = x.clamp(f64::from(l.x), f64::from(l.x + l.w) - 0.5);
        let cy = y.clamp(f64::from(l.y), f64::from(l.y + l.h) - 0.5);
        l.to_game(cx, cy)
    }

    fn leave(&mut self, now_ns: u64, out: &mut Vec<Input>) {
        self.inside = false;
        self.emit(out, now_ns, InputEvent::PointerLeave);
    }

    fn button(&mut self, button: u32, pressed: bool, now_ns: u64, out: &mut Vec<Input>) {
        if !(BTN_LEFT..=BTN_LAST).contains(&button) {
            return self.ignore();
        }
        if pressed {
            if !self.inside || !self.focused || self.buttons.contains(&button) {
                return self.ignore();
            }
            // A click on the game takes the grab back after the streamer let it go.
            self.released = false;
            if !self.admit(now_ns, false) {
                return;
            }
            self.buttons.insert(button);
        } else {
            if !self.buttons.remove(&button) {
                return self.ignore();
            }
            self.admit(now_ns, true);
        }
        self.emit(out, now_ns, InputEvent::PointerButton { button, pressed });
    }

    fn touch(
        &mut self,
        id: u64,
        phase: TouchPhase,
        x: f64,
        y: f64,
        now_ns: u64,
        out: &mut Vec<Input>,
    ) {
        match phase {
            TouchPhase::Down => {
                let free = (0..=MAX_TOUCH_ID).find(|t| !self.touches.values().any(|v| v == t));
                let (Some((gx, gy)), Some(slot)) = (self.map(x, y), free) else {
                    return self.ignore();
                };
                if !self.focused || self.touches.contains_key(&id) || !self.admit(now_ns, false) {
                    return self.ignore();
                }
                self.touches.insert(id, slot);
                self.touch_event(slot, phase, gx, gy, now_ns, out);
            }
            TouchPhase::Motion => {
                let Some(&slot) = self.touches.get(&id) else {
                    return self.ignore();
                };
                let Some(l) = self.letterbox() else {
                    return self.ignore();
                };
                let cx = x.clamp(f64::from(l.x), f64::from(l.x + l.w) - 0.5);
                let cy = y.clamp(f64::from(l.y), f64::from(l.y + l.h) - 0.5);
                let Some((gx, gy)) = l.to_game(cx, cy) else {
                    return self.ignore();
                };
                if self.admit(now_ns, false) {
                    self.touch_event(slot, phase, gx, gy, now_ns, out);
                }
            }
            TouchPhase::Up | TouchPhase::Cancel => {
                let Some(slot) = self.touches.remove(&id) else {
                    return self.ignore();
                };
                self.admit(now_ns, true);
                self.touch_event(slot, phase, 0.0, 0.0, now_ns, out);
            }
        }
    }

    fn touch_event(
        &mut self,
        id: u32,
        phase: TouchPhase,
        x: f64,
        y: f64,
        now_ns: u64,
        out: &mut Vec<Input>,
    ) {
        let event = InputEvent::Touch {
            id,
            phase,
            x: Fixed::from_f64(x),
            y: Fixed::from_f64(y),
        };
        self.emit(out, now_ns, event);
    }

    /// Releases everything held (keys, buttons, touches) and leaves: what a game must see
    /// before it loses focus, or before input moves to another game.
    pub fn release_all(&mut self, now_ns: u64, out: &mut Vec<Input>) {
        for code in std::mem::take(&mut self.keys) {
            self.emit(
                out,
                now_ns,
                InputEvent::Key {
                    code,
                    pressed: false,
                },
            );
        }
        for button in std::mem::take(&mut self.buttons) {
            self.emit(
                out,
                now_ns,
                InputEvent::PointerButton {
                    button,
                    pressed: false,
                },
            );
        }
        for (_, slot) in std::mem::take(&mut self.touches) {
            self.touch_event(slot, TouchPhase::Cancel, 0.0, 0.0, now_ns, out);
        }
        if self.inside {
            self.leave(now_ns, out);
        }
        self.swallow_esc = false;
    }

    /// Input moves to a new game: what it must see first (focus, if the window has it).
    pub fn greet(&mut self, now_ns: u64, out: &mut Vec<Input>) {
        if self.focused {
            self.emit(out, now_ns, InputEvent::Focus { focused: true });
        }
    }
}

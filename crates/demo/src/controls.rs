//! What the streamer's input does to the demo game, as plain state: which keys are held (the
//! key marker), where the player fish is, and the food pellets dropped by clicks.
//!
//! The state changes only when an event is applied, at the game time of the frame it is
//! applied before; everything that moves is then a closed-form function of the game time (the
//! player fish glides at a constant speed while an arrow key is held, a pellet sinks at a
//! constant speed), so a frame is still a pure function of `(frame_no, t_ns)` and the events
//! applied so far, and with no events the scenes draw exactly what they drew before.

use std::collections::VecDeque;

use crosscast_wire::input::BTN_LEFT;
use crosscast_wire::{InputEvent, TouchPhase};

/// Side of the key marker, in pixels: a solid white square at the frame's top-left corner
/// (x and y in `0..KEY_MARKER_SIZE`) while any key is held, black otherwise. Latency
/// benchmarks and tests look for it in every scene.
pub const KEY_MARKER_SIZE: u32 = 32;
/// evdev `KEY_UP`.
pub const KEY_UP: u32 = 103;
/// evdev `KEY_LEFT`.
pub const KEY_LEFT: u32 = 105;
/// evdev `KEY_RIGHT`.
pub const KEY_RIGHT: u32 = 106;
/// evdev `KEY_DOWN`.
pub const KEY_DOWN: u32 = 108;

/// How fast the player fish swims while an arrow key is held, in frame widths (or heights) per
/// second: across a 1280-pixel frame in about three seconds.
pub const PLAYER_SPEED: f32 = 0.3;
/// The player fish's centre stays this far (fraction of the frame) from every edge.
const PLAYER_MARGIN: f32 = 0.06;
/// Where the player fish's centre stops going down: just above the sand.
const PLAYER_FLOOR: f32 = 0.8;
/// How fast a pellet sinks, in frame heights per second.
pub const PELLET_SINK: f32 = 0.04;
/// A pellet lies on the sand (fraction of the height) once it gets there.
const PELLET_FLOOR: f32 = 0.88;
/// How long a pellet lasts, in ns.
pub const PELLET_LIFE_NS: u64 = 20_000_000_000;
/// Most pellets at once; a new one replaces the oldest.
pub const MAX_PELLETS: usize = 32;
/// Most keys tracked as held at once (a keyboard rolls over at far fewer).
const MAX_HELD: usize = 32;

/// A food pellet dropped at a point (fractions of the frame) at a game time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pellet {
    /// Horizontal position, fraction of the width.
    pub(crate) x: f32,
    /// Vertical position when dropped, fraction of the height.
    pub(crate) y: f32,
    /// Game time it was dropped at.
    pub(crate) t_ns: u64,
}

impl Pellet {
    /// Its vertical position (fraction of the height) at game time `t_ns`.
    pub(crate) fn y_at(&self, t_ns: u64) -> f32 {
        let age = t_ns.saturating_sub(self.t_ns) as f32 / 1e9;
        (self.y + PELLET_SINK * age).min(PELLET_FLOOR.max(self.y))
    }
}

/// The streamer's input as it affects the scene.
#[derive(Debug, Clone)]
pub(crate) struct Controls {
    /// Keys down now (evdev codes).
    held: Vec<u32>,
    /// The pointer, in pixels, while it is over the game.
    pointer: Option<(f32, f32)>,
    /// The player fish's centre (fractions of the frame) at `since_ns`.
    origin: (f32, f32),
    since_ns: u64,
    /// Its velocity since then, in fractions of the frame per second.
    velocity: (f32, f32),
    /// 1 facing right, -1 facing left: the way it last swam.
    facing: f32,
    pellets: VecDeque<Pellet>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            held: Vec::new(),
            pointer: None,
            origin: (0.5, 0.5),
            since_ns: 0,
            velocity: (0.0, 0.0),
            facing: 1.0,
            pellets: VecDeque::new(),
        }
    }
}

impl Controls {
    /// Applies one event at game time `t_ns` (the time of the next frame drawn), for a frame of
    /// `width` x `height` pixels.
    pub(crate) fn apply(&mut self, event: &InputEvent, t_ns: u64, width: u32, height: u32) {
        match *event {
            InputEvent::Key { code, pressed } => {
                if pressed {
                    if !self.held.contains(&code) && self.held.len() < MAX_HELD {
                        self.held.push(code);
                    }
                } else {
                    self.held.retain(|&k| k != code);
                }
            }
            InputEvent::Focus { focused: false } => {
                // The host released everything before this; forget anything it could not.
                self.held.clear();
            }
            InputEvent::Focus { focused: true } => {}
            InputEvent::PointerEnter { x, y } | InputEvent::PointerMotion { x, y } => {
                self.pointer = Some((x.to_f64() as f32, y.to_f64() as f32));
            }
            InputEvent::PointerLeave => self.pointer = None,
            InputEvent::PointerButton {
                button: BTN_LEFT,
                pressed: true,
            } => {
                if let Some((x, y)) = self.pointer {
                    self.drop_pellet(x, y, t_ns, width, height);
                }
            }
            InputEvent::Touch {
                phase: TouchPhase::Down,
                x,
                y,
                ..
            } => self.drop_pellet(x.to_f64() as f32, y.to_f64() as f32, t_ns, width, height),
            InputEvent::PointerButton { .. }
            | InputEvent::Scroll { .. }
            | InputEvent::RelativeMotion { .. }
            | InputEvent::Touch { .. } => {}
        }
        self.steer(t_ns);
    }

    /// Whether any key is held (what the key marker shows).
    pub(crate) fn any_key_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Restarts the player fish's glide from where it is at `t_ns` with the velocity the held
    /// arrow keys give now.
    fn steer(&mut self, t_ns: u64) {
        let axis = |neg: u32, pos: u32| {
            f32::from(u8::from(self.held.contains(&pos)))
                - f32::from(u8::from(self.held.contains(&neg)))
        };
        let velocity = (
            PLAYER_SPEED * axis(KEY_LEFT, KEY_RIGHT),
            PLAYER_SPEED * axis(KEY_UP, KEY_DOWN),
        );
        if velocity == self.velocity {
            return;
        }
        self.origin = self.player_at(t_ns);
        self.since_ns = t_ns.max(self.since_ns);
        self.velocity = velocity;
        if velocity.0 != 0.0 {
            self.facing = velocity.0.signum();
        }
    }

    /// The player fish's centre (fractions of the frame) at game time `t_ns`. A constant
    /// velocity from `origin`, clamped: each axis is monotonic, so clamping the end point is
    /// the same as stopping at the wall.
    pub(crate) fn player_at(&self, t_ns: u64) -> (f32, f32) {
        let dt = t_ns.saturating_sub(self.since_ns) as f32 / 1e9;
        (
            (self.origin.0 + self.velocity.0 * dt).clamp(PLAYER_MARGIN, 1.0 - PLAYER_MARGIN),
            (self.origin.1 + self.velocity.1 * dt).clamp(PLAYER_MARGIN, PLAYER_FLOOR),
        )
    }

    /// 1 when the player fish faces right, -1 left.
    pub(crate) fn facing(&self) -> f32 {
        self.facing
    }

    /// Whether the player fish is swimming at `t_ns` (it wags faster).
    pub(crate) fn swimming(&self) -> bool {
        self.velocity != (0.0, 0.0)
    }

    fn drop_pellet(&mut self, x: f32, y: f32, t_ns: u64, width: u32, height: u32) {
        if self.pellets.len() >= MAX_PELLETS {
            self.pellets.pop_front();
        }
        self.pellets.push_back(Pellet {
            x: x / width as f32,
            y: y / height as f32,
            t_ns,
        });
    }

    /// The pellets still there at `t_ns`, oldest first.
    pub(crate) fn pellets(&self, t_ns: u64) -> impl Iterator<Item = &Pellet> {
        self.pellets
            .iter()
            .filter(move |p| t_ns.saturating_sub(p.t_ns) < PELLET_LIFE_NS)
    }
}

/// Draws the key marker into an RGBA frame: white while a key is held, black otherwise (so the
/// corner is never bright by accident, whatever the scene draws there).
pub(crate) fn draw_key_marker(dst: &mut [u8], stride: usize, width: u32, height: u32, held: bool) {
    let px: [u8; 4] = if held {
        [255, 255, 255, 255]
    } else {
        [0, 0, 0, 255]
    };
    let w = KEY_MARKER_SIZE.min(width) as usize;
    for line in dst
        .chunks_mut(stride)
        .take(KEY_MARKER_SIZE.min(height) as usize)
    {
        for p in line[..w * 4].chunks_exact_mut(4) {
            p.copy_from_slice(&px);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crosscast_wire::Fixed;

    const S: u64 = 1_000_000_000;

    fn key(code: u32, pressed: bool) -> InputEvent {
        InputEvent::Key { code, pressed }
    }

    #[test]
    fn held_keys_follow_presses_releases_and_focus_loss() {
        let mut c = Controls::default();
        assert!(!c.any_key_held());
        c.apply(&key(30, true), 0, 640, 360);
        c.apply(&key(31, true), 0, 640, 360);
        c.apply(&key(30, true), 0, 640, 360);
        c.apply(&key(30, false), 0, 640, 360);
        assert!(c.any_key_held());
        c.apply(&key(31, false), 0, 640, 360);
        assert!(!c.any_key_held());
        c.apply(&key(32, true), 0, 640, 360);
        c.apply(&InputEvent::Focus { focused: false }, 0, 640, 360);
        assert!(!c.any_key_held());
    }

    #[test]
    fn the_player_glides_while_an_arrow_is_held_and_stops_at_the_wall() {
        let mut c = Controls::default();
        assert_eq!(c.player_at(5 * S), (0.5, 0.5), "still without input");
        c.apply(&key(KEY_RIGHT, true), S, 640, 360);
        let (x, y) = c.player_at(S + S / 2);
        assert!(
            (x - (0.5 + PLAYER_SPEED / 2.0)).abs() < 1e-4 && y == 0.5,
            "{x} {y}"
        );
        c.apply(&key(KEY_RIGHT, false), S + S / 2, 640, 360);
        assert_eq!(c.player_at(10 * S), (x, y), "stops when released");
        c.apply(&key(KEY_UP, true), 2 * S, 640, 360);
        c.apply(&key(KEY_LEFT, true), 2 * S, 640, 360);
        let (x2, y2) = c.player_at(2 * S + S / 10);
        assert!(x2 < x && y2 < y, "up-left: {x2} {y2}");
        assert_eq!(c.facing(), -1.0);
        assert_eq!(c.player_at(100 * S), (PLAYER_MARGIN, PLAYER_MARGIN));
        c.apply(&InputEvent::Focus { focused: false }, 3 * S, 640, 360);
        assert!(!c.swimming());
    }

    #[test]
    fn a_left_click_drops_a_pellet_at_the_pointer_that_then_sinks() {
        let mut c = Controls::default();
        let at = |x: f64, y: f64| InputEvent::PointerMotion {
            x: Fixed::from_f64(x),
            y: Fixed::from_f64(y),
        };
        let click = InputEvent::PointerButton {
            button: BTN_LEFT,
            pressed: true,
        };
        // No pointer yet: nothing to drop.
        c.apply(&click, 0, 640, 360);
        assert_eq!(c.pellets(0).count(), 0);
        c.apply(&at(320.0, 90.0), S, 640, 360);
        c.apply(&click, S, 640, 360);
        let p = *c.pellets(S).next().unwrap();
        assert_eq!((p.x, p.y_at(S)), (0.5, 0.25));
        assert!(p.y_at(2 * S) > 0.25);
        assert_eq!(
            c.pellets(S + PELLET_LIFE_NS).count(),
            0,
            "gone after its life"
        );
        // A right click or a release drops nothing.
        for e in [
            InputEvent::PointerButton {
                button: crosscast_wire::input::BTN_RIGHT,
                pressed: true,
            },
            InputEvent::PointerButton {
                button: BTN_LEFT,
                pressed: false,
            },
        ] {
            c.apply(&e, S, 640, 360);
        }
        assert_eq!(c.pellets(S).count(), 1);
        for _ in 0..2 * MAX_PELLETS {
            c.apply(&click, S, 640, 360);
        }
        assert_eq!(c.pellets(S).count(), MAX_PELLETS);
    }
}

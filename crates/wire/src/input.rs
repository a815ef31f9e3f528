//! Input events for the game: what the streamer does in the preview window (or what a
//! headless host reads from `--input`), already mapped to the game surface's own pixels.
//!
//! The same [`InputEvent`] feeds both kinds of game: a game on crosscast's protocol receives it
//! in a [`crate::Message::Input`] (after asking with [`crate::Message::WantInput`]), and the
//! Wayland compositor turns it into `wl_keyboard`/`wl_pointer`/`wl_touch` events. Key and
//! button codes are Linux evdev codes (`linux/input-event-codes.h`); an xkb keycode is the
//! evdev code + 8.

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::limits::{MAX_DIMENSION, MAX_TOUCH_ID};

/// Largest evdev key code (`KEY_MAX`).
pub const KEY_MAX: u32 = 0x2ff;
/// First evdev mouse button code (`BTN_LEFT`).
pub const BTN_LEFT: u32 = 0x110;
/// `BTN_RIGHT`.
pub const BTN_RIGHT: u32 = 0x111;
/// `BTN_MIDDLE`.
pub const BTN_MIDDLE: u32 = 0x112;
/// Last evdev mouse button code (`BTN_TASK`, the 8th button).
pub const BTN_LAST: u32 = 0x117;
/// Largest relative motion or scroll amount in one event, in pixels (before the 1/256 scale).
pub const MAX_DELTA: i32 = 1 << 16;
/// Largest number of wheel clicks in one scroll event.
pub const MAX_DISCRETE: i32 = 120;

/// A coordinate or distance in 1/256 pixel (Wayland's `wl_fixed_t`), so that no float (and no
/// NaN) crosses the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fixed(pub i32);

impl Fixed {
    /// The nearest fixed-point value to `v`, saturating at the type's range.
    pub fn from_f64(v: f64) -> Fixed {
        let scaled = (v * 256.0).round();
        Fixed(if scaled.is_nan() {
            0
        } else {
            scaled.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
    }

    /// The value in pixels.
    pub fn to_f64(self) -> f64 {
        f64::from(self.0) / 256.0
    }

    /// The whole pixel the value falls in (rounding down).
    pub fn floor(self) -> i32 {
        self.0 >> 8
    }
}

/// Which way a scroll event scrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScrollAxis {
    /// Up (negative) and down (positive).
    Vertical = 0,
    /// Left (negative) and right (positive).
    Horizontal = 1,
}

/// The stage of one touch point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TouchPhase {
    /// A finger touched down.
    Down = 0,
    /// It moved.
    Motion = 1,
    /// It lifted.
    Up = 2,
    /// The touch was taken away (focus lost): forget the point without acting on it.
    Cancel = 3,
}

/// One input event, in the game surface's coordinates (pixels, origin top left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputEvent {
    /// Keyboard focus gained or lost. Before a loss every held key and button was released.
    Focus {
        /// Whether the game now has focus.
        focused: bool,
    },
    /// A key went down or up (no auto-repeat: a held key is one press).
    Key {
        /// evdev key code, at most [`KEY_MAX`].
        code: u32,
        /// Down (true) or up.
        pressed: bool,
    },
    /// The pointer entered the game's rectangle at this point.
    PointerEnter {
        /// Horizontal position.
        x: Fixed,
        /// Vertical position.
        y: Fixed,
    },
    /// The pointer left the game's rectangle.
    PointerLeave,
    /// The pointer moved to this point (inside the game's rectangle).
    PointerMotion {
        /// Horizontal position.
        x: Fixed,
        /// Vertical position.
        y: Fixed,
    },
    /// A mouse button went down or up.
    PointerButton {
        /// evdev button code, [`BTN_LEFT`]..=[`BTN_LAST`].
        button: u32,
        /// Down (true) or up.
        pressed: bool,
    },
    /// Scrolling on one axis.
    Scroll {
        /// Which axis.
        axis: ScrollAxis,
        /// Distance in Wayland scroll units (10 per wheel click; pixels for touchpads).
        value: Fixed,
        /// Wheel clicks, 0 for smooth (touchpad) scrolling.
        discrete: i32,
    },
    /// Unaccelerated pointer motion while the game holds the pointer locked or confined.
    RelativeMotion {
        /// Horizontal distance.
        dx: Fixed,
        /// Vertical distance.
        dy: Fixed,
    },
    /// A touch point changed.
    Touch {
        /// Which finger, at most [`MAX_TOUCH_ID`]; stable from Down to Up.
        id: u32,
        /// What happened.
        phase: TouchPhase,
        /// Horizontal position (unused for Up and Cancel).
        x: Fixed,
        /// Vertical position (unused for Up and Cancel).
        y: Fixed,
    },
}

/// One timestamped input event as carried by [`crate::Message::Input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Input {
    /// When the host received it, CLOCK_MONOTONIC nanoseconds (the clock frames are stamped in).
    pub time_ns: u64,
    /// What happened.
    pub event: InputEvent,
}

fn check_position(field: &'static str, v: Fixed) -> Result<Fixed, DecodeError> {
    let max = (MAX_DIMENSION as i32) << 8;
    if !(0..=max).contains(&v.0) {
        return Err(DecodeError::invalid(field, format!("{} px", v.to_f64())));
    }
    Ok(v)
}

fn check_delta(field: &'static str, v: Fixed) -> Result<Fixed, DecodeError> {
    if v.0.unsigned_abs() > (MAX_DELTA as u32) << 8 {
        return Err(DecodeError::invalid(field, format!("{} px", v.to_f64())));
    }
    Ok(v)
}

fn bool_field(field: &'static str, v: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(DecodeError::invalid(field, other.to_string())),
    }
}

impl Input {
    /// Checks every field's range; used by decode and by the host before sending.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self.event {
            InputEvent::Focus { .. } | InputEvent::PointerLeave => {}
            InputEvent::Key { code, .. } => {
                if code > KEY_MAX {
                    return Err(DecodeError::invalid("key code", code.to_string()));
                }
            }
            InputEvent::PointerEnter { x, y } | InputEvent::PointerMotion { x, y } => {
                check_position("x", x)?;
                check_position("y", y)?;
            }
            InputEvent::PointerButton { button, .. } => {
                if !(BTN_LEFT..=BTN_LAST).contains(&button) {
                    return Err(DecodeError::invalid("button", format!("{button:#x}")));
                }
            }
            InputEvent::Scroll {
                value, discrete, ..
            } => {
                check_delta("scroll value", value)?;
                if discrete.unsigned_abs() > MAX_DISCRETE as u32 {
                    return Err(DecodeError::invalid("scroll clicks", discrete.to_string()));
                }
            }
            InputEvent::RelativeMotion { dx, dy } => {
                check_delta("dx", dx)?;
                check_delta("dy", dy)?;
            }
            InputEvent::Touch { id, x, y, .. } => {
                if id > MAX_TOUCH_ID {
                    return Err(DecodeError::invalid("touch id", id.to_string()));
                }
                check_position("x", x)?;
                check_position("y", y)?;
            }
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u64(self.time_ns);
        let fixed = |w: &mut Writer<'_>, v: Fixed| w.u32(v.0 as u32);
        match self.event {
            InputEvent::Focus { focused } => {
                w.u8(1);
                w.u8(u8::from(focused));
            }
            InputEvent::Key { code, pressed } => {
                w.u8(2);
                w.u32(code);
                w.u8(u8::from(pressed));
            }
            InputEvent::PointerEnter { x, y } => {
                w.u8(3);
                fixed(w, x);
                fixed(w, y);
            }
            InputEvent::PointerLeave => w.u8(4),
            InputEvent::PointerMotion { x, y } => {
                w.u8(5);
                fixed(w, x);
                fixed(w, y);
            }
            InputEvent::PointerButton { button, pressed } => {
                w.u8(6);
                w.u32(button);
                w.u8(u8::from(pressed));
            }
            InputEvent::Scroll {
                axis,
                value,
                discrete,
            } => {
                w.u8(7);
                w.u8(axis as u8);
                fixed(w, value);
                w.u32(discrete as u32);
            }
            InputEvent::RelativeMotion { dx, dy } => {
                w.u8(8);
                fixed(w, dx);
                fixed(w, dy);
            }
            InputEvent::Touch { id, phase, x, y } => {
                w.u8(9);
                w.u32(id);
                w.u8(phase as u8);
                fixed(w, x);
                fixed(w, y);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Input, DecodeError> {
        let time_ns = r.u64()?;
        let fixed =
            |r: &mut Reader<'_>| -> Result<Fixed, DecodeError> { Ok(Fixed(r.u32()? as i32)) };
        let event = match r.u8()? {
            1 => InputEvent::Focus {
                focused: bool_field("focused", r.u8()?)?,
            },
            2 => InputEvent::Key {
                code: r.u32()?,
                pressed: bool_field("pressed", r.u8()?)?,
            },
            3 => InputEvent::PointerEnter {
                x: fixed(r)?,
                y: fixed(r)?,
            },
            4 => InputEvent::PointerLeave,
            5 => InputEvent::PointerMotion {
                x: fixed(r)?,
                y: fixed(r)?,
            },
            6 => InputEvent::PointerButton {
                button: r.u32()?,
                pressed: bool_field("pressed", r.u8()?)?,
            },
            7 => InputEvent::Scroll {
                axis: match r.u8()? {
                    0 => ScrollAxis::Vertical,
                    1 => ScrollAxis::Horizontal,
                    other => return Err(DecodeError::invalid("scroll axis", other.to_string())),
                },
                value: fixed(r)?,
                discrete: r.u32()? as i32,
            },
            8 => InputEvent::RelativeMotion {
                dx: fixed(r)?,
                dy: fixed(r)?,
            },
            9 => InputEvent::Touch {
                id: r.u32()?,
                phase: match r.u8()? {
                    0 => TouchPhase::Down,
                    1 => TouchPhase::Motion,
                    2 => TouchPhase::Up,
                    3 => TouchPhase::Cancel,
                    other => return Err(DecodeError::invalid("touch phase", other.to_string())),
                },
                x: fixed(r)?,
                y: fixed(r)?,
            },
            other => return Err(DecodeError::invalid("input kind", other.to_string())),
        };
        let input = Input { time_ns, event };
        input.validate()?;
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rounds_and_saturates() {
        assert_eq!(Fixed::from_f64(1.5), Fixed(384));
        assert_eq!(Fixed::from_f64(-0.25).0, -64);
        assert_eq!(Fixed::from_f64(f64::NAN), Fixed(0));
        assert_eq!(Fixed::from_f64(1e12), Fixed(i32::MAX));
        assert_eq!(Fixed(384).to_f64(), 1.5);
        assert_eq!(Fixed(-1).floor(), -1);
    }
}

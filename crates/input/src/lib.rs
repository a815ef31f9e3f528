//! The streamer's input: from the preview window (or a script) to the game that has focus.
//!
//! - [`Letterbox`] is where the game's image sits in the window; the preview draws with it and
//!   input maps back through it, so a click lands on the game pixel under the cursor.
//! - [`Router`] is the sans-io state machine: window events in, [`crosscast_wire::Input`] out,
//!   in the game surface's pixels, with enter/leave, focus, held keys released on focus loss,
//!   relative motion while the game holds the pointer, and a rate limit that never drops a
//!   release.
//! - [`InputHub`] joins the sources (window thread, script thread) to the one game that has
//!   focus, through its [`InputSink`] (a crosscast session or the Wayland compositor).
//! - [`InputScript`] reads `--input FILE|-` JSON lines for headless hosts and tests.
#![forbid(unsafe_code)]

mod error;
mod geometry;
mod hub;
mod keys;
mod router;
mod script;

pub use error::InputError;
pub use geometry::Letterbox;
pub use hub::{Delivery, InputHub, InputSink, InputStats};
pub use keys::{button_code, key_code};
pub use router::{
    CursorGrab, PointerGrab, Router, RouterLimits, RouterStats, WindowInput, KEY_ESC, KEY_LEFTCTRL,
    KEY_LEFTSHIFT, KEY_RIGHTCTRL, KEY_RIGHTSHIFT, SCROLL_PER_CLICK,
};
pub use script::{
    parse_line, InputScript, ScriptSource, ScriptStats, MAX_DELAY_MS, MAX_LINE_BYTES,
};

/// CLOCK_MONOTONIC in nanoseconds: the clock input events and frames are stamped in.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

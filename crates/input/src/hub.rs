//! The meeting point of input sources (the preview window, a script) and the one game that
//! has focus. Sources call in from their own threads and the event goes straight to the game's
//! [`InputSink`] (a non-blocking send): no hop through the output clock, whose tick would add
//! up to a frame of latency.

use std::sync::{Arc, Mutex, MutexGuard};

use crosscast_wire::Input;

use crate::router::{CursorGrab, PointerGrab, Router, RouterLimits, RouterStats, WindowInput};

/// What happened to one event handed to a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// On its way to the game.
    Sent,
    /// The game did not ask for input (or has gone).
    NotWanted,
    /// The game's queue was full: dropped and counted.
    Dropped,
}

/// Where one game takes its input: a crosscast-protocol session or the Wayland compositor.
/// Implementations must never block: they are called from the window's thread.
pub trait InputSink: Send + Sync {
    /// Hands one event to the game.
    fn send(&self, input: &Input) -> Delivery;

    /// What the game asks of the pointer (lock, confine), polled by the window.
    fn pointer_grab(&self) -> PointerGrab {
        PointerGrab::None
    }
}

/// What the hub delivered, for the exit summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    /// The window's router.
    pub window: RouterStats,
    /// The script's router.
    pub script: RouterStats,
    /// Events the game's sink took.
    pub sent: u64,
    /// Events the game's sink dropped (its queue was full).
    pub dropped: u64,
    /// Events for a game that did not want input, or when no game was streaming.
    pub unrouted: u64,
}

struct Inner {
    window: Router,
    script: Router,
    target: Option<(u64, Arc<dyn InputSink>)>,
    grab: PointerGrab,
    /// A script feeds this hub: its game has focus without a window.
    scripted: bool,
    /// What the streamer should hear about (the game took or gave back the pointer).
    notes: Vec<String>,
    out: Vec<Input>,
    sent: u64,
    dropped: u64,
    unrouted: u64,
}

impl Inner {
    fn flush(&mut self) {
        for input in self.out.drain(..) {
            match self.target.as_ref().map(|(_, s)| s.send(&input)) {
                Some(Delivery::Sent) => self.sent += 1,
                Some(Delivery::Dropped) => self.dropped += 1,
                Some(Delivery::NotWanted) | None => self.unrouted += 1,
            }
        }
    }

    fn poll_grab(&mut self) -> CursorGrab {
        let wanted = self
            .target
            .as_ref()
            .map_or(PointerGrab::None, |(_, s)| s.pointer_grab());
        if wanted != self.grab {
            // Bounded: the host drains these every tick, and a game flapping its lock only
            // repeats the same two lines.
            if self.notes.len() < 16 {
                self.notes.push(match wanted {
                    PointerGrab::None => "the game released the pointer".to_string(),
                    PointerGrab::Locked => "the game locked the pointer: the preview window holds the cursor (Ctrl+Shift+Escape or leaving the window gives it back)".to_string(),
                    PointerGrab::Confined => "the game confined the pointer: the preview window keeps the cursor (Ctrl+Shift+Escape or leaving the window gives it back)".to_string(),
                });
            }
            self.grab = wanted;
            self.script.set_wanted_grab(wanted);
            self.window.set_wanted_grab(wanted)
        } else {
            self.window.cursor_grab()
        }
    }
}

/// Routes the streamer's input to the game that is streaming; shared by the window thread, the
/// script reader and the host's clock loop.
pub struct InputHub {
    inner: Mutex<Inner>,
}

impl InputHub {
    /// A hub with no game yet.
    pub fn new(limits: RouterLimits) -> Arc<InputHub> {
        Arc::new(InputHub {
            inner: Mutex::new(Inner {
                window: Router::new(true, limits),
                script: Router::new(false, limits),
                target: None,
                grab: PointerGrab::None,
                scripted: false,
                notes: Vec::new(),
                out: Vec::new(),
                sent: 0,
                dropped: 0,
                unrouted: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain counters and sets: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An event from the preview window (window pixels) at `now_ns`; returns how the window
    /// should hold the cursor afterwards.
    pub fn window_event(&self, ev: WindowInput, now_ns: u64) -> CursorGrab {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.window.handle(ev, now_ns, &mut inner.out);
        inner.flush();
        inner.poll_grab()
    }

    /// Marks the hub as fed by a script, whose game has focus from the start.
    pub fn set_scripted(&self) {
        self.lock().scripted = true;
    }

    /// An event from a script (game pixels) at `now_ns`.
    pub fn script_event(&self, ev: WindowInput, now_ns: u64) {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.script.handle(ev, now_ns, &mut inner.out);
        inner.flush();
    }

    /// How the window should hold the cursor (the game may have locked or unlocked it).
    pub fn cursor_grab(&self) -> CursorGrab {
        self.lock().poll_grab()
    }

    /// The preview window's inner size.
    pub fn set_window_size(&self, w: u32, h: u32) {
        self.lock().window.set_window_size(w, h);
    }

    /// The size of the game frame being shown.
    pub fn set_game_size(&self, w: u32, h: u32) {
        let mut g = self.lock();
        g.window.set_game_size(w, h);
        g.script.set_game_size(w, h);
    }

    /// The game with focus from now on (`id` names it); `None` when no game streams. The game
    /// that had it gets every held key and button released first.
    pub fn set_target(&self, target: Option<(u64, Arc<dyn InputSink>)>, now_ns: u64) {
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.target.as_ref().map(|t| t.0) == target.as_ref().map(|t| t.0) {
            return;
        }
        inner.window.release_all(now_ns, &mut inner.out);
        inner.script.release_all(now_ns, &mut inner.out);
        inner.flush();
        inner.target = target;
        if inner.scripted && inner.script.focused() && !inner.window.focused() {
            inner.script.greet(now_ns, &mut inner.out);
        } else {
            inner.window.greet(now_ns, &mut inner.out);
        }
        inner.flush();
    }

    /// Lines for the host's log since the last call.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().notes)
    }

    /// The id of the game that has focus.
    pub fn target_id(&self) -> Option<u64> {
        self.lock().target.as_ref().map(|t| t.0)
    }

    /// Counters so far.
    pub fn stats(&self) -> InputStats {
        let g = self.lock();
        InputStats {
            window: g.window.stats(),
            script: g.script.stats(),
            sent: g.sent,
            dropped: g.dropped,
            unrouted: g.unrouted,
        }
    }
}

//! Unmodified Wayland games: the host's compositor as one more kind of [`GameFeed`].
//!
//! The compositor ([`crosscast_compositor`]) serves the game's Wayland socket on its own
//! thread. The output clock takes the newest committed `wl_shm` buffer and reads it in place
//! (BGRA, no copy) while it converts; every output frame is the game's frame callback, so the
//! game draws at the stream's rate, as it would on a display.
//!
//! One feed serves the whole run: a game that exits and is relaunched connects to the same
//! socket, and its frames continue on the same timeline (commit times are host clock times).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use crosscast_compositor::{Compositor, CompositorCounters, FrameInfo, InputSender};
use crosscast_input::{Delivery, InputSink, PointerGrab};
use crosscast_ipc::os::process::monotonic_ns;
use crosscast_ipc::{DelayHistogram, FrameView, HostCounters};
use crosscast_wire::{AudioBlock, Input, PixelOrder};

use crate::feed::{FrameStamp, GameFeed, ShowResult};
use crate::HostError;

/// A Wayland compositor session: the frames its clients commit, as the output clock sees them.
pub struct WaylandFeed {
    compositor: Compositor,
    /// Where the streamer's input goes: the compositor's thread, through a bounded channel.
    input: Arc<WaylandInput>,
    id: u64,
    held: Option<FrameInfo>,
    /// Frames whose pool could not be read (a client that truncated it): that client was
    /// disconnected with a protocol error, the output repeats what it last showed.
    unreadable: Cell<u64>,
    notes: Vec<String>,
    /// From each frame's commit to the output clock taking it.
    delay: DelayHistogram,
}

impl WaylandFeed {
    /// Wraps a running compositor; `id` names it in log lines.
    pub fn new(compositor: Compositor, id: u64) -> WaylandFeed {
        WaylandFeed {
            input: Arc::new(WaylandInput(compositor.input())),
            compositor,
            id,
            held: None,
            unreadable: Cell::new(0),
            notes: Vec::new(),
            delay: DelayHistogram::default(),
        }
    }

    /// The compositor's own counters (commits, clients, protocol errors).
    pub fn compositor_counters(&self) -> CompositorCounters {
        self.compositor.counters()
    }
}

/// The compositor as an input sink: events for the streamed toplevel, and its pointer lock.
struct WaylandInput(InputSender);

impl InputSink for WaylandInput {
    fn send(&self, input: &Input) -> Delivery {
        if self.0.send(*input) {
            Delivery::Sent
        } else {
            Delivery::Dropped
        }
    }

    fn pointer_grab(&self) -> PointerGrab {
        match self.0.pointer_grab() {
            crosscast_compositor::PointerGrab::None => PointerGrab::None,
            crosscast_compositor::PointerGrab::Locked => PointerGrab::Locked,
            crosscast_compositor::PointerGrab::Confined => PointerGrab::Confined,
        }
    }
}

impl GameFeed for WaylandFeed {
    fn id(&self) -> u64 {
        self.id
    }

    fn input_sink(&self) -> Option<Arc<dyn InputSink>> {
        Some(Arc::clone(&self.input) as Arc<dyn InputSink>)
    }

    fn wait_frame(&mut self, timeout: Duration) -> bool {
        self.compositor.wait_frame(timeout)
    }

    fn acquire(&mut self) -> Result<Option<FrameStamp>, HostError> {
        match self.compositor.acquire() {
            Ok(Some(info)) => {
                self.held = Some(info);
                self.delay
                    .record(monotonic_ns().saturating_sub(info.commit_ns));
                Ok(Some(FrameStamp {
                    seq: info.seq,
                    pts_ns: info.commit_ns,
                    received_ns: info.commit_ns,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                // A client's fault never stops the stream: it is logged and dropped.
                self.notes.push(format!("wayland: {e}"));
                Ok(None)
            }
        }
    }

    fn with_held(&self, show: &mut dyn FnMut(&FrameView<'_>) -> ShowResult) -> ShowResult<bool> {
        let Some(info) = self.held else {
            return Ok(false);
        };
        let shown = self.compositor.with_held(|f| {
            show(&FrameView {
                data: f.data,
                width: f.width,
                height: f.height,
                stride: f.stride,
                seq: info.seq,
                pts_ns: info.commit_ns,
                sent_ns: info.commit_ns,
                received_ns: info.commit_ns,
                acquired_ns: info.commit_ns,
                order: PixelOrder::Bgra,
            })
        });
        match shown {
            Ok(Some(r)) => r.map(|()| true),
            Ok(None) => Ok(false),
            Err(e) => {
                // The pool went bad under us (truncated): the compositor has already sent the
                // client its protocol error; this frame is simply not shown.
                log::warn!("wayland: held frame unreadable: {e}");
                self.unreadable.set(self.unreadable.get() + 1);
                Ok(false)
            }
        }
    }

    fn presented(&self, output_frame: u64, now_ns: u64) {
        self.compositor.present(output_frame, now_ns);
    }

    fn take_notes(&mut self, out: &mut Vec<String>) {
        out.append(&mut self.notes);
        out.extend(
            self.compositor
                .take_log()
                .into_iter()
                .map(|l| format!("wayland: {l}")),
        );
    }

    fn drain_audio(&mut self, _out: &mut Vec<AudioBlock>) {
        // Wayland carries no sound; a Wayland game's audio comes through its own server.
    }

    fn closed(&self) -> Option<String> {
        self.compositor.closed()
    }

    fn counters(&self) -> HostCounters {
        let c = self.compositor.counters();
        HostCounters {
            frames_queued: c.commits,
            frames_acquired: c.frames_acquired,
            frames_dropped: c.frames_skipped,
            frames_stale: self.unreadable.get(),
            handoff: self.delay.clone(),
            ..HostCounters::default()
        }
    }

    fn finish(&mut self) -> HostCounters {
        self.counters()
    }
}

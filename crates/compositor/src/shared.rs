//! What the compositor thread and the handle share: the newest committed frame, the held
//! frame, counters and the event log.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use smithay::reexports::wayland_server::backend::ClientId;
use smithay::reexports::wayland_server::protocol::wl_buffer::WlBuffer;

use crate::compose::Image;
use crate::FrameInfo;

/// Log lines kept between two `take_log` calls; older ones are dropped (and counted) so a
/// client that connects in a loop cannot grow the log without bound.
const LOG_CAP: usize = 256;
/// Skipped frames remembered between two presents, for presentation feedback.
const SEQ_CAP: usize = 64;

/// The compositor's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompositorCounters {
    /// Buffers committed by the streamed surface.
    pub commits: u64,
    /// Frames taken by `acquire`.
    pub frames_acquired: u64,
    /// Frames committed but replaced by a newer one before `acquire` took them.
    pub frames_skipped: u64,
    /// Buffers of other surfaces (cursor, subsurfaces, popups, older toplevels), released
    /// right after their commit.
    pub other_buffers: u64,
    /// Output vblanks (`present` calls handled).
    pub presents: u64,
    /// Clients accepted.
    pub clients_connected: u64,
    /// Connections refused because `max_clients` were connected.
    pub clients_refused: u64,
    /// Clients gone (any reason).
    pub clients_disconnected: u64,
    /// Clients disconnected for a protocol error (posted by smithay, wayland-server or us).
    pub protocol_errors: u64,
    /// Held frames that could not be read (pool truncated under them, bad geometry).
    pub bad_buffers: u64,
    /// Log lines dropped because nobody took the log.
    pub log_dropped: u64,
    /// Input events delivered to the streamed surface's client.
    pub input_delivered: u64,
    /// Input events not delivered: no streamed surface, no focus, or absolute motion while the
    /// pointer is locked.
    pub input_ignored: u64,
    /// Input events dropped by [`crate::InputSender::send`] because the queue was full (or the
    /// compositor had stopped).
    pub input_dropped: u64,
}

/// Where a frame's pixels are.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// In the client's buffer, read in place (a toplevel alone: no copy).
    Shm(WlBuffer),
    /// Composed by us (a toplevel with subsurfaces).
    Composed(Arc<Image>),
}

/// A frame of the streamed toplevel.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) source: Source,
    pub(crate) info: FrameInfo,
    pub(crate) client: ClientId,
    pub(crate) pid: Option<i32>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) pending: Option<Committed>,
    pub(crate) held: Option<Committed>,
    pub(crate) closed: Option<String>,
    pub(crate) counters: CompositorCounters,
    pub(crate) clients: usize,
    /// The newest frame the host has taken (frame callbacks of it and older fire).
    pub(crate) last_acquired_seq: u64,
    log: VecDeque<String>,
    /// Frames replaced before the host took them, since the last present (their presentation
    /// feedback says `discarded`).
    pub(crate) skipped_seqs: Vec<u64>,
}

impl Committed {
    /// The client buffer this frame holds, if it is read in place.
    pub(crate) fn shm(&self) -> Option<&WlBuffer> {
        match &self.source {
            Source::Shm(b) => Some(b),
            Source::Composed(_) => None,
        }
    }
}

impl Inner {
    /// Whether `buffer` is still pending or held (so must not be released).
    pub(crate) fn uses(&self, buffer: &WlBuffer) -> bool {
        self.pending.as_ref().and_then(Committed::shm) == Some(buffer)
            || self.held.as_ref().and_then(Committed::shm) == Some(buffer)
    }

    pub(crate) fn log(&mut self, line: String) {
        if self.log.len() >= LOG_CAP {
            self.log.pop_front();
            self.counters.log_dropped += 1;
        }
        self.log.push_back(line);
    }

    pub(crate) fn take_log(&mut self) -> Vec<String> {
        self.log.drain(..).collect()
    }

    pub(crate) fn note_acquired(&mut self, seq: u64) {
        self.last_acquired_seq = self.last_acquired_seq.max(seq);
    }

    pub(crate) fn note_skipped(&mut self, seq: u64) {
        push_capped(&mut self.skipped_seqs, seq);
    }

    /// Forgets the frames of a client that is gone: its buffers can no longer be read.
    pub(crate) fn drop_client(&mut self, client: &ClientId) {
        if self.pending.as_ref().is_some_and(|c| &c.client == client) {
            self.pending = None;
        }
        // The held frame stays: it is the standby slate the output repeats until another
        // client draws. Its pool stays mapped (the buffer's handle keeps smithay's pool alive)
        // and is read under the same SIGBUS guard; it goes when a newer frame is taken.
    }
}

fn push_capped(v: &mut Vec<u64>, seq: u64) {
    if v.len() >= SEQ_CAP {
        v.remove(0);
    }
    v.push(seq);
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub(crate) cond: Condvar,
    /// Input dropped by the senders (outside the mutex: senders never wait).
    pub(crate) input_dropped: AtomicU64,
    /// The current [`crate::PointerGrab`], as its `to_u8`.
    pub(crate) grab: AtomicU8,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

//! What the output clock needs from a game session, whatever kind of game it is.
//!
//! Today every game speaks crosscast's protocol ([`IpcFeed`]: a [`HostSession`] and its
//! [`FrameConsumer`]); a compositor for unmodified Wayland games is the next kind. The output
//! clock only sees this trait, so a new kind of session plugs in without touching the clock.

use std::time::Duration;

use crosscast_ipc::{FrameConsumer, FrameView, HostCounters, HostSession};
use crosscast_wire::AudioBlock;

use crate::HostError;

/// One game session as the output clock sees it: its newest frame, the frame it holds, its
/// audio, and whether it has ended.
pub trait GameFeed {
    /// The session's id, for log lines.
    fn id(&self) -> u64;

    /// Blocks up to `timeout` until a frame is ready to acquire; used only before the stream
    /// has its first frame (afterwards the clock never waits for a game).
    fn wait_frame(&mut self, timeout: Duration) -> bool;

    /// Takes the newest frame queued since the last call and holds it (the frame held before
    /// goes back to the game); `None` when nothing new came.
    fn acquire(&mut self) -> Result<Option<FrameView<'_>>, HostError>;

    /// The frame last acquired, still held: what the output repeats while nothing new comes.
    /// It stays readable after the session ended.
    fn held(&self) -> Option<FrameView<'_>>;

    /// Moves the audio blocks received since the last call to the end of `out`.
    fn drain_audio(&mut self, out: &mut Vec<AudioBlock>);

    /// Why the session ended, once it has.
    fn closed(&self) -> Option<String>;

    /// The session's counters so far.
    fn counters(&self) -> HostCounters;

    /// Ends the session if it is still open and returns its final counters; afterwards
    /// [`held`](GameFeed::held) still shows the last frame.
    fn finish(&mut self) -> HostCounters;
}

/// A game on crosscast's own protocol: the session (validated messages, audio, counters) and
/// the consumer end of its frame queue.
pub struct IpcFeed {
    session: Option<HostSession>,
    consumer: FrameConsumer,
    id: u64,
    final_counters: HostCounters,
}

impl IpcFeed {
    /// Wraps a session whose consumer has not been taken yet; `None` if it has (a session has
    /// one consumer, and a feed without frames is no feed).
    pub fn new(mut session: HostSession) -> Option<IpcFeed> {
        let consumer = session.consumer()?;
        Some(IpcFeed {
            id: session.session_id(),
            session: Some(session),
            consumer,
            final_counters: HostCounters::default(),
        })
    }
}

impl GameFeed for IpcFeed {
    fn id(&self) -> u64 {
        self.id
    }

    fn wait_frame(&mut self, timeout: Duration) -> bool {
        self.consumer.wait_frame(timeout)
    }

    fn acquire(&mut self) -> Result<Option<FrameView<'_>>, HostError> {
        Ok(self.consumer.acquire()?)
    }

    fn held(&self) -> Option<FrameView<'_>> {
        self.consumer.held()
    }

    fn drain_audio(&mut self, out: &mut Vec<AudioBlock>) {
        if let Some(s) = &self.session {
            s.drain_audio(out);
        }
    }

    fn closed(&self) -> Option<String> {
        match &self.session {
            Some(s) => s.closed().map(|e| e.to_string()),
            None => Some("finished".into()),
        }
    }

    fn counters(&self) -> HostCounters {
        match &self.session {
            Some(s) => s.counters(),
            None => self.final_counters.clone(),
        }
    }

    fn finish(&mut self) -> HostCounters {
        if let Some(s) = self.session.take() {
            self.final_counters = s.close();
        }
        self.final_counters.clone()
    }
}

//! What the output clock needs from a game session, whatever kind of game it is.
//!
//! Today every game speaks crosscast's protocol ([`IpcFeed`]: a [`HostSession`] and its
//! [`FrameConsumer`]); a compositor for unmodified Wayland games is the next kind. The output
//! clock only sees this trait, so a new kind of session plugs in without touching the clock.

use std::time::Duration;

use crosscast_ipc::{FrameConsumer, FrameView, HostCounters, HostSession};
use crosscast_wire::AudioBlock;

use crate::HostError;

/// What [`GameFeed::with_held`]'s closure returns: the sink's verdict on the frame.
pub type ShowResult<T = ()> = Result<T, HostError>;

/// Which frame was just acquired and when: what the clock needs before it shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStamp {
    /// The game's sequence number.
    pub seq: u64,
    /// The game's presentation time (CLOCK_MONOTONIC ns).
    pub pts_ns: u64,
    /// When the host had it (CLOCK_MONOTONIC ns).
    pub received_ns: u64,
}

impl FrameStamp {
    /// The stamp of a frame view.
    pub fn of(view: &FrameView<'_>) -> FrameStamp {
        FrameStamp {
            seq: view.seq,
            pts_ns: view.pts_ns,
            received_ns: view.received_ns,
        }
    }
}

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
    fn acquire(&mut self) -> Result<Option<FrameStamp>, HostError>;

    /// Calls `show` with the frame last acquired, read in place: what the output shows, and
    /// repeats while nothing new comes. It stays readable after the session ended. Returns
    /// false (without calling `show`) when no frame is held or it can no longer be read.
    ///
    /// A closure rather than a borrowed view because some frames are readable only inside a
    /// guard: a Wayland client's `wl_shm` pool is read under a SIGBUS guard and a lock.
    fn with_held(&self, show: &mut dyn FnMut(&FrameView<'_>) -> ShowResult) -> ShowResult<bool>;

    /// The output showed frame `output_frame` at `now_ns` (CLOCK_MONOTONIC): a game paced by
    /// the host (a Wayland client waiting for its frame callback) may draw its next frame.
    fn presented(&self, output_frame: u64, now_ns: u64) {
        let _ = (output_frame, now_ns);
    }

    /// Moves lines worth logging since the last call (a client connected, one was dropped for
    /// a protocol error) to the end of `out`.
    fn take_notes(&mut self, out: &mut Vec<String>) {
        let _ = out;
    }

    /// Where the streamer's input for this game goes, when it takes input: the window thread
    /// sends to it directly (never blocking), so no tick of the clock sits in between.
    fn input_sink(&self) -> Option<std::sync::Arc<dyn crosscast_input::InputSink>> {
        None
    }

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

/// Sound that belongs to the streaming game but comes on its own path, stamped on the host's
/// clock: the game's PulseAudio server. The output clock mixes it with the streaming feed's
/// blocks.
pub trait AudioSource: Send {
    /// Moves the blocks made since the last call to the end of `out`.
    fn drain_audio(&mut self, out: &mut Vec<AudioBlock>);

    /// Moves lines worth logging since the last call to the end of `out`.
    fn take_notes(&mut self, out: &mut Vec<String>) {
        let _ = out;
    }

    /// One line for the exit summary.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// A game on crosscast's own protocol: the session (validated messages, audio, counters) and
/// the consumer end of its frame queue.
pub struct IpcFeed {
    /// Where the streamer's input goes (sent only once the game asked for it).
    input: std::sync::Arc<IpcInput>,
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
            input: std::sync::Arc::new(IpcInput(session.input_sender())),
            id: session.session_id(),
            session: Some(session),
            consumer,
            final_counters: HostCounters::default(),
        })
    }
}

/// A session as an input sink: non-blocking sends on its socket (see `InputSender`).
struct IpcInput(crosscast_ipc::InputSender);

impl crosscast_input::InputSink for IpcInput {
    fn send(&self, input: &crosscast_wire::Input) -> crosscast_input::Delivery {
        match self.0.send(input) {
            crosscast_ipc::InputDelivery::Sent => crosscast_input::Delivery::Sent,
            crosscast_ipc::InputDelivery::Dropped => crosscast_input::Delivery::Dropped,
            crosscast_ipc::InputDelivery::NotWanted => crosscast_input::Delivery::NotWanted,
        }
    }
}

impl GameFeed for IpcFeed {
    fn id(&self) -> u64 {
        self.id
    }

    fn input_sink(&self) -> Option<std::sync::Arc<dyn crosscast_input::InputSink>> {
        Some(std::sync::Arc::clone(&self.input) as std::sync::Arc<dyn crosscast_input::InputSink>)
    }

    fn wait_frame(&mut self, timeout: Duration) -> bool {
        self.consumer.wait_frame(timeout)
    }

    fn acquire(&mut self) -> Result<Option<FrameStamp>, HostError> {
        Ok(self.consumer.acquire()?.as_ref().map(FrameStamp::of))
    }

    fn with_held(&self, show: &mut dyn FnMut(&FrameView<'_>) -> ShowResult) -> ShowResult<bool> {
        match self.consumer.held() {
            Some(view) => show(&view).map(|()| true),
            None => Ok(false),
        }
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

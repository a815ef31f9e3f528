//! The game's end of a session: maps the host's slots, draws into the ones it owns and queues
//! them, and sends audio blocks.
//!
//! ```text
//! dequeue() -> SlotWriter --draw into pixels()--> queue(writer, seq, pts) --FrameQueued--> host
//!      ^                                                                                    |
//!      +------------------------------ SlotReleased <---------------------------------------+
//! ```
//!
//! A [`SlotWriter`] owns its slot's mapping while the game draws, so drawing needs no lock and
//! the type system keeps the game from touching a slot it has queued.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crosscast_wire::{
    AudioBlock, AudioConfig, FrameQueued, Input, Message, SlotTable, SurfaceConfig,
};

use crate::channel::{Channel, Incoming};
use crate::input::InputQueue;
use crate::os::memfd::SealedMemfd;
use crate::{monotonic_ns, IpcError};

struct Surface {
    config: SurfaceConfig,
    table: SlotTable,
    /// `None` while the slot's mapping is out in a [`SlotWriter`].
    maps: Vec<Option<SealedMemfd>>,
}

struct State {
    surface: Option<Surface>,
    closed: Option<IpcError>,
    released: u64,
    input: InputQueue,
}

type Shared = crate::shared::Shared<State>;

/// One authenticated connection, from the game's side.
pub struct GameSession {
    shared: Arc<Shared>,
    channel: Channel,
    io: Option<JoinHandle<()>>,
    session_id: u64,
}

/// A slot the game owns and may draw into; give it back with [`GameSession::queue`].
pub struct SlotWriter {
    memfd: SealedMemfd,
    config: SurfaceConfig,
    slot: u8,
}

impl SlotWriter {
    /// The frame's pixels (RGBA, `stride × height`), straight in shared memory.
    pub fn pixels(&mut self) -> &mut [u8] {
        let len = self.config.frame_len();
        &mut self.memfd.as_mut_slice()[..len]
    }

    /// The configuration this slot belongs to.
    pub fn config(&self) -> &SurfaceConfig {
        &self.config
    }

    /// The slot index.
    pub fn slot(&self) -> u8 {
        self.slot
    }
}

impl GameSession {
    /// Starts the data phase of an authenticated connection.
    pub fn start(channel: Channel, session_id: u64) -> Result<GameSession, IpcError> {
        let shared = Arc::new(Shared::new(State {
            surface: None,
            closed: None,
            released: 0,
            input: InputQueue::default(),
        }));
        let io = {
            let shared = shared.clone();
            let channel = channel.clone();
            std::thread::Builder::new()
                .name("cc-game-io".into())
                .spawn(move || io_loop(&shared, &channel))
                .map_err(|e| crate::os::OsError::thread_spawn("spawn the game's I/O thread", &e))?
        };
        Ok(GameSession {
            shared,
            channel,
            io: Some(io),
            session_id,
        })
    }

    /// The session id the host assigned.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The current surface configuration, waiting up to `timeout` for the first one.
    pub fn wait_config(&self, timeout: Duration) -> Result<SurfaceConfig, IpcError> {
        let st = self.shared.lock();
        let st = self
            .shared
            .wait_while(st, timeout, |s| s.surface.is_none() && s.closed.is_none());
        if let Some(e) = &st.closed {
            return Err(e.clone());
        }
        st.surface
            .as_ref()
            .map(|s| s.config.clone())
            .ok_or(IpcError::Timeout("the host's surface configuration"))
    }

    /// The current configuration, if one has arrived.
    pub fn config(&self) -> Option<SurfaceConfig> {
        self.shared
            .lock()
            .surface
            .as_ref()
            .map(|s| s.config.clone())
    }

    /// Takes a free slot to draw into, waiting up to `timeout` for the host to release one.
    /// `Ok(None)` on timeout.
    pub fn dequeue(&self, timeout: Duration) -> Result<Option<SlotWriter>, IpcError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.closed {
                return Err(e.clone());
            }
            if let Some(surface) = st.surface.as_mut() {
                let free = surface
                    .table
                    .game_owned()
                    .find(|&i| surface.maps[usize::from(i)].is_some());
                if let Some(slot) = free {
                    if let Some(memfd) = surface.maps[usize::from(slot)].take() {
                        return Ok(Some(SlotWriter {
                            memfd,
                            config: surface.config.clone(),
                            slot,
                        }));
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            st = self.shared.wait(st, left);
        }
    }

    /// Hands a drawn slot to the host, then yields the CPU once. Returns `false` (and drops
    /// the frame) if the host has reconfigured the surface since the slot was dequeued.
    pub fn queue(&self, writer: SlotWriter, seq: u64, pts_ns: u64) -> Result<bool, IpcError> {
        let frame = FrameQueued {
            config_id: writer.config.config_id,
            slot: writer.slot,
            seq,
            pts_ns,
            sent_ns: 0,
        };
        {
            let mut st = self.shared.lock();
            if let Some(e) = &st.closed {
                return Err(e.clone());
            }
            let Some(surface) = st.surface.as_mut() else {
                return Ok(false);
            };
            if surface.config.config_id != writer.config.config_id {
                return Ok(false);
            }
            surface.table.queue(&frame)?;
            surface.maps[usize::from(writer.slot)] = Some(writer.memfd);
        }
        let frame = FrameQueued {
            sent_ns: monotonic_ns(),
            ..frame
        };
        self.channel.send(&Message::FrameQueued(frame))?;
        // The host's I/O thread polls for this frame around the time it is due, yielding
        // between polls; if it shares this CPU, a game that goes straight on to render the next
        // frame would keep the CPU for a whole scheduler slice (1.5 to 3 ms measured) before
        // the host sees this one. Yielding once lets it take the frame now; alone on the CPU,
        // the yield returns at once.
        std::thread::yield_now();
        Ok(true)
    }

    /// Announces the audio format; send before the first block.
    pub fn send_audio_config(&self, config: AudioConfig) -> Result<(), IpcError> {
        self.channel.send(&Message::AudioConfig(config))
    }

    /// Sends one audio block (its `sent_ns` is stamped here).
    pub fn send_audio(&self, mut block: AudioBlock) -> Result<(), IpcError> {
        block.sent_ns = monotonic_ns();
        self.channel.send(&Message::AudioBlock(block))
    }

    /// Asks the host for a new surface of this size; it arrives as a new configuration.
    pub fn request_resize(&self, width: u32, height: u32) -> Result<(), IpcError> {
        self.channel.send(&Message::Resize { width, height })
    }

    /// Asks the host to start (`true`) or stop sending the streamer's input. Until a game asks,
    /// the host sends none; asking again is harmless.
    pub fn want_input(&self, enabled: bool) -> Result<(), IpcError> {
        self.channel.send(&Message::WantInput { enabled })
    }

    /// Waits up to `timeout` for input to arrive; true when some is queued (or the session
    /// ended, which the next call that talks to the host reports). A game that draws on input,
    /// not only on its own clock, reacts a frame sooner.
    pub fn wait_input(&self, timeout: Duration) -> bool {
        let st = self.shared.lock();
        let st = self
            .shared
            .wait_while(st, timeout, |s| s.input.is_empty() && s.closed.is_none());
        !st.input.is_empty() || st.closed.is_some()
    }

    /// Moves every input event received since the last call into `out`, oldest first. The
    /// queue holds at most [`crate::INPUT_QUEUE_LEN`] events; take them every frame.
    pub fn take_input(&self, out: &mut Vec<Input>) {
        self.shared.lock().input.take(out);
    }

    /// Input events dropped because the queue was full (motion first, see
    /// [`crate::input`]).
    pub fn input_dropped(&self) -> u64 {
        self.shared.lock().input.dropped()
    }

    /// Slots the host has released so far.
    pub fn released(&self) -> u64 {
        self.shared.lock().released
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<IpcError> {
        self.shared.lock().closed.clone()
    }

    /// The channel, for tests that play a misbehaving game after a real handshake.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Ends the session with a goodbye.
    pub fn close(mut self) {
        let _ = self.channel.send(&Message::Goodbye {
            code: crosscast_wire::ErrorCode::Normal,
        });
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.channel.shutdown();
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

impl Drop for GameSession {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn io_loop(shared: &Shared, channel: &Channel) {
    let err = channel.serve(|| None, |msg| handle(shared, msg));
    let mut st = shared.lock();
    st.closed = Some(err);
    shared.cond.notify_all();
}

fn handle(shared: &Shared, msg: Incoming) -> Result<(), IpcError> {
    match Message::decode(&msg.bytes)? {
        Message::SurfaceConfig(config) => {
            if msg.fds.len() != usize::from(config.slot_count) {
                return Err(IpcError::Protocol(format!(
                    "surface config for {} slots came with {} fds",
                    config.slot_count,
                    msg.fds.len()
                )));
            }
            let maps = msg
                .fds
                .into_iter()
                .map(|fd| SealedMemfd::from_received(fd, config.slot_len as usize).map(Some))
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = shared.lock();
            st.surface = Some(Surface {
                table: SlotTable::new(config.config_id, config.slot_count),
                config,
                maps,
            });
            shared.cond.notify_all();
            Ok(())
        }
        Message::SlotReleased { config_id, slot } => {
            let mut st = shared.lock();
            if let Some(surface) = st.surface.as_mut() {
                if surface.config.config_id == config_id {
                    surface.table.release(config_id, slot)?;
                }
            }
            st.released += 1;
            shared.cond.notify_all();
            Ok(())
        }
        Message::Input(input) => {
            // Decoding validated every field; the host is trusted for the rest (it sends input
            // only when asked, but input arriving just after a `WantInput { enabled: false }`
            // crossed it on the wire, so it is queued, not refused).
            shared.lock().input.push(input);
            // A game waiting in `wait_input` draws now.
            shared.cond.notify_all();
            Ok(())
        }
        Message::Goodbye { code } => Err(IpcError::PeerClosed(format!("goodbye ({code:?})"))),
        Message::Error { code, reason } => Err(IpcError::Refused { code, reason }),
        other => Err(IpcError::Protocol(format!(
            "{:?} is not a message the host sends after the handshake",
            other.kind()
        ))),
    }
}

//! The host's end of a session: owns the frame slots, runs the BufferQueue and collects audio.
//!
//! # Who owns which slot when
//!
//! The host allocates the slots (sealed memfds) and sends them once per configuration; from then
//! on they belong to the game ([`crosscast_wire::SlotTable`]). A frame the game queues belongs
//! to the host: first *pending*, then *acquired* by the [`FrameConsumer`], which keeps reading
//! it (the output clock repeats it when the game is slow) until it acquires a newer frame; only
//! then is the older slot released back to the game. So the host holds at most one acquired
//! and, under `mailbox`, one pending slot; with three slots the game always has one to draw in.
//!
//! - `mailbox` (live default): a pending frame that is replaced before being acquired is
//!   released at once and counted as dropped; the game never waits for the host's work.
//! - `fifo` (lossless): pending frames queue up in order and the game waits for a free slot.
//!
//! All game input is validated on the session's I/O thread before it touches any state; a
//! violation sends an error to the game and closes this session only.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crosscast_wire::{
    AudioBlock, AudioConfig, FrameQueued, Message, PeerCred, PixelFormat, PixelOrder, QueuePolicy,
    SlotTable, SurfaceConfig,
};

use crate::arrival::ArrivalPredictor;
use crate::channel::{Channel, Incoming};
use crate::input::{InputCounters, InputSender, InputShared};
use crate::os::memfd::SealedMemfd;
use crate::os::process::{resource_usage, UsageOf};
use crate::stats::HostCounters;
use crate::{monotonic_ns, IpcError};

/// What the host offers a game and how much it lets it use.
#[derive(Debug, Clone, PartialEq)]
pub struct HostOptions {
    /// Initial frame width.
    pub width: u32,
    /// Initial frame height.
    pub height: u32,
    /// Frame slots per configuration.
    pub slots: u8,
    /// Queue policy.
    pub policy: QueuePolicy,
    /// Most bytes of slot memory one session may hold (slots × frame size).
    pub max_slot_memory: u64,
    /// Most audio the host buffers for a slow consumer before dropping the oldest blocks.
    pub audio_backlog: Duration,
    /// Audio or frame timestamps further than this from the host's clock are refused.
    pub max_clock_skew: Duration,
    /// Keep every frame's and audio block's handoff delay (game send → validated and held by
    /// the host) for benchmarks; at most [`MAX_RECORDED_DELAYS`] of each are kept.
    pub record_delays: bool,
    /// Nice value for the session's I/O thread (it only validates messages and hands slots
    /// back, so raising it costs nothing and keeps the game's handoff fast under load);
    /// ignored where the process may not raise priorities.
    pub io_nice: Option<i32>,
    /// Longest the I/O thread polls the socket without sleeping either side of the time the
    /// next frame is expected, so that handing a frame over costs no thread wake-up (see
    /// `arrival.rs`); at most `3 × busy_poll` of one core per frame and a quarter of the frame
    /// period, about 0.2 ms a frame for a steady game. Zero: always block.
    pub busy_poll: Duration,
}

/// Default [`HostOptions::busy_poll`]: wide enough for a game's wake-up jitter on a busy VM,
/// at most 9 % of one core at 60 fps; the window adapts to the game and costs about 1 % for a
/// steady one (`crosscast bench handoff`).
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(500);

/// Most raw delays a session records when asked to.
pub const MAX_RECORDED_DELAYS: usize = 1 << 20;

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            width: 1280,
            height: 720,
            slots: 3,
            policy: QueuePolicy::Mailbox,
            max_slot_memory: 512 << 20,
            audio_backlog: Duration::from_secs(2),
            max_clock_skew: Duration::from_secs(60),
            record_delays: false,
            io_nice: Some(-10),
            busy_poll: DEFAULT_BUSY_POLL,
        }
    }
}

struct Surface {
    config: SurfaceConfig,
    slots: Vec<Arc<SealedMemfd>>,
    table: SlotTable,
}

struct AudioState {
    config: Option<AudioConfig>,
    queue: VecDeque<AudioBlock>,
    queued_frames: u64,
    next_seq: Option<u64>,
    next_pts_ns: Option<u64>,
}

/// A queued frame the consumer has not acquired yet.
struct Pending {
    frame: FrameQueued,
    /// When the I/O thread had validated it and held its slot (CLOCK_MONOTONIC ns).
    received_ns: u64,
}

struct State {
    surface: Surface,
    pending: VecDeque<Pending>,
    acquired: Option<(u32, u8)>,
    audio: AudioState,
    counters: HostCounters,
    audio_delays_ns: Vec<u64>,
    frame_delays_ns: Vec<u64>,
    closed: Option<IpcError>,
}

type Shared = crate::shared::Shared<State>;

/// One authenticated game connection, from the host's side.
pub struct HostSession {
    shared: Arc<Shared>,
    input: Arc<InputShared>,
    /// The socket's send buffer size, read once for every [`InputSender`].
    sndbuf: usize,
    channel: Channel,
    io: Option<JoinHandle<()>>,
    session_id: u64,
    peer: PeerCred,
    consumer_taken: bool,
}

fn allocate(
    opts: &HostOptions,
    config_id: u32,
    width: u32,
    height: u32,
) -> Result<Surface, IpcError> {
    let stride = width * PixelFormat::Rgba8.bytes_per_pixel();
    let config = SurfaceConfig {
        config_id,
        width,
        height,
        stride,
        format: PixelFormat::Rgba8,
        slot_count: opts.slots,
        slot_len: u64::from(stride) * u64::from(height),
        policy: opts.policy,
    };
    config.validate()?;
    let total = config.slot_len * u64::from(opts.slots);
    if total > opts.max_slot_memory {
        return Err(IpcError::Limit(format!(
            "{width}x{height} needs {total} bytes of slots, limit {}",
            opts.max_slot_memory
        )));
    }
    let slots = (0..opts.slots)
        .map(|i| {
            SealedMemfd::create(
                &format!("crosscast-slot-{config_id}-{i}"),
                config.slot_len as usize,
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Surface {
        table: SlotTable::new(config_id, opts.slots),
        config,
        slots,
    })
}

fn send_config(channel: &Channel, surface: &Surface) -> Result<(), IpcError> {
    let fds: Vec<_> = surface.slots.iter().map(|s| s.as_fd()).collect();
    channel.try_send(&Message::SurfaceConfig(surface.config.clone()), &fds)
}

impl HostSession {
    /// Starts the data phase of an authenticated connection: allocates and sends the first
    /// surface, then reads the game's messages on a thread of its own.
    pub fn start(
        channel: Channel,
        opts: HostOptions,
        session_id: u64,
        peer: PeerCred,
    ) -> Result<HostSession, IpcError> {
        let surface = allocate(&opts, 1, opts.width, opts.height)?;
        send_config(&channel, &surface)?;
        let sndbuf = channel.socket().send_buffer_size()?;
        let input = Arc::new(InputShared::default());
        let shared = Arc::new(Shared::new(State {
            surface,
            pending: VecDeque::new(),
            acquired: None,
            audio: AudioState {
                config: None,
                queue: VecDeque::new(),
                queued_frames: 0,
                next_seq: None,
                next_pts_ns: None,
            },
            counters: HostCounters {
                configs_sent: 1,
                ..HostCounters::default()
            },
            audio_delays_ns: Vec::new(),
            frame_delays_ns: Vec::new(),
            closed: None,
        }));
        let io = {
            let shared = shared.clone();
            let channel = channel.clone();
            let input = input.clone();
            std::thread::Builder::new()
                .name(format!("cc-host-io-{session_id}"))
                .spawn(move || {
                    if let Some(n) = opts.io_nice {
                        // Best effort: unprivileged hosts keep the default priority.
                        let _ = crate::os::process::set_nice(n);
                    }
                    if !opts.busy_poll.is_zero() {
                        // Its timed sleeps end just before a frame is due; batching them
                        // with other timers (50 µs by default) would only make it wake
                        // earlier and poll longer. Best effort, like the nice value.
                        let _ = crate::os::process::set_timer_slack(Duration::from_micros(1));
                    }
                    io_loop(&shared, &channel, &opts, &input)
                })
                .map_err(|e| {
                    crate::os::OsError::thread_spawn("spawn the session's I/O thread", &e)
                })?
        };
        Ok(HostSession {
            shared,
            input,
            sndbuf,
            channel,
            io: Some(io),
            session_id,
            peer,
            consumer_taken: false,
        })
    }

    /// The session id agreed in the handshake.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The game's kernel credentials.
    pub fn peer(&self) -> PeerCred {
        self.peer
    }

    /// The frame consumer; there is exactly one per session.
    pub fn consumer(&mut self) -> Option<FrameConsumer> {
        if self.consumer_taken {
            return None;
        }
        self.consumer_taken = true;
        Some(FrameConsumer {
            shared: self.shared.clone(),
            channel: self.channel.clone(),
            held: None,
        })
    }

    /// A handle that delivers the streamer's input to this game from any thread, without
    /// ever blocking (see [`InputSender`]); as many as wanted, all sharing one set of counters.
    pub fn input_sender(&self) -> InputSender {
        InputSender::new(self.input.clone(), self.channel.downgrade(), self.sndbuf)
    }

    /// Whether the game currently asks for input ([`crosscast_wire::Message::WantInput`]).
    pub fn wants_input(&self) -> bool {
        self.input.wanted()
    }

    /// What this session's input senders have done so far.
    pub fn input_counters(&self) -> InputCounters {
        self.input.counters()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> HostCounters {
        self.shared.lock().counters.clone()
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<IpcError> {
        self.shared.lock().closed.clone()
    }

    /// The audio format the game announced, if any.
    pub fn audio_config(&self) -> Option<AudioConfig> {
        self.shared.lock().audio.config
    }

    /// The (frame, audio) handoff delays recorded so far, in ns (see
    /// [`HostOptions::record_delays`]).
    pub fn take_delays(&self) -> (Vec<u64>, Vec<u64>) {
        let mut st = self.shared.lock();
        (
            std::mem::take(&mut st.frame_delays_ns),
            std::mem::take(&mut st.audio_delays_ns),
        )
    }

    /// Moves every buffered audio block into `out`, oldest first.
    pub fn drain_audio(&self, out: &mut Vec<AudioBlock>) {
        let mut st = self.shared.lock();
        st.audio.queued_frames = 0;
        out.extend(st.audio.queue.drain(..));
    }

    /// Waits until the session closes or `timeout` passes; true if closed.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let st = self.shared.lock();
        let st = self.shared.wait_while(st, timeout, |s| s.closed.is_none());
        st.closed.is_some()
    }

    /// Ends the session: tells the game goodbye and stops the I/O thread.
    pub fn close(mut self) -> HostCounters {
        let _ = self.channel.send(&Message::Goodbye {
            code: crosscast_wire::ErrorCode::Normal,
        });
        self.shutdown();
        self.counters()
    }

    fn shutdown(&mut self) {
        self.channel.shutdown();
        if let Some(io) = self.io.take() {
            let _ = io.join();
        }
    }
}

impl Drop for HostSession {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn io_loop(shared: &Shared, channel: &Channel, opts: &HostOptions, input: &InputShared) {
    let arrivals = std::cell::RefCell::new(ArrivalPredictor::new(opts.busy_poll));
    let err = channel.serve(
        || arrivals.borrow_mut().wait(monotonic_ns()),
        |msg| handle(shared, channel, opts, &arrivals, input, msg),
    );
    // Senders on other threads see the end at once and stop quietly.
    input.set_wanted(false);
    let cpu = resource_usage(UsageOf::Thread).unwrap_or_default();
    let mut st = shared.lock();
    st.counters.io_cpu_ns = cpu.user_ns + cpu.system_ns;
    if !err.is_peer_end() {
        // Frames from a game that broke the protocol are not trusted, not even queued ones.
        st.pending.clear();
    }
    st.closed = Some(err);
    shared.cond.notify_all();
}

fn handle(
    shared: &Shared,
    channel: &Channel,
    opts: &HostOptions,
    arrivals: &std::cell::RefCell<ArrivalPredictor>,
    input: &InputShared,
    msg: Incoming,
) -> Result<(), IpcError> {
    if !msg.fds.is_empty() {
        return Err(IpcError::Protocol(format!(
            "the game sent {} fds; only the host passes fds",
            msg.fds.len()
        )));
    }
    let now = monotonic_ns();
    let skew = opts.max_clock_skew.as_nanos() as u64;
    let check_time = |what: &str, t: u64| {
        if t.abs_diff(now) > skew {
            Err(IpcError::Protocol(format!(
                "{what} {t} ns is {:.1} s away from the host clock",
                t.abs_diff(now) as f64 / 1e9
            )))
        } else {
            Ok(())
        }
    };
    match Message::decode(&msg.bytes)? {
        Message::FrameQueued(f) => {
            check_time("frame timestamp", f.pts_ns)?;
            let mut st = shared.lock();
            let current = st.surface.config.config_id;
            if f.config_id < current {
                // Drawn into a slot of a configuration the host has replaced: nothing to release.
                st.counters.frames_stale += 1;
                return Ok(());
            }
            st.surface.table.queue(&f)?;
            st.counters.frames_queued += 1;
            let received_ns = monotonic_ns();
            let mut arrivals = arrivals.borrow_mut();
            st.counters.frames_polled += u64::from(arrivals.polling());
            arrivals.frame_arrived(f.pts_ns, received_ns);
            drop(arrivals);
            let delay = received_ns.saturating_sub(f.sent_ns);
            st.counters.handoff.record(delay);
            if opts.record_delays && st.frame_delays_ns.len() < MAX_RECORDED_DELAYS {
                st.frame_delays_ns.push(delay);
            }
            let mut release = None;
            if opts.policy == QueuePolicy::Mailbox {
                if let Some(old) = st.pending.pop_front() {
                    st.surface
                        .table
                        .release(old.frame.config_id, old.frame.slot)?;
                    st.counters.frames_dropped += 1;
                    release = Some(old.frame);
                }
            }
            st.pending.push_back(Pending {
                frame: f,
                received_ns,
            });
            // Unlock before waking the consumer: woken under the lock, it would find the mutex
            // held, sleep on it and need a second wake-up when the lock is dropped.
            drop(st);
            shared.cond.notify_all();
            if let Some(old) = release {
                channel.try_send(
                    &Message::SlotReleased {
                        config_id: old.config_id,
                        slot: old.slot,
                    },
                    &[],
                )?;
            }
            Ok(())
        }
        Message::AudioConfig(c) => {
            let mut st = shared.lock();
            if st.audio.config.is_some_and(|old| old != c) && !st.audio.queue.is_empty() {
                return Err(IpcError::Protocol("audio format changed mid-stream".into()));
            }
            st.audio.config = Some(c);
            Ok(())
        }
        Message::AudioBlock(b) => {
            check_time("audio timestamp", b.pts_ns)?;
            let mut st = shared.lock();
            let Some(config) = st.audio.config else {
                return Err(IpcError::Protocol("audio block before audio config".into()));
            };
            if b.config != config {
                return Err(IpcError::Protocol(format!(
                    "audio block format {:?} differs from the announced {:?}",
                    b.config, config
                )));
            }
            let frames = b.frames() as u64;
            let rate = u64::from(config.sample_rate);
            let a = &mut st.audio;
            let seq_gap = a.next_seq.is_some_and(|s| s != b.seq);
            let one_sample = 1_000_000_000 / rate + 1;
            let (gap, overlap) = match a.next_pts_ns {
                Some(expected) if b.pts_ns > expected + one_sample => (true, false),
                Some(expected) if b.pts_ns + one_sample < expected => (false, true),
                _ => (false, false),
            };
            a.next_seq = Some(b.seq.wrapping_add(1));
            a.next_pts_ns = Some(b.pts_ns + frames * 1_000_000_000 / rate);
            a.queued_frames += frames;
            let sent_ns = b.sent_ns;
            a.queue.push_back(b);
            let limit = opts.audio_backlog.as_millis() as u64 * rate / 1000;
            let mut dropped = 0;
            while a.queued_frames > limit {
                match a.queue.pop_front() {
                    Some(old) => {
                        a.queued_frames -= old.frames() as u64;
                        dropped += 1;
                    }
                    None => break,
                }
            }
            let c = &mut st.counters;
            c.audio_blocks += 1;
            c.audio_seq_gaps += u64::from(seq_gap);
            c.audio_gaps += u64::from(gap);
            c.audio_overlaps += u64::from(overlap);
            c.audio_dropped += dropped;
            if opts.record_delays && st.audio_delays_ns.len() < MAX_RECORDED_DELAYS {
                st.audio_delays_ns
                    .push(monotonic_ns().saturating_sub(sent_ns));
            }
            shared.cond.notify_all();
            Ok(())
        }
        Message::Resize { width, height } => {
            let mut st = shared.lock();
            let next = st.surface.config.config_id + 1;
            let surface = allocate(opts, next, width, height)?;
            send_config(channel, &surface)?;
            st.counters.frames_stale += st.pending.len() as u64;
            st.pending.clear();
            st.surface = surface;
            st.counters.configs_sent += 1;
            Ok(())
        }
        Message::WantInput { enabled } => {
            // Any time after the handshake, as often as the game likes: it only flips a flag.
            input.set_wanted(enabled);
            Ok(())
        }
        Message::Goodbye { code } => Err(IpcError::PeerClosed(format!("goodbye ({code:?})"))),
        Message::Error { code, reason } => Err(IpcError::Refused { code, reason }),
        other => Err(IpcError::Protocol(format!(
            "{:?} is not a message the game may send after the handshake",
            other.kind()
        ))),
    }
}

/// An acquired frame, readable until the consumer acquires the next one.
#[derive(Debug)]
pub struct FrameView<'a> {
    /// `stride × height` bytes of 4-byte pixels (in `order`), straight from shared memory.
    pub data: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// The game's sequence number.
    pub seq: u64,
    /// The game's presentation time (CLOCK_MONOTONIC ns).
    pub pts_ns: u64,
    /// When the game queued it (CLOCK_MONOTONIC ns).
    pub sent_ns: u64,
    /// When the host's I/O thread had validated it and held its slot (CLOCK_MONOTONIC ns):
    /// the handoff ends here.
    pub received_ns: u64,
    /// When the host acquired it (CLOCK_MONOTONIC ns).
    pub acquired_ns: u64,
    /// The byte order of its pixels (crosscast slots are RGBA).
    pub order: PixelOrder,
}

struct Held {
    memfd: Arc<SealedMemfd>,
    config: SurfaceConfig,
    frame: FrameQueued,
    received_ns: u64,
    acquired_ns: u64,
}

/// The host side of the BufferQueue: acquires frames, holds the newest, releases the older.
pub struct FrameConsumer {
    shared: Arc<Shared>,
    channel: Channel,
    held: Option<Held>,
}

impl FrameConsumer {
    /// Waits until a frame is pending (true) or the session closed / `timeout` passed (false).
    pub fn wait_frame(&self, timeout: Duration) -> bool {
        let st = self.shared.lock();
        let st = self
            .shared
            .wait_while(st, timeout, |s| s.pending.is_empty() && s.closed.is_none());
        !st.pending.is_empty()
    }

    /// Acquires the next frame (the newest under mailbox, the oldest under fifo), releasing the
    /// one held before. `Ok(None)` when nothing new is pending; keep using [`Self::held`].
    pub fn acquire(&mut self) -> Result<Option<FrameView<'_>>, IpcError> {
        let mut st = self.shared.lock();
        let next = match st.surface.config.policy {
            QueuePolicy::Mailbox => {
                let newest = st.pending.pop_back();
                debug_assert!(
                    st.pending.is_empty(),
                    "mailbox keeps at most one pending frame"
                );
                newest
            }
            QueuePolicy::Fifo => st.pending.pop_front(),
        };
        let Some(Pending { frame, received_ns }) = next else {
            return Ok(None);
        };
        let mut release = None;
        if let Some((config_id, slot)) = st.acquired.take() {
            if config_id == st.surface.config.config_id {
                st.surface.table.release(config_id, slot)?;
                release = Some(Message::SlotReleased { config_id, slot });
            }
        }
        st.acquired = Some((frame.config_id, frame.slot));
        st.counters.frames_acquired += 1;
        let memfd = st.surface.slots[usize::from(frame.slot)].clone();
        let config = st.surface.config.clone();
        drop(st);
        // The frame is held from here; giving the older slot back is bookkeeping after that.
        let acquired_ns = monotonic_ns();
        if let Some(m) = release {
            // The game may already be gone; the frame we hold stays readable regardless.
            let _ = self.channel.try_send(&m, &[]);
        }
        self.held = Some(Held {
            memfd,
            config,
            frame,
            received_ns,
            acquired_ns,
        });
        Ok(self.held())
    }

    /// The frame currently held (the last one acquired), if any.
    pub fn held(&self) -> Option<FrameView<'_>> {
        self.held.as_ref().map(|h| FrameView {
            data: &h.memfd.as_slice()[..h.config.frame_len()],
            width: h.config.width,
            height: h.config.height,
            stride: h.config.stride as usize,
            seq: h.frame.seq,
            pts_ns: h.frame.pts_ns,
            sent_ns: h.frame.sent_ns,
            received_ns: h.received_ns,
            acquired_ns: h.acquired_ns,
            order: PixelOrder::Rgba,
        })
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<IpcError> {
        self.shared.lock().closed.clone()
    }
}

//! The game's PulseAudio server.
//!
//! The host listens on `$XDG_RUNTIME_DIR/pulse/native` inside the game's private runtime
//! directory and offers one sink, `crosscast` (48 kHz stereo). Every playback stream is
//! decoded, up-mixed to stereo and resampled to 48 kHz f32, then buffered per stream.
//!
//! The host's audio clock pulls: [`PulseServer::mix`] takes the next `frames` frames from
//! every running stream and sums them. Nothing here has a clock of its own: how fast the
//! host pulls is how fast games drain their buffers, so the host must call `mix` at real-time
//! pace (48 000 frames per second on average) and stamp the result with its own timeline.
//!
//! Resampling is band-limited sinc interpolation (rubato), in ~5 ms input chunks.
//!
//! The host stamps its blocks: before each `mix` it calls [`PulseServer::set_next_play`]
//! with the CLOCK_MONOTONIC time at which that block's first frame is heard. Latency
//! replies to clients and the write delays of [`PulseServer::take_write_delays`] are
//! measured against it.
//!
//! # Memory bound
//!
//! Everything a sandboxed client can make the server hold is bounded by [`Limits`]. With
//! the defaults, the worst case is about 57 MiB:
//! - per stream about 1 MB: its buffer is capped at `max_buffer_ms` (2 s) of 48 kHz stereo
//!   f32 = 768 000 bytes, allocated once with 8 KiB of slack, whatever the client's format
//!   (excess input is dropped before conversion); plus the resampler (its sinc table,
//!   ~64 KiB), ~40 KiB of conversion scratch (input is converted 4096 frames at a time)
//!   and at most 4096 write stamps (64 KiB). `max_streams_total` (32) streams: ~32 MB;
//! - per client about 1.5 MiB: one frame payload of at most `max_frame` (1 MiB) and an
//!   outbox of at most 512 replies and events (each under 1 KiB). `max_clients` (16)
//!   clients: ~24 MiB, plus two threads each (stacks are mostly untouched);
//! - shared: at most 65 536 write-delay samples (512 KiB) and 256 notes.
#![forbid(unsafe_code)]

mod client;
mod frame;
#[doc(hidden)]
pub mod fuzz;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Sample rate of everything [`PulseServer::mix`] returns.
pub const MIX_RATE: u32 = stream::OUT_RATE;
/// Channels of everything [`PulseServer::mix`] returns (interleaved).
pub const MIX_CHANNELS: usize = 2;

/// Errors of the PulseAudio server.
#[derive(Debug, thiserror::Error)]
pub enum PulseError {
    /// The socket could not be bound.
    #[error("cannot bind PulseAudio socket {path}")]
    Bind {
        /// Socket path we tried.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A socket or thread operation failed.
    #[error("PulseAudio server I/O")]
    Io(#[from] std::io::Error),
    /// A client sent something the protocol decoder rejected.
    #[error("PulseAudio protocol")]
    Protocol(#[from] pulseaudio::protocol::ProtocolError),
    /// A client announced a frame bigger than [`Limits::max_frame`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A client broke the protocol in a way we do not tolerate.
    #[error("client protocol violation: {0}")]
    Violation(&'static str),
}

/// Bounds on what one client can make the server hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest frame payload accepted; bigger disconnects the client.
    pub max_frame: u32,
    /// Playback streams per client; a client refused more often than this is flooding
    /// and is disconnected.
    pub max_streams: usize,
    /// Playback streams over all clients; beyond it creation is refused.
    pub max_streams_total: usize,
    /// Clients connected at once; more are refused.
    pub max_clients: usize,
    /// Cap on a stream's `maxlength` (client bytes); bounds its buffer.
    pub max_stream_bytes: u32,
    /// Cap on a stream's buffer as a duration, whatever its format: a `maxlength` of
    /// 8-bit mono 8 kHz grows 48-fold as 48 kHz stereo f32, so bytes alone do not bound memory.
    pub max_buffer_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // libpulse never sends frames above 64 KiB of audio or a few KiB of commands.
            max_frame: 1 << 20,
            max_streams: 16,
            max_streams_total: 32,
            max_clients: 16,
            max_stream_bytes: 1 << 20,
            max_buffer_ms: 2_000,
        }
    }
}

/// Counters and gauges of the server, for the host's diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PulseStats {
    /// Clients connected now.
    pub clients: usize,
    /// Playback streams now, over all clients.
    pub streams: usize,
    /// Clients disconnected for misbehaviour since start (protocol errors, violations,
    /// oversized frames, decoder panics, not reading their socket, stream floods).
    pub clients_dropped: u64,
    /// Connections refused because `max_clients` were connected.
    pub clients_refused: u64,
    /// `CreatePlaybackStream` requests refused (unsupported spec or a stream limit).
    pub streams_refused: u64,
    /// 48 kHz frames returned by [`PulseServer::mix`] since start.
    pub frames_mixed: u64,
    /// Bytes read from client sockets since start (frame headers and payloads).
    pub bytes_received: u64,
    /// Write-delay samples lost because their queue was full (see
    /// [`PulseServer::take_write_delays`]).
    pub write_delays_dropped: u64,
}

/// Notes kept for the host before the oldest are dropped (and counted).
const MAX_NOTES: usize = 256;

/// Log-worthy lines waiting for [`PulseServer::take_notes`].
#[derive(Default)]
struct Notes {
    lines: VecDeque<String>,
    /// Lines dropped because the queue was full.
    dropped: u64,
}

impl Notes {
    /// Queues `line` (and logs it), or counts it if the host has not collected in a while.
    fn push(&mut self, line: String) {
        log::info!("pulse: {line}");
        if self.lines.len() >= MAX_NOTES {
            self.dropped += 1;
        } else {
            self.lines.push_back(line);
        }
    }

    fn take(&mut self, out: &mut Vec<String>) {
        out.extend(self.lines.drain(..));
        if self.dropped > 0 {
            out.push(format!("{} more notes dropped", self.dropped));
            self.dropped = 0;
        }
    }
}

/// Where time comes from: CLOCK_MONOTONIC in nanoseconds, replaceable in tests.
type Clock = fn() -> u64;

/// CLOCK_MONOTONIC in nanoseconds, the clock the host stamps its audio timeline with.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// State shared by the accept thread, the client threads and `mix`.
struct Shared {
    limits: Limits,
    clients: HashMap<u64, client::Slot>,
    /// Monotonic ns at which the first frame of the next `mix` is heard; `None` until the
    /// host says so.
    next_play: Option<u64>,
    clock: Clock,
    notes: Notes,
    delays: stream::Delays,
    /// Cumulative counters; the gauges of [`PulseStats`] are computed on demand.
    stats: PulseStats,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    // A panic elsewhere while holding the lock leaves consistent-enough state: the worst
    // case is one client's stream half-updated, which its next message fixes or kills.
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running PulseAudio server on a unix socket.
pub struct PulseServer {
    shared: SharedRef,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// The listening socket, shut down on drop to wake the accept thread.
    wake: Option<UnixListener>,
}

impl PulseServer {
    /// Binds `socket_path` (replacing a stale socket) and serves clients on background threads.
    pub fn start(socket_path: &Path, limits: Limits) -> Result<PulseServer, PulseError> {
        Self::start_with_clock(socket_path, limits, monotonic_ns)
    }

    /// `start` with an injected clock (tests drive time by hand).
    fn start_with_clock(
        socket_path: &Path,
        limits: Limits,
        clock: Clock,
    ) -> Result<PulseServer, PulseError> {
        if socket_path.exists() {
            // Only a leftover socket from an earlier run can be here; a live one would mean
            // two hosts for one game, which the sandbox layout rules out.
            let _ = std::fs::remove_file(socket_path);
        }
        let listener = UnixListener::bind(socket_path).map_err(|source| PulseError::Bind {
            path: socket_path.to_owned(),
            source,
        })?;
        let shared = Arc::new(Mutex::new(Shared {
            limits,
            clients: HashMap::new(),
            next_play: None,
            clock,
            notes: Notes::default(),
            delays: stream::Delays::default(),
            stats: PulseStats::default(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let wake = listener.try_clone().ok();
        let accept = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("pulse-accept".into())
                .spawn(move || accept_loop(listener, shared, stop))?
        };
        Ok(PulseServer {
            shared,
            path: socket_path.to_owned(),
            stop,
            accept: Some(accept),
            wake,
        })
    }

    /// Mixes the next `frames` 48 kHz stereo frames of all running streams into `out`.
    ///
    /// `out` is cleared and filled with `frames * 2` interleaved samples (silence where no
    /// stream plays). Each stream's read counter advances by what it contributed, which
    /// drives its `Request`s, underflow and drain notifications and its latency replies.
    /// Call at real-time pace, after [`PulseServer::set_next_play`] for this block. Samples
    /// are not clipped.
    pub fn mix(&self, frames: usize, out: &mut Vec<f32>) {
        out.clear();
        out.resize(frames * MIX_CHANNELS, 0.0);
        let mut g = lock(&self.shared);
        let Shared {
            clients,
            next_play,
            delays,
            stats,
            ..
        } = &mut *g;
        for slot in clients.values_mut() {
            slot.mix(out, *next_play, delays);
        }
        stats.frames_mixed += frames as u64;
    }

    /// Sets the CLOCK_MONOTONIC time (ns) at which the first frame of the next `mix` is heard.
    ///
    /// Latency replies then tell clients `sink_usec = next_play - now` (at reply time, not
    /// below 0), and write delays are measured against it.
    pub fn set_next_play(&self, ns: u64) {
        lock(&self.shared).next_play = Some(ns);
    }

    /// Moves the log-worthy lines collected since the last call into `out` (clients
    /// connecting and dropping with their reason, refused streams and connections).
    ///
    /// At most 256 lines are kept between calls; beyond that a final "N more notes dropped"
    /// line says how many were lost.
    pub fn take_notes(&self, out: &mut Vec<String>) {
        lock(&self.shared).notes.take(out);
    }

    /// Moves the audio-path delays measured since the last call into `out`, in ns.
    ///
    /// One sample per client write whose first frame has been mixed: the time from the
    /// write's arrival to that frame's place on the host timeline (the `next_play` of the
    /// block that mixed it, plus the frame's offset in the block). Writes mixed before any
    /// `set_next_play`, or discarded by a flush, give no sample. At most 65 536 samples are
    /// kept between calls; the rest are counted in [`PulseStats::write_delays_dropped`].
    pub fn take_write_delays(&self, out: &mut Vec<u64>) {
        out.append(&mut lock(&self.shared).delays.samples);
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> PulseStats {
        let g = lock(&self.shared);
        PulseStats {
            clients: g.clients.len(),
            streams: g.clients.values().map(client::Slot::stream_count).sum(),
            write_delays_dropped: g.delays.dropped,
            ..g.stats
        }
    }

    /// Number of connected clients (for tests and diagnostics).
    pub fn client_count(&self) -> usize {
        lock(&self.shared).clients.len()
    }

    /// Number of playback streams over all clients (for tests and diagnostics).
    pub fn stream_count(&self) -> usize {
        lock(&self.shared)
            .clients
            .values()
            .map(client::Slot::stream_count)
            .sum()
    }

    /// The socket path served.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PulseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees `stop`: shutting a listening socket
        // down makes Linux fail its `accept`. (Connecting to the path would not do: the
        // game's runtime directory may already be gone.)
        if let Some(l) = &self.wake {
            let _ = rustix::net::shutdown(l, rustix::net::Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for slot in lock(&self.shared).clients.values() {
            slot.shutdown();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, shared: SharedRef, stop: Arc<AtomicBool>) {
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                log::warn!("pulse: accept failed: {e}");
                continue;
            }
        };
        next_id += 1;
        if let Err(e) = client::spawn(next_id, conn, shared.clone()) {
            log::warn!("pulse: client {next_id} not started: {e}");
        }
    }
}

#[cfg(test)]
mod tests;

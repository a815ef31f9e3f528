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
#![forbid(unsafe_code)]

mod client;
mod stream;

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Playback streams per client.
    pub max_streams: usize,
    /// Clients connected at once; more are refused.
    pub max_clients: usize,
    /// Cap on a stream's `maxlength` (client bytes); bounds its buffer.
    pub max_stream_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // libpulse never sends frames above 64 KiB of audio or a few KiB of commands.
            max_frame: 1 << 20,
            max_streams: 16,
            max_clients: 16,
            max_stream_bytes: 1 << 20,
        }
    }
}

/// State shared by the accept thread, the client threads and `mix`.
struct Shared {
    limits: Limits,
    clients: HashMap<u64, client::Slot>,
    /// Reported as the sink latency to clients.
    sink_usec: u64,
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
}

impl PulseServer {
    /// Binds `socket_path` (replacing a stale socket) and serves clients on background threads.
    pub fn start(socket_path: &Path, limits: Limits) -> Result<PulseServer, PulseError> {
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
            sink_usec: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
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
        })
    }

    /// Mixes the next `frames` 48 kHz stereo frames of all running streams into `out`.
    ///
    /// `out` is cleared and filled with `frames * 2` interleaved samples (silence where no
    /// stream plays). Each stream's read counter advances by what it contributed, which
    /// drives its `Request`s, underflow and drain notifications and its latency replies.
    /// Call at real-time pace; the caller owns timestamps. Samples are not clipped.
    pub fn mix(&self, frames: usize, out: &mut Vec<f32>) {
        out.clear();
        out.resize(frames * MIX_CHANNELS, 0.0);
        let mut g = lock(&self.shared);
        for slot in g.clients.values_mut() {
            slot.mix(out);
        }
    }

    /// Sets the delay from `mix` to the listener, reported to clients as sink latency.
    pub fn set_sink_latency(&self, latency: Duration) {
        lock(&self.shared).sink_usec = latency.as_micros().min(u128::from(u64::MAX)) as u64;
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
        // Wake the blocking accept so the thread sees `stop`.
        let _ = UnixStream::connect(&self.path);
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

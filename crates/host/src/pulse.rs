//! The game's own sound from any program: the host's PulseAudio server
//! ([`crosscast_pulse`]) for one game, and the pump that pulls its mix onto the stream.
//!
//! The server has no clock: a playback stream drains exactly as fast as someone calls
//! `mix`. The pump is that someone. Every [`BLOCK`] on an absolute CLOCK_MONOTONIC schedule
//! it mixes one block and stamps it with its scheduled time, the moment its first sample is
//! "heard". The output clock then places the block on the stream timeline by that stamp, as
//! it does a native game's blocks, and sums it with them ([`crate::mix`]).
//!
//! Latency replies follow the same schedule (`set_next_play`), so a client that keeps its own
//! A/V sync from them (SDL, OpenAL, GStreamer) computes exactly where its samples land.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crosscast_ipc::os::process::monotonic_ns;
use crosscast_pulse::{Limits, PulseServer, MIX_CHANNELS, MIX_RATE};
use crosscast_wire::{AudioBlock, AudioConfig, SampleFormat};

use crate::feed::AudioSource;
use crate::HostError;

/// How much the pump mixes at a time: small enough that a client's write reaches the stream
/// soon, large enough that the pump wakes only 100 times a second.
pub const BLOCK: Duration = Duration::from_millis(10);

/// Blocks waiting for the output clock (one second); older ones go first. The clock drains
/// every output frame, so only a stream that has not started yet fills this.
const QUEUE_BLOCKS: usize = 100;

/// A pump that wakes this late has been stopped (a suspended machine, a debugger): it
/// restarts its schedule at now instead of mixing the backlog in a burst.
const RESYNC_AFTER: Duration = Duration::from_secs(1);

/// Where a game's PulseAudio clients look for the server: `$XDG_RUNTIME_DIR/pulse/native`.
pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("pulse").join("native")
}

/// State shared by the pump and the output clock's side.
struct Queue {
    blocks: VecDeque<AudioBlock>,
    /// Blocks dropped because nobody drained them (before the stream started).
    overflowed: u64,
}

/// The game's PulseAudio server and its pump: an [`AudioSource`] for the output clock.
pub struct PulseSource {
    server: Arc<PulseServer>,
    queue: Arc<Mutex<Queue>>,
    stop: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
    /// Pump restarts after a stall, for the summary.
    resyncs: Arc<AtomicU64>,
}

impl PulseSource {
    /// Serves PulseAudio at [`socket_path`]`(runtime_dir)` (making `pulse/`, mode 0700) and
    /// starts pulling its mix at real-time pace.
    pub fn start(runtime_dir: &Path, limits: Limits) -> Result<PulseSource, HostError> {
        let path = socket_path(runtime_dir);
        if let Some(dir) = path.parent() {
            make_private_dir(dir)?;
        }
        let server = Arc::new(PulseServer::start(&path, limits)?);
        let queue = Arc::new(Mutex::new(Queue {
            blocks: VecDeque::new(),
            overflowed: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let resyncs = Arc::new(AtomicU64::new(0));
        let pump = {
            let (server, queue, stop, resyncs) = (
                Arc::clone(&server),
                Arc::clone(&queue),
                Arc::clone(&stop),
                Arc::clone(&resyncs),
            );
            std::thread::Builder::new()
                .name("cc-pulse-pump".into())
                .spawn(move || pump(&server, &queue, &stop, &resyncs))
                .map_err(|source| HostError::Thread {
                    name: "PulseAudio pump",
                    source,
                })?
        };
        Ok(PulseSource {
            server,
            queue,
            stop,
            pump: Some(pump),
            resyncs,
        })
    }

    /// The server (its socket path, stats and the benchmark's write delays).
    pub fn server(&self) -> &PulseServer {
        &self.server
    }

    /// Blocks dropped because nobody drained them, and pump restarts after stalls.
    pub fn losses(&self) -> (u64, u64) {
        let q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        (q.overflowed, self.resyncs.load(Ordering::Relaxed))
    }
}

fn make_private_dir(dir: &Path) -> Result<(), HostError> {
    use std::os::unix::fs::DirBuilderExt;
    let made = std::fs::DirBuilder::new().mode(0o700).create(dir);
    match made {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(source) => Err(HostError::PulseDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// The pump's loop: one block per [`BLOCK`], stamped with its place on the schedule.
fn pump(server: &PulseServer, queue: &Mutex<Queue>, stop: &AtomicBool, resyncs: &AtomicU64) {
    let block_ns = BLOCK.as_nanos() as u64;
    let frames = (u64::from(MIX_RATE) * block_ns / 1_000_000_000) as usize;
    let config = AudioConfig {
        sample_rate: MIX_RATE,
        channels: MIX_CHANNELS as u8,
        format: SampleFormat::F32,
    };
    let mut mixed = Vec::with_capacity(frames * MIX_CHANNELS);
    let mut t0 = monotonic_ns();
    let mut k = 0u64;
    let mut seq = 0u64;
    server.set_next_play(t0);
    while !stop.load(Ordering::Relaxed) {
        let due = t0 + k * block_ns;
        let now = monotonic_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
            continue;
        }
        if now - due > RESYNC_AFTER.as_nanos() as u64 {
            resyncs.fetch_add(1, Ordering::Relaxed);
            t0 = now;
            k = 0;
            server.set_next_play(t0);
            continue;
        }
        // The first frame of this block is heard at `due`; after it, the next one at the
        // next block's time. Latency replies between the two calls are at most a block off.
        server.set_next_play(due);
        server.mix(frames, &mut mixed);
        server.set_next_play(due + block_ns);
        let data = mixed.iter().flat_map(|s| s.to_le_bytes()).collect();
        let block = AudioBlock {
            seq,
            pts_ns: due,
            sent_ns: monotonic_ns(),
            config,
            data,
        };
        seq += 1;
        k += 1;
        let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.blocks.len() >= QUEUE_BLOCKS {
            q.blocks.pop_front();
            q.overflowed += 1;
        }
        q.blocks.push_back(block);
    }
}

impl AudioSource for PulseSource {
    fn drain_audio(&mut self, out: &mut Vec<AudioBlock>) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend(q.blocks.drain(..));
    }

    fn take_notes(&mut self, out: &mut Vec<String>) {
        let start = out.len();
        self.server.take_notes(out);
        for n in &mut out[start..] {
            n.insert_str(0, "pulse: ");
        }
    }

    fn summary(&self) -> Option<String> {
        let s = self.server.stats();
        let (overflowed, resyncs) = self.losses();
        Some(format!(
            "game audio (PulseAudio): {:.1} s mixed, {} clients dropped for misbehaving, \
             {} blocks unclaimed, {} pump restarts",
            s.frames_mixed as f64 / f64::from(MIX_RATE),
            s.clients_dropped,
            overflowed,
            resyncs
        ))
    }
}

impl Drop for PulseSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
    }
}

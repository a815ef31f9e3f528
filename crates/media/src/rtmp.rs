//! One RTMP output: its own thread, a bounded packet queue, reconnect with exponential backoff.
//!
//! The encoder thread only ever `try_send`s into the queue, so a slow or dead server can never
//! hold up encoding or the local recordings. Every (re)connection is a fresh FLV session: the
//! header carries the codec extradata again, the session starts at the next video keyframe, and
//! its timestamps are rebased to start at zero there.

use crate::config::RtmpUrl;
use crate::ffi_io::IoWatch;
use crate::mux::{EncodedPacket, Kind, Muxer, StreamSetup};
use crate::stats::{OutputShared, OutputState};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use ffmpeg_next as ff;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First retry delay; doubles per failed attempt.
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest retry delay: short enough that a returning ingest gets the stream back within 2 s
/// (a refused connect costs nothing, so retrying this often is cheap).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(1500);
/// Packets (audio + video) an RTMP output may have waiting, about 4 s at 60 fps.
pub(crate) const QUEUE_PACKETS: usize = 512;

/// The socket send buffer for a stream of `kbps` (audio and video): half a second of it, at
/// least 64 KiB (the kernel doubles what it is given). Linux would otherwise grow it to
/// megabytes, where a squeezed link hides seconds of stream that adaptive bitrate cannot see
/// (it watches our queue) and the viewers get late; half a second still covers the
/// bandwidth-delay product of any link that carries the stream at full rate with under
/// 500 ms of round trip.
pub(crate) fn send_buffer_bytes(kbps: u32) -> usize {
    (kbps as usize * 1000 / 8 / 2).max(64 << 10)
}

enum SessionEnd {
    /// The encoder finished; the trailer was written.
    Finished,
    /// Writing failed; reconnect.
    Failed(String),
}

pub(crate) fn run(
    url: RtmpUrl,
    setup: StreamSetup,
    rx: Receiver<Arc<EncodedPacket>>,
    shared: Arc<OutputShared>,
    watch: Arc<IoWatch>,
    send_buffer: usize,
) {
    let mut backoff = BACKOFF_START;
    let mut attempt = 0u32;
    let mut sessions = 0u64;
    loop {
        if watch.aborted() {
            shared.set_state(OutputState::Finished);
            return;
        }
        match connect(&url, &setup, &watch, send_buffer) {
            Ok(mux) => {
                sessions += 1;
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if sessions > 1 {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                attempt = 0;
                backoff = BACKOFF_START;
                shared.set_state(OutputState::Live);
                match send_loop(mux, &rx, &shared, &watch) {
                    SessionEnd::Finished => {
                        shared.set_state(OutputState::Finished);
                        return;
                    }
                    SessionEnd::Failed(e) => {
                        attempt += 1;
                        shared.set_state(OutputState::Reconnecting {
                            attempt,
                            last_error: e,
                        });
                    }
                }
            }
            Err(e) => {
                attempt += 1;
                shared.set_state(OutputState::Reconnecting {
                    attempt,
                    last_error: e,
                });
            }
        }
        // Wait out the backoff while draining the queue, so the encoder never sees it full
        // because of us and so we resume with fresh packets.
        let deadline = Instant::now() + backoff;
        loop {
            match rx.recv_deadline(deadline) {
                Ok(p) => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    shared.left_queue(p.dts_us());
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    shared.set_state(OutputState::Finished);
                    return;
                }
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Describes a failed FFmpeg call, naming the timeout when that is what stopped it.
fn io_error(what: &str, e: impl std::fmt::Display, watch: &IoWatch) -> String {
    if watch.timed_out() {
        format!(
            "{what}: no progress for {:.1} s (server not answering)",
            watch.timeout().as_secs_f64()
        )
    } else {
        format!("{what}: {e}")
    }
}

fn connect(
    url: &RtmpUrl,
    setup: &StreamSetup,
    watch: &Arc<IoWatch>,
    send_buffer: usize,
) -> Result<Muxer, String> {
    // A bounded socket send buffer (see `send_buffer_bytes`), passed down to FFmpeg's tcp.
    let mut io_opts = ff::Dictionary::new();
    io_opts.set("send_buffer_size", &send_buffer.to_string());
    let mut mux_opts = ff::Dictionary::new();
    // A live stream cannot seek back to patch duration and size into the header.
    mux_opts.set("flvflags", "no_duration_filesize");
    // If audio stops arriving, send video after 1 s instead of the default 10 s of waiting
    // for packets to interleave with.
    mux_opts.set("max_interleave_delta", "1000000");
    watch.begin();
    let r = Muxer::open(
        url.as_str(),
        "flv",
        io_opts,
        mux_opts,
        setup,
        Some(watch.clone()),
    );
    watch.end();
    r.map_err(|e| io_error("connect failed", e, watch))
}

fn send_loop(
    mut mux: Muxer,
    rx: &Receiver<Arc<EncodedPacket>>,
    shared: &OutputShared,
    watch: &IoWatch,
) -> SessionEnd {
    let mut base_us: Option<i64> = None;
    // Packets queued while connecting: start from the newest keyframe among them, so the
    // session begins at once without a burst of stale GOPs.
    let mut backlog: Vec<Arc<EncodedPacket>> = Vec::new();
    while let Ok(p) = rx.try_recv() {
        if p.kind == Kind::Video && p.key {
            shared
                .dropped
                .fetch_add(backlog.len() as u64, Ordering::Relaxed);
            for old in backlog.drain(..) {
                shared.left_queue(old.dts_us());
            }
        }
        backlog.push(p);
    }
    let mut backlog = backlog.into_iter();
    loop {
        let next = match backlog.next() {
            Some(p) => Ok(p),
            None => rx.recv(),
        };
        let Ok(p) = next else {
            // The stream is over either way; a failed trailer only loses the end marker.
            watch.begin();
            let _ = mux.finish();
            watch.end();
            return SessionEnd::Finished;
        };
        let base = match base_us {
            Some(b) => b,
            None if p.kind == Kind::Video && p.key => {
                let b = p.dts_us().unwrap_or(0);
                base_us = Some(b);
                b
            }
            None => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.left_queue(p.dts_us());
                continue;
            }
        };
        // Audio encoded before the session's first keyframe would get a negative timestamp.
        if p.dts_us().is_some_and(|t| t < base) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            shared.left_queue(p.dts_us());
            continue;
        }
        watch.begin();
        let r = mux.write(&p, base);
        watch.end();
        shared.left_queue(p.dts_us());
        match r {
            Ok(n) => {
                shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => return SessionEnd::Failed(io_error("write failed", e, watch)),
        }
    }
}

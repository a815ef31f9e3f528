//! One push output (RTMP, RTMPS or SRT): its own thread, a bounded packet queue, reconnect with
//! exponential backoff.
//!
//! The encoder thread only ever `try_send`s into the queue, so a slow or dead server can never
//! hold up encoding or the local recordings. The loop is the same for every protocol; the URL
//! picks the muxer (FLV for RTMP, MPEG-TS for SRT) and the I/O options. Every (re)connection is
//! a fresh muxer session: FLV's header or MPEG-TS's PAT/PMT come first with the codec
//! parameters again, the session starts at the next video keyframe (which carries SPS/PPS for
//! MPEG-TS), and its timestamps are rebased to start at zero there, so a reader joining a new
//! session sees continuous timestamps from a decodable start.

use crate::config::{PushScheme, PushUrl};
use crate::ffi_io::{clear_log_errors, take_log_errors, IoWatch};
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
/// An SRT connect refused faster than this was answered (rejected) by the listener; libsrt's
/// own connect timeout, for a listener that is not there, is 3 s.
const SRT_REJECT_WITHIN: Duration = Duration::from_millis(1500);
/// Packets (audio + video) a push output may have waiting, about 4 s at 60 fps.
pub(crate) const QUEUE_PACKETS: usize = 512;

/// The TCP send buffer for a stream of `kbps` (audio and video): half a second of it, at least
/// 64 KiB (the kernel doubles what it is given). Linux would otherwise grow it to megabytes,
/// where a squeezed link hides seconds of stream that adaptive bitrate cannot see (it watches
/// our queue) and the viewers get late; half a second still covers the bandwidth-delay product
/// of any link that carries the stream at full rate with under 500 ms of round trip.
pub(crate) fn send_buffer_bytes(kbps: u32) -> usize {
    (kbps as usize * 1000 / 8 / 2).max(64 << 10)
}

/// What every `rtmps://` output of one encoder verifies against.
#[derive(Debug, Clone)]
pub(crate) struct TlsSetup {
    /// `tls_verify=1` (everything but `--insecure-tls`).
    pub(crate) verify: bool,
    /// The system bundle plus `--ca-file`, in a private temp file removed when the last writer
    /// lets go of it.
    pub(crate) ca_bundle: Option<Arc<tempfile::TempPath>>,
}

impl TlsSetup {
    /// Writes the system bundle (when present) and the extra CA file into a 0600 temp file: with
    /// gnutls, FFmpeg's `ca_file` replaces the system store rather than adding to it.
    pub(crate) fn new(tls: &crate::config::TlsOptions) -> Result<Self, crate::MediaError> {
        tls.check()?;
        let ca_bundle = match &tls.ca_file {
            None => None,
            Some(extra) => {
                let err = |reason: String| crate::MediaError::CaFile {
                    path: extra.clone(),
                    reason,
                };
                let mut pem = Vec::new();
                match std::fs::read(crate::config::TlsOptions::SYSTEM_BUNDLE) {
                    Ok(system) => {
                        pem.extend_from_slice(&system);
                        pem.push(b'\n');
                    }
                    // No system store: only the given CA is trusted, as asked.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(err(format!(
                            "cannot read the system bundle {}: {e}",
                            crate::config::TlsOptions::SYSTEM_BUNDLE
                        )))
                    }
                }
                pem.extend_from_slice(&std::fs::read(extra).map_err(|e| err(e.to_string()))?);
                // tempfile creates it 0600 and the path is removed on drop.
                let mut f = tempfile::Builder::new()
                    .prefix("crosscast-ca-")
                    .suffix(".pem")
                    .tempfile()
                    .map_err(|e| err(format!("cannot create the combined CA file: {e}")))?;
                std::io::Write::write_all(&mut f, &pem)
                    .and_then(|()| f.as_file().sync_all())
                    .map_err(|e| err(format!("cannot write the combined CA file: {e}")))?;
                Some(Arc::new(f.into_temp_path()))
            }
        };
        Ok(Self {
            verify: !tls.insecure,
            ca_bundle,
        })
    }
}

enum SessionEnd {
    /// The encoder finished; the trailer was written.
    Finished,
    /// Writing failed; reconnect.
    Failed(String),
}

pub(crate) fn run(
    url: PushUrl,
    tls: TlsSetup,
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
        match connect(&url, &tls, &setup, &watch, send_buffer) {
            Ok(mux) => {
                sessions += 1;
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if sessions > 1 {
                    shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                attempt = 0;
                backoff = BACKOFF_START;
                shared.set_state(OutputState::Live);
                match send_loop(mux, &url, &rx, &shared, &watch) {
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
                    shared.dropped_from_queue(&p);
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

/// Describes a failed FFmpeg call: FFmpeg's own message when it logged one (the error code
/// alone is often a bare "I/O error"), naming the timeout when that is what stopped it, with
/// the URL's secrets scrubbed.
fn io_error(what: &str, e: impl std::fmt::Display, url: &PushUrl, watch: &IoWatch) -> String {
    let logged = take_log_errors();
    let text = if watch.timed_out() {
        format!(
            "{what}: no progress for {:.1} s (server not answering)",
            watch.timeout().as_secs_f64()
        )
    } else {
        match logged {
            Some(l) => format!("{what}: {l}"),
            None => format!("{what}: {e}"),
        }
    };
    url.scrub(&text)
}

fn connect(
    url: &PushUrl,
    tls: &TlsSetup,
    setup: &StreamSetup,
    watch: &Arc<IoWatch>,
    send_buffer: usize,
) -> Result<Muxer, String> {
    let mut mux_opts = ff::Dictionary::new();
    // If audio stops arriving, send video after 1 s instead of the default 10 s of waiting
    // for packets to interleave with.
    mux_opts.set("max_interleave_delta", "1000000");
    match url.scheme() {
        PushScheme::Rtmp | PushScheme::Rtmps => {
            // A live stream cannot seek back to patch duration and size into the header.
            mux_opts.set("flvflags", "no_duration_filesize");
        }
        PushScheme::Srt => {
            // PAT/PMT go out first in every session anyway (a fresh muxer); resend them with
            // the first packet too, so a listener that starts reading mid-write gets them at
            // once rather than after the next period.
            mux_opts.set("mpegts_flags", "resend_headers");
        }
    }
    let ca = tls.ca_bundle.as_ref().and_then(|p| p.to_str());
    let mut io_opts = ff::Dictionary::new();
    for (k, v) in url.io_options(tls.verify, ca) {
        io_opts.set(&k, &v);
    }
    match url.scheme() {
        // Down to FFmpeg's tcp (through tls for rtmps): a bounded socket send buffer.
        PushScheme::Rtmp | PushScheme::Rtmps => {
            io_opts.set("send_buffer_size", &send_buffer.to_string())
        }
        // libsrt's sender buffer, bounded the same way. Its default (8192 packets, about
        // 10 MB) never fills on a squeezed link: live mode instead drops packets older than
        // about a second (too-late drop), the viewer sees holes, and our queue, which adaptive
        // bitrate watches, stays empty. Smaller than that second, it fills first, the write
        // waits, and the backlog shows in our queue as it does for TCP.
        PushScheme::Srt => io_opts.set("sndbuf", &send_buffer.to_string()),
    }
    clear_log_errors();
    let started = Instant::now();
    watch.begin();
    let r = Muxer::open(
        url.open_url(),
        url.scheme().muxer_name(),
        io_opts,
        mux_opts,
        setup,
        Some(watch.clone()),
    );
    watch.end();
    r.map_err(|e| {
        let text = io_error("connect failed", e, url, watch);
        match url.scheme() {
            PushScheme::Srt if !watch.timed_out() => srt_hint(text, started.elapsed()),
            _ => text,
        }
    })
}

/// SRT's answer to a refused caller is a bare "Input/output error" in FFmpeg, whether the
/// listener rejected the handshake (wrong or missing passphrase, a stream id it refuses: it
/// answers within a round trip) or nobody answered (libsrt gives up after its 3 s connect
/// timeout). Name the likely cause from how long the attempt took.
fn srt_hint(text: String, took: Duration) -> String {
    if !text.contains("Input/output error") {
        return text;
    }
    if took < SRT_REJECT_WITHIN {
        format!("{text}: rejected by the listener (a wrong or missing passphrase, or a streamid it refuses)")
    } else {
        format!(
            "{text}: no SRT listener answered within {:.1} s",
            took.as_secs_f64()
        )
    }
}

fn send_loop(
    mut mux: Muxer,
    url: &PushUrl,
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
                shared.left_queue(&old);
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
                shared.dropped_from_queue(&p);
                continue;
            }
        };
        // Audio encoded before the session's first keyframe would get a negative timestamp.
        if p.dts_us().is_some_and(|t| t < base) {
            shared.dropped_from_queue(&p);
            continue;
        }
        clear_log_errors();
        watch.begin();
        let r = mux.write(&p, base);
        watch.end();
        shared.left_queue(&p);
        match r {
            Ok(n) => {
                shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // What this session took from the queue and will not send is gone with it.
                for p in backlog {
                    shared.dropped_from_queue(&p);
                }
                return SessionEnd::Failed(io_error("write failed", e, url, watch));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsOptions;
    use std::os::unix::fs::PermissionsExt;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_ca_file_adds_to_the_system_store_in_a_private_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.pem");
        std::fs::write(&extra, PEM).unwrap();
        let tls = TlsSetup::new(&TlsOptions {
            insecure: false,
            ca_file: Some(extra),
        })
        .unwrap();
        assert!(tls.verify);
        let bundle = tls.ca_bundle.clone().expect("a combined bundle");
        let path = bundle.to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(PEM), "the given CA must be in the bundle");
        if let Ok(system) = std::fs::read_to_string(TlsOptions::SYSTEM_BUNDLE) {
            assert!(
                text.starts_with(&system),
                "the system store must stay trusted"
            );
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(bundle);
        assert!(path.exists(), "still held by the setup");
        drop(tls);
        assert!(!path.exists(), "removed when the last holder lets go");
    }

    #[test]
    fn insecure_turns_verification_off_and_no_ca_file_means_no_bundle() {
        let tls = TlsSetup::new(&TlsOptions {
            insecure: true,
            ca_file: None,
        })
        .unwrap();
        assert!(!tls.verify);
        assert!(tls.ca_bundle.is_none());
    }
}

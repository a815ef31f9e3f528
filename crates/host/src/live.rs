//! The host's main loop: the output clock.
//!
//! Every `1/fps` it takes the newest frame the game has queued (or keeps the one it holds when
//! the game is slow or gone), hands it to the encoder, and moves the game's audio onto the same
//! timeline. It never waits for the game: the game's process can stall, die or be replaced and
//! the output keeps its rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crosscast_ipc::{stamp, FrameConsumer, HostCounters, HostSession};
use crosscast_media::{EncoderConfig, EncoderStats, LiveEncoder, OutputSpec, OutputState};
use crosscast_preview::{CommentFeed, CommentSource, FeedLimits, Overlay, Preview, PreviewTarget};
use crosscast_wire::AudioBlock;

use crate::source::{SessionSource, SourceEvent};
use crate::status::LiveStatus;
use crate::timeline::{FrameClock, SessionTimeline};
use crate::HostError;

/// What `run_live` does with the frames it acquires.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Output frame rate.
    pub fps: u32,
    /// Stop after this much output (None: until `stop` is set).
    pub duration: Option<Duration>,
    /// Encode and publish; `None` consumes and verifies only.
    pub encoder: Option<(EncoderConfig, Vec<OutputSpec>)>,
    /// Check each fresh frame's stamp (the game must run with `--stamp`).
    pub verify_stamps: bool,
    /// How long to wait for the first frame before giving up.
    pub first_frame_timeout: Duration,
    /// Set by a signal handler to finish cleanly.
    pub stop: Arc<AtomicBool>,
    /// The streamer's preview: where it goes, and the comments drawn over it (never into the
    /// stream).
    pub preview: PreviewTarget,
    /// Comments to overlay on the preview.
    pub comments: Option<CommentSource>,
    /// Bounds on the comments feed.
    pub comment_limits: FeedLimits,
}

/// The streamer-only path: the composited preview and its comments.
struct PreviewPath {
    preview: Preview,
    overlay: Overlay,
    feed: Option<CommentFeed>,
}

/// What a run did, for the summary at exit and for tests.
#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    /// Output frames produced.
    pub frames_out: u64,
    /// Output frames that repeated the previous game frame (game slow or gone).
    pub repeated: u64,
    /// Game frames never shown (replaced before the output clock took them).
    pub skipped: u64,
    /// Fresh frames whose stamp did not verify.
    pub stamp_errors: u64,
    /// Fresh frames whose stamp verified.
    pub stamps_verified: u64,
    /// Game sessions that streamed.
    pub sessions: u64,
    /// Counters summed over every session.
    pub counters: HostCounters,
    /// Audio samples (per channel) handed to the encoder.
    pub audio_samples: u64,
    /// Samples of silence inserted while no game audio arrived.
    pub silence_samples: u64,
    /// Encoder and output statistics, when encoding.
    pub encoder: Option<EncoderStats>,
    /// Output duration.
    pub duration: Duration,
    /// Lines worth logging (rejections, restarts).
    pub notes: Vec<String>,
    /// What the comments feed did with its input, when the preview had one.
    pub comments: Option<crosscast_preview::FeedStats>,
}

struct Active {
    session: HostSession,
    consumer: FrameConsumer,
    timeline: Option<SessionTimeline>,
    last_seq: Option<u64>,
    pending_audio: Vec<AudioBlock>,
}

fn add_counters(total: &mut HostCounters, c: &HostCounters) {
    total.frames_queued += c.frames_queued;
    total.frames_acquired += c.frames_acquired;
    total.frames_dropped += c.frames_dropped;
    total.frames_stale += c.frames_stale;
    total.configs_sent += c.configs_sent;
    total.audio_blocks += c.audio_blocks;
    total.audio_gaps += c.audio_gaps;
    total.audio_overlaps += c.audio_overlaps;
    total.audio_seq_gaps += c.audio_seq_gaps;
    total.audio_dropped += c.audio_dropped;
}

/// Runs the pipeline until the duration is reached or `stop` is set.
pub fn run_live(
    source: &SessionSource,
    opts: &LiveOptions,
    on_status: &mut dyn FnMut(&LiveStatus),
    on_note: &mut dyn FnMut(&str),
) -> Result<LiveReport, HostError> {
    let clock = FrameClock::new(opts.fps);
    let mut encoder = match &opts.encoder {
        Some((cfg, outs)) => Some(LiveEncoder::start(cfg.clone(), outs)?),
        None => None,
    };
    let (rate, channels) = opts
        .encoder
        .as_ref()
        .map(|(c, _)| (c.sample_rate, usize::from(c.channels)))
        .unwrap_or((48_000, 2));
    let mut preview = match &opts.preview {
        PreviewTarget::None => None,
        target => Some(PreviewPath {
            preview: Preview::start(target.clone(), "crosscast preview")
                .map_err(|e| HostError::Preview(e.to_string()))?,
            overlay: Overlay::new().map_err(|e| HostError::Preview(e.to_string()))?,
            feed: match &opts.comments {
                Some(src) => Some(
                    CommentFeed::start(src.clone(), opts.comment_limits.clone())
                        .map_err(|e| HostError::Preview(e.to_string()))?,
                ),
                None => None,
            },
        }),
    };
    let mut overlay_status = crosscast_preview::LiveStatus {
        state: "REC".into(),
        elapsed: Duration::ZERO,
        bitrate_kbps: 0.0,
        dropped_frames: 0,
    };
    let mut report = LiveReport::default();
    let mut active: Option<Active> = None;
    // Games connected while another streams (named mode, --max-sessions > 1): they take over
    // in order, the moment the streaming one leaves.
    let mut standby: std::collections::VecDeque<Active> = std::collections::VecDeque::new();
    let mut discard = Vec::new();
    // The consumer of a session that ended: it still holds the last frame, which the output
    // repeats until a new game delivers one.
    let mut fallback: Option<FrameConsumer> = None;
    let started = Instant::now();
    let mut origin: Option<Instant> = None;
    let mut k: u64 = 0;
    let mut audio_end: u64 = 0;
    let mut av_offset_ms = 0.0f64;
    let mut last_status = Instant::now();
    let mut prev_counters = (0u64, 0u64, 0u64);

    let note = |report: &mut LiveReport, s: String, on_note: &mut dyn FnMut(&str)| {
        on_note(&s);
        report.notes.push(s);
    };

    loop {
        while let Some(ev) = source.try_next() {
            match ev {
                SourceEvent::Session(mut s) => {
                    let Some(consumer) = s.consumer() else {
                        continue;
                    };
                    report.sessions += 1;
                    let fresh_session = Active {
                        session: s,
                        consumer,
                        timeline: None,
                        last_seq: None,
                        pending_audio: Vec::new(),
                    };
                    if active.is_none() {
                        active = Some(fresh_session);
                    } else {
                        standby.push_back(fresh_session);
                    }
                }
                SourceEvent::Note(s) => note(&mut report, s, on_note),
            }
        }
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }

        let Some(t0) = origin else {
            // Before the first frame there is no timeline: wait for one.
            if started.elapsed() > opts.first_frame_timeout {
                return Err(HostError::NoFrames(opts.first_frame_timeout));
            }
            match active.as_mut() {
                Some(a) if a.consumer.wait_frame(Duration::from_millis(20)) => {
                    if let Some(f) = a.consumer.acquire()? {
                        a.timeline = Some(SessionTimeline {
                            base_pts_ns: f.pts_ns,
                            offset_ns: 0,
                        });
                        a.last_seq = Some(f.seq);
                        // Half a period of slack so the game's next frame is in before each tick.
                        origin = Some(Instant::now() + Duration::from_nanos(clock.period_ns() / 2));
                    }
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(20)),
            }
            continue;
        };

        if opts
            .duration
            .is_some_and(|d| clock.frame_ns(k) >= d.as_nanos() as u64)
        {
            break;
        }
        let due = t0 + Duration::from_nanos(clock.frame_ns(k));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }

        // Take the newest game frame, if there is one.
        let mut fresh = false;
        let mut ended = None;
        if let Some(a) = active.as_mut() {
            if let Some(f) = a.consumer.acquire()? {
                fresh = true;
                if a.timeline.is_none() {
                    a.timeline = Some(SessionTimeline {
                        base_pts_ns: f.pts_ns,
                        offset_ns: clock.frame_ns(k),
                    });
                    fallback = None;
                    // A game that takes over paces on its own phase: move the ticks to sit
                    // between its frames, as the first game's did from its first frame.
                    let lead = crosscast_ipc::monotonic_ns().saturating_sub(f.received_ns);
                    let shift = clock.rephase_ns(lead);
                    let moved = Duration::from_nanos(shift.unsigned_abs());
                    origin = Some(if shift >= 0 {
                        t0 + moved
                    } else {
                        t0.checked_sub(moved).unwrap_or(t0)
                    });
                }
                if let Some(last) = a.last_seq {
                    report.skipped += f.seq.saturating_sub(last + 1);
                }
                a.last_seq = Some(f.seq);
                if opts.verify_stamps {
                    match stamp::verify(f.data) {
                        Ok(_) => report.stamps_verified += 1,
                        Err(e) => {
                            report.stamp_errors += 1;
                            log::warn!("{e}");
                        }
                    }
                }
            }
            if let Some(reason) = a.session.closed() {
                ended = Some(reason);
            }
        }
        if !fresh {
            report.repeated += 1;
        }
        let held = active
            .as_ref()
            .filter(|a| a.timeline.is_some())
            .and_then(|a| a.consumer.held())
            .or_else(|| fallback.as_ref().and_then(|c| c.held()));
        // Sync error of this output frame: where the shown game frame sits on the stream
        // timeline (audio is placed exactly by its own timestamps) against the frame's slot.
        if let (Some(f), Some(tl)) = (held.as_ref(), active.as_ref().and_then(|a| a.timeline)) {
            if let Some(t) = tl.stream_ns(f.pts_ns) {
                av_offset_ms = (t as f64 - clock.frame_ns(k) as f64) / 1e6;
            }
        }
        if let (Some(enc), Some(f)) = (encoder.as_mut(), held.as_ref()) {
            // A game that resized is scaled into the stream's size (aspect kept, on black).
            enc.push_video_sized(f.data, f.stride, f.width, f.height, k)?;
        }
        // The streamer's preview: the same frame plus the overlay, composed after the encoder
        // has its clean copy, once per fresh game frame.
        if let (Some(p), Some(f), true) = (preview.as_mut(), held.as_ref(), fresh) {
            let comments = p
                .feed
                .as_ref()
                .map(|feed| feed.snapshot())
                .unwrap_or_default();
            let composed = p.overlay.compose(
                f.data,
                f.width,
                f.height,
                f.stride,
                &comments,
                &overlay_status,
                Instant::now(),
            );
            p.preview.submit(composed, f.width, f.height);
            if p.preview.closed() {
                note(
                    &mut report,
                    "preview window closed: finishing".into(),
                    on_note,
                );
                opts.stop.store(true, Ordering::Relaxed);
            }
            if let Some(feed) = &p.feed {
                for w in feed.drain_warnings() {
                    note(&mut report, format!("comments: {w}"), on_note);
                }
            }
        }
        report.frames_out += 1;

        // Audio onto the same timeline.
        if let Some(a) = active.as_mut() {
            a.session.drain_audio(&mut a.pending_audio);
            if let Some(tl) = a.timeline {
                for b in a.pending_audio.drain(..) {
                    let samples = b.to_f32();
                    let ch = usize::from(b.config.channels);
                    let skip = match tl.sample_index(b.pts_ns, rate) {
                        Some(idx) => {
                            if let Some(enc) = encoder.as_mut() {
                                enc.push_audio(&samples, idx)?;
                            }
                            audio_end = audio_end.max(idx + (samples.len() / ch) as u64);
                            report.audio_samples += (samples.len() / ch) as u64;
                            continue;
                        }
                        // Starts before the session's first frame: keep only the part after it.
                        None => ((tl.base_pts_ns - b.pts_ns) as u128 * u128::from(rate))
                            .div_ceil(1_000_000_000) as usize,
                    };
                    if skip * ch < samples.len() {
                        let idx = tl.offset_ns as u128 * u128::from(rate) / 1_000_000_000;
                        if let Some(enc) = encoder.as_mut() {
                            enc.push_audio(&samples[skip * ch..], idx as u64)?;
                        }
                        audio_end = audio_end.max(idx as u64 + (samples.len() / ch - skip) as u64);
                    }
                }
            } else if a.pending_audio.len() > 400 {
                a.pending_audio.drain(..200);
            }
        }
        // No game audio for a while (game gone or silent): keep the audio track going.
        let video_samples = clock.frame_ns(k) as u128 * u128::from(rate) / 1_000_000_000;
        let lag_allowed = u128::from(rate) / 2;
        if video_samples > u128::from(audio_end) + lag_allowed {
            let n = (video_samples - u128::from(audio_end) - u128::from(rate) / 5) as usize;
            let silence = vec![0f32; n * channels];
            if let Some(enc) = encoder.as_mut() {
                enc.push_audio(&silence, audio_end)?;
            }
            audio_end += n as u64;
            report.silence_samples += n as u64;
        }

        if let Some(reason) = ended {
            if let Some(a) = active.take() {
                add_counters(&mut report.counters, &a.session.counters());
                fallback = Some(a.consumer);
            }
            source.session_ended();
            note(
                &mut report,
                format!("game session ended: {reason}"),
                on_note,
            );
            if let Some(next) = standby.pop_front() {
                note(
                    &mut report,
                    format!(
                        "standby game (session {}) takes over",
                        next.session.session_id()
                    ),
                    on_note,
                );
                active = Some(next);
            }
        }

        // Standby games stream nowhere: keep their audio from piling up, notice when they leave.
        standby.retain(|s| {
            s.session.drain_audio(&mut discard);
            discard.clear();
            if s.session.closed().is_some() {
                add_counters(&mut report.counters, &s.session.counters());
                source.session_ended();
                false
            } else {
                true
            }
        });

        k += 1;
        if last_status.elapsed() >= Duration::from_secs(1) {
            let dt = last_status.elapsed().as_secs_f64();
            last_status = Instant::now();
            let c = active
                .as_ref()
                .map(|a| a.session.counters())
                .unwrap_or_default();
            let enc_stats = encoder.as_ref().map(|e| e.stats());
            let bytes = enc_stats.as_ref().map(|s| s.bytes_written).unwrap_or(0);
            let status = LiveStatus {
                elapsed: Duration::from_nanos(clock.frame_ns(k)),
                out_fps: (report.frames_out - prev_counters.0) as f64 / dt,
                game_fps: c.frames_queued.saturating_sub(prev_counters.1) as f64 / dt,
                bitrate_kbps: bytes.saturating_sub(prev_counters.2) as f64 * 8.0 / 1000.0 / dt,
                dropped: report.counters.frames_dropped + c.frames_dropped,
                repeated: report.repeated,
                skipped: report.skipped,
                av_offset_ms,
                audio_lag_ms: (video_samples as f64 - audio_end as f64) * 1000.0 / f64::from(rate),
                game_connected: active.is_some(),
                encoder: enc_stats,
            };
            prev_counters = (report.frames_out, c.frames_queued, bytes);
            overlay_status = crosscast_preview::LiveStatus {
                state: match &status.encoder {
                    Some(e) if e.outputs.iter().any(|o| o.state == OutputState::Live) => {
                        "LIVE".into()
                    }
                    _ => "REC".into(),
                },
                elapsed: status.elapsed,
                bitrate_kbps: status.bitrate_kbps,
                dropped_frames: status.dropped + status.skipped,
            };
            on_status(&status);
        }
    }

    for a in active.take().into_iter().chain(standby.drain(..)) {
        add_counters(&mut report.counters, &a.session.close());
    }
    report.duration = Duration::from_nanos(clock.frame_ns(k));
    if let Some(p) = preview {
        report.comments = p.feed.as_ref().map(|f| f.stats());
        p.preview
            .stop()
            .map_err(|e| HostError::Preview(e.to_string()))?;
    }
    if let Some(enc) = encoder {
        report.encoder = Some(enc.finish()?);
    }
    Ok(report)
}

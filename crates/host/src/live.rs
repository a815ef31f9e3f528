//! A live run: game sessions from a [`SessionSource`], the [`OutputClock`] that makes a
//! constant-rate stream of them, and its sink, the encoder (with its outputs) and the
//! streamer's preview. This module is the I/O around the clock: it sleeps until each tick,
//! logs, and prints the status line; the timing decisions are the clock's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crosscast_input::{InputHub, InputScript, InputStats, RouterLimits, ScriptSource, ScriptStats};
use crosscast_ipc::{monotonic_ns, FrameView};
use crosscast_media::{EncoderConfig, EncoderStats, LiveEncoder, OutputSpec, OutputState};
use crosscast_preview::{CommentFeed, CommentSource, FeedLimits, Overlay, Preview, PreviewTarget};
use crosscast_wire::FrameRate;

use crate::clock::{ClockEvent, ClockOptions, ClockReport, OutputClock, OutputSink};
use crate::feed::IpcFeed;
use crate::source::{SessionSource, SourceEvent};
use crate::status::LiveStatus;
use crate::HostError;

/// What `run_live` does with the frames it acquires.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Output frame rate.
    pub fps: FrameRate,
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
    /// Scripted input for the game (`--input FILE|-`), in game pixels.
    pub input: Option<ScriptSource>,
    /// Bounds on input from the window and the script.
    pub input_limits: RouterLimits,
}

/// What a run did, for the summary at exit and for tests.
#[derive(Debug, Clone, Default)]
pub struct LiveReport {
    /// What the output clock did: frames out, repeats, skips, stamps, sessions and their
    /// counters, audio.
    pub clock: ClockReport,
    /// Encoder and output statistics, when encoding.
    pub encoder: Option<EncoderStats>,
    /// Output duration.
    pub duration: Duration,
    /// Lines worth logging (rejections, restarts).
    pub notes: Vec<String>,
    /// What the comments feed did with its input, when the preview had one.
    pub comments: Option<crosscast_preview::FeedStats>,
    /// How the game ended, when it was launched without restart and ended before the run:
    /// its exit status, or why it could not run.
    pub game_exit: Option<Result<std::process::ExitStatus, String>>,
    /// What became of the streamer's input, when there was a window or a script.
    pub input: Option<InputStats>,
    /// What the input script reader did, when there was one.
    pub input_script: Option<ScriptStats>,
}

/// The streamer-only path: the composited preview and its comments.
struct PreviewPath {
    preview: Preview,
    overlay: Overlay,
    feed: Option<CommentFeed>,
    /// What the overlay's indicator says (updated with the status line).
    status: crosscast_preview::LiveStatus,
    /// Set once the streamer closed the window.
    closed: bool,
}

/// The output clock's sink in a live run: the encoder (clean frames) and the preview.
struct LiveSink {
    /// Where the streamer's input goes; it maps through the size of the frame on the stream.
    input: Option<Arc<InputHub>>,
    encoder: Option<LiveEncoder>,
    preview: Option<PreviewPath>,
    notes: Vec<String>,
}

impl OutputSink for LiveSink {
    fn video(&mut self, f: &FrameView<'_>, index: u64) -> Result<(), HostError> {
        if let Some(hub) = &self.input {
            hub.set_game_size(f.width, f.height);
        }
        if let Some(enc) = self.encoder.as_mut() {
            // A game that resized is scaled into the stream's size (aspect kept, on black).
            enc.push_pixels(f.data, f.order, f.stride, (f.width, f.height), index)?;
        }
        Ok(())
    }

    fn preview(&mut self, f: &FrameView<'_>) -> Result<(), HostError> {
        // The streamer's preview: the same frame plus the overlay, composed after the encoder
        // has its clean copy.
        let Some(p) = self.preview.as_mut() else {
            return Ok(());
        };
        let comments = p
            .feed
            .as_ref()
            .map(|feed| feed.snapshot())
            .unwrap_or_default();
        p.overlay.set_game_order(f.order);
        let composed = p.overlay.compose(
            f.data,
            f.width,
            f.height,
            f.stride,
            &comments,
            &p.status,
            Instant::now(),
        );
        p.preview.submit(composed, f.width, f.height);
        if p.preview.closed() && !p.closed {
            p.closed = true;
            self.notes.push("preview window closed: finishing".into());
        }
        if let Some(feed) = &p.feed {
            for w in feed.drain_warnings() {
                self.notes.push(format!("comments: {w}"));
            }
        }
        Ok(())
    }

    fn audio(&mut self, samples: &[f32], index: u64) -> Result<(), HostError> {
        if let Some(enc) = self.encoder.as_mut() {
            enc.push_audio(samples, index)?;
        }
        Ok(())
    }

    fn repeat(&mut self, index: u64) -> Result<(), HostError> {
        if let Some(enc) = self.encoder.as_mut() {
            enc.repeat_video(index)?;
        }
        Ok(())
    }
}

fn start_preview(
    opts: &LiveOptions,
    input: Option<Arc<InputHub>>,
) -> Result<Option<PreviewPath>, HostError> {
    if let PreviewTarget::None = opts.preview {
        return Ok(None);
    }
    Ok(Some(PreviewPath {
        preview: Preview::start_with_input(opts.preview.clone(), "crosscast preview", input)?,
        overlay: Overlay::new()?,
        feed: match &opts.comments {
            Some(src) => Some(CommentFeed::start(
                src.clone(),
                opts.comment_limits.clone(),
            )?),
            None => None,
        },
        status: crosscast_preview::LiveStatus {
            state: "REC".into(),
            elapsed: Duration::ZERO,
            bitrate_kbps: 0.0,
            dropped_frames: 0,
        },
        closed: false,
    }))
}

/// Sleeps until CLOCK_MONOTONIC reads `due_ns` (returns at once if it already has).
fn sleep_until_ns(due_ns: u64) {
    let now = monotonic_ns();
    if due_ns > now {
        std::thread::sleep(Duration::from_nanos(due_ns - now));
    }
}

/// Runs the pipeline until the duration is reached or `stop` is set: games from `source`, an
/// [`OutputClock`] at the output rate, its frames and audio to the encoder and the preview.
pub fn run_live(
    source: &SessionSource,
    opts: &LiveOptions,
    on_status: &mut dyn FnMut(&LiveStatus),
    on_note: &mut dyn FnMut(&str),
) -> Result<LiveReport, HostError> {
    let (sample_rate, channels) = opts
        .encoder
        .as_ref()
        .map(|(c, _)| (c.sample_rate, usize::from(c.channels)))
        .unwrap_or((48_000, 2));
    let mut clock = OutputClock::new(ClockOptions {
        fps: opts.fps,
        sample_rate,
        channels,
        verify_stamps: opts.verify_stamps,
    });
    // Input comes from the preview window and from a script; with neither there is none.
    let hub = (matches!(opts.preview, PreviewTarget::Window) || opts.input.is_some())
        .then(|| InputHub::new(opts.input_limits));
    let script = match &opts.input {
        Some(src) => Some(InputScript::start(
            src.clone(),
            Arc::clone(hub.as_ref().expect("a hub exists when a script does")),
        )?),
        None => None,
    };
    let mut sink = LiveSink {
        input: hub.clone(),
        encoder: match &opts.encoder {
            Some((cfg, outs)) => Some(LiveEncoder::start(cfg.clone(), outs)?),
            None => None,
        },
        preview: start_preview(opts, hub.clone())?,
        notes: Vec::new(),
    };
    let mut notes = Vec::new();
    let mut note = |s: String| {
        on_note(&s);
        notes.push(s);
    };
    let started = Instant::now();
    let mut last_status = Instant::now();
    let mut game_exit = None;
    let mut prev = (0u64, 0u64, 0u64);

    loop {
        while let Some(ev) = source.try_next() {
            match ev {
                SourceEvent::Session(s) => {
                    if let Some(feed) = IpcFeed::new(s) {
                        clock.add(Box::new(feed));
                    }
                }
                SourceEvent::Note(s) => note(s),
                SourceEvent::Feed(feed) => clock.add(feed),
                SourceEvent::Audio(audio) => clock.set_audio_source(audio),
                SourceEvent::GameExited(status) => game_exit = Some(Ok(status)),
                SourceEvent::GameFailed(why) => game_exit = Some(Err(why)),
            }
        }
        if let Some(hub) = &hub {
            // Input follows the stream: only the game on it has focus.
            if hub.target_id() != clock.streaming_id() {
                hub.set_target(clock.input_target(), monotonic_ns());
            }
            for n in hub.take_notes() {
                note(n);
            }
        }
        if let Some(s) = &script {
            for w in s.drain_warnings() {
                note(format!("input: {w}"));
            }
        }
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        // A game that ended for good ends a run that has no duration of its own.
        if game_exit.is_some() && opts.duration.is_none() {
            break;
        }
        if !clock.started() {
            // Before the first frame there is no timeline: wait for one.
            if started.elapsed() > opts.first_frame_timeout {
                return Err(HostError::NoFrames(opts.first_frame_timeout));
            }
            if clock.wait_first(Duration::from_millis(20)) {
                clock.start(monotonic_ns())?;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
            continue;
        }
        if opts
            .duration
            .is_some_and(|d| u128::from(clock.stream_ns()) >= d.as_nanos())
        {
            break;
        }
        if let Some(due) = clock.next_due_ns() {
            sleep_until_ns(due);
        }
        for ev in clock.tick(monotonic_ns(), &mut sink)? {
            match ev {
                ClockEvent::Ended {
                    reason, streaming, ..
                } => {
                    source.session_ended();
                    if streaming {
                        note(format!("game session ended: {reason}"));
                    }
                }
                ClockEvent::TookOver { id } => {
                    note(format!("standby game (session {id}) takes over"))
                }
                ClockEvent::Note { text, .. } => note(text),
            }
        }
        for n in sink.notes.drain(..) {
            note(n);
        }
        // Which encoder runs and why, preset steps (`crosscast: encoder: ...` lines).
        if let Some(e) = &sink.encoder {
            for n in e.take_notes() {
                note(n);
            }
        }
        if sink.preview.as_ref().is_some_and(|p| p.closed) {
            opts.stop.store(true, Ordering::Relaxed);
        }

        if last_status.elapsed() >= Duration::from_secs(1) {
            let dt = last_status.elapsed().as_secs_f64();
            last_status = Instant::now();
            let snap = clock.snapshot();
            let enc_stats = sink.encoder.as_ref().map(|e| e.stats());
            let bytes = enc_stats.as_ref().map(|s| s.bytes_written).unwrap_or(0);
            // Encoding, the frames out are the ones encoded: an overloaded encoder drops some
            // of the clock's.
            let frames_out = enc_stats
                .as_ref()
                .map(|s| s.video_frames_encoded)
                .unwrap_or(snap.frames_out);
            let status = LiveStatus {
                elapsed: Duration::from_nanos(clock.stream_ns()),
                out_fps: frames_out.saturating_sub(prev.0) as f64 / dt,
                game_fps: snap.game_frames_queued.saturating_sub(prev.1) as f64 / dt,
                bitrate_kbps: bytes.saturating_sub(prev.2) as f64 * 8.0 / 1000.0 / dt,
                dropped: snap.dropped,
                repeated: snap.repeated,
                skipped: snap.skipped,
                av_offset_ms: snap.av_offset_ms,
                audio_lag_ms: snap.audio_lag_ms,
                game_connected: snap.game_connected,
                encoder: enc_stats,
            };
            prev = (frames_out, snap.game_frames_queued, bytes);
            if let Some(p) = sink.preview.as_mut() {
                p.status = crosscast_preview::LiveStatus {
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
            }
            on_status(&status);
        }
    }

    let duration = Duration::from_nanos(clock.stream_ns());
    if let Some(hub) = &hub {
        // The game gets its keys back before it goes.
        hub.set_target(None, monotonic_ns());
    }
    let clock = clock.finish();
    let comments = sink
        .preview
        .as_ref()
        .and_then(|p| p.feed.as_ref().map(|f| f.stats()));
    if let Some(p) = sink.preview {
        p.preview.stop()?;
    }
    let encoder = match sink.encoder {
        Some(enc) => Some(enc.finish()?),
        None => None,
    };
    Ok(LiveReport {
        clock,
        encoder,
        duration,
        notes,
        comments,
        game_exit,
        input: hub.as_ref().map(|h| h.stats()),
        input_script: script.as_ref().map(|s| s.stats()),
    })
}

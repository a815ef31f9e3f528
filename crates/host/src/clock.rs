//! The output clock: a constant-rate stream made from games that are not.
//!
//! Every output period it takes the newest frame the streaming game has queued (or repeats the
//! one it holds when the game is slow, stalled or gone), hands it to the [`OutputSink`], and
//! moves the game's audio onto the same timeline. It never waits for a game once the stream
//! has started. Games come as [`GameFeed`]s: one streams, the others wait on standby and take
//! over in order when it leaves.
//!
//! The clock reads no clock itself: the caller passes `now` (CLOCK_MONOTONIC ns) to every step
//! and sleeps until [`OutputClock::next_due_ns`]. That is what lets the unit tests below run it
//! on simulated time.

use std::collections::VecDeque;

use crosscast_ipc::{stamp, FrameView, HostCounters};
use crosscast_wire::{AudioBlock, FrameRate};

use crate::feed::GameFeed;
use crate::timeline::{FrameClock, SessionTimeline};
use crate::HostError;

/// Where the output clock's frames and audio go: the encoder and the streamer's preview.
pub trait OutputSink {
    /// Output frame `index` (in output periods) shows `frame`; called once per tick.
    fn video(&mut self, frame: &FrameView<'_>, index: u64) -> Result<(), HostError>;
    /// A fresh game frame, after [`video`](OutputSink::video) took its clean copy: the
    /// streamer's preview, once per new frame (repeats are not shown again).
    fn preview(&mut self, frame: &FrameView<'_>) -> Result<(), HostError>;
    /// Interleaved samples starting at sample `index` of the stream's audio timeline.
    fn audio(&mut self, samples: &[f32], index: u64) -> Result<(), HostError>;
}

/// The fixed settings of an output clock.
#[derive(Debug, Clone, Copy)]
pub struct ClockOptions {
    /// Output frame rate.
    pub fps: FrameRate,
    /// Audio sample rate of the stream (Hz).
    pub sample_rate: u32,
    /// Audio channels of the stream.
    pub channels: usize,
    /// Check each fresh frame's stamp (the game must run with `--stamp`).
    pub verify_stamps: bool,
}

/// What happened to the games during one step, for the caller to log and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockEvent {
    /// A game session ended; `streaming` says whether it was the one on the stream.
    Ended {
        /// The session's id.
        id: u64,
        /// Why it ended.
        reason: String,
        /// Whether it was streaming (a standby game leaving changes nothing on the stream).
        streaming: bool,
    },
    /// A standby game took over the stream.
    TookOver {
        /// The session's id.
        id: u64,
    },
}

/// What the output clock did, summed over the whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockReport {
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
    /// Game sessions that came (streamed or waited on standby).
    pub sessions: u64,
    /// Counters summed over every session that has ended.
    pub counters: HostCounters,
    /// Audio samples (per channel) of the games' audio handed to the sink.
    pub audio_samples: u64,
    /// Samples of silence inserted while no game audio arrived.
    pub silence_samples: u64,
}

/// A snapshot of the stream's health, for the status line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockSnapshot {
    /// Output frames so far.
    pub frames_out: u64,
    /// Output frames that repeated the previous one.
    pub repeated: u64,
    /// Game frames never shown.
    pub skipped: u64,
    /// Game frames replaced before the host took them, over every session.
    pub dropped: u64,
    /// Frames the streaming game has queued so far.
    pub game_frames_queued: u64,
    /// Sync error of the last output frame (ms): the shown game frame's time on the stream
    /// timeline minus the output frame's time.
    pub av_offset_ms: f64,
    /// How far the audio handed to the sink trails the video (ms): buffering, not sync error.
    pub audio_lag_ms: f64,
    /// Whether a game is streaming.
    pub game_connected: bool,
}

/// The streaming game and where it sits on the stream.
struct Streaming {
    feed: Box<dyn GameFeed>,
    timeline: Option<SessionTimeline>,
    last_seq: Option<u64>,
    pending_audio: Vec<AudioBlock>,
}

impl Streaming {
    fn new(feed: Box<dyn GameFeed>) -> Streaming {
        Streaming {
            feed,
            timeline: None,
            last_seq: None,
            pending_audio: Vec::new(),
        }
    }
}

/// Audio blocks kept for a game that has not shown a frame yet; older ones go (there is no
/// video to put them against).
const PRE_FRAME_AUDIO_BLOCKS: usize = 400;

/// The constant-rate output clock. See the module docs.
pub struct OutputClock {
    opts: ClockOptions,
    frames: FrameClock,
    active: Option<Streaming>,
    standby: VecDeque<Box<dyn GameFeed>>,
    /// The game that last streamed and has ended: it still holds the last frame, which the
    /// output repeats until a new game delivers one.
    fallback: Option<Box<dyn GameFeed>>,
    /// CLOCK_MONOTONIC ns of output frame 0, once the first frame came.
    origin_ns: Option<u64>,
    /// The next output frame.
    k: u64,
    /// End of the audio handed to the sink, in samples.
    audio_end: u64,
    av_offset_ms: f64,
    report: ClockReport,
    discard: Vec<AudioBlock>,
}

impl OutputClock {
    /// A clock with no game yet.
    pub fn new(opts: ClockOptions) -> OutputClock {
        OutputClock {
            frames: FrameClock::new(opts.fps),
            opts,
            active: None,
            standby: VecDeque::new(),
            fallback: None,
            origin_ns: None,
            k: 0,
            audio_end: 0,
            av_offset_ms: 0.0,
            report: ClockReport::default(),
            discard: Vec::new(),
        }
    }

    /// A game arrived: it streams if none does, else it waits on standby.
    pub fn add(&mut self, feed: Box<dyn GameFeed>) {
        self.report.sessions += 1;
        if self.active.is_none() {
            self.active = Some(Streaming::new(feed));
        } else {
            self.standby.push_back(feed);
        }
    }

    /// Whether the stream has its first frame (and so a timeline).
    pub fn started(&self) -> bool {
        self.origin_ns.is_some()
    }

    /// Before the stream starts: blocks up to `timeout` for the streaming game's first frame.
    /// Returns false at once when there is no game.
    pub fn wait_first(&mut self, timeout: std::time::Duration) -> bool {
        match self.active.as_mut() {
            Some(a) => a.feed.wait_frame(timeout),
            None => false,
        }
    }

    /// Starts the stream from the streaming game's first frame, if it has one: output frame 0
    /// shows it, and is due half a period after `now_ns`, so that the game's next frame is in
    /// before each tick.
    pub fn start(&mut self, now_ns: u64) -> Result<bool, HostError> {
        if self.started() {
            return Ok(true);
        }
        let Some(a) = self.active.as_mut() else {
            return Ok(false);
        };
        let Some(f) = a.feed.acquire()? else {
            return Ok(false);
        };
        a.timeline = Some(SessionTimeline {
            base_pts_ns: f.pts_ns,
            offset_ns: 0,
        });
        a.last_seq = Some(f.seq);
        self.origin_ns = Some(now_ns + self.frames.period_ns() / 2);
        Ok(true)
    }

    /// The output frame the next [`tick`](OutputClock::tick) makes.
    pub fn next_frame(&self) -> u64 {
        self.k
    }

    /// Stream time (ns) of the next output frame: how much output has been made.
    pub fn stream_ns(&self) -> u64 {
        self.frames.frame_ns(self.k)
    }

    /// When (CLOCK_MONOTONIC ns) the next output frame is due; `None` before the start.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.origin_ns.map(|o| o + self.frames.frame_ns(self.k))
    }

    /// Makes the next output frame: takes the newest game frame (or repeats), sends it and the
    /// game's audio to `sink`, and lets a standby game take over from one that ended. Call it
    /// at [`next_due_ns`](OutputClock::next_due_ns); `now_ns` is the time it runs.
    pub fn tick(
        &mut self,
        now_ns: u64,
        sink: &mut dyn OutputSink,
    ) -> Result<Vec<ClockEvent>, HostError> {
        let mut events = Vec::new();
        let k = self.k;
        let tick_ns = self.frames.frame_ns(k);
        let mut fresh = false;
        let mut ended = None;
        if let Some(a) = self.active.as_mut() {
            if let Some(f) = a.feed.acquire()? {
                fresh = true;
                if a.timeline.is_none() {
                    // A game that takes over continues the stream from this output frame.
                    a.timeline = Some(SessionTimeline {
                        base_pts_ns: f.pts_ns,
                        offset_ns: tick_ns,
                    });
                    self.fallback = None;
                    // It paces on its own phase: move the ticks to sit half a period from its
                    // frames, as the first game's did from its first frame.
                    let lead = now_ns.saturating_sub(f.received_ns);
                    let shift = self.frames.rephase_ns(lead);
                    if let Some(o) = self.origin_ns.as_mut() {
                        *o = o.saturating_add_signed(shift);
                    }
                }
                if let Some(last) = a.last_seq {
                    self.report.skipped += f.seq.saturating_sub(last + 1);
                }
                a.last_seq = Some(f.seq);
                if self.opts.verify_stamps {
                    match stamp::verify(f.data) {
                        Ok(_) => self.report.stamps_verified += 1,
                        Err(e) => {
                            self.report.stamp_errors += 1;
                            log::warn!("{e}");
                        }
                    }
                }
            }
            ended = a.feed.closed();
        }
        if !fresh {
            self.report.repeated += 1;
        }

        // The frame this output shows: the streaming game's, else the last one of the game
        // that left.
        let shown = self
            .active
            .as_ref()
            .filter(|a| a.timeline.is_some())
            .map(|a| &a.feed)
            .or(self.fallback.as_ref());
        if let Some(f) = shown.and_then(|feed| feed.held()) {
            if let Some(t) = self
                .active
                .as_ref()
                .and_then(|a| a.timeline)
                .and_then(|tl| tl.stream_ns(f.pts_ns))
            {
                self.av_offset_ms = (t as f64 - tick_ns as f64) / 1e6;
            }
            sink.video(&f, k)?;
            if fresh {
                sink.preview(&f)?;
            }
        }
        self.report.frames_out += 1;

        self.map_audio(sink)?;
        self.fill_silence(tick_ns, sink)?;

        if let Some(reason) = ended {
            if let Some(mut a) = self.active.take() {
                self.report.counters += &a.feed.finish();
                events.push(ClockEvent::Ended {
                    id: a.feed.id(),
                    reason,
                    streaming: true,
                });
                self.fallback = Some(a.feed);
            }
            if let Some(next) = self.standby.pop_front() {
                events.push(ClockEvent::TookOver { id: next.id() });
                self.active = Some(Streaming::new(next));
            }
        }

        // Standby games stream nowhere: keep their audio from piling up, notice when they leave.
        let mut i = 0;
        while i < self.standby.len() {
            let s = &mut self.standby[i];
            s.drain_audio(&mut self.discard);
            self.discard.clear();
            if let Some(reason) = s.closed() {
                if let Some(mut gone) = self.standby.remove(i) {
                    self.report.counters += &gone.finish();
                    events.push(ClockEvent::Ended {
                        id: gone.id(),
                        reason,
                        streaming: false,
                    });
                }
            } else {
                i += 1;
            }
        }

        self.k += 1;
        Ok(events)
    }

    /// Places the streaming game's audio on the stream timeline by its own timestamps.
    fn map_audio(&mut self, sink: &mut dyn OutputSink) -> Result<(), HostError> {
        let rate = self.opts.sample_rate;
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        a.feed.drain_audio(&mut a.pending_audio);
        let Some(tl) = a.timeline else {
            if a.pending_audio.len() > PRE_FRAME_AUDIO_BLOCKS {
                a.pending_audio.drain(..PRE_FRAME_AUDIO_BLOCKS / 2);
            }
            return Ok(());
        };
        for b in a.pending_audio.drain(..) {
            let samples = b.to_f32();
            let ch = usize::from(b.config.channels).max(1);
            let frames = (samples.len() / ch) as u64;
            let (start, skip) = match tl.sample_index(b.pts_ns, rate) {
                Some(idx) => (idx, 0),
                // Starts before the session's first frame: keep only the part after it.
                None => {
                    let before = (tl.base_pts_ns - b.pts_ns) as u128 * u128::from(rate);
                    let skip = before.div_ceil(1_000_000_000) as usize;
                    let idx = u128::from(tl.offset_ns) * u128::from(rate) / 1_000_000_000;
                    (idx as u64, skip)
                }
            };
            if skip * ch >= samples.len() {
                continue;
            }
            sink.audio(&samples[skip * ch..], start)?;
            let n = frames - skip as u64;
            self.audio_end = self.audio_end.max(start + n);
            self.report.audio_samples += n;
        }
        Ok(())
    }

    /// No game audio for a while (game gone or silent): keeps the audio track going, up to a
    /// fifth of a second behind the video, once it trails by more than half a second.
    fn fill_silence(&mut self, tick_ns: u64, sink: &mut dyn OutputSink) -> Result<(), HostError> {
        let rate = u128::from(self.opts.sample_rate);
        let video_samples = u128::from(tick_ns) * rate / 1_000_000_000;
        if video_samples > u128::from(self.audio_end) + rate / 2 {
            let n = (video_samples - u128::from(self.audio_end) - rate / 5) as usize;
            let silence = vec![0f32; n * self.opts.channels];
            sink.audio(&silence, self.audio_end)?;
            self.audio_end += n as u64;
            self.report.silence_samples += n as u64;
        }
        Ok(())
    }

    /// The stream's health now.
    pub fn snapshot(&self) -> ClockSnapshot {
        let c = self
            .active
            .as_ref()
            .map(|a| a.feed.counters())
            .unwrap_or_default();
        let video_samples =
            u128::from(self.stream_ns()) * u128::from(self.opts.sample_rate) / 1_000_000_000;
        ClockSnapshot {
            frames_out: self.report.frames_out,
            repeated: self.report.repeated,
            skipped: self.report.skipped,
            dropped: self.report.counters.frames_dropped + c.frames_dropped,
            game_frames_queued: c.frames_queued,
            av_offset_ms: self.av_offset_ms,
            audio_lag_ms: (video_samples as f64 - self.audio_end as f64) * 1000.0
                / f64::from(self.opts.sample_rate.max(1)),
            game_connected: self.active.is_some(),
        }
    }

    /// Ends every session still connected and returns the run's totals.
    pub fn finish(mut self) -> ClockReport {
        if let Some(mut a) = self.active.take() {
            self.report.counters += &a.feed.finish();
        }
        for mut s in self.standby.drain(..) {
            self.report.counters += &s.finish();
        }
        self.report
    }
}

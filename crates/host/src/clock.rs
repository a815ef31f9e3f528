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

use crate::feed::{AudioSource, GameFeed};
use crate::mix::{MixCounters, TimelineMix};
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
    /// Output frame `index` has no readable game frame (a Wayland client's pool went bad
    /// under it): show the last frame sent again, so the stream keeps its rate.
    fn repeat(&mut self, index: u64) -> Result<(), HostError>;
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
    /// Something a game session wants logged.
    Note {
        /// The session's id.
        id: u64,
        /// The line.
        text: String,
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
    /// What the audio mix did, when the game's sound also comes from an [`AudioSource`].
    pub mix: Option<MixCounters>,
    /// The audio source's own summary line.
    pub audio_source: Option<String>,
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

/// Where a block's samples go on the stream timeline: the sample index of its first kept
/// sample and the samples (f32, interleaved). A block that starts before the session's first
/// frame keeps only the part after it; `None` when nothing is left.
fn position(tl: &SessionTimeline, b: &AudioBlock, rate: u32) -> Option<(u64, Vec<f32>)> {
    let mut samples = b.to_f32();
    let ch = usize::from(b.config.channels).max(1);
    let (start, skip) = match tl.sample_index(b.pts_ns, rate) {
        Some(idx) => (idx, 0),
        None => {
            let before = (tl.base_pts_ns - b.pts_ns) as u128 * u128::from(rate);
            let skip = before.div_ceil(1_000_000_000) as usize;
            let idx = u128::from(tl.offset_ns) * u128::from(rate) / 1_000_000_000;
            (idx as u64, skip)
        }
    };
    if skip * ch >= samples.len() {
        return None;
    }
    samples.drain(..skip * ch);
    Some((start, samples))
}

/// Sums a block into the mix at its place on the timeline; returns the frames placed.
fn place(mix: &mut TimelineMix, tl: &SessionTimeline, b: &AudioBlock, rate: u32) -> u64 {
    match position(tl, b, rate) {
        Some((start, samples)) => {
            mix.add(start, &samples);
            (samples.len() / usize::from(b.config.channels).max(1)) as u64
        }
        None => 0,
    }
}

/// Checks a fresh frame's stamp when the run verifies them, counting the outcome.
fn verify_stamp(opts: &ClockOptions, report: &mut ClockReport, data: &[u8]) {
    if !opts.verify_stamps {
        return;
    }
    match stamp::verify(data) {
        Ok(_) => report.stamps_verified += 1,
        Err(e) => {
            report.stamp_errors += 1;
            log::warn!("{e}");
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
    /// The first frame, taken by [`start`](OutputClock::start), is fresh on the first tick.
    first_pending: bool,
    /// End of the audio handed to the sink, in samples.
    audio_end: u64,
    av_offset_ms: f64,
    report: ClockReport,
    discard: Vec<AudioBlock>,
    /// The game's sound on its own path (its PulseAudio server), mixed with the feed's.
    extra: Option<ExtraAudio>,
}

/// An [`AudioSource`] and the mix that sums it with the streaming game's blocks.
struct ExtraAudio {
    source: Box<dyn AudioSource>,
    mix: TimelineMix,
    /// The last streaming game's timeline: the source's sound keeps its place on the stream
    /// while no game streams (between a game's exit and its relaunch).
    timeline: Option<SessionTimeline>,
    blocks: Vec<AudioBlock>,
    out: Vec<f32>,
}

/// How far behind the output clock the mix hands audio to the sink: every source's block for
/// a sample must have come by then. A PulseAudio block waits up to one output period to be
/// drained, a native game's a little longer; later samples are dropped and counted.
const MIX_MARGIN_NS: u64 = 60_000_000;

/// How far ahead of what it handed out the mix holds audio (two seconds).
const MIX_AHEAD_SECONDS: u64 = 2;

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
            first_pending: false,
            audio_end: 0,
            av_offset_ms: 0.0,
            report: ClockReport::default(),
            discard: Vec::new(),
            extra: None,
        }
    }

    /// Mixes `source` (sound stamped on the host's clock) into the stream with the streaming
    /// game's own audio, from now on. Its audio is handed to the sink [`MIX_MARGIN_NS`] behind
    /// the output clock, so that the sources' blocks meet.
    pub fn set_audio_source(&mut self, source: Box<dyn AudioSource>) {
        let ahead = MIX_AHEAD_SECONDS * u64::from(self.opts.sample_rate);
        self.extra = Some(ExtraAudio {
            source,
            mix: TimelineMix::new(self.opts.channels, ahead),
            timeline: None,
            blocks: Vec::new(),
            out: Vec::new(),
        });
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

    /// The id of the game on the stream: the one that has the streamer's input.
    pub fn streaming_id(&self) -> Option<u64> {
        self.active
            .as_ref()
            .filter(|a| a.feed.closed().is_none())
            .map(|a| a.feed.id())
    }

    /// The streaming game's input sink, with its id: where the streamer's input goes.
    pub fn input_target(&self) -> Option<(u64, std::sync::Arc<dyn crosscast_input::InputSink>)> {
        let a = self.active.as_ref().filter(|a| a.feed.closed().is_none())?;
        Some((a.feed.id(), a.feed.input_sink()?))
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
        self.first_pending = true;
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
        // The first frame, taken at the start, is this tick's: taking another now would lose
        // it when the game's queue is lossless (fifo).
        let mut fresh = std::mem::take(&mut self.first_pending);
        let mut ended = None;
        if let Some(a) = self.active.as_mut() {
            let taken = if fresh { None } else { a.feed.acquire()? };
            if let Some(f) = taken {
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
            }
            // A game that left may still have frames queued (fifo keeps them all): it ends on
            // the first tick that finds nothing new, so they are all shown.
            if !fresh {
                ended = a.feed.closed();
            }
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
        let mut showed = false;
        if let Some(feed) = shown {
            let timeline = self.active.as_ref().and_then(|a| a.timeline);
            let (opts, report, av_offset_ms) =
                (&self.opts, &mut self.report, &mut self.av_offset_ms);
            showed = feed.with_held(&mut |f| {
                if let Some(t) = timeline.and_then(|tl| tl.stream_ns(f.pts_ns)) {
                    *av_offset_ms = (t as f64 - tick_ns as f64) / 1e6;
                }
                if fresh {
                    verify_stamp(opts, report, f.data);
                }
                sink.video(f, k)?;
                if fresh {
                    sink.preview(f)?;
                }
                Ok(())
            })?;
        }
        if !showed && self.origin_ns.is_some() {
            sink.repeat(k)?;
        }
        self.report.frames_out += 1;
        // Every game paced by the host hears of the output frame, the standby ones too (a
        // Wayland client that hears nothing stops drawing).
        let presented_ns = now_ns;
        for feed in self
            .active
            .iter_mut()
            .map(|a| &mut a.feed)
            .chain(self.standby.iter_mut())
        {
            feed.presented(k, presented_ns);
            let mut notes = Vec::new();
            feed.take_notes(&mut notes);
            let id = feed.id();
            events.extend(notes.into_iter().map(|text| ClockEvent::Note { id, text }));
        }

        if self.extra.is_some() {
            self.mix_audio(tick_ns, sink, &mut events)?;
        } else {
            self.map_audio(sink)?;
            self.fill_silence(tick_ns, sink)?;
        }

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
            let Some((start, samples)) = position(&tl, &b, rate) else {
                continue;
            };
            sink.audio(&samples, start)?;
            let n = (samples.len() / usize::from(b.config.channels).max(1)) as u64;
            self.audio_end = self.audio_end.max(start + n);
            self.report.audio_samples += n;
        }
        Ok(())
    }

    /// Places the streaming game's blocks and the audio source's on the stream timeline, sums
    /// them, and hands the sum to `sink` up to [`MIX_MARGIN_NS`] behind `tick_ns`: the track
    /// is continuous (silence where neither played).
    fn mix_audio(
        &mut self,
        tick_ns: u64,
        sink: &mut dyn OutputSink,
        events: &mut Vec<ClockEvent>,
    ) -> Result<(), HostError> {
        let rate = self.opts.sample_rate;
        let Some(x) = self.extra.as_mut() else {
            return Ok(());
        };
        let mut notes = Vec::new();
        x.source.take_notes(&mut notes);
        events.extend(
            notes
                .into_iter()
                .map(|text| ClockEvent::Note { id: 0, text }),
        );
        x.source.drain_audio(&mut x.blocks);
        if let Some(a) = self.active.as_mut() {
            a.feed.drain_audio(&mut a.pending_audio);
            match a.timeline {
                Some(tl) => {
                    x.timeline = Some(tl);
                    for b in a.pending_audio.drain(..) {
                        self.report.audio_samples += place(&mut x.mix, &tl, &b, rate);
                    }
                }
                None if a.pending_audio.len() > PRE_FRAME_AUDIO_BLOCKS => {
                    a.pending_audio.drain(..PRE_FRAME_AUDIO_BLOCKS / 2);
                }
                None => {}
            }
        }
        for b in x.blocks.drain(..) {
            // Before any game showed a frame there is no stream to put the sound on.
            if let Some(tl) = x.timeline {
                self.report.audio_samples += place(&mut x.mix, &tl, &b, rate);
            }
        }
        let end = (u128::from(tick_ns.saturating_sub(MIX_MARGIN_NS)) * u128::from(rate)
            / 1_000_000_000) as u64;
        if let Some(first) = x.mix.take_until(end, &mut x.out) {
            sink.audio(&x.out, first)?;
            self.audio_end = end;
        }
        self.report.mix = Some(x.mix.counters());
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
        if let Some(x) = &self.extra {
            self.report.audio_source = x.source.summary();
        }
        if let Some(mut a) = self.active.take() {
            self.report.counters += &a.feed.finish();
        }
        for mut s in self.standby.drain(..) {
            self.report.counters += &s.finish();
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    //! The clock on simulated time: games are schedules of frames and audio blocks with the
    //! times they arrive, and the test moves "now" to each tick's due time.

    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::time::Duration;

    use crosscast_wire::{AudioConfig, PixelOrder, SampleFormat};

    use crate::feed::{FrameStamp, ShowResult};

    use super::*;

    const RATE: u32 = 48_000;
    /// The game's clock starts far from 0, as CLOCK_MONOTONIC does.
    const GAME_T0: u64 = 7_000_000_000;

    /// A game on simulated time: frames and audio become visible when `now` reaches their
    /// arrival time; it ends at `ends_at`.
    struct SimFeed {
        id: u64,
        now: Rc<Cell<u64>>,
        /// (arrival ns, pts ns, seq), in arrival order.
        frames: VecDeque<(u64, u64, u64)>,
        audio: VecDeque<(u64, AudioBlock)>,
        held: Option<(u64, u64, u64)>,
        pixels: Vec<u8>,
        ends_at: Option<u64>,
        counters: HostCounters,
        finished: bool,
        /// Lossless queue: `acquire` takes the oldest frame, not the newest.
        fifo: bool,
        /// From this time on the held frame cannot be read (`with_held` says false).
        unreadable_from: Option<u64>,
        /// Where `finish` records the final counters, for tests that check the sums.
        finals: Rc<std::cell::RefCell<Vec<HostCounters>>>,
    }

    impl SimFeed {
        /// A game at `fps` whose frame n has pts `GAME_T0 + n/fps` and arrives at
        /// `first_arrival + n/fps`, for `count` frames; audio in 10 ms blocks over the same
        /// span when `audio` is set.
        fn paced(
            id: u64,
            now: &Rc<Cell<u64>>,
            fps: FrameRate,
            first_arrival: u64,
            count: u64,
            audio: bool,
        ) -> SimFeed {
            let frames = (0..count)
                .map(|n| {
                    (
                        first_arrival + fps.frame_ns(n),
                        GAME_T0 + fps.frame_ns(n),
                        n + 1,
                    )
                })
                .collect();
            let mut blocks = VecDeque::new();
            if audio {
                let span = fps.frame_ns(count);
                for m in 0..span / 10_000_000 {
                    let block = audio_block(m, GAME_T0 + m * 10_000_000, m as f32);
                    blocks.push_back((first_arrival + m * 10_000_000 + 10_000_000, block));
                }
            }
            SimFeed {
                id,
                now: now.clone(),
                frames,
                audio: blocks,
                held: None,
                pixels: vec![0u8; 2 * 2 * 4],
                ends_at: None,
                counters: HostCounters::default(),
                finished: false,
                fifo: false,
                unreadable_from: None,
                finals: Rc::default(),
            }
        }

        fn view(&self) -> Option<FrameView<'_>> {
            self.held.map(|(arrival, pts, seq)| FrameView {
                data: &self.pixels,
                width: 2,
                height: 2,
                stride: 8,
                seq,
                pts_ns: pts,
                sent_ns: arrival,
                received_ns: arrival,
                acquired_ns: self.now.get(),
                order: PixelOrder::Rgba,
            })
        }
    }

    /// A 10 ms stereo f32 block whose every sample is `value`.
    fn audio_block(seq: u64, pts_ns: u64, value: f32) -> AudioBlock {
        let frames = RATE as usize / 100;
        AudioBlock {
            seq,
            pts_ns,
            sent_ns: pts_ns,
            config: AudioConfig {
                sample_rate: RATE,
                channels: 2,
                format: SampleFormat::F32,
            },
            data: (0..frames * 2).flat_map(|_| value.to_le_bytes()).collect(),
        }
    }

    impl GameFeed for SimFeed {
        fn id(&self) -> u64 {
            self.id
        }

        fn wait_frame(&mut self, _timeout: Duration) -> bool {
            self.frames.front().is_some_and(|f| f.0 <= self.now.get())
        }

        fn acquire(&mut self) -> Result<Option<FrameStamp>, HostError> {
            let now = self.now.get();
            let mut newest = None;
            if self.fifo && self.frames.front().is_some_and(|f| f.0 <= now) {
                newest = self.frames.pop_front();
                self.counters.frames_queued += 1;
            }
            while !self.fifo && self.frames.front().is_some_and(|f| f.0 <= now) {
                if newest.is_some() {
                    self.counters.frames_dropped += 1;
                }
                newest = self.frames.pop_front();
                self.counters.frames_queued += 1;
            }
            if newest.is_none() {
                return Ok(None);
            }
            self.counters.frames_acquired += 1;
            self.held = newest;
            Ok(self.view().as_ref().map(FrameStamp::of))
        }

        fn with_held(
            &self,
            show: &mut dyn FnMut(&FrameView<'_>) -> ShowResult,
        ) -> ShowResult<bool> {
            if self.unreadable_from.is_some_and(|t| self.now.get() >= t) {
                return Ok(false);
            }
            match self.view() {
                Some(v) => show(&v).map(|()| true),
                None => Ok(false),
            }
        }

        fn drain_audio(&mut self, out: &mut Vec<AudioBlock>) {
            while self.audio.front().is_some_and(|a| a.0 <= self.now.get()) {
                if let Some((_, b)) = self.audio.pop_front() {
                    self.counters.audio_blocks += 1;
                    out.push(b);
                }
            }
        }

        fn closed(&self) -> Option<String> {
            self.ends_at
                .filter(|&t| self.now.get() >= t)
                .map(|_| "game left".to_string())
        }

        fn counters(&self) -> HostCounters {
            self.counters.clone()
        }

        fn finish(&mut self) -> HostCounters {
            assert!(!self.finished, "a feed is finished once");
            self.finished = true;
            self.finals.borrow_mut().push(self.counters.clone());
            self.counters.clone()
        }
    }

    /// Everything the clock sent out.
    #[derive(Default)]
    struct Recorder {
        /// (output index, pts of the game frame shown)
        video: Vec<(u64, u64)>,
        previews: u64,
        /// Output indexes that repeated the last frame sent (nothing readable).
        repeats: Vec<u64>,
        /// (first sample index, frames, first sample's value)
        audio: Vec<(u64, u64, f32)>,
        /// The left channel of everything handed over, by sample index.
        left: Vec<f32>,
    }

    impl OutputSink for Recorder {
        fn video(&mut self, f: &FrameView<'_>, index: u64) -> Result<(), HostError> {
            self.video.push((index, f.pts_ns));
            Ok(())
        }

        fn preview(&mut self, _f: &FrameView<'_>) -> Result<(), HostError> {
            self.previews += 1;
            Ok(())
        }

        fn repeat(&mut self, index: u64) -> Result<(), HostError> {
            self.repeats.push(index);
            Ok(())
        }

        fn audio(&mut self, samples: &[f32], index: u64) -> Result<(), HostError> {
            self.audio.push((
                index,
                samples.len() as u64 / 2,
                samples.first().copied().unwrap_or(0.0),
            ));
            let end = index as usize + samples.len() / 2;
            if self.left.len() < end {
                self.left.resize(end, f32::NAN);
            }
            for (i, f) in samples.chunks(2).enumerate() {
                self.left[index as usize + i] = f[0];
            }
            Ok(())
        }
    }

    fn clock(fps: FrameRate) -> OutputClock {
        OutputClock::new(ClockOptions {
            fps,
            sample_rate: RATE,
            channels: 2,
            verify_stamps: false,
        })
    }

    /// Starts the clock at `start` and runs `ticks` ticks, each `late_ns` after its due time.
    fn run(
        c: &mut OutputClock,
        now: &Rc<Cell<u64>>,
        start: u64,
        ticks: u64,
        late_ns: u64,
        sink: &mut Recorder,
    ) -> Vec<ClockEvent> {
        now.set(start);
        assert!(c.wait_first(Duration::ZERO), "a first frame is there");
        assert!(c.start(now.get()).unwrap());
        let mut events = Vec::new();
        for _ in 0..ticks {
            now.set(c.next_due_ns().unwrap() + late_ns);
            events.extend(c.tick(now.get(), sink).unwrap());
        }
        events
    }

    #[test]
    fn a_game_at_the_output_rate_shows_every_frame_once_in_sync() {
        for fps in [
            FrameRate::integer(30),
            FrameRate::integer(60),
            FrameRate::new(60_000, 1001).unwrap(),
        ] {
            let now = Rc::new(Cell::new(0));
            let mut c = clock(fps);
            c.add(Box::new(SimFeed::paced(
                1,
                &now,
                fps,
                1_000_000_000,
                400,
                false,
            )));
            let mut sink = Recorder::default();
            run(&mut c, &now, 1_000_000_000, 300, 200_000, &mut sink);
            // Output frame k shows game frame k: its pts sits exactly at k on the stream.
            for (k, (index, pts)) in sink.video.iter().enumerate() {
                assert_eq!(*index, k as u64);
                assert_eq!(pts - GAME_T0, fps.frame_ns(k as u64), "{fps}: frame {k}");
            }
            assert_eq!(c.snapshot().av_offset_ms, 0.0);
            let r = c.finish();
            assert_eq!((r.frames_out, r.repeated, r.skipped), (300, 0, 0), "{fps}");
            assert_eq!(
                sink.previews, 300,
                "{fps}: every fresh frame previewed once"
            );
        }
    }

    #[test]
    fn a_slow_game_is_repeated_and_a_fast_one_skipped() {
        let out = FrameRate::integer(60);
        // 30 fps on a 60 fps stream: every other output frame repeats.
        let now = Rc::new(Cell::new(0));
        let mut c = clock(out);
        c.add(Box::new(SimFeed::paced(
            1,
            &now,
            FrameRate::integer(30),
            0,
            200,
            false,
        )));
        let mut sink = Recorder::default();
        run(&mut c, &now, 0, 240, 0, &mut sink);
        let r = c.finish();
        assert_eq!((r.frames_out, r.repeated, r.skipped), (240, 120, 0));
        assert_eq!(sink.previews, 120);

        // 120 fps on a 60 fps stream: every other game frame is never shown.
        let now = Rc::new(Cell::new(0));
        let mut c = clock(out);
        c.add(Box::new(SimFeed::paced(
            1,
            &now,
            FrameRate::integer(120),
            0,
            600,
            false,
        )));
        let mut sink = Recorder::default();
        run(&mut c, &now, 0, 240, 0, &mut sink);
        let r = c.finish();
        assert_eq!((r.frames_out, r.repeated), (240, 0));
        assert_eq!(r.skipped, 240, "one game frame skipped per output frame");
        assert_eq!(
            r.counters.frames_dropped, 240,
            "the feed's own count agrees"
        );
    }

    #[test]
    fn a_stalled_game_is_repeated_and_the_output_keeps_its_rate() {
        let fps = FrameRate::integer(30);
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        // 30 frames, then nothing: the output goes on, repeating the last frame.
        c.add(Box::new(SimFeed::paced(1, &now, fps, 0, 30, false)));
        let mut sink = Recorder::default();
        run(&mut c, &now, 0, 90, 0, &mut sink);
        assert_eq!(sink.video.len(), 90);
        assert!(sink.video[30..]
            .iter()
            .all(|v| v.1 == GAME_T0 + fps.frame_ns(29)));
        assert_eq!(c.finish().repeated, 60);
    }

    #[test]
    fn a_frame_that_cannot_be_read_is_a_repeat_and_the_output_keeps_its_rate() {
        let fps = FrameRate::integer(30);
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        // The held frame becomes unreadable at 1 s (a Wayland pool truncated under it).
        let mut feed = SimFeed::paced(1, &now, fps, 0, 60, false);
        feed.unreadable_from = Some(1_000_000_000);
        c.add(Box::new(feed));
        let mut sink = Recorder::default();
        run(&mut c, &now, 0, 60, 0, &mut sink);
        assert_eq!(sink.video.len() + sink.repeats.len(), 60);
        assert!(sink.repeats.len() >= 29, "{:?}", sink.repeats);
        assert!(sink.repeats.iter().all(|&k| k >= 29));
    }

    #[test]
    fn a_game_that_takes_over_gets_the_ticks_half_a_period_from_its_frames() {
        let fps = FrameRate::integer(60);
        let period = fps.period_ns();
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        let mut first = SimFeed::paced(1, &now, fps, 0, 60, false);
        // It leaves after its last frame.
        first.ends_at = Some(fps.frame_ns(60));
        c.add(Box::new(first));
        // The standby game's frames arrive 0.2 ms after the first game's ticks would fall:
        // left there, every bit of jitter would cost a repeat and a skip.
        let origin = period / 2;
        let second = SimFeed::paced(
            2,
            &now,
            fps,
            origin + fps.frame_ns(62) + 200_000,
            300,
            false,
        );
        c.add(Box::new(second));
        let mut sink = Recorder::default();
        let events = run(&mut c, &now, 0, 240, 0, &mut sink);
        assert_eq!(
            events[..2],
            [
                ClockEvent::Ended {
                    id: 1,
                    reason: "game left".into(),
                    streaming: true
                },
                ClockEvent::TookOver { id: 2 }
            ]
        );
        // After the takeover each tick falls half a period after the second game's frames.
        let due = c.next_due_ns().unwrap();
        let arrival_phase = (origin + 200_000) % period;
        let lead = (due + period - arrival_phase) % period;
        // (Within 1 µs: the test's phase arithmetic uses the rounded period, which the exact
        // frame times drift from by under 1 ns per frame.)
        assert!(
            lead.abs_diff(period / 2) <= 1_000,
            "ticks {lead} ns after the game's frames, want {}",
            period / 2
        );
        // The stream never stopped and never went backwards.
        assert!(sink.video.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        let r = c.finish();
        assert_eq!(r.frames_out, 240);
        assert_eq!(r.sessions, 2);
        // Only the frames of the gap between the two games repeated.
        assert!(r.repeated <= 4, "repeated {}", r.repeated);
    }

    #[test]
    fn audio_lands_on_the_stream_timeline_by_its_own_timestamps() {
        let fps = FrameRate::integer(30);
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        let mut game = SimFeed::paced(1, &now, fps, 0, 60, true);
        // A block that starts 5 ms before the first frame: only its last 5 ms are kept, at 0.
        game.audio
            .push_front((0, audio_block(99, GAME_T0 - 5_000_000, -1.0)));
        c.add(Box::new(game));
        let mut sink = Recorder::default();
        run(&mut c, &now, 0, 60, 0, &mut sink);
        assert_eq!(sink.audio[0], (0, 240, -1.0));
        // Block m (pts GAME_T0 + 10m ms) goes to sample 480m, exactly.
        for (m, a) in sink.audio[1..].iter().enumerate() {
            assert_eq!(*a, (480 * m as u64, 480, m as f32), "block {m}");
        }
        let r = c.finish();
        assert_eq!(r.silence_samples, 0);
        assert_eq!(r.audio_samples, 240 + 480 * (sink.audio.len() as u64 - 1));
    }

    /// A sound source on the host's clock (the PulseAudio pump): blocks of `value` stamped
    /// 10 ms apart from `first_pts`, each visible `delay_ns` after its stamp.
    struct SimSource {
        now: std::sync::Arc<std::sync::atomic::AtomicU64>,
        blocks: VecDeque<AudioBlock>,
        delay_ns: u64,
    }

    impl AudioSource for SimSource {
        fn drain_audio(&mut self, out: &mut Vec<AudioBlock>) {
            let now = self.now.load(std::sync::atomic::Ordering::Relaxed);
            while self
                .blocks
                .front()
                .is_some_and(|b| b.pts_ns + self.delay_ns <= now)
            {
                out.extend(self.blocks.pop_front());
            }
        }
    }

    /// A 30 fps game with its own audio (block m holds the value m) and a source of 1000s
    /// offset by 5 ms, arriving `delay_ns` late: the sink's left channel and the mix totals.
    fn mixed_run(delay_ns: u64) -> (Vec<f32>, MixCounters) {
        let fps = FrameRate::integer(30);
        let now = Rc::new(Cell::new(0));
        let shared = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut c = clock(fps);
        c.add(Box::new(SimFeed::paced(1, &now, fps, 0, 60, true)));
        let blocks = (0..200)
            .map(|m| audio_block(m, GAME_T0 + 5_000_000 + m * 10_000_000, 1000.0))
            .collect();
        c.set_audio_source(Box::new(SimSource {
            now: shared.clone(),
            blocks,
            delay_ns,
        }));
        let mut sink = Recorder::default();
        assert!(c.wait_first(Duration::ZERO));
        assert!(c.start(0).unwrap());
        for _ in 0..60 {
            now.set(c.next_due_ns().unwrap());
            // The source's clock is the game's: GAME_T0 at the stream's start.
            shared.store(now.get() + GAME_T0, std::sync::atomic::Ordering::Relaxed);
            c.tick(now.get(), &mut sink).unwrap();
        }
        let r = c.finish();
        (sink.left, r.mix.expect("a mix ran"))
    }

    #[test]
    fn a_second_audio_source_is_summed_with_the_games_own() {
        let (left, counters) = mixed_run(8_000_000);
        // Continuous from sample 0, handed over up to the margin behind the last tick.
        assert!(left.iter().all(|v| !v.is_nan()), "gaps in the track");
        let last_tick = FrameRate::integer(30).frame_ns(59);
        let want = (last_tick - MIX_MARGIN_NS) * 48 / 1_000_000;
        assert_eq!(left.len() as u64, want);
        // The game's block m covers samples 480m..480m+480; the source starts at 240.
        assert_eq!(left[100], 0.0);
        assert_eq!(left[300], 1000.0);
        assert_eq!(left[480 * 7 + 10], 1007.0);
        assert_eq!(left[480 * 30 + 479], 1030.0);
        assert_eq!(counters.late, 0);
    }

    #[test]
    fn source_audio_later_than_the_margin_is_dropped_and_counted() {
        let (left, counters) = mixed_run(MIX_MARGIN_NS + 40_000_000);
        // Every source block came after its place was handed over: only the game is heard.
        assert_eq!(left[480 * 7 + 10], 7.0);
        assert!(counters.late > 0);
    }

    #[test]
    fn a_silent_game_gets_a_continuous_silent_track() {
        let fps = FrameRate::integer(30);
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        c.add(Box::new(SimFeed::paced(1, &now, fps, 0, 300, false)));
        let mut sink = Recorder::default();
        run(&mut c, &now, 0, 300, 0, &mut sink);
        // Gapless from sample 0, never further than half a second behind the video.
        let mut end = 0;
        for (index, frames, _) in &sink.audio {
            assert_eq!(*index, end);
            end += frames;
        }
        let video_samples = fps.frame_ns(299) * u64::from(RATE) / 1_000_000_000;
        assert!(video_samples - end <= u64::from(RATE) / 2);
        assert_eq!(c.finish().silence_samples, end);
    }

    #[test]
    fn counters_of_every_session_are_summed() {
        let fps = FrameRate::integer(60);
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        let mut a = SimFeed::paced(1, &now, fps, 0, 30, true);
        a.ends_at = Some(fps.frame_ns(30));
        let mut b = SimFeed::paced(2, &now, FrameRate::integer(120), 0, 400, true);
        b.ends_at = Some(fps.frame_ns(90));
        let mut standby = SimFeed::paced(3, &now, fps, 0, 400, false);
        // One more that leaves while still waiting on standby.
        let mut leaves = SimFeed::paced(4, &now, fps, 0, 400, true);
        leaves.ends_at = Some(fps.frame_ns(10));
        let finals = a.finals.clone();
        (b.finals, standby.finals) = (finals.clone(), finals.clone());
        leaves.finals = finals.clone();
        c.add(Box::new(a));
        c.add(Box::new(b));
        c.add(Box::new(standby));
        c.add(Box::new(leaves));
        let mut sink = Recorder::default();
        let events = run(&mut c, &now, 0, 150, 0, &mut sink);
        assert!(events.contains(&ClockEvent::Ended {
            id: 4,
            reason: "game left".into(),
            streaming: false
        }));
        let r = c.finish();
        // Each session is finished once (two that streamed and ended, one that left from
        // standby, the streaming one at the end) and the report is the sum of their counters.
        assert_eq!(r.sessions, 4);
        let finals = finals.borrow();
        assert_eq!(finals.len(), 4);
        let mut sum = HostCounters::default();
        for f in finals.iter() {
            sum += f;
        }
        assert_eq!(r.counters, sum);
        assert!(sum.frames_dropped > 0 && sum.audio_blocks > 0 && sum.frames_acquired > 0);
    }

    #[test]
    fn a_lossless_queue_shows_every_frame_from_the_first_to_those_pending_at_goodbye() {
        // A 60 fps game on a 10 fps stream, fifo: every frame it queued must be shown once,
        // the first one (already followed by others at the first tick) and the ones still
        // queued when it leaves.
        let fps = FrameRate::integer(10);
        let now = Rc::new(Cell::new(0));
        let mut c = clock(fps);
        let mut game = SimFeed::paced(1, &now, FrameRate::integer(60), 0, 12, false);
        game.fifo = true;
        game.ends_at = Some(FrameRate::integer(60).frame_ns(12));
        c.add(Box::new(game));
        let mut sink = Recorder::default();
        let events = run(&mut c, &now, 0, 20, 0, &mut sink);
        let shown: Vec<u64> = sink
            .video
            .iter()
            .map(|v| v.1)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let want: Vec<u64> = (0..12)
            .map(|n| GAME_T0 + FrameRate::integer(60).frame_ns(n))
            .collect();
        assert_eq!(shown, want, "every queued frame shown");
        assert_eq!(sink.previews, 12);
        // It ended only after its last frame was on the stream.
        assert!(matches!(events[..], [ClockEvent::Ended { id: 1, .. }]));
        let r = c.finish();
        assert_eq!((r.skipped, r.counters.frames_acquired), (0, 12));
    }
}

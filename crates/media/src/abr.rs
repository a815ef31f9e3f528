//! Adaptive bitrate for live outputs: a sans-io controller that watches each network output's
//! send queue and tells the live video encode which bitrate to use.
//!
//! The signal is the queue, not a guess at the link: every packet the encoder hands a network
//! output waits in that output's bounded queue until its writer has pushed it into the socket,
//! so how much media time is waiting there (`backlog`) says whether the link keeps up. When it
//! backs up the bitrate steps down at once (to what the link was seen to carry, or by a fixed
//! factor), then waits for the queue to drain; after a stretch of sustained headroom it steps
//! back up a little at a time, within `min..=max`. A probe up that brings the congestion back
//! makes the next probe wait twice as long (at most [`MAX_UP_HOLD`]), so a link that stays
//! narrow is not hammered every few seconds.
//!
//! Reconnects (the lesson of OBS's dynamic bitrate, whose early versions jumped back to full
//! rate on every reconnect and congested the fresh connection at once): an output that is not
//! live is ignored; an output that has just (re)connected starts with an empty queue, which is
//! no evidence of headroom, so the headroom clock restarts at every (re)connection and the
//! bitrate stays where it was.
//!
//! Time comes in as nanoseconds from any monotonic origin, so the tests run on simulated time.

/// How often the encoder thread feeds the controller.
pub(crate) const TICK_NS: u64 = 250_000_000;
/// Media time waiting in a queue above which the output is congested.
pub(crate) const CONGESTED_US: i64 = 600_000;
/// Media time waiting in every queue below which there is headroom.
pub(crate) const HEADROOM_US: i64 = 200_000;
/// Wait after a step down before the next one, so the queue can show the effect.
pub(crate) const DOWN_COOLDOWN_NS: u64 = 2_000_000_000;
/// Sustained headroom needed before the first step up after a change.
pub(crate) const UP_HOLD: u64 = 3_000_000_000;
/// The longest wait between probes up on a link that keeps refusing them.
pub(crate) const MAX_UP_HOLD: u64 = 8_000_000_000;
/// A congestion this soon after a step up means the probe failed.
const FAILED_PROBE_NS: u64 = 10_000_000_000;
/// How far back the throughput estimate looks.
const RATE_WINDOW_NS: u64 = 2_000_000_000;

/// One network output as the controller sees it at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkView {
    /// Connected and sending.
    pub(crate) live: bool,
    /// Successful connections so far (a change means it reconnected).
    pub(crate) connections: u64,
    /// Media time queued and not yet written, in microseconds.
    pub(crate) backlog_us: i64,
    /// Bytes written to the connection so far.
    pub(crate) sent_bytes: u64,
    /// Bytes of encoded media queued and not yet written.
    pub(crate) queued_bytes: u64,
}

/// A bitrate change the controller asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// Bitrate before, in kb/s.
    pub(crate) from_kbps: u32,
    /// Bitrate to use from now on, in kb/s.
    pub(crate) to_kbps: u32,
    /// Why, for the log.
    pub(crate) reason: String,
}

#[derive(Debug, Default, Clone)]
struct LinkTrack {
    connections: u64,
    /// (time, bytes sent) samples within the last `RATE_WINDOW_NS`.
    sent: std::collections::VecDeque<(u64, u64)>,
    /// Bytes queued at the last few ticks (about a second's worth), to tell a queue that is
    /// still growing from one that drains. Bytes, not media time: just after a step down the
    /// link is still sending media encoded at the old rate, so the media time waiting keeps
    /// growing for a while even though the bytes waiting already shrink.
    queued: std::collections::VecDeque<u64>,
}

/// The controller; see the module docs.
#[derive(Debug)]
pub(crate) struct BitrateController {
    min_kbps: u32,
    max_kbps: u32,
    /// Audio bitrate sharing the link, subtracted from a throughput estimate.
    audio_kbps: u32,
    current: u32,
    links: Vec<LinkTrack>,
    last_tick: Option<u64>,
    last_down: Option<u64>,
    last_up: Option<u64>,
    /// Since when every live output has had headroom (None: not now).
    headroom_since: Option<u64>,
    up_hold: u64,
    /// The rate that last congested a link: probes up stop just under it first and go past it
    /// only in small steps, until a probe above it holds.
    ceiling: Option<u32>,
}

impl BitrateController {
    /// A controller starting at `max_kbps`.
    pub(crate) fn new(min_kbps: u32, max_kbps: u32, audio_kbps: u32, outputs: usize) -> Self {
        let min_kbps = min_kbps.min(max_kbps);
        Self {
            min_kbps,
            max_kbps,
            audio_kbps,
            current: max_kbps,
            links: vec![LinkTrack::default(); outputs],
            last_tick: None,
            last_down: None,
            last_up: None,
            headroom_since: None,
            up_hold: UP_HOLD,
            ceiling: None,
        }
    }

    /// The bitrate in force, in kb/s.
    #[cfg(test)]
    pub(crate) fn current_kbps(&self) -> u32 {
        self.current
    }

    /// Feeds one observation of every output (in a fixed order); returns a change to apply.
    /// Calls closer together than [`TICK_NS`] are ignored.
    pub(crate) fn tick(&mut self, now: u64, links: &[LinkView]) -> Option<Change> {
        if self
            .last_tick
            .is_some_and(|t| now.saturating_sub(t) < TICK_NS)
        {
            return None;
        }
        self.last_tick = Some(now);
        let mut reconnected = false;
        for (track, view) in self.links.iter_mut().zip(links) {
            if view.connections != track.connections {
                track.connections = view.connections;
                track.sent.clear();
                track.queued.clear();
                reconnected = true;
            }
            if view.live {
                track.sent.push_back((now, view.sent_bytes));
                track.queued.push_back(view.queued_bytes);
                if track.queued.len() > 5 {
                    track.queued.pop_front();
                }
            }
            while track
                .sent
                .front()
                .is_some_and(|&(t, _)| now.saturating_sub(t) > RATE_WINDOW_NS)
            {
                track.sent.pop_front();
            }
        }
        let live: Vec<(usize, &LinkView)> =
            links.iter().enumerate().filter(|(_, l)| l.live).collect();
        if live.is_empty() {
            // Nothing to learn from: hold the rate, and let headroom start over when one returns.
            self.headroom_since = None;
            return None;
        }
        let worst = live
            .iter()
            .max_by_key(|(_, l)| l.backlog_us)
            .map(|&(i, l)| (i, *l))?;
        if worst.1.backlog_us > CONGESTED_US {
            self.headroom_since = None;
            // Growing: more bytes waiting than about a second ago (or too little history to
            // say otherwise).
            let queued = &self.links[worst.0].queued;
            let growing = queued.len() < 5 || queued.back() >= queued.front();
            return self.step_down(now, worst.0, worst.1.backlog_us, growing);
        }
        if reconnected || worst.1.backlog_us > HEADROOM_US {
            self.headroom_since = None;
            return None;
        }
        let since = *self.headroom_since.get_or_insert(now);
        if self.last_up.is_some_and(|t| {
            now.saturating_sub(t) >= FAILED_PROBE_NS && self.last_down.is_none_or(|d| d < t)
        }) {
            // The last probe up held: the link has room again, probe at the usual pace.
            self.up_hold = UP_HOLD;
            if self.ceiling.is_some_and(|c| self.current > c) {
                self.ceiling = None;
            }
        }
        let last_change = self.last_up.max(self.last_down).unwrap_or(0);
        if self.current < self.max_kbps
            && now.saturating_sub(since) >= self.up_hold
            && now.saturating_sub(last_change) >= self.up_hold
        {
            return Some(self.step_up(now));
        }
        None
    }

    fn step_down(
        &mut self,
        now: u64,
        link: usize,
        backlog_us: i64,
        growing: bool,
    ) -> Option<Change> {
        if self
            .last_down
            .is_some_and(|t| now.saturating_sub(t) < DOWN_COOLDOWN_NS)
        {
            return None;
        }
        let seen = self.throughput_kbps(link);
        // Fewer bytes waiting than a second ago while sending no more than the link carried:
        // the queue is draining, and stepping further would only overshoot.
        let below_link = seen.is_some_and(|k| self.current + self.audio_kbps <= k);
        if below_link && !growing {
            return None;
        }
        if self
            .last_up
            .is_some_and(|t| now.saturating_sub(t) < FAILED_PROBE_NS)
        {
            // The last probe up was too much for the link: wait longer before the next one.
            self.up_hold = (self.up_hold * 2).min(MAX_UP_HOLD);
        }
        let by_factor = self.current * 7 / 10;
        // What the link carried lately is a ceiling worth going to at once, with a margin so
        // the queue drains; the factor bounds the step when the estimate is missing or high,
        // and no step more than halves the rate, since one bad estimate (a window that caught
        // TCP recovering from a loss) would otherwise throw the rate to the floor.
        let target = match seen {
            Some(kbps) => by_factor.min((kbps * 85 / 100).saturating_sub(self.audio_kbps)),
            None => by_factor,
        }
        .max(self.current / 2)
        .max(self.min_kbps);
        self.last_down = Some(now);
        if target >= self.current {
            return None;
        }
        self.ceiling = Some(self.current);
        let from = self.current;
        self.current = target;
        Some(Change {
            from_kbps: from,
            to_kbps: target,
            reason: format!(
                "output {} is backing up ({:.1} s queued{})",
                link + 1,
                backlog_us as f64 / 1e6,
                match seen {
                    Some(k) => format!(", link carried ~{k} kb/s"),
                    None => String::new(),
                }
            ),
        })
    }

    fn step_up(&mut self, now: u64) -> Change {
        if self
            .last_up
            .is_some_and(|u| self.last_down.is_none_or(|d| d < u))
        {
            // The last probe held through a whole hold: back to the usual pace, so a link
            // that has come back is climbed in seconds, not at the wary pace of failed probes.
            self.up_hold = UP_HOLD;
        }
        let from = self.current;
        // Big steps while far below full, so a recovered link gets its quality back in a few
        // steps; a step that overshoots a link still narrow is undone at once (the step down
        // goes to what the link carried).
        let big = (from / 4)
            .max(self.max_kbps / 10)
            .max(self.max_kbps.saturating_sub(from) / 3);
        let small = (self.max_kbps / 20).max(1);
        if self.ceiling.is_some_and(|c| from > c) {
            // A probe past the old ceiling held for a whole hold: that ceiling is gone.
            self.ceiling = None;
        }
        self.current = match self.ceiling.map(|c| c * 9 / 10) {
            // Quickly to just under the rate that congested, then carefully past it.
            Some(c) if from < c => from.saturating_add(big).min(c),
            Some(_) => from.saturating_add(small),
            None => from.saturating_add(big),
        }
        .min(self.max_kbps);
        self.last_up = Some(now);
        self.headroom_since = Some(now);
        if self.current == self.max_kbps {
            // Back to full: the next congestion starts from the short hold again.
            self.up_hold = UP_HOLD;
        }
        Change {
            from_kbps: from,
            to_kbps: self.current,
            reason: if self.current == self.max_kbps {
                "headroom on every output: back to full bitrate".into()
            } else {
                "headroom on every output".into()
            },
        }
    }

    /// What a link carried over the last window, in kb/s (None without two samples 0.5 s apart).
    fn throughput_kbps(&self, link: usize) -> Option<u32> {
        let s = &self.links.get(link)?.sent;
        let (&(t0, b0), &(t1, b1)) = (s.front()?, s.back()?);
        let dt = t1.saturating_sub(t0);
        if dt < 500_000_000 {
            return None;
        }
        let kbps = b1.saturating_sub(b0) as f64 * 8.0 / (dt as f64 / 1e9) / 1000.0;
        Some(kbps.min(f64::from(u32::MAX)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// A simulated link: the encoder produces `rate` kb/s, the link carries `cap` kb/s, and
    /// the queue holds the difference (as media time at the current rate).
    struct Sim {
        ctl: BitrateController,
        now: u64,
        queued_bits: f64,
        sent_bytes: f64,
        connections: u64,
        live: bool,
        changes: Vec<(u64, Change)>,
    }

    impl Sim {
        fn new(min: u32, max: u32) -> Self {
            Self {
                ctl: BitrateController::new(min, max, 0, 1),
                now: 0,
                queued_bits: 0.0,
                sent_bytes: 0.0,
                connections: 1,
                live: true,
                changes: Vec::new(),
            }
        }

        /// Runs `secs` seconds with a link of `cap` kb/s, ticking every 250 ms.
        fn run(&mut self, secs: f64, cap: f64) {
            let ticks = (secs * 4.0) as usize;
            for _ in 0..ticks {
                self.now += TICK_NS;
                let rate = f64::from(self.ctl.current_kbps());
                if self.live {
                    self.queued_bits += rate * 1000.0 * 0.25;
                    let sent = self.queued_bits.min(cap * 1000.0 * 0.25);
                    self.queued_bits -= sent;
                    self.sent_bytes += sent / 8.0;
                } else {
                    self.queued_bits = 0.0;
                }
                // Media time waiting, approximated by how long the link takes to send it.
                let backlog_us = (self.queued_bits / (cap * 1000.0) * 1e6) as i64;
                let view = LinkView {
                    live: self.live,
                    connections: self.connections,
                    backlog_us,
                    sent_bytes: self.sent_bytes as u64,
                    queued_bytes: (self.queued_bits / 8.0) as u64,
                };
                if let Some(c) = self.ctl.tick(self.now, &[view]) {
                    self.changes.push((self.now, c));
                }
            }
        }
    }

    #[test]
    fn a_wide_link_keeps_full_rate() {
        let mut s = Sim::new(500, 4000);
        s.run(60.0, 10_000.0);
        assert!(s.changes.is_empty(), "{:?}", s.changes);
        assert_eq!(s.ctl.current_kbps(), 4000);
    }

    #[test]
    fn a_squeeze_steps_down_below_the_link_and_recovery_climbs_back() {
        let mut s = Sim::new(500, 4000);
        s.run(5.0, 10_000.0);
        let before = s.changes.len();
        let mut rates = Vec::new();
        let mut worst_queue = 0.0f64;
        for _ in 0..120 {
            s.run(0.25, 1500.0);
            rates.push(f64::from(s.ctl.current_kbps()));
            worst_queue = worst_queue.max(s.queued_bits / 1000.0 / 1500.0);
        }
        // After the first seconds the rate sits below the link, probing now and then.
        let settled = &rates[20..];
        let mean = settled.iter().sum::<f64>() / settled.len() as f64;
        assert!(
            (500.0..=1500.0).contains(&mean),
            "mean rate {mean} during the squeeze"
        );
        // The queue holds about 5 s (512 packets at 60 fps): it must never come near that.
        assert!(worst_queue < 3.0, "queue reached {worst_queue:.1} s");
        let during = s.changes.len() - before;
        assert!(
            during < 12,
            "{during} changes in 30 s: flapping: {:?}",
            &s.changes[before..]
        );
        // The first step down comes within a second or two of the queue backing up.
        let first = s.changes.first().expect("no step down").0;
        assert!(first <= 5 * S + 2 * S, "first step at {first}");
        let squeeze_end = s.now;
        s.run(60.0, 10_000.0);
        assert_eq!(s.ctl.current_kbps(), 4000);
        let back = s
            .changes
            .iter()
            .find(|(t, c)| *t > squeeze_end && c.to_kbps == 4000);
        let back = back.expect("never back to full").0 - squeeze_end;
        assert!(back < 20 * S, "took {} s to recover", back / S);
    }

    /// A closer simulation of what the encoder thread sees: the queue holds media in 250 ms
    /// chunks, each of the size it was encoded at, so the media time waiting keeps growing
    /// for a while after a step down (the link is still sending what was encoded at the old
    /// rate); and the encoder's output follows a new target only over a second (x264's VBV).
    struct MediaSim {
        ctl: BitrateController,
        now: u64,
        /// (media µs, bits left) per queued chunk, oldest first.
        queue: std::collections::VecDeque<(i64, f64)>,
        /// The targets of the last second; the encoder produces their mean.
        targets: std::collections::VecDeque<f64>,
        sent_bytes: f64,
        changes: Vec<(u64, Change)>,
    }

    impl MediaSim {
        fn new(min: u32, max: u32, audio: u32) -> Self {
            Self {
                ctl: BitrateController::new(min, max, audio, 1),
                now: 0,
                queue: std::collections::VecDeque::new(),
                targets: std::collections::VecDeque::new(),
                sent_bytes: 0.0,
                changes: Vec::new(),
            }
        }

        /// Runs `secs` seconds on a link of `cap` kb/s.
        fn run(&mut self, secs: f64, cap: f64) {
            for _ in 0..(secs * 4.0) as usize {
                self.now += TICK_NS;
                self.targets
                    .push_back(f64::from(self.ctl.current_kbps() + self.ctl.audio_kbps));
                if self.targets.len() > 4 {
                    self.targets.pop_front();
                }
                let rate = self.targets.iter().sum::<f64>() / self.targets.len() as f64;
                self.queue.push_back((250_000, rate * 1000.0 * 0.25));
                let mut budget = cap * 1000.0 * 0.25;
                while let Some(front) = self.queue.front_mut() {
                    let sent = front.1.min(budget);
                    front.1 -= sent;
                    budget -= sent;
                    self.sent_bytes += sent / 8.0;
                    if front.1 > 0.0 {
                        break;
                    }
                    self.queue.pop_front();
                }
                let view = LinkView {
                    live: true,
                    connections: 1,
                    backlog_us: self.queue.iter().map(|c| c.0).sum::<i64>() - 250_000,
                    sent_bytes: self.sent_bytes as u64,
                    queued_bytes: (self.queue.iter().map(|c| c.1).sum::<f64>() / 8.0) as u64,
                };
                if let Some(c) = self.ctl.tick(self.now, &[view]) {
                    self.changes.push((self.now, c));
                }
            }
        }
    }

    #[test]
    fn a_queue_still_sending_old_media_after_a_step_down_does_not_drive_the_rate_to_the_floor() {
        // The bench's case: 2500 kb/s (+160 audio) squeezed to a 1200 kb/s link.
        let mut s = MediaSim::new(300, 2500, 160);
        s.run(10.0, 10_000.0);
        s.run(30.0, 1200.0);
        let lowest = s.changes.iter().map(|(_, c)| c.to_kbps).min();
        // What fits the link is about 1000 kb/s of video; the old media still draining after
        // the first step down is no reason to go far below that.
        assert!(
            lowest.is_some_and(|l| l >= 600),
            "lowest {lowest:?}: {:#?}",
            s.changes
        );
        let end = s.now;
        s.run(40.0, 10_000.0);
        let back = s
            .changes
            .iter()
            .find(|(t, c)| *t > end && c.to_kbps == 2500)
            .map(|(t, _)| (t - end) / S);
        assert!(
            back.is_some_and(|b| b < 25),
            "back after {back:?} s: {:#?}",
            s.changes
        );
    }

    #[test]
    fn a_link_that_collapses_is_followed_down_in_halving_steps() {
        let mut s = Sim::new(300, 4000);
        s.run(5.0, 10_000.0);
        s.run(20.0, 200.0);
        // No single estimate throws the rate more than halfway down; the floor is still
        // reached within seconds (4000, 2000, 1000, 500, 300).
        assert!(
            s.changes.iter().all(|(_, c)| c.to_kbps * 2 >= c.from_kbps),
            "{:#?}",
            s.changes
        );
        let floor_at = s.changes.iter().find(|(_, c)| c.to_kbps == 300);
        assert!(
            floor_at.is_some_and(|(t, _)| *t < 5 * S + 12 * S),
            "{:#?}",
            s.changes
        );
    }

    #[test]
    fn the_rate_never_leaves_its_bounds() {
        let mut s = Sim::new(800, 3000);
        s.run(30.0, 100.0);
        assert_eq!(s.ctl.current_kbps(), 800);
        assert!(s
            .changes
            .iter()
            .all(|(_, c)| (800..=3000).contains(&c.to_kbps)));
    }

    #[test]
    fn failed_probes_back_off() {
        let mut s = Sim::new(300, 4000);
        s.run(120.0, 1200.0);
        // Probes up into a link that stays narrow: ups get rarer over time.
        let ups: Vec<u64> = s
            .changes
            .iter()
            .filter(|(_, c)| c.to_kbps > c.from_kbps)
            .map(|(t, _)| *t)
            .collect();
        assert!(ups.len() >= 3, "{:?}", s.changes);
        let gaps: Vec<u64> = ups.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.last() > gaps.first(),
            "probe gaps {gaps:?} did not grow"
        );
        assert!(
            s.changes.len() < 40,
            "{} changes: flapping",
            s.changes.len()
        );
    }

    #[test]
    fn a_reconnect_keeps_the_rate_and_restarts_the_headroom_clock() {
        let mut s = Sim::new(500, 4000);
        s.run(10.0, 1000.0);
        let squeezed = s.ctl.current_kbps();
        assert!(squeezed < 4000);
        // The connection drops: while it is down nothing changes, whatever the queue does.
        s.live = false;
        let before = s.changes.len();
        s.run(10.0, 1000.0);
        assert_eq!(s.changes.len(), before, "{:?}", &s.changes[before..]);
        // It comes back on a wide link: no step up before the hold has passed since then.
        s.live = true;
        s.connections += 1;
        let back = s.now;
        s.run(2.5, 10_000.0);
        assert_eq!(s.ctl.current_kbps(), squeezed);
        s.run(30.0, 10_000.0);
        let first_up = s
            .changes
            .iter()
            .find(|(t, _)| *t > back)
            .expect("no step up");
        assert!(first_up.0 - back >= UP_HOLD);
    }
}

//! When the host's I/O thread expects the game's next frame, so it can be awake for it.
//!
//! Blocking in `recvmsg` until a frame arrives costs one wake-up of a sleeping thread per frame,
//! and on a virtual machine waking an idle vCPU takes 30 to 150 µs: that is most of the
//! handoff delay and all of its tail. A game paces its frames: it stamps each with the
//! presentation time it rendered for (`pts`, one period apart) and queues it a fairly steady
//! time after that (its render time plus its own wake-up). So the next frame is due near
//! `last pts + period + the recent pts-to-arrival offsets`: the I/O thread sleeps until just
//! before the earliest of those (a timer wake-up, early enough that its latency is hidden),
//! then polls the socket without sleeping until the frame is in or the latest recent offset
//! has passed, the way NAPI busy polling or a vsync-aligned compositor waits. Between polls it
//! yields the CPU, which may be the one the game needs to send that very frame; the game in
//! turn yields once after sending (`GameSession::queue`), or a game that goes on rendering at
//! once would hold a shared CPU for a whole scheduler slice before the host could look. The
//! window is at most `2 ×` [`HostOptions::busy_poll`] wide, centred on the typical offset,
//! plus the early wake-up (at most `busy_poll`), and never more than a quarter of the frame
//! period; a game whose timestamps are not paced, or that stops sending frames, gets the plain
//! blocking wait.
//! A game lying about its timestamps can only move the window, never widen it.
//!
//! [`HostOptions::busy_poll`]: crate::HostOptions::busy_poll

use std::time::Duration;

/// Recent frames kept for the estimate.
const HISTORY: usize = 32;
/// Fewest frames before predicting.
const WARMUP: usize = 8;
/// Margin either side of the recent offsets, for the game's own jitter.
const MARGIN_NS: i64 = 40_000;
/// Frame periods the predictor accepts (500 fps to 4 fps); anything else is not paced.
const PERIOD_RANGE_NS: std::ops::RangeInclusive<u64> = 2_000_000..=250_000_000;
/// After this many periods without a frame the game is treated as paused.
const PAUSED_PERIODS: u64 = 8;
/// Timer wake-ups whose lateness is remembered.
const WAKE_HISTORY: usize = 16;
/// The least the I/O thread wakes ahead of a window, whatever the timers did lately.
const MIN_WAKE_AHEAD_NS: u64 = 20_000;

/// Predicts frame arrivals from the last ones and says how the I/O thread should wait.
#[derive(Debug, Clone)]
pub(crate) struct ArrivalPredictor {
    max_lead_ns: i64,
    /// (pts, arrival − pts) of recent frames, a ring.
    recent: [(u64, i64); HISTORY],
    len: usize,
    next: usize,
    last_pts: u64,
    last_arrival: u64,
    /// (period, earliest offset, latest offset) once predictable.
    model: Option<(u64, i64, i64)>,
    /// How late recent timed sleeps ended (ns), a ring: the thread wakes this much earlier.
    wake_late: [u64; WAKE_HISTORY],
    wake_next: usize,
    /// How far ahead of a window to wake: the second latest of `wake_late` (one very late
    /// timer is not a trend) plus a minimum; kept up to date as samples come.
    wake_ahead_ns: u64,
    /// The end of the timed sleep in progress, if any.
    sleeping_until: Option<u64>,
    /// Whether the last answer was to poll: a message that comes now was caught by polling,
    /// not by waking the thread.
    polling: bool,
}

impl ArrivalPredictor {
    /// A predictor whose window is at most `max_lead` either side of the typical arrival;
    /// zero disables polling.
    pub(crate) fn new(max_lead: Duration) -> Self {
        ArrivalPredictor {
            max_lead_ns: i64::try_from(max_lead.as_nanos()).unwrap_or(i64::MAX),
            recent: [(0, 0); HISTORY],
            len: 0,
            next: 0,
            last_pts: 0,
            last_arrival: 0,
            model: None,
            wake_late: [0; WAKE_HISTORY],
            wake_next: 0,
            wake_ahead_ns: MIN_WAKE_AHEAD_NS,
            sleeping_until: None,
            polling: false,
        }
    }

    /// Whether the thread is polling (the last [`wait`](Self::wait) said `Some(ZERO)`).
    pub(crate) fn polling(&self) -> bool {
        self.polling
    }

    /// Records a frame stamped `pts_ns` by the game that arrived at `now_ns` (both
    /// CLOCK_MONOTONIC).
    pub(crate) fn frame_arrived(&mut self, pts_ns: u64, now_ns: u64) {
        let offset = (now_ns as i64).wrapping_sub(pts_ns as i64);
        self.recent[self.next] = (pts_ns, offset);
        self.next = (self.next + 1) % HISTORY;
        self.len = (self.len + 1).min(HISTORY);
        self.last_pts = pts_ns;
        self.last_arrival = now_ns;
        self.model = self.fit();
    }

    /// The period (median pts step) and the window of arrival offsets after a frame's
    /// predicted pts, when the game is paced. The window covers how far recent frames landed
    /// from where this model would have put them (their pts may wobble as well as their
    /// delivery), capped at the maximum lead either side of the typical offset.
    fn fit(&self) -> Option<(u64, i64, i64)> {
        if self.max_lead_ns == 0 || self.len < WARMUP {
            return None;
        }
        // Oldest first, so consecutive entries are consecutive frames.
        let start = (self.next + HISTORY - self.len) % HISTORY;
        let frame = |i: usize| self.recent[(start + i) % HISTORY];
        let mut steps = [0u64; HISTORY];
        let mut offsets = [0i64; HISTORY];
        for i in 0..self.len {
            offsets[i] = frame(i).1;
            if i > 0 {
                steps[i - 1] = frame(i).0.wrapping_sub(frame(i - 1).0);
            }
        }
        let steps = &mut steps[..self.len - 1];
        steps.sort_unstable();
        let period = steps[steps.len() / 2];
        if !PERIOD_RANGE_NS.contains(&period) {
            return None;
        }
        let sorted = &mut offsets[..self.len];
        sorted.sort_unstable();
        let typical = sorted[sorted.len() / 2];
        // Arrival minus prediction (previous pts + period + typical offset), per frame; the
        // window covers all but the most extreme one each side, so that a single hiccup does
        // not widen it (and the CPU spent polling) for the next HISTORY frames.
        let mut errors = [0i64; HISTORY];
        for (i, e) in errors.iter_mut().enumerate().take(self.len).skip(1) {
            let (pts, offset) = frame(i);
            let predicted = frame(i - 1).0.wrapping_add(period);
            *e = (pts.wrapping_sub(predicted) as i64).wrapping_add(offset - typical);
        }
        let errors = &mut errors[1..self.len];
        errors.sort_unstable();
        let trim = usize::from(errors.len() >= 16);
        let early = errors[trim]
            .saturating_sub(MARGIN_NS)
            .max(-self.max_lead_ns);
        let late = errors[errors.len() - 1 - trim]
            .saturating_add(MARGIN_NS)
            .min(self.max_lead_ns);
        Some((period, typical + early, typical + late))
    }

    /// How long to wait for the socket at `now_ns`: `None` blocks until a message comes,
    /// `Some(ZERO)` polls without sleeping, `Some(d)` sleeps at most `d`, then asks again.
    pub(crate) fn wait(&mut self, now_ns: u64) -> Option<Duration> {
        let answer = self.next_wait(now_ns);
        self.polling = answer == Some(Duration::ZERO);
        answer
    }

    fn next_wait(&mut self, now_ns: u64) -> Option<Duration> {
        if let Some(deadline) = self.sleeping_until.take() {
            // Woken by the timer (not by a message): learn how late timers fire here.
            if now_ns >= deadline {
                self.wake_late[self.wake_next] = now_ns - deadline;
                self.wake_next = (self.wake_next + 1) % WAKE_HISTORY;
                let mut sorted = self.wake_late;
                sorted.sort_unstable();
                self.wake_ahead_ns = sorted[WAKE_HISTORY - 2] + MIN_WAKE_AHEAD_NS;
            }
        }
        let (period, early, late) = self.model?;
        if now_ns.saturating_sub(self.last_arrival) > PAUSED_PERIODS * period {
            return None;
        }
        // The next frame whose window has not closed yet (the game may skip frames).
        let mut pts = self.last_pts.wrapping_add(period);
        let mut k = 1;
        while (pts as i64).wrapping_add(late) < now_ns as i64 {
            if k > PAUSED_PERIODS {
                return None;
            }
            pts = pts.wrapping_add(period);
            k += 1;
        }
        let opens = (pts as i64).wrapping_add(early);
        let ahead = self.wake_ahead_ns.min(self.max_lead_ns as u64);
        let wake = opens.saturating_sub(ahead as i64);
        // However wobbly or fast the game, polling never takes more than a quarter of a period.
        let wake = wake.max((pts as i64).wrapping_add(late) - (period / 4) as i64);
        if wake <= now_ns as i64 {
            return Some(Duration::ZERO);
        }
        let wake = wake as u64;
        self.sleeping_until = Some(wake);
        Some(Duration::from_nanos(wake - now_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 16_666_667;
    const T0: u64 = 1_000_000_000;

    /// A game paced at P whose frame `i` arrives `offsets[i]` after its pts.
    fn paced(max_lead_us: u64, offsets: &[u64]) -> ArrivalPredictor {
        let mut p = ArrivalPredictor::new(Duration::from_micros(max_lead_us));
        for (i, o) in offsets.iter().enumerate() {
            let pts = T0 + i as u64 * P;
            p.frame_arrived(pts, pts + o);
        }
        p
    }

    #[test]
    fn blocks_until_enough_frames_are_seen() {
        let mut p = paced(500, &[100_000; WARMUP - 1]);
        assert_eq!(p.wait(T0 + WARMUP as u64 * P), None);
    }

    #[test]
    fn disabled_always_blocks() {
        let mut p = paced(0, &[100_000; 20]);
        assert_eq!(p.wait(T0 + 20 * P), None);
    }

    #[test]
    fn sleeps_until_the_earliest_recent_offset_then_polls_until_the_latest() {
        let offsets: Vec<u64> = (0..20).map(|i| 100_000 + (i % 5) * 20_000).collect();
        let mut p = paced(500, &offsets);
        let pts = T0 + 20 * P;
        let opens = pts + 100_000 - MARGIN_NS as u64;
        // Right after the last frame: sleep until just before the window opens.
        let now = T0 + 19 * P + 200_000;
        let wake = opens - MIN_WAKE_AHEAD_NS;
        assert_eq!(p.wait(now), Some(Duration::from_nanos(wake - now)));
        assert!(!p.polling());
        // Inside the window: poll.
        assert_eq!(p.wait(opens + 1), Some(Duration::ZERO));
        assert!(p.polling());
        assert_eq!(
            p.wait(pts + 180_000 + MARGIN_NS as u64 - 1),
            Some(Duration::ZERO)
        );
        // Past it: the next frame's window.
        let d = p.wait(pts + 180_000 + MARGIN_NS as u64 + 1).unwrap();
        assert!(d > Duration::from_millis(16), "{d:?}");
    }

    #[test]
    fn timers_that_keep_firing_late_make_the_thread_wake_earlier() {
        let mut p = paced(500, &[100_000; 20]);
        let mut now = T0 + 19 * P + 200_000;
        for round in 0..3u64 {
            let pts = T0 + (20 + round) * P;
            let opens = pts + 100_000 - MARGIN_NS as u64;
            // One late timer is not a trend; two are.
            let ahead = MIN_WAKE_AHEAD_NS + if round < 2 { 0 } else { 30_000 };
            let d = p.wait(now).unwrap();
            assert_eq!(
                d,
                Duration::from_nanos(opens - ahead - now),
                "round {round}"
            );
            assert_eq!(
                p.wait(now + d.as_nanos() as u64 + 30_000),
                Some(Duration::ZERO)
            );
            p.frame_arrived(pts, pts + 100_000);
            now = pts + 200_000;
        }
    }

    #[test]
    fn polling_never_takes_more_than_a_quarter_of_the_period() {
        // 500 fps with a 5 ms allowance: the window alone would be 2 × 5 ms + the margins.
        const FAST: u64 = 2_000_000;
        let mut p = ArrivalPredictor::new(Duration::from_millis(5));
        for i in 0..20u64 {
            let pts = T0 + i * FAST;
            p.frame_arrived(pts, pts + if i % 2 == 0 { 0 } else { 900_000 });
        }
        let (_, _, late) = p.model.unwrap();
        let last = T0 + 19 * FAST;
        let closes = last + FAST + late as u64;
        let d = p.wait(last + 1000).unwrap();
        assert!(
            closes - (last + 1000 + d.as_nanos() as u64) <= FAST / 4,
            "{d:?}"
        );
    }

    #[test]
    fn a_late_frame_does_not_shift_the_next_window() {
        let mut offsets = vec![100_000; 20];
        offsets[19] = 900_000;
        let mut p = paced(2000, &offsets);
        // The next frame is still expected 100 µs after its pts.
        let pts = T0 + 20 * P;
        assert_eq!(
            p.wait(pts + 100_000 - MARGIN_NS as u64),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn wobbling_timestamps_still_land_inside_the_window() {
        // Stamped when sent, after a render whose length varies by up to 200 µs.
        let mut p = ArrivalPredictor::new(Duration::from_micros(500));
        let wobble = |i: u64| (i * 102_947) % 200_000;
        let arrival = |i: u64| T0 + i * P + wobble(i) + 20_000;
        for i in 0..60u64 {
            if i >= HISTORY as u64 {
                assert_eq!(p.wait(arrival(i)), Some(Duration::ZERO), "frame {i}");
            }
            p.frame_arrived(arrival(i) - 20_000, arrival(i));
        }
        let (_, early, late) = p.model.unwrap();
        assert!(late - early <= 1_000_000, "{early}..{late}");
    }

    #[test]
    fn the_window_is_capped_around_the_median_offset() {
        let offsets: Vec<u64> = (0..20)
            .map(|i| if i % 2 == 0 { 0 } else { 5_000_000 })
            .collect();
        let p = paced(500, &offsets);
        let (_, early, late) = p.model.unwrap();
        assert!(late - early <= 1_000_000, "{early}..{late}");
        assert!(early <= 5_000_000 && 5_000_000 <= late, "{early}..{late}");
    }

    #[test]
    fn unpaced_timestamps_and_pauses_block() {
        let mut p = ArrivalPredictor::new(Duration::from_micros(500));
        for i in 0..20u64 {
            // Every frame stamped with the same pts: no period.
            p.frame_arrived(T0, T0 + i * P);
        }
        assert_eq!(p.wait(T0 + 20 * P), None);
        let mut p = paced(500, &[100_000; 20]);
        assert_eq!(p.wait(T0 + 40 * P), None);
    }
}

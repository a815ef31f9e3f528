//! Maps the game's CLOCK_MONOTONIC timestamps onto the output's timeline.
//!
//! Video is constant rate: output frame `k` is at `k / fps`. Each game session contributes from
//! the stream time at which its first frame arrived (`offset`), measured from that frame's pts
//! (`base`), so a restarted game continues the same timeline. Audio uses the same mapping,
//! which is what keeps the two in sync without any clock exchange: both processes read the
//! same clock.

use crosscast_wire::FrameRate;

/// The mapping for one game session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeline {
    /// pts (ns) of the session's first frame.
    pub base_pts_ns: u64,
    /// Stream time (ns) that pts corresponds to.
    pub offset_ns: u64,
}

impl SessionTimeline {
    /// Stream time of a game timestamp; `None` before the session's first frame.
    pub fn stream_ns(&self, pts_ns: u64) -> Option<u64> {
        pts_ns
            .checked_sub(self.base_pts_ns)
            .map(|d| d + self.offset_ns)
    }

    /// Sample index on the stream timeline at `rate` for a game timestamp. Samples before the
    /// session's first frame map to `None` (they are dropped: there is no video for them).
    pub fn sample_index(&self, pts_ns: u64, rate: u32) -> Option<u64> {
        self.stream_ns(pts_ns)
            .map(|t| ((u128::from(t) * u128::from(rate) + 500_000_000) / 1_000_000_000) as u64)
    }
}

/// Output-frame bookkeeping: which stream time frame `k` is, and what repeats/skips cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameClock {
    fps: FrameRate,
}

impl FrameClock {
    /// A clock at `fps` frames per second.
    pub fn new(fps: impl Into<FrameRate>) -> Self {
        FrameClock { fps: fps.into() }
    }

    /// Stream time of output frame `k` in ns (exact: no rounding accumulates over `k`).
    pub fn frame_ns(&self, k: u64) -> u64 {
        self.fps.frame_ns(k)
    }

    /// Duration of one frame in ns (rounded down).
    pub fn period_ns(&self) -> u64 {
        self.fps.period_ns()
    }

    /// How far (ns, signed) to move the output ticks so that a game frame which arrived
    /// `lead_ns` before a tick arrives half a period before the ticks from now on.
    ///
    /// A game at the output's rate whose frames land right at the ticks makes every bit of
    /// jitter a repeated frame plus a skipped one; half a period away from both neighbours,
    /// jitter of up to half a period costs nothing. The shift is at most half a period either
    /// way and only moves when the ticks fall, never the stream timestamps.
    pub fn rephase_ns(&self, lead_ns: u64) -> i64 {
        let period = self.period_ns() as i64;
        let lead = (lead_ns % self.period_ns()) as i64;
        period / 2 - lead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_maps_onto_the_stream_from_its_first_frame() {
        let s = SessionTimeline {
            base_pts_ns: 5_000_000_000,
            offset_ns: 2_000_000_000,
        };
        assert_eq!(s.stream_ns(4_999_999_999), None);
        assert_eq!(s.stream_ns(5_000_000_000), Some(2_000_000_000));
        assert_eq!(s.sample_index(5_010_000_000, 48_000), Some(96_480));
    }

    #[test]
    fn ticks_move_to_half_a_period_after_the_games_frames() {
        let c = FrameClock::new(30);
        let half = (c.period_ns() / 2) as i64;
        // Landing right at the tick: wait half a period longer.
        assert_eq!(c.rephase_ns(0), half);
        // Already centred: nothing moves.
        assert_eq!(c.rephase_ns(c.period_ns() / 2), 0);
        // Landing just after the previous tick: the next tick comes sooner.
        assert_eq!(
            c.rephase_ns(c.period_ns() - 1_000_000),
            half - (c.period_ns() as i64 - 1_000_000)
        );
        // A frame held over more than a period says the same about the phase.
        assert_eq!(c.rephase_ns(c.period_ns() + 2_000_000), half - 2_000_000);
    }

    #[test]
    fn frame_times_do_not_drift() {
        let c = FrameClock::new(60);
        assert_eq!(c.frame_ns(60), 1_000_000_000);
        assert_eq!(c.frame_ns(6000), 100_000_000_000);
        assert_eq!(c.frame_ns(1), 16_666_666);
        let ntsc = FrameClock::new(FrameRate::new(60_000, 1001).unwrap());
        assert_eq!(ntsc.frame_ns(60_000), 1_001_000_000_000);
    }
}

//! Frame pacing on a fixed grid: frame n's time is computed from n, never by adding a rounded
//! period, so 30 fps stays on whole seconds against sample-exact audio.

use crosscast_ipc::monotonic_ns;
use crosscast_wire::FrameRate;
use std::time::Duration;

/// Paces a game at a fixed rate from a start time.
#[derive(Debug, Clone)]
pub struct Pacer {
    t0: u64,
    rate: FrameRate,
    n: u64,
}

/// The frame to draw now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Frame number on the grid (0 at the start).
    pub n: u64,
    /// Its presentation time (CLOCK_MONOTONIC ns): queue the frame with it.
    pub pts_ns: u64,
    /// Frames of the grid skipped since the last tick because the game fell behind.
    pub skipped: u64,
}

impl Pacer {
    /// A pacer whose frame 0 is at `t0_ns` (CLOCK_MONOTONIC).
    pub fn new(rate: FrameRate, t0_ns: u64) -> Pacer {
        Pacer {
            t0: t0_ns,
            rate,
            n: 0,
        }
    }

    /// The grid's start time.
    pub fn start_ns(&self) -> u64 {
        self.t0
    }

    /// The next frame's number on the grid.
    pub fn next_frame(&self) -> u64 {
        self.n
    }

    /// When the next frame is due (CLOCK_MONOTONIC ns).
    pub fn next_due_ns(&self) -> u64 {
        self.t0 + self.rate.frame_ns(self.n)
    }

    /// Sleeps until the next frame is due and returns it. A game more than a frame behind
    /// (descheduled, or a slow frame) skips ahead to the current frame instead of bursting.
    pub fn wait(&mut self) -> Tick {
        let due = self.next_due_ns();
        let now = monotonic_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        self.take(monotonic_ns())
    }

    /// The tick for time `now_ns` without sleeping (for engines with their own wait).
    pub fn take(&mut self, now_ns: u64) -> Tick {
        let current = self.rate.frame_at(now_ns.saturating_sub(self.t0));
        let skipped = current.saturating_sub(self.n);
        self.n = self.n.max(current);
        let tick = Tick {
            n: self.n,
            pts_ns: self.t0 + self.rate.frame_ns(self.n),
            skipped,
        };
        self.n += 1;
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_on_the_grid_and_a_late_game_skips_ahead() {
        let rate = FrameRate::integer(30);
        let mut p = Pacer::new(rate, 1_000);
        let t = p.take(1_000);
        assert_eq!((t.n, t.pts_ns, t.skipped), (0, 1_000, 0));
        // On time for frame 1.
        let t = p.take(1_000 + rate.frame_ns(1));
        assert_eq!((t.n, t.skipped), (1, 0));
        // Woke 3.5 frames late: frames 2 and 3 are skipped, frame 4 is drawn.
        let late = 1_000 + rate.frame_ns(4) + rate.period_ns() / 2;
        let t = p.take(late);
        assert_eq!((t.n, t.pts_ns, t.skipped), (4, 1_000 + rate.frame_ns(4), 2));
        // Exactly one second after the start is frame 30, to the nanosecond.
        assert_eq!(1_000 + rate.frame_ns(30), 1_000_001_000);
    }
}

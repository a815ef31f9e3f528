//! Counters the host keeps per session, cheap enough to update on every message.

use std::ops::AddAssign;
use std::time::Duration;

/// A log-bucketed delay histogram (microsecond resolution, buckets double in width).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelayHistogram {
    buckets: [u64; 32],
    count: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl DelayHistogram {
    /// Records one delay.
    pub fn record(&mut self, delay_ns: u64) {
        let us = delay_ns / 1000;
        let idx = (64 - us.leading_zeros() as usize).min(31);
        self.buckets[idx] += 1;
        self.count += 1;
        self.sum_ns += u128::from(delay_ns);
        self.max_ns = self.max_ns.max(delay_ns);
    }

    /// Number of delays recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean delay.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((self.sum_ns / u128::from(self.count)) as u64)
    }

    /// Largest delay.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// Upper bound of the bucket holding quantile `q` (0..=1).
    pub fn quantile_upper(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                let upper_us = if i == 0 { 1 } else { 1u64 << i };
                return Duration::from_micros(upper_us).min(self.max());
            }
        }
        self.max()
    }
}

impl AddAssign<&DelayHistogram> for DelayHistogram {
    /// Merges another histogram's delays into this one (sessions summed for a run's report).
    fn add_assign(&mut self, other: &DelayHistogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

/// What one host session has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Frames the game queued.
    pub frames_queued: u64,
    /// Frames the host consumer acquired.
    pub frames_acquired: u64,
    /// Queued frames replaced by a newer one before being acquired (mailbox).
    pub frames_dropped: u64,
    /// Frames queued for a surface configuration that had already been replaced.
    pub frames_stale: u64,
    /// Surface configurations sent (1 + resizes).
    pub configs_sent: u64,
    /// Audio blocks received.
    pub audio_blocks: u64,
    /// Audio blocks that started later than the previous one ended.
    pub audio_gaps: u64,
    /// Audio blocks that started before the previous one ended.
    pub audio_overlaps: u64,
    /// Audio blocks whose sequence number skipped.
    pub audio_seq_gaps: u64,
    /// Audio blocks discarded because the consumer fell behind the backlog limit.
    pub audio_dropped: u64,
    /// Frames the I/O thread was already polling for when they came (the rest woke it up).
    pub frames_polled: u64,
    /// Game `queue` → host receipt delay.
    pub handoff: DelayHistogram,
    /// CPU time of the session's I/O thread (user + system), set when the session ends.
    pub io_cpu_ns: u64,
}

impl AddAssign<&HostCounters> for HostCounters {
    /// Adds another session's counters, every field (a run's report sums its sessions).
    fn add_assign(&mut self, c: &HostCounters) {
        // Destructured so that a new field cannot be forgotten here: it fails to compile.
        let HostCounters {
            frames_queued,
            frames_acquired,
            frames_dropped,
            frames_stale,
            configs_sent,
            audio_blocks,
            audio_gaps,
            audio_overlaps,
            audio_seq_gaps,
            audio_dropped,
            frames_polled,
            handoff,
            io_cpu_ns,
        } = c;
        self.frames_queued += frames_queued;
        self.frames_acquired += frames_acquired;
        self.frames_dropped += frames_dropped;
        self.frames_stale += frames_stale;
        self.configs_sent += configs_sent;
        self.audio_blocks += audio_blocks;
        self.audio_gaps += audio_gaps;
        self.audio_overlaps += audio_overlaps;
        self.audio_seq_gaps += audio_seq_gaps;
        self.audio_dropped += audio_dropped;
        self.frames_polled += frames_polled;
        self.handoff += handoff;
        self.io_cpu_ns += io_cpu_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_bound_the_data() {
        let mut h = DelayHistogram::default();
        for us in 1..=100u64 {
            h.record(us * 1000);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.max(), Duration::from_micros(100));
        let p50 = h.quantile_upper(0.5);
        assert!(
            p50 >= Duration::from_micros(50) && p50 <= Duration::from_micros(64),
            "{p50:?}"
        );
        assert_eq!(h.quantile_upper(1.0), Duration::from_micros(100));
    }

    #[test]
    fn counters_add_every_field() {
        let mut h = DelayHistogram::default();
        h.record(5_000);
        let one = HostCounters {
            frames_queued: 1,
            frames_acquired: 2,
            frames_dropped: 3,
            frames_stale: 4,
            configs_sent: 5,
            audio_blocks: 6,
            audio_gaps: 7,
            audio_overlaps: 8,
            audio_seq_gaps: 9,
            audio_dropped: 10,
            frames_polled: 11,
            handoff: h,
            io_cpu_ns: 12,
        };
        let mut sum = one.clone();
        sum += &one;
        let mut h2 = DelayHistogram::default();
        h2.record(5_000);
        h2.record(5_000);
        let twice = HostCounters {
            frames_queued: 2,
            frames_acquired: 4,
            frames_dropped: 6,
            frames_stale: 8,
            configs_sent: 10,
            audio_blocks: 12,
            audio_gaps: 14,
            audio_overlaps: 16,
            audio_seq_gaps: 18,
            audio_dropped: 20,
            frames_polled: 22,
            handoff: h2,
            io_cpu_ns: 24,
        };
        assert_eq!(sum, twice);
    }
}

//! Counters the host keeps per session, cheap enough to update on every message.

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
}

//! Sums audio from several sources on the stream's sample timeline.
//!
//! A game on crosscast's protocol sends blocks stamped with its own clock; the same game (or a
//! Wayland game) may also play through the host's PulseAudio server, whose blocks are stamped
//! by the host's pump. Both land on the stream timeline by their timestamps, so mixing is a sum
//! at each sample index. The mix hands out a sample only once every source has had time to
//! deliver it: the caller says how far that is (`take_until`), a fixed margin behind the
//! output clock, and later arrivals for samples already handed out are dropped and counted.

use std::collections::VecDeque;

/// What the mix did with the samples it was given, for the exit summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixCounters {
    /// Frames (samples per channel) summed into the mix.
    pub added: u64,
    /// Frames that came after their place had been handed out.
    pub late: u64,
    /// Frames too far ahead of the output to hold (a source's clock is off).
    pub too_early: u64,
}

/// The mix buffer: sums from `base` on, handed out in order.
#[derive(Debug)]
pub struct TimelineMix {
    channels: usize,
    /// Sample index of `buf[0]`: everything before it has been handed out.
    base: u64,
    /// Interleaved sums from `base` on; silence where nothing was added.
    buf: VecDeque<f32>,
    /// Frames past `base` the buffer may hold.
    max_ahead: u64,
    counters: MixCounters,
}

impl TimelineMix {
    /// An empty mix of `channels` interleaved channels holding at most `max_ahead` frames.
    pub fn new(channels: usize, max_ahead: u64) -> TimelineMix {
        TimelineMix {
            channels: channels.max(1),
            base: 0,
            buf: VecDeque::new(),
            max_ahead,
            counters: MixCounters::default(),
        }
    }

    /// Adds interleaved `samples` (whole frames) starting at sample `index`.
    pub fn add(&mut self, index: u64, samples: &[f32]) {
        let ch = self.channels;
        let frames = (samples.len() / ch) as u64;
        let mut start = index;
        let mut samples = &samples[..frames as usize * ch];
        if start < self.base {
            let late = (self.base - start).min(frames);
            self.counters.late += late;
            samples = &samples[late as usize * ch..];
            start = self.base;
        }
        let limit = self.base + self.max_ahead;
        let fit = limit
            .saturating_sub(start)
            .min(samples.len() as u64 / ch as u64);
        self.counters.too_early += samples.len() as u64 / ch as u64 - fit;
        let samples = &samples[..fit as usize * ch];
        if samples.is_empty() {
            return;
        }
        let off = (start - self.base) as usize * ch;
        let end = off + samples.len();
        if self.buf.len() < end {
            self.buf.resize(end, 0.0);
        }
        for (i, s) in samples.iter().enumerate() {
            self.buf[off + i] += s;
        }
        self.counters.added += fit;
    }

    /// Hands out every frame before sample `end` (silence where nothing was added) and returns
    /// the index of the first one, or `None` when `end` is not past what was handed out.
    pub fn take_until(&mut self, end: u64, out: &mut Vec<f32>) -> Option<u64> {
        if end <= self.base {
            return None;
        }
        let n = (end - self.base) as usize * self.channels;
        out.clear();
        let have = n.min(self.buf.len());
        out.extend(self.buf.drain(..have));
        out.resize(n, 0.0);
        let first = self.base;
        self.base = end;
        Some(first)
    }

    /// The index of the next frame to be handed out.
    pub fn next_index(&self) -> u64 {
        self.base
    }

    /// Totals so far.
    pub fn counters(&self) -> MixCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_sources_are_summed_and_gaps_are_silence() {
        let mut m = TimelineMix::new(2, 1000);
        m.add(2, &[1.0; 8]); // frames 2..6
        m.add(4, &[0.5; 8]); // frames 4..8
        let mut out = Vec::new();
        assert_eq!(m.take_until(10, &mut out), Some(0));
        let left: Vec<f32> = out.chunks(2).map(|f| f[0]).collect();
        assert_eq!(left, [0.0, 0.0, 1.0, 1.0, 1.5, 1.5, 0.5, 0.5, 0.0, 0.0]);
        assert_eq!(m.counters().added, 8);
    }

    #[test]
    fn samples_after_their_place_was_handed_out_are_late() {
        let mut m = TimelineMix::new(1, 1000);
        let mut out = Vec::new();
        assert_eq!(m.take_until(5, &mut out), Some(0));
        assert_eq!(out, [0.0; 5]);
        m.add(3, &[1.0, 2.0, 3.0, 4.0]); // 3 and 4 are late
        assert_eq!(m.take_until(8, &mut out), Some(5));
        assert_eq!(out, [3.0, 4.0, 0.0]);
        assert_eq!(m.counters().late, 2);
        assert_eq!(m.take_until(8, &mut out), None);
    }

    #[test]
    fn the_buffer_is_bounded_ahead_of_the_output() {
        let mut m = TimelineMix::new(2, 10);
        m.add(8, &[1.0; 20]); // frames 8..18, only 8..10 fit
        assert_eq!(m.counters().too_early, 8);
        m.add(1_000_000, &[1.0; 4]);
        assert_eq!(m.counters().too_early, 10);
        let mut out = Vec::new();
        m.take_until(10, &mut out);
        assert_eq!(out.iter().filter(|&&s| s == 1.0).count(), 4);
    }
}

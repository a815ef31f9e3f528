//! Frames a timestamped stream of interleaved audio blocks into fixed-size encoder frames.
//!
//! The host's blocks arrive with their position on the stream timeline. Blocks may leave gaps
//! (the game was late or a block was dropped) or overlap (jitter in the game's clock); the AAC
//! track must stay continuous, so gaps become silence and overlaps are trimmed, and every frame
//! handed out has the exact timeline position of its first sample.

/// Gaps longer than this are not filled sample by sample; the timeline restarts at the new block.
const MAX_FILL_SECONDS: u64 = 10;

/// What the framer did to one block, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FramerReport {
    /// Samples per channel of silence inserted.
    pub(crate) gap: u64,
    /// Samples per channel dropped because they were already covered.
    pub(crate) overlap: u64,
}

pub(crate) struct AudioFramer {
    channels: usize,
    frame_len: usize,
    max_fill: u64,
    /// Timeline position of `pending[0]`; `None` until the first block.
    start: Option<u64>,
    pending: Vec<f32>,
}

impl AudioFramer {
    pub(crate) fn new(channels: usize, frame_len: usize, sample_rate: u32) -> Self {
        Self {
            channels,
            frame_len,
            max_fill: MAX_FILL_SECONDS * u64::from(sample_rate),
            start: None,
            pending: Vec::with_capacity(frame_len * channels),
        }
    }

    /// Position of the next sample the framer expects.
    fn next_pos(&self) -> Option<u64> {
        self.start
            .map(|s| s + (self.pending.len() / self.channels) as u64)
    }

    /// Adds a block (interleaved, whole sample frames) at `first`; calls `out(pts, frame)` per full frame.
    pub(crate) fn push(
        &mut self,
        samples: &[f32],
        first: u64,
        out: &mut impl FnMut(u64, &[f32]),
    ) -> FramerReport {
        let mut report = FramerReport::default();
        let n = (samples.len() / self.channels) as u64;
        let mut samples = samples;
        match self.next_pos() {
            None => self.start = Some(first),
            Some(next) if first > next => {
                let gap = first - next;
                if gap > self.max_fill {
                    self.flush(out);
                    self.start = Some(first);
                } else {
                    report.gap = gap;
                    self.fill_silence(gap, out);
                }
            }
            Some(next) if first < next => {
                let skip = next - first;
                if skip >= n {
                    report.overlap = n;
                    return report;
                }
                report.overlap = skip;
                samples = &samples[skip as usize * self.channels..];
            }
            Some(_) => {}
        }
        self.append(samples, out);
        report
    }

    /// Pads the partial frame with silence and hands it out (end of stream).
    pub(crate) fn flush(&mut self, out: &mut impl FnMut(u64, &[f32])) {
        if !self.pending.is_empty() {
            let missing = self.frame_len - self.pending.len() / self.channels;
            self.fill_silence(missing as u64, out);
        }
    }

    fn fill_silence(&mut self, mut count: u64, out: &mut impl FnMut(u64, &[f32])) {
        let zeros = [0.0f32; 1024];
        while count > 0 {
            let chunk = (zeros.len() / self.channels).min(count as usize);
            self.append(&zeros[..chunk * self.channels], out);
            count -= chunk as u64;
        }
    }

    fn append(&mut self, mut samples: &[f32], out: &mut impl FnMut(u64, &[f32])) {
        let full = self.frame_len * self.channels;
        while !samples.is_empty() {
            let take = (full - self.pending.len()).min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() == full {
                let start = self.start.unwrap_or(0);
                out(start, &self.pending);
                self.pending.clear();
                self.start = Some(start + self.frame_len as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(blocks: &[(u64, usize)]) -> (Vec<(u64, Vec<f32>)>, FramerReport) {
        let mut f = AudioFramer::new(2, 4, 48_000);
        let mut frames = Vec::new();
        let mut total = FramerReport::default();
        for &(first, len) in blocks {
            // Sample value = its timeline position, so the output proves where each sample went.
            let block: Vec<f32> = (0..len as u64)
                .flat_map(|i| [(first + i) as f32, (first + i) as f32])
                .collect();
            let r = f.push(&block, first, &mut |pts, fr| {
                frames.push((pts, fr.to_vec()))
            });
            total.gap += r.gap;
            total.overlap += r.overlap;
        }
        f.flush(&mut |pts, fr| frames.push((pts, fr.to_vec())));
        (frames, total)
    }

    #[test]
    fn contiguous_blocks_frame_exactly() {
        let (frames, r) = run(&[(100, 3), (103, 3), (106, 2)]);
        assert_eq!(r, FramerReport::default());
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, 100);
        assert_eq!(frames[1].0, 104);
        assert_eq!(frames[1].1[0], 104.0);
    }

    #[test]
    fn gap_is_silence_and_overlap_is_trimmed() {
        let (frames, r) = run(&[(0, 4), (6, 2), (7, 3)]);
        assert_eq!(r.gap, 2);
        assert_eq!(r.overlap, 1);
        assert_eq!(frames[1].0, 4);
        let left: Vec<f32> = frames[1].1.iter().step_by(2).copied().collect();
        assert_eq!(left, vec![0.0, 0.0, 6.0, 7.0]);
        let left: Vec<f32> = frames[2].1.iter().step_by(2).copied().collect();
        assert_eq!(left, vec![8.0, 9.0, 0.0, 0.0]);
    }

    #[test]
    fn fully_covered_block_is_dropped() {
        let (frames, r) = run(&[(0, 8), (2, 3)]);
        assert_eq!(r.overlap, 3);
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn huge_gap_restarts_the_timeline() {
        let far = 48_000 * 60;
        let (frames, r) = run(&[(0, 2), (far, 4)]);
        assert_eq!(r.gap, 0);
        assert_eq!(frames.last().map(|f| f.0), Some(far));
    }
}

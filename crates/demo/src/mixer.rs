//! The audio mixer: the pattern's sources mixed with per-source gains through a soft limiter
//! into interleaved samples.

use crate::synth::{self, NoiseBand};
use crate::{GameError, Pattern, MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};

/// Frames generated per internal pass; bounds the scratch memory whatever the caller asks for.
const CHUNK: usize = 512;
/// Where the soft limiter starts to bend; below it samples pass unchanged.
const KNEE: f32 = 0.7;
/// Largest gain `set_gains` accepts.
const MAX_GAIN: f32 = 4.0;

/// Per-source gains of the aquarium mix (the sync and bars patterns have a single fixed source).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gains {
    /// The music loop (arpeggio, pad, bass).
    pub music: f32,
    /// Effect sounds (the bubble blips).
    pub effects: f32,
    /// Ambient water noise.
    pub ambient: f32,
}

impl Default for Gains {
    fn default() -> Self {
        Gains {
            music: 0.6,
            effects: 0.7,
            ambient: 0.3,
        }
    }
}

/// Generates a pattern's audio as interleaved `f32` samples in `[-1, 1]`.
///
/// Sample `n` of the output depends only on `n`, the pattern, the format and the gains: `fill`
/// can be called with blocks of any size, in any order, with gaps, and a sample always comes out
/// the same. A caller stamping blocks with a clock just passes the index of the block's first
/// sample since the game started.
pub struct Mixer {
    pattern: Pattern,
    sample_rate: u32,
    channels: u16,
    gains: Gains,
    /// Low rumble of the water, one independent band per side.
    rumble: [NoiseBand; 2],
    /// Faint high hiss, one band per side.
    hiss: [NoiseBand; 2],
    /// Interleaved stereo frames of the chunk being produced.
    frames: Vec<[f32; 2]>,
    /// Scratch for the noise bands.
    noise: [Vec<f32>; 4],
}

impl Mixer {
    /// Creates a mixer for `pattern` at `sample_rate` Hz (8000..=192000) with `channels`
    /// interleaved channels (1 or 2; mono is the average of left and right).
    pub fn new(pattern: Pattern, sample_rate: u32, channels: u16) -> Result<Mixer, GameError> {
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate)
            || !(1..=MAX_CHANNELS).contains(&channels)
        {
            return Err(GameError::InvalidAudioFormat {
                sample_rate,
                channels,
            });
        }
        // Filter lengths scale with the rate so the noise sounds the same at any rate.
        let scaled = |taps: u32| (taps as u64 * sample_rate as u64 / 48_000).max(1) as usize;
        Ok(Mixer {
            pattern,
            sample_rate,
            channels,
            gains: Gains::default(),
            rumble: [
                NoiseBand::new(0x5EA_0001, scaled(96)),
                NoiseBand::new(0x5EA_0002, scaled(96)),
            ],
            hiss: [
                NoiseBand::new(0x5EA_0003, scaled(5)),
                NoiseBand::new(0x5EA_0004, scaled(5)),
            ],
            frames: Vec::with_capacity(CHUNK),
            noise: std::array::from_fn(|_| Vec::with_capacity(CHUNK)),
        })
    }

    /// The pattern this mixer plays.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Interleaved channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The aquarium's per-source gains.
    pub fn gains(&self) -> Gains {
        self.gains
    }

    /// Sets the aquarium's per-source gains (each finite, within 0..=4); on error nothing changes.
    pub fn set_gains(&mut self, gains: Gains) -> Result<(), GameError> {
        for g in [gains.music, gains.effects, gains.ambient] {
            if !(0.0..=MAX_GAIN).contains(&g) {
                return Err(GameError::InvalidGain(g.to_string()));
            }
        }
        self.gains = gains;
        Ok(())
    }

    /// Fills `out` (interleaved, `channels` samples per frame) with the frames starting at frame
    /// index `first_sample` since the game started. `out.len()` should be a multiple of the
    /// channel count; a trailing partial frame gets the first channels of the next frame.
    pub fn fill(&mut self, out: &mut [f32], first_sample: u64) {
        self.fill_with(out, first_sample, |v| v);
    }

    /// Like [`Mixer::fill`] but writes signed 16-bit samples (full scale 32767).
    pub fn fill_i16(&mut self, out: &mut [i16], first_sample: u64) {
        self.fill_with(out, first_sample, |v| (v * 32767.0).round() as i16);
    }

    fn fill_with<T>(&mut self, out: &mut [T], first_sample: u64, convert: impl Fn(f32) -> T) {
        let ch = usize::from(self.channels);
        let mut n = first_sample;
        for block in out.chunks_mut(CHUNK * ch) {
            let count = block.len().div_ceil(ch);
            self.generate(n, count);
            for (dst, frame) in block.chunks_mut(ch).zip(&self.frames) {
                let values = if ch == 1 {
                    [0.5 * (frame[0] + frame[1]); 2]
                } else {
                    *frame
                };
                for (d, v) in dst.iter_mut().zip(values) {
                    *d = convert(v);
                }
            }
            n = n.wrapping_add(count as u64);
        }
    }

    /// Puts `count` (at most `CHUNK`) stereo frames starting at frame `first` into `self.frames`.
    fn generate(&mut self, first: u64, count: usize) {
        let rate = self.sample_rate;
        let at = |i: usize| first.wrapping_add(i as u64);
        self.frames.clear();
        match self.pattern {
            Pattern::Sync => self
                .frames
                .extend((0..count).map(|i| [synth::sync_beep(at(i), rate); 2])),
            Pattern::Bars => self
                .frames
                .extend((0..count).map(|i| [synth::bars_tone(at(i), rate); 2])),
            Pattern::Aquarium => {
                let [rl, rr, hl, hr] = &mut self.noise;
                for (buf, band) in [rl, rr, hl, hr]
                    .into_iter()
                    .zip(self.rumble.iter_mut().chain(self.hiss.iter_mut()))
                {
                    buf.resize(count, 0.0);
                    band.render(first, buf);
                }
                let g = self.gains;
                let [rl, rr, hl, hr] = &self.noise;
                self.frames.extend((0..count).map(|i| {
                    let n = at(i);
                    let music = synth::music(n, rate);
                    let fx = synth::blip(n, rate);
                    let swell = synth::swell(n, rate);
                    let amb = [
                        swell * (rl[i] + 0.12 * hl[i]),
                        swell * (rr[i] + 0.12 * hr[i]),
                    ];
                    [0, 1].map(|c| {
                        soft_limit(g.music * music[c] + g.effects * fx[c] + g.ambient * amb[c])
                    })
                }));
            }
        }
    }
}

/// Memoryless soft limiter: identity below the knee, then a tanh curve that approaches (and
/// never exceeds) full scale with a continuous slope. Having no state keeps every sample a pure
/// function of its index. Non-finite input becomes silence.
fn soft_limit(x: f32) -> f32 {
    if !x.is_finite() {
        return 0.0;
    }
    let a = x.abs();
    if a <= KNEE {
        return x;
    }
    let room = 1.0 - KNEE;
    let y = KNEE + room * ((a - KNEE) / room).tanh();
    y.min(1.0).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    fn render(m: &mut Mixer, first: u64, frames: usize) -> Vec<f32> {
        let mut v = vec![f32::NAN; frames * usize::from(m.channels())];
        m.fill(&mut v, first);
        v
    }

    #[test]
    fn sync_beep_exactly_in_window() {
        let mut m = Mixer::new(Pattern::Sync, RATE, 2).expect("mixer");
        let secs = 3;
        let all = render(&mut m, 0, secs * RATE as usize);
        for (frame_ix, frame) in all.chunks_exact(2).enumerate() {
            let in_window = (frame_ix % RATE as usize) < 4_800;
            assert_eq!(frame[0], frame[1], "both channels carry the beep");
            if in_window {
                assert!(frame[0] != 0.0, "sample {frame_ix} must sound");
                assert!(frame[0].abs() <= 0.5 + 1e-6);
            } else {
                assert_eq!(frame[0], 0.0, "sample {frame_ix} must be silent");
            }
        }
        // The beep is a 1 kHz tone at amplitude 0.5: 48 samples a period, peak near 0.5.
        let beep: Vec<f32> = all.chunks_exact(2).take(4_800).map(|f| f[0]).collect();
        let peak = beep.iter().fold(0f32, |p, v| p.max(v.abs()));
        assert!((0.49..=0.5).contains(&peak), "peak {peak}");
        let rising = beep
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((99..=101).contains(&rising), "zero crossings {rising}");
        // Far from the start, the window is still where it belongs.
        let k = 86_400u64;
        let around = render(&mut m, k * u64::from(RATE) - 2, 4_804);
        let sounding: Vec<bool> = around.chunks_exact(2).map(|f| f[0] != 0.0).collect();
        assert_eq!(&sounding[..2], &[false, false]);
        assert!(sounding[2..4_802].iter().all(|&s| s));
        assert_eq!(&sounding[4_802..], &[false, false]);
    }

    #[test]
    fn continuity_across_block_sizes() {
        for p in Pattern::ALL {
            for ch in [1u16, 2] {
                let mut m = Mixer::new(p, RATE, ch).expect("mixer");
                let total = 3 * RATE as usize + 77;
                let first = 123_456u64;
                let whole = render(&mut m, first, total);
                for block in [1usize, 7, 480, 511, 512, 513, 1_024, 4_800] {
                    let mut pieces = Vec::with_capacity(whole.len());
                    let mut n = first;
                    let mut left = total;
                    while left > 0 {
                        let len = block.min(left);
                        pieces.extend(render(&mut m, n, len));
                        n += len as u64;
                        left -= len;
                    }
                    assert!(pieces == whole, "{p} ch={ch} block={block}");
                }
                // Out of order and repeated requests change nothing either.
                let mut fresh = Mixer::new(p, RATE, ch).expect("mixer");
                let late = render(&mut fresh, first + 100_000, 300);
                let early = render(&mut fresh, first, 300);
                let c = usize::from(ch);
                assert!(late[..] == whole[100_000 * c..100_300 * c], "{p} late");
                assert!(early[..] == whole[..300 * c], "{p} early");
            }
        }
    }

    #[test]
    fn samples_are_finite_and_in_range() {
        for p in Pattern::ALL {
            let mut m = Mixer::new(p, RATE, 2).expect("mixer");
            // Loud gains push the limiter hard; it must still hold the range.
            if p == Pattern::Aquarium {
                m.set_gains(Gains {
                    music: 4.0,
                    effects: 4.0,
                    ambient: 4.0,
                })
                .expect("gains");
            }
            for first in [0u64, 10 * u64::from(RATE), u64::MAX - 20_000] {
                let v = render(&mut m, first, 20_000);
                assert!(
                    v.iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)),
                    "{p}"
                );
            }
        }
    }

    #[test]
    fn aquarium_has_all_sources() {
        let mut m = Mixer::new(Pattern::Aquarium, RATE, 2).expect("mixer");
        let rms = |m: &mut Mixer| {
            let v = render(m, 0, 4 * RATE as usize);
            (v.iter().map(|s| s * s).sum::<f32>() / v.len() as f32).sqrt()
        };
        let full = rms(&mut m);
        assert!((0.05..0.6).contains(&full), "rms {full}");
        let solo = |music, effects, ambient| Gains {
            music,
            effects,
            ambient,
        };
        for g in [
            solo(1.0, 0.0, 0.0),
            solo(0.0, 1.0, 0.0),
            solo(0.0, 0.0, 1.0),
        ] {
            m.set_gains(g).expect("gains");
            assert!(rms(&mut m) > 0.01, "{g:?} must be audible alone");
        }
        m.set_gains(solo(0.0, 0.0, 0.0)).expect("gains");
        assert_eq!(rms(&mut m), 0.0);
        // Left and right differ (panned arpeggio, independent noise).
        m.set_gains(Gains::default()).expect("gains");
        let v = render(&mut m, 0, 1_000);
        assert!(v.chunks_exact(2).any(|f| f[0] != f[1]));
    }

    #[test]
    fn bars_tone_is_steady_440() {
        let mut m = Mixer::new(Pattern::Bars, RATE, 2).expect("mixer");
        let v = render(&mut m, 5 * u64::from(RATE), RATE as usize);
        let left: Vec<f32> = v.chunks_exact(2).map(|f| f[0]).collect();
        let rising = left
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((439..=441).contains(&rising), "crossings {rising}");
        let peak = left.iter().fold(0f32, |p, s| p.max(s.abs()));
        assert!((0.25..=0.2513).contains(&peak), "peak {peak}");
    }

    #[test]
    fn i16_output_matches_f32() {
        let mut m = Mixer::new(Pattern::Aquarium, RATE, 2).expect("mixer");
        let f = render(&mut m, 999, 1_000);
        let mut s = vec![0i16; 2_000];
        m.fill_i16(&mut s, 999);
        for (a, b) in f.iter().zip(&s) {
            assert_eq!((a * 32767.0).round() as i16, *b);
        }
    }

    #[test]
    fn partial_trailing_frame_and_empty_output() {
        let mut m = Mixer::new(Pattern::Sync, RATE, 2).expect("mixer");
        let mut odd = [9f32; 5];
        m.fill(&mut odd, 10);
        let even = render(&mut m, 10, 3);
        assert_eq!(odd[..], even[..5]);
        m.fill(&mut [], 0);
    }

    #[test]
    fn invalid_formats_and_gains_are_errors() {
        for (rate, ch) in [(0, 2), (7_999, 2), (192_001, 2), (48_000, 0), (48_000, 3)] {
            assert_eq!(
                Mixer::new(Pattern::Aquarium, rate, ch).err(),
                Some(GameError::InvalidAudioFormat {
                    sample_rate: rate,
                    channels: ch
                })
            );
        }
        let mut m = Mixer::new(Pattern::Aquarium, 44_100, 1).expect("mixer");
        for bad in [f32::NAN, -0.1, 4.5, f32::INFINITY] {
            let g = Gains {
                music: bad,
                ..Gains::default()
            };
            assert!(matches!(m.set_gains(g), Err(GameError::InvalidGain(_))));
        }
        assert_eq!(m.gains(), Gains::default());
    }

    #[test]
    fn limiter_is_continuous_and_bounded() {
        assert_eq!(soft_limit(0.5), 0.5);
        assert_eq!(soft_limit(-KNEE), -KNEE);
        assert!((soft_limit(KNEE + 1e-4) - (KNEE + 1e-4)).abs() < 1e-6);
        assert!(soft_limit(1.0) < 1.0 && soft_limit(1.0) > 0.9);
        assert_eq!(soft_limit(1e9), 1.0);
        assert_eq!(soft_limit(-1e9), -1.0);
        assert_eq!(soft_limit(f32::NAN), 0.0);
    }
}

//! Sound sources. Each one is a pure function of the sample index (the ambient noise is a
//! sliding sum over counter-based noise, exact in integers), so any block of samples comes out
//! the same whatever blocks were asked for before it: that is what makes the mixer independent
//! of block size and lets it start anywhere.

use std::f64::consts::TAU;

use crate::{mix64, sync_beep_at, unit, BARS_TONE_HZ, SYNC_BEEP_AMPLITUDE, SYNC_BEEP_HZ};

/// Interval between two bubble "blips", in milliseconds; the aquarium's aerator releases a big
/// bubble on the same beat, so what is seen and heard agree.
pub(crate) const BLIP_PERIOD_MS: u64 = 1_700;

/// Amplitude of the bars tone: 10^(-12/20), i.e. -12 dBFS.
const BARS_TONE_AMPLITUDE: f64 = 0.251_188_643_150_958;

/// The sync beep: a 1 kHz sine for the first tenth of every second, exact silence elsewhere
/// (see [`sync_beep_at`]).
///
/// The sine is sampled half a sample late so that no sample inside the window is zero (the
/// first and last are ±0.016 at 48 kHz): the window's edges are then visible in the samples
/// themselves, and the onset still has no click.
pub(crate) fn sync_beep(n: u64, rate: u32) -> f32 {
    if !sync_beep_at(n, rate) {
        return 0.0;
    }
    let i = n % u64::from(rate);
    let cycles = (i as f64 + 0.5) * f64::from(SYNC_BEEP_HZ) / f64::from(rate);
    (f64::from(SYNC_BEEP_AMPLITUDE) * (TAU * cycles).sin()) as f32
}

/// The bars tone: 440 Hz at -12 dBFS, phase computed in integers so it never drifts.
pub(crate) fn bars_tone(n: u64, rate: u32) -> f32 {
    let rate = u64::from(rate);
    let phase = (n % rate) * u64::from(BARS_TONE_HZ) % rate;
    (BARS_TONE_AMPLITUDE * (TAU * phase as f64 / rate as f64).sin()) as f32
}

/// Frequency of MIDI note `note`, in Hz.
fn midi_hz(note: u8) -> f64 {
    440.0 * ((f64::from(note) - 69.0) / 12.0).exp2()
}

/// Arpeggio steps per second (eighth notes at 120 bpm).
const STEPS_PER_SEC: u64 = 4;
/// Steps per chord (two seconds).
const STEPS_PER_CHORD: u64 = 8;
/// The progression, Am – F – C – G, as root, third, fifth, octave.
const CHORDS: [[u8; 4]; 4] = [
    [57, 60, 64, 69],
    [53, 57, 60, 65],
    [48, 52, 55, 60],
    [55, 59, 62, 67],
];
/// Which chord tone each step of a chord plays.
const ARPEGGIO: [usize; 8] = [0, 1, 2, 3, 2, 1, 3, 1];
/// Length of the whole loop, in steps.
const LOOP_STEPS: u64 = STEPS_PER_CHORD * CHORDS.len() as u64;

/// Start (first sample) of segment `k` when a second holds `per_sec` segments.
fn segment_start(k: u64, per_sec: u64, rate: u64) -> u64 {
    (k * rate).div_ceil(per_sec)
}

/// A linear fade-in over `attack` s and fade-out over `release` s for a note of `len` s.
fn fades(t: f64, len: f64, attack: f64, release: f64) -> f64 {
    (t / attack).min(1.0).min(((len - t) / release).max(0.0))
}

/// The music loop: a plucked arpeggio, a soft pad and a bass over an eight-second Am–F–C–G
/// progression. Returns (left, right), each peaking below about 0.75.
pub(crate) fn music(n: u64, rate: u32) -> [f32; 2] {
    let rate64 = u64::from(rate);
    let sr = f64::from(rate);
    let m = n % (LOOP_STEPS * rate64 / STEPS_PER_SEC);
    let step = (m * STEPS_PER_SEC / rate64).min(LOOP_STEPS - 1);
    let chord_ix = (step / STEPS_PER_CHORD) as usize;
    let chord = CHORDS[chord_ix];

    // Arpeggio: an octave up, a sine with a little second harmonic, plucked envelope.
    let start = segment_start(step, STEPS_PER_SEC, rate64);
    let end = segment_start(step + 1, STEPS_PER_SEC, rate64);
    let t = (m - start) as f64 / sr;
    let len = (end - start) as f64 / sr;
    let f = midi_hz(chord[ARPEGGIO[(step % STEPS_PER_CHORD) as usize]] + 12);
    let env = fades(t, len, 0.004, 0.012) * (-7.0 * t).exp();
    let arp = 0.26 * env * with_second(TAU * f * t, 0.25);
    let arp_pan = if step % 2 == 0 { -0.35 } else { 0.35 };

    // Pad: the triad, sustained over the chord with slow fades at both ends.
    let chord_start = segment_start(chord_ix as u64 * STEPS_PER_CHORD, STEPS_PER_SEC, rate64);
    let chord_end = segment_start(
        (chord_ix as u64 + 1) * STEPS_PER_CHORD,
        STEPS_PER_SEC,
        rate64,
    );
    let tc = (m - chord_start) as f64 / sr;
    let chord_len = (chord_end - chord_start) as f64 / sr;
    let pad_env = fades(tc, chord_len, 0.5, 0.5);
    let pad: f64 = chord[..3]
        .iter()
        .map(|&note| {
            let x = (TAU * midi_hz(note) * tc).sin();
            // sin 3θ = 3 sin θ - 4 sin³ θ: the third harmonic without another sine.
            x + 0.2 * (3.0 * x - 4.0 * x * x * x)
        })
        .sum::<f64>()
        * 0.06
        * pad_env;

    // Bass: the root two octaves down, one note per second.
    let beat = m / rate64;
    let tb = (m - beat * rate64) as f64 / sr;
    let bass_f = midi_hz(chord[0] - 24);
    let bass_env = fades(tb, 1.0, 0.01, 0.03) * (-2.5 * tb).exp();
    let bass = 0.22 * bass_env * with_second(TAU * bass_f * tb, 0.3);

    let centre = pad + bass;
    [
        (centre + arp * (1.0 - arp_pan)) as f32,
        (centre + arp * (1.0 + arp_pan)) as f32,
    ]
}

/// `sin θ + k sin 2θ`, with the octave from `sin 2θ = 2 sin θ cos θ` (one `sin_cos` call
/// instead of two sines: the music is most of the mixer's cost).
fn with_second(theta: f64, k: f64) -> f64 {
    let (s, c) = theta.sin_cos();
    s + k * 2.0 * s * c
}

/// Seed of the blip pitches.
const BLIP_SEED: u64 = 0xB1_1B;
/// Length of one blip, in seconds.
const BLIP_LEN: f64 = 0.16;
/// Stereo position of the blips (right of centre, where the aerator is drawn).
const BLIP_PAN: f64 = 0.4;

/// The bubble effect: every 1.7 s a rising "bloop" chirp and a smaller, higher one 60 ms later,
/// each pitch varied per release. Returns (left, right).
pub(crate) fn blip(n: u64, rate: u32) -> [f32; 2] {
    let rate64 = u64::from(rate);
    let period = (rate64 * BLIP_PERIOD_MS / 1000).max(1);
    let j = n / period;
    let t = (n % period) as f64 / f64::from(rate);
    if t >= BLIP_LEN + 0.06 {
        return [0.0, 0.0];
    }
    let f0 = 320.0 + 260.0 * f64::from(unit(BLIP_SEED, j));
    let s = 0.6 * chirp(t, f0, 0.12) + 0.3 * chirp(t - 0.06, f0 * 1.6, 0.09);
    [(s * (1.0 - BLIP_PAN)) as f32, (s * (1.0 + BLIP_PAN)) as f32]
}

/// One bubble chirp starting at `t` = 0: pitch rising from `f0` to 2.6 `f0` over `len` s.
fn chirp(t: f64, f0: f64, len: f64) -> f64 {
    if !(0.0..len).contains(&t) {
        return 0.0;
    }
    let f1 = f0 * 2.6;
    let phase = TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * len));
    let tail = 1.0 - t / len;
    (t / 0.003).min(1.0) * (-14.0 * t).exp() * tail * tail * phase.sin()
}

/// Slow swell of the ambient noise (a nine-second wave), in `[0.55, 1]`.
pub(crate) fn swell(n: u64, rate: u32) -> f32 {
    let rate64 = u64::from(rate);
    let period = 9 * rate64;
    let x = (n % period) as f64 / period as f64;
    (0.775 + 0.225 * (TAU * x).sin()) as f32
}

/// Low-passed white noise: counter-based noise through two cascaded moving sums of `taps`
/// samples (a triangular FIR). The sums are kept in integers, so sliding them across a block is
/// exact and every output equals the directly computed value wherever the block starts.
pub(crate) struct NoiseBand {
    seed: u64,
    taps: usize,
    /// Scale from the integer sum to a unit-ish (standard deviation about 0.25) signal.
    norm: f32,
    /// The last `taps` first-stage sums, indexed by sample index modulo `taps`.
    ring: Vec<i64>,
}

impl NoiseBand {
    /// A band with its own noise `seed` and filter length `taps` (at least 1).
    pub(crate) fn new(seed: u64, taps: usize) -> NoiseBand {
        let taps = taps.max(1);
        let l = taps as f64;
        // Std of uniform 16-bit noise is 2^15/sqrt(3); the triangle's energy is about 2 L^3 / 3.
        let std = 32768.0 / 3f64.sqrt() * (2.0 * l * l * l / 3.0 + l / 3.0).sqrt();
        NoiseBand {
            seed,
            taps,
            norm: (0.25 / std) as f32,
            ring: vec![0; taps],
        }
    }

    /// Uniform integer noise in `[-2^15, 2^15)` for sample `n` (wrapping, so "negative" sample
    /// indices before the start are well defined too).
    fn white(&self, n: u64) -> i64 {
        (mix64(self.seed ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93)) >> 48) as i64 - 32768
    }

    /// Writes the band's samples `first..first + out.len()` into `out`.
    pub(crate) fn render(&mut self, first: u64, out: &mut [f32]) {
        if out.is_empty() {
            return;
        }
        let l = self.taps as u64;
        let slot = |n: u64| (n % l) as usize;
        // First-stage sums for first-L+1 ..= first: one direct sum, then slide.
        let oldest = first.wrapping_sub(l - 1);
        let mut s1: i64 = (0..l).map(|k| self.white(oldest.wrapping_sub(k))).sum();
        self.ring[slot(oldest)] = s1;
        for k in 1..l {
            let n = oldest.wrapping_add(k);
            s1 += self.white(n) - self.white(n.wrapping_sub(l));
            self.ring[slot(n)] = s1;
        }
        let mut s2: i64 = self.ring.iter().sum();
        out[0] = s2 as f32 * self.norm;
        for (i, o) in out.iter_mut().enumerate().skip(1) {
            let n = first.wrapping_add(i as u64);
            s1 += self.white(n) - self.white(n.wrapping_sub(l));
            let r = slot(n);
            s2 += s1 - self.ring[r];
            self.ring[r] = s1;
            *o = s2 as f32 * self.norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_amplitude_matches_its_level() {
        let want = 10f64.powf(f64::from(crate::BARS_TONE_DBFS) / 20.0);
        assert!((BARS_TONE_AMPLITUDE - want).abs() < 1e-12);
    }

    #[test]
    fn noise_band_slides_exactly() {
        let mut band = NoiseBand::new(7, 13);
        let mut whole = vec![0f32; 400];
        band.render(1_000, &mut whole);
        for (i, &v) in whole.iter().enumerate().step_by(37) {
            let mut one = [0f32];
            band.render(1_000 + i as u64, &mut one);
            assert_eq!(one[0], v, "sample {i}");
        }
        // Starting at zero reaches back before the start without panicking.
        let mut head = [0f32; 3];
        band.render(0, &mut head);
        assert!(head.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn noise_band_level_is_moderate() {
        let mut band = NoiseBand::new(3, 96);
        let mut buf = vec![0f32; 48_000];
        band.render(0, &mut buf);
        let rms = (buf.iter().map(|v| v * v).sum::<f32>() / buf.len() as f32).sqrt();
        assert!((0.15..0.35).contains(&rms), "rms {rms}");
    }

    #[test]
    fn music_loops_every_eight_seconds() {
        for n in [0u64, 1, 12_345, 200_000] {
            assert_eq!(music(n, 48_000), music(n + 8 * 48_000, 48_000));
        }
        let peak = (0..8 * 48_000u64)
            .step_by(7)
            .map(|n| {
                let [l, r] = music(n, 48_000);
                l.abs().max(r.abs())
            })
            .fold(0f32, f32::max);
        assert!((0.2..0.9).contains(&peak), "peak {peak}");
    }

    #[test]
    fn blips_start_on_their_period() {
        let period = 48_000 * 17 / 10;
        for j in 0..4u64 {
            assert_eq!(blip(j * period, 48_000), [0.0, 0.0], "starts from zero");
            let loud = (j * period..j * period + 4_800).any(|n| blip(n, 48_000)[0].abs() > 0.05);
            assert!(loud, "blip {j} audible");
            assert_eq!(blip(j * period + period / 2, 48_000), [0.0, 0.0]);
        }
    }
}

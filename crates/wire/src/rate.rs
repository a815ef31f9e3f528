//! Frame rates as exact fractions, and the frame times they give.
//!
//! Broadcast rates such as 59.94 fps are really 60000/1001, and even 30 fps has a period that
//! is not a whole number of nanoseconds (33 333 333.3…). A game that paces itself by adding a
//! rounded period drifts against a host that counts exactly, and lands on the wrong side of a
//! second boundary: with a truncated period, frame 30 at 30 fps is stamped 999 999 990 ns, just
//! *before* the one-second beep it belongs to. So both ends compute frame `n`'s time from `n`
//! itself, exactly, with [`FrameRate::frame_ns`].

use std::fmt;
use std::str::FromStr;

/// The fastest frame rate crosscast accepts (frames per second).
pub const MAX_FPS: u32 = 240;

/// A frame rate `num / den` frames per second, kept as an exact fraction in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

/// Why a frame rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameRateError {
    /// Not a number, a decimal or a `num/den` fraction.
    #[error("'{0}' is not a frame rate (write 30, 59.94 or 60000/1001)")]
    Syntax(String),
    /// Outside 1..=240 frames per second (or a zero denominator).
    #[error("frame rate {num}/{den} is outside 1..={MAX_FPS} fps")]
    OutOfRange {
        /// Numerator as given.
        num: u64,
        /// Denominator as given.
        den: u64,
    },
}

impl FrameRate {
    /// `num / den` frames per second, reduced; refused outside 1..=240 fps.
    pub fn new(num: u64, den: u64) -> Result<FrameRate, FrameRateError> {
        let out = FrameRateError::OutOfRange { num, den };
        if den == 0 || num < den || num > u64::from(MAX_FPS) * den {
            return Err(out);
        }
        let g = gcd(num, den);
        let (n, d) = (num / g, den / g);
        match (u32::try_from(n), u32::try_from(d)) {
            (Ok(num), Ok(den)) => Ok(FrameRate { num, den }),
            _ => Err(out),
        }
    }

    /// A whole number of frames per second (clamped to 1..=240).
    pub const fn integer(fps: u32) -> FrameRate {
        let fps = if fps == 0 {
            1
        } else if fps > MAX_FPS {
            MAX_FPS
        } else {
            fps
        };
        FrameRate { num: fps, den: 1 }
    }

    /// Numerator: frames per `den` seconds.
    pub const fn num(self) -> u32 {
        self.num
    }

    /// Denominator: seconds per `num` frames.
    pub const fn den(self) -> u32 {
        self.den
    }

    /// The rate as a float, for display and rough arithmetic only.
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Time of frame `n` in ns from frame 0: `n · den / num` seconds, rounded down. Exact for
    /// every `n` (no accumulated error), so it never drifts however long the stream runs.
    pub fn frame_ns(self, n: u64) -> u64 {
        let t = u128::from(n) * 1_000_000_000 * u128::from(self.den) / u128::from(self.num);
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// Index of the frame showing at `t_ns` (the last frame whose time is `<= t_ns`).
    pub fn frame_at(self, t_ns: u64) -> u64 {
        // frame_ns(n) <= t  <=>  floor(n·den·1e9/num) <= t  <=>  n·den·1e9 < (t+1)·num.
        let scaled = (u128::from(t_ns) + 1) * u128::from(self.num);
        let per_frame = 1_000_000_000 * u128::from(self.den);
        let n = scaled.div_ceil(per_frame).saturating_sub(1);
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// One period in ns, rounded down: for timeouts and windows, never to place frames (use
    /// [`frame_ns`](FrameRate::frame_ns), which does not accumulate the rounding).
    pub fn period_ns(self) -> u64 {
        self.frame_ns(1)
    }

    /// Frames in `seconds`, rounded to the nearest whole frame (at least 1): keyframe
    /// intervals and the like.
    pub fn frames_in(self, seconds: f64) -> u32 {
        let n = (seconds * self.as_f64()).round();
        if n.is_finite() && n >= 1.0 {
            n.min(f64::from(u32::MAX)) as u32
        } else {
            1
        }
    }
}

impl Default for FrameRate {
    /// 60 fps.
    fn default() -> FrameRate {
        FrameRate::integer(60)
    }
}

impl From<u32> for FrameRate {
    /// A whole number of frames per second (clamped to 1..=240).
    fn from(fps: u32) -> FrameRate {
        FrameRate::integer(fps)
    }
}

impl fmt::Display for FrameRate {
    /// `60` for whole rates, `60000/1001` otherwise: the form [`FromStr`] reads back exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl FromStr for FrameRate {
    type Err = FrameRateError;

    /// Reads `60`, `60000/1001`, or a decimal. The broadcast decimals 23.976, 29.97, 47.952,
    /// 59.94 and 119.88 mean their exact `N·1000/1001` rates, as every video tool reads them;
    /// any other decimal is taken at its face value (`12.5` is 25/2).
    fn from_str(s: &str) -> Result<FrameRate, FrameRateError> {
        let syntax = || FrameRateError::Syntax(s.to_string());
        let s = s.trim();
        if let Some((n, d)) = s.split_once('/') {
            let n: u64 = n.trim().parse().map_err(|_| syntax())?;
            let d: u64 = d.trim().parse().map_err(|_| syntax())?;
            return FrameRate::new(n, d);
        }
        match s.split_once('.') {
            None => FrameRate::new(s.parse().map_err(|_| syntax())?, 1),
            Some((whole, frac)) => {
                if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                let whole: u64 = whole.parse().map_err(|_| syntax())?;
                let scale = 10u64.pow(frac.len() as u32);
                let frac_v: u64 = frac.parse().map_err(|_| syntax())?;
                let milli = (whole * scale + frac_v) * 1000 / scale;
                let ntsc = [23_976u64, 29_970, 47_952, 59_940, 119_880];
                if (whole * scale + frac_v) * 1000 % scale == 0 && ntsc.contains(&milli) {
                    return FrameRate::new((milli * 1001 + 500_000) / 1_000_000 * 1000, 1001);
                }
                FrameRate::new(whole * scale + frac_v, scale)
            }
        }
    }
}

/// Greatest common divisor (Euclid); `gcd(x, 0) = x`.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_rates_place_frames_exactly_on_the_second() {
        for fps in [25u32, 30, 60] {
            let r = FrameRate::integer(fps);
            assert_eq!(r.frame_ns(u64::from(fps)), 1_000_000_000, "{fps} fps");
            // The frame covering the one-second boundary is the one stamped at it.
            assert_eq!(r.frame_at(1_000_000_000), u64::from(fps));
            assert_eq!(r.frame_at(999_999_999), u64::from(fps) - 1);
        }
        // 30 fps: no accumulated rounding after an hour.
        assert_eq!(FrameRate::integer(30).frame_ns(108_000), 3_600_000_000_000);
    }

    #[test]
    fn ntsc_rates_read_as_their_exact_fractions() {
        let r: FrameRate = "59.94".parse().unwrap();
        assert_eq!((r.num(), r.den()), (60_000, 1001));
        assert_eq!(r, "60000/1001".parse().unwrap());
        assert_eq!(r.to_string().parse::<FrameRate>().unwrap(), r);
        assert_eq!(
            "29.97".parse::<FrameRate>().unwrap(),
            FrameRate::new(30_000, 1001).unwrap()
        );
        assert_eq!(
            "23.976".parse::<FrameRate>().unwrap(),
            FrameRate::new(24_000, 1001).unwrap()
        );
        // 60 frames of 59.94 fps take 1.001 s.
        assert_eq!(r.frame_ns(60), 1_001_000_000);
        assert_eq!(r.frame_at(1_000_999_999), 59);
        assert_eq!(r.frame_at(1_001_000_000), 60);
    }

    #[test]
    fn other_forms_and_limits() {
        assert_eq!(
            "12.5".parse::<FrameRate>().unwrap(),
            FrameRate::new(25, 2).unwrap()
        );
        assert_eq!("60".parse::<FrameRate>().unwrap(), FrameRate::integer(60));
        assert_eq!("120/2".parse::<FrameRate>().unwrap().to_string(), "60");
        for bad in [
            "", "abc", "0", "241", "1/0", "0.5", "60.", "-1", "1e3", "30/x",
        ] {
            assert!(bad.parse::<FrameRate>().is_err(), "{bad:?} must be refused");
        }
        assert_eq!(FrameRate::integer(0), FrameRate::integer(1));
        assert_eq!(FrameRate::integer(1000), FrameRate::integer(MAX_FPS));
    }

    #[test]
    fn frame_at_inverts_frame_ns() {
        for r in [
            FrameRate::integer(30),
            FrameRate::integer(60),
            FrameRate::new(60_000, 1001).unwrap(),
            FrameRate::new(24_000, 1001).unwrap(),
        ] {
            for n in [0u64, 1, 29, 30, 59, 60, 1000, 123_457] {
                let t = r.frame_ns(n);
                assert_eq!(r.frame_at(t), n, "{r} frame {n}");
                if t > 0 {
                    assert_eq!(r.frame_at(t - 1), n - 1, "{r} just before frame {n}");
                }
            }
        }
    }
}

//! The crosscast demo game as pure library code: scenes that render RGBA frames and an audio
//! mixer that produces interleaved `f32` samples.
//!
//! Nothing here reads a clock, touches a file or talks to the host: the caller passes the game
//! time (`t_ns` for video, a sample index for audio), so every frame and every sample is a pure
//! function of its timestamp. That is what lets the `sync` pattern put its flash and its beep on
//! exactly the same instant, and what makes the output reproducible in tests. The streamer's
//! input ([`Scene::input`]) is state of its own, applied at a given game time: a frame is a
//! function of its timestamp and the input applied before it, and a scene that gets none draws
//! what it always drew.
//!
//! ```
//! use crosscast_demo::{Mixer, Pattern, Scene};
//!
//! let mut scene = Scene::new(Pattern::Bars, 64, 32)?;
//! let mut frame = vec![0u8; 64 * 4 * 32];
//! scene.render(&mut frame, 64 * 4, 0, 0)?;
//!
//! let mut mixer = Mixer::new(Pattern::Bars, 48_000, 2)?;
//! let mut block = vec![0f32; 480 * 2];
//! mixer.fill(&mut block, 0);
//! # Ok::<(), crosscast_demo::GameError>(())
//! ```
#![forbid(unsafe_code)]

mod aquarium;
mod bars;
mod controls;
mod mixer;
mod raster;
mod scene;
mod synth;
mod text;

use std::fmt;
use std::str::FromStr;

pub use controls::{
    KEY_DOWN, KEY_LEFT, KEY_MARKER_SIZE, KEY_RIGHT, KEY_UP, MAX_PELLETS, PELLET_LIFE_NS,
    PELLET_SINK, PLAYER_SPEED,
};
pub use mixer::{Gains, Mixer};
pub use scene::Scene;

/// Smallest accepted frame width or height, in pixels.
pub const MIN_DIMENSION: u32 = 16;
/// Largest accepted frame width or height, in pixels.
pub const MAX_DIMENSION: u32 = 4096;
/// Smallest accepted audio sample rate, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Largest accepted audio sample rate, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 192_000;
/// Largest accepted channel count (mono or stereo).
pub const MAX_CHANNELS: u16 = 2;

/// Nanoseconds in one second of game time.
const NS_PER_SEC: u64 = 1_000_000_000;

/// The sync pattern repeats every this many nanoseconds of game time (one second).
pub const SYNC_PERIOD_NS: u64 = NS_PER_SEC;
/// How long each sync flash and beep lasts, from the start of its period (100 ms).
pub const SYNC_FLASH_NS: u64 = NS_PER_SEC / 10;
/// Frequency of the sync beep, in Hz.
pub const SYNC_BEEP_HZ: u32 = 1_000;
/// Peak amplitude of the sync beep (full scale is 1.0).
pub const SYNC_BEEP_AMPLITUDE: f32 = 0.5;
/// Frequency of the bars tone, in Hz.
pub const BARS_TONE_HZ: u32 = 440;
/// Level of the bars tone, in dBFS (peak).
pub const BARS_TONE_DBFS: f32 = -12.0;

/// What the game shows and plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pattern {
    /// The demo game: an animated aquarium with music, bubble sounds and ambient water noise.
    #[default]
    Aquarium,
    /// A/V sync probe: black and silent, with a white frame and a 1 kHz beep for the first
    /// 100 ms of every second of game time.
    Sync,
    /// Static colour bars and a steady 440 Hz tone at -12 dBFS.
    Bars,
}

impl Pattern {
    /// Every pattern, in the order the CLI lists them.
    pub const ALL: [Pattern; 3] = [Pattern::Aquarium, Pattern::Sync, Pattern::Bars];

    /// The name used on the command line (`aquarium`, `sync`, `bars`).
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Aquarium => "aquarium",
            Pattern::Sync => "sync",
            Pattern::Bars => "bars",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = GameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| GameError::UnknownPattern(s.to_owned()))
    }
}

/// Everything that can go wrong in the game crate; each variant says what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameError {
    /// The pattern name is not one of `aquarium`, `sync`, `bars`; the caller should report it
    /// and exit.
    #[error("unknown pattern {0:?}: choose aquarium, sync or bars")]
    UnknownPattern(String),
    /// The frame size is rejected; nothing was changed and the caller should ask for another size.
    #[error(
        "frame size {width}x{height} is not supported: width and height must be even and \
         within {MIN_DIMENSION}..={MAX_DIMENSION}"
    )]
    InvalidSize {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// The row stride cannot hold a row of RGBA pixels; nothing was drawn and the caller must
    /// pass the slot's real stride.
    #[error("row stride {stride} is smaller than one row of {min} bytes (width x 4)")]
    StrideTooSmall {
        /// Stride passed by the caller, in bytes.
        stride: usize,
        /// Bytes in one row of pixels.
        min: usize,
    },
    /// The destination is too short for the scene's size at this stride; nothing was drawn and
    /// the caller should resize the scene or dequeue a slot of the current configuration.
    #[error("destination holds {len} bytes but this frame needs {needed}")]
    BufferTooSmall {
        /// Length of the destination, in bytes.
        len: usize,
        /// Bytes needed for `stride * (height - 1) + width * 4`.
        needed: usize,
    },
    /// The audio format is rejected; the caller should configure a supported one.
    #[error(
        "audio format {sample_rate} Hz x {channels} channels is not supported: use \
         {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz and 1..={MAX_CHANNELS} channels"
    )]
    InvalidAudioFormat {
        /// Requested sample rate in Hz.
        sample_rate: u32,
        /// Requested channel count.
        channels: u16,
    },
    /// The bundled font could not be parsed: the build is broken, the aquarium cannot start and
    /// the caller should fall back to another pattern or exit.
    #[error("the bundled font could not be loaded: {0}")]
    Font(String),
    /// A fixed piece of scenery could not be built (a rasteriser limit at this size); the
    /// caller should try another frame size.
    #[error("could not build the {0} at this frame size")]
    Drawing(&'static str),
    /// A mixer gain is negative, above the limit or not a number; the gains were left unchanged.
    #[error("mixer gain {0} is out of range: gains must be finite and within 0..=4")]
    InvalidGain(String),
}

/// Checks a frame size against the limits shared by every scene.
fn check_size(width: u32, height: u32) -> Result<(), GameError> {
    let ok = |d: u32| (MIN_DIMENSION..=MAX_DIMENSION).contains(&d) && d % 2 == 0;
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(GameError::InvalidSize { width, height })
    }
}

/// Whether game time `t_ns` (ns since the game started) falls in a sync flash and beep, that
/// is in `[k s, k s + 100 ms)` for a whole second `k`. Analysis tools use it to know where
/// flashes and beeps were sent.
pub fn sync_flash_at(t_ns: u64) -> bool {
    t_ns % SYNC_PERIOD_NS < SYNC_FLASH_NS
}

/// Whether the video frame that starts at `t_ns` and shows for `period_ns` carries the sync
/// flash: the frame whose start is nearest a beep's start flashes (and those after it, for the
/// flash's 100 ms). Frames quantise time, so the best a frame can do is to start within half a
/// period of its beep; at 59.94 fps, where frames drift across the second boundaries, picking
/// the first frame *after* the beep would put the flash up to a whole period late.
pub fn sync_flash_for_frame(t_ns: u64, period_ns: u64) -> bool {
    sync_flash_at(t_ns + period_ns / 2)
}

/// Whether audio sample `n` (since the game started, at `sample_rate` Hz) falls in a sync beep:
/// the sample's time `n / sample_rate` is in `[k s, k s + 100 ms)`, computed exactly in integers.
/// A zero rate has no beep.
pub fn sync_beep_at(n: u64, sample_rate: u32) -> bool {
    let rate = u64::from(sample_rate);
    rate != 0 && (n % rate) * (SYNC_PERIOD_NS / SYNC_FLASH_NS) < rate
}

/// A fixed-output 64-bit mixer (SplitMix64's finaliser): the deterministic "randomness" of both
/// the scene layout and the ambient noise, so that a value depends only on its index.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic value in `[0, 1)` for `(seed, index)`.
fn unit(seed: u64, index: u64) -> f32 {
    (mix64(seed ^ mix64(index)) >> 40) as f32 / (1u64 << 24) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_parses_and_displays() {
        for p in Pattern::ALL {
            assert_eq!(p.to_string().parse::<Pattern>(), Ok(p));
        }
        assert_eq!("SYNC".parse::<Pattern>(), Ok(Pattern::Sync));
        assert_eq!(
            "tetris".parse::<Pattern>(),
            Err(GameError::UnknownPattern("tetris".into()))
        );
        assert_eq!(Pattern::default(), Pattern::Aquarium);
    }

    #[test]
    fn size_limits() {
        assert!(check_size(16, 16).is_ok());
        assert!(check_size(4096, 4096).is_ok());
        for (w, h) in [
            (0, 0),
            (14, 16),
            (16, 14),
            (17, 16),
            (16, 17),
            (4098, 16),
            (16, 4098),
        ] {
            assert_eq!(
                check_size(w, h),
                Err(GameError::InvalidSize {
                    width: w,
                    height: h
                })
            );
        }
    }

    #[test]
    fn each_flash_starts_on_the_frame_nearest_its_beep() {
        // Frame n of a rate num/den starts at n·den/num s; check 59.94 (frames drift across
        // the seconds), 30 and 60 (frames fall on them; the flash must start exactly there).
        for (num, den) in [(60_000u64, 1001u64), (30, 1), (60, 1), (25, 1)] {
            let t = |n: u64| n * den * 1_000_000_000 / num;
            let period = t(1);
            let mut onsets = Vec::new();
            for n in 1..(120 * num / den) {
                if sync_flash_for_frame(t(n), period) && !sync_flash_for_frame(t(n - 1), period) {
                    onsets.push(t(n));
                }
            }
            assert_eq!(onsets.len(), 119, "{num}/{den}: one flash per second");
            for (k, at) in (1u64..).zip(&onsets) {
                let off = *at as i64 - (k * 1_000_000_000) as i64;
                assert!(
                    off.unsigned_abs() <= period / 2 + 1,
                    "{num}/{den}: flash {k} starts {off} ns from its beep"
                );
                if den == 1 {
                    assert_eq!(off, 0, "{num} fps: frames fall on the second");
                }
            }
        }
    }

    #[test]
    fn sync_window_edges() {
        assert!(sync_flash_at(0));
        assert!(sync_flash_at(99_999_999));
        assert!(!sync_flash_at(100_000_000));
        assert!(!sync_flash_at(999_999_999));
        assert!(sync_flash_at(7_000_000_000));
        assert!(sync_flash_at(7_099_999_999));
        assert!(!sync_flash_at(7_100_000_000));
        assert!(sync_beep_at(0, 48_000));
        assert!(sync_beep_at(4_799, 48_000));
        assert!(!sync_beep_at(4_800, 48_000));
        assert!(sync_beep_at(48_000, 48_000));
        assert!(!sync_beep_at(47_999, 48_000));
        assert!(sync_beep_at(4_409, 44_100));
        assert!(!sync_beep_at(4_410, 44_100));
        assert!(!sync_beep_at(0, 0));
        // Sample n's time n / rate is in the window exactly when the flash test says so (the
        // window's edges are whole nanoseconds, so flooring the time to ns cannot cross one).
        for rate in [8_000u32, 44_100, 48_000] {
            for n in (0..3 * u64::from(rate)).step_by(7) {
                let t_ns = (u128::from(n) * 1_000_000_000 / u128::from(rate)) as u64;
                assert_eq!(
                    sync_beep_at(n, rate),
                    sync_flash_at(t_ns),
                    "n={n} rate={rate}"
                );
            }
        }
    }

    #[test]
    fn scene_and_mixer_can_move_to_another_thread() {
        fn send<T: Send + 'static>() {}
        send::<Scene>();
        send::<Mixer>();
        send::<GameError>();
    }

    #[test]
    fn unit_is_in_range_and_stable() {
        for i in 0..1000 {
            let u = unit(42, i);
            assert!((0.0..1.0).contains(&u));
            assert_eq!(u, unit(42, i));
        }
        assert_ne!(unit(1, 0), unit(2, 0));
    }
}

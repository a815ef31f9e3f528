//! Audio blocks: interleaved samples in, the announced wire format out.

use std::sync::Arc;

use crosscast_ipc::GameSession;
use crosscast_wire::limits::{MAX_BLOCK_MS, MIN_BLOCK_MS};
use crosscast_wire::{AudioBlock, AudioConfig, SampleFormat};

use crate::SdkError;

/// Shortest audio block the host accepts, in ms (10 ms is a good choice).
pub const BLOCK_MS_MIN: u32 = MIN_BLOCK_MS;
/// Longest audio block the host accepts, in ms.
pub const BLOCK_MS_MAX: u32 = MAX_BLOCK_MS;

/// Sends the game's mixed audio in the format announced by [`crate::Game::audio`].
pub struct AudioOut {
    session: Arc<GameSession>,
    config: AudioConfig,
    seq: u64,
    bytes: Vec<u8>,
}

impl AudioOut {
    pub(crate) fn new(session: Arc<GameSession>, config: AudioConfig) -> Result<Self, SdkError> {
        session
            .send_audio_config(config)
            .map_err(|e| SdkError::from_session(&session, e))?;
        Ok(AudioOut {
            session,
            config,
            seq: 0,
            bytes: Vec::new(),
        })
    }

    /// The announced format.
    pub fn config(&self) -> AudioConfig {
        self.config
    }

    /// Frames (samples per channel) in a block of `ms` milliseconds at this rate.
    pub fn frames_per(&self, ms: u32) -> usize {
        (u64::from(self.config.sample_rate) * u64::from(ms) / 1000) as usize
    }

    /// Sends one block: interleaved samples in [-1, 1] (converted to the announced format;
    /// out-of-range values are clipped) whose first sample is heard at `pts_ns`
    /// (CLOCK_MONOTONIC). Its length must be whole frames of 5 to 40 ms.
    pub fn send(&mut self, samples: &[f32], pts_ns: u64) -> Result<(), SdkError> {
        let ch = usize::from(self.config.channels);
        let frames = samples.len() / ch.max(1);
        let (min, max) = (self.frames_per(BLOCK_MS_MIN), self.frames_per(BLOCK_MS_MAX));
        if samples.len() % ch.max(1) != 0 || frames < min || frames > max {
            return Err(SdkError::Invalid(format!(
                "an audio block of {} samples is not whole frames of {ch} channels between \
                 {min} and {max} frames ({BLOCK_MS_MIN}-{BLOCK_MS_MAX} ms)",
                samples.len()
            )));
        }
        self.bytes.clear();
        match self.config.format {
            SampleFormat::F32 => {
                for s in samples {
                    self.bytes
                        .extend_from_slice(&s.clamp(-1.0, 1.0).to_le_bytes());
                }
            }
            SampleFormat::S16 => {
                for s in samples {
                    let v = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
                    self.bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let block = AudioBlock {
            seq: self.seq,
            pts_ns,
            sent_ns: 0,
            config: self.config,
            data: std::mem::take(&mut self.bytes),
        };
        self.seq += 1;
        self.session
            .send_audio(block)
            .map_err(|e| SdkError::from_session(&self.session, e))
    }

    /// The presentation time of sample frame `index` of a stream that starts at `t0_ns`:
    /// exact, so consecutive blocks neither overlap nor leave gaps.
    pub fn pts_of(&self, t0_ns: u64, index: u64) -> u64 {
        t0_ns + index * 1_000_000_000 / u64::from(self.config.sample_rate)
    }
}

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

/// Checks a block's length (whole frames, 5 to 40 ms) and writes it into `bytes` in the
/// config's format.
fn encode(config: &AudioConfig, samples: &[f32], bytes: &mut Vec<u8>) -> Result<(), SdkError> {
    let ch = usize::from(config.channels).max(1);
    let frames = samples.len() / ch;
    let per_ms = |ms: u32| (u64::from(config.sample_rate) * u64::from(ms) / 1000) as usize;
    let (min, max) = (per_ms(BLOCK_MS_MIN), per_ms(BLOCK_MS_MAX));
    if samples.len() % ch != 0 || frames < min || frames > max {
        return Err(SdkError::Invalid(format!(
            "an audio block of {} samples is not whole frames of {ch} channels between {min} \
             and {max} frames ({BLOCK_MS_MIN}-{BLOCK_MS_MAX} ms)",
            samples.len()
        )));
    }
    bytes.clear();
    match config.format {
        SampleFormat::F32 => {
            for s in samples {
                bytes.extend_from_slice(&s.clamp(-1.0, 1.0).to_le_bytes());
            }
        }
        SampleFormat::S16 => {
            for s in samples {
                let v = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(())
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
        encode(&self.config, samples, &mut self.bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: AudioConfig = AudioConfig {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };

    #[test]
    fn blocks_are_whole_frames_of_5_to_40_ms() {
        let mut bytes = Vec::new();
        assert!(encode(&CFG, &[0.0; 480 * 2], &mut bytes).is_ok());
        assert_eq!(bytes.len(), 480 * 2 * 2);
        // 4 ms, 41 ms and half a frame are refused, with the rule in the message.
        for n in [192 * 2, 1968 * 2, 480 * 2 + 1] {
            let e = encode(&CFG, &vec![0.0; n], &mut bytes).unwrap_err();
            assert!(e.to_string().contains("5-40 ms"), "{e}");
        }
    }

    #[test]
    fn samples_are_clipped_and_converted_to_the_announced_format() {
        let mut bytes = Vec::new();
        let mut block = vec![0.0f32; 480 * 2];
        block[0] = 2.0;
        block[1] = -0.5;
        encode(&CFG, &block, &mut bytes).unwrap();
        assert_eq!(i16::from_le_bytes([bytes[0], bytes[1]]), 32767);
        assert_eq!(i16::from_le_bytes([bytes[2], bytes[3]]), -16383);
        let f32_cfg = AudioConfig {
            format: SampleFormat::F32,
            ..CFG
        };
        encode(&f32_cfg, &block, &mut bytes).unwrap();
        assert_eq!(
            f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            1.0
        );
    }
}

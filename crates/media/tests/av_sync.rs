//! A/V sync measured by decoding: a white flash and a 1 kHz beep start together every second;
//! ffmpeg decodes the recordings and every flash/beep onset pair must be within ±20 ms.

mod common;

use common::{beep_onsets, flash_onsets, SyncPattern};
use crosscast_media::{EncoderConfig, LiveEncoder, OutputSpec};
use std::path::Path;

const TOLERANCE_S: f64 = 0.020;

fn check_pairs(name: &str, how: &str, flashes: &[f64], beeps: &[f64], seconds: u64) -> f64 {
    assert_eq!(
        flashes.len() as u64,
        seconds,
        "{name} ({how}): flash onsets {flashes:?}"
    );
    assert_eq!(
        beeps.len() as u64,
        seconds,
        "{name} ({how}): beep onsets {beeps:?}"
    );
    let mut worst = 0.0f64;
    for (i, (f, b)) in flashes.iter().zip(beeps).enumerate() {
        let offset = b - f;
        assert!(
            offset.abs() <= TOLERANCE_S,
            "{name} ({how}): pulse {i}: flash at {f:.4} s, beep at {b:.4} s, offset {:.1} ms \
             (flashes {flashes:?}, beeps {beeps:?})",
            offset * 1000.0
        );
        // Pulses are one second apart: a pair a whole second off would also be caught here.
        assert!(
            (f - i as f64).abs() < 0.1,
            "{name} ({how}): flash {i} at {f:.4} s"
        );
        if offset.abs() > worst.abs() {
            worst = offset;
        }
    }
    worst
}

/// Checks every pair by timestamps (what players use) and by index (what a naive decoder
/// assumes); both must hold since FLV has no edit list to correct a naive reader.
fn check_sync(path: &Path, fps: u32, seconds: u64) {
    let flashes = flash_onsets(path, fps);
    let beeps = beep_onsets(path);
    let name = path.display().to_string();
    let by_pts = check_pairs(&name, "timestamps", &flashes.by_pts, &beeps.by_pts, seconds);
    let by_index = check_pairs(&name, "index", &flashes.by_index, &beeps.by_index, seconds);
    let all: Vec<String> = flashes
        .by_pts
        .iter()
        .zip(&beeps.by_pts)
        .map(|(f, b)| format!("{:+.1}", (b - f) * 1000.0))
        .collect();
    eprintln!(
        "{name}: worst A/V offset {:+.1} ms by timestamps, {:+.1} ms by index; per pulse (ms): {}",
        by_pts * 1000.0,
        by_index * 1000.0,
        all.join(" ")
    );
}

/// Pushes the pattern as the host would: one frame per tick, audio in fixed-size blocks not
/// aligned to AAC frames. With `jitter`, each block's stated position is off by up to
/// ±`jitter` samples (a game clock that wobbles), so the encoder has to fill and trim.
fn encode(outputs: &[OutputSpec], fps: u32, seconds: u64, audio_block: usize, jitter: u64) {
    let (w, h) = (320u32, 180u32);
    let pattern = SyncPattern::new(w, h, fps);
    let mut cfg = EncoderConfig::new(w, h, fps);
    cfg.preset = "ultrafast".into();
    cfg.block_when_full = true;
    let mut enc = LiveEncoder::start(cfg, outputs).expect("start");
    let total_frames = u64::from(fps) * seconds;
    let total_samples = 48_000 * seconds;
    let mut next_sample = 0u64;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..total_frames {
        enc.push_video(&pattern.frame(i), w as usize * 4, i)
            .expect("push video");
        // Audio up to the end of this frame, in fixed-size blocks.
        let until = ((i + 1) * 48_000 / u64::from(fps)).min(total_samples);
        while next_sample + audio_block as u64 <= until {
            let mut at = next_sample;
            if jitter > 0 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                at = (next_sample + rng % (2 * jitter + 1)).saturating_sub(jitter);
            }
            // The samples are the pattern at their true position; only the label wobbles.
            enc.push_audio(&pattern.audio(next_sample, audio_block), at)
                .expect("push audio");
            next_sample += audio_block as u64;
        }
    }
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.video_frames_encoded, total_frames);
    if jitter == 0 {
        assert_eq!(stats.audio_gap_samples, 0);
        assert_eq!(stats.audio_overlap_samples, 0);
    } else {
        assert!(stats.audio_gap_samples > 0 && stats.audio_overlap_samples > 0);
    }
}

#[test]
fn flash_and_beep_line_up_in_flv_and_mp4_at_60fps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = dir.path().join("sync.flv");
    let mp4 = dir.path().join("sync.mp4");
    let seconds = 5;
    encode(
        &[OutputSpec::File(flv.clone()), OutputSpec::File(mp4.clone())],
        60,
        seconds,
        480,
        0,
    );
    check_sync(&flv, 60, seconds);
    check_sync(&mp4, 60, seconds);
}

#[test]
fn sync_holds_at_30fps_with_odd_audio_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = dir.path().join("sync30.flv");
    let seconds = 4;
    encode(&[OutputSpec::File(flv.clone())], 30, seconds, 733, 0);
    check_sync(&flv, 30, seconds);
}

#[test]
fn sync_holds_with_a_jittery_audio_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = dir.path().join("jitter.flv");
    let seconds = 4;
    // ±2 ms of wobble on every 10 ms block.
    encode(&[OutputSpec::File(flv.clone())], 60, seconds, 480, 96);
    check_sync(&flv, 60, seconds);
}

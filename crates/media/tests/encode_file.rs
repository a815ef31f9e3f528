//! Encode synthetic A/V to FLV and fragmented MP4 and check the result with ffprobe.

mod common;

use common::{gradient_frame, probe, SyncPattern};
use crosscast_media::{EncoderConfig, LiveEncoder, OutputKind, OutputSpec, OutputState};

#[test]
fn flv_and_mp4_have_the_configured_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = dir.path().join("out.flv");
    let mp4 = dir.path().join("out.mp4");
    let (w, h, fps, seconds) = (640u32, 360u32, 30u32, 3u64);
    let mut cfg = EncoderConfig::new(w, h, fps);
    cfg.preset = "ultrafast".into();
    cfg.block_when_full = true;
    let mut enc = LiveEncoder::start(
        cfg,
        &[OutputSpec::File(flv.clone()), OutputSpec::File(mp4.clone())],
    )
    .expect("start");
    let tone = SyncPattern::new(w, h, fps);
    let frames = u64::from(fps) * seconds;
    for i in 0..frames {
        enc.push_video(&gradient_frame(w, h, i), w as usize * 4, i)
            .expect("push video");
        let (first, n) = tone.audio_range_for_frame(i);
        enc.push_audio(&tone.audio(first, n), first)
            .expect("push audio");
    }
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.video_frames_encoded, frames);
    assert_eq!(stats.video_frames_dropped, 0);
    // 3 s of 48 kHz in 1024-sample frames, the last one padded.
    assert_eq!(
        stats.audio_frames_encoded,
        (48_000 * seconds).div_ceil(1024)
    );
    assert_eq!(stats.outputs.len(), 2);
    assert_eq!(stats.outputs[0].kind, OutputKind::FlvFile);
    assert_eq!(stats.outputs[1].kind, OutputKind::Mp4File);
    for o in &stats.outputs {
        assert_eq!(o.state, OutputState::Finished, "{}", o.name);
        assert!(o.bytes > 10_000, "{} wrote only {} bytes", o.name, o.bytes);
    }

    for path in [&flv, &mp4] {
        let p = probe(path);
        let name = path.display();
        assert_eq!(p.video_codec, "h264", "{name}");
        assert_eq!((p.width, p.height), (u64::from(w), u64::from(h)), "{name}");
        let expect = frames as f64;
        assert!(
            (p.video_frames as f64 - expect).abs() <= expect * 0.02,
            "{name}: {} video frames, expected {expect}",
            p.video_frames
        );
        assert_eq!(p.audio_codec, "aac", "{name}");
        assert_eq!(p.sample_rate, 48_000, "{name}");
        assert_eq!(p.channels, 2, "{name}");
        assert!(
            (p.duration - seconds as f64).abs() < 0.15,
            "{name}: duration {}",
            p.duration
        );
    }
}

#[test]
fn live_mode_never_blocks_and_accounts_for_every_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = dir.path().join("burst.flv");
    let (w, h) = (640u32, 360u32);
    let mut cfg = EncoderConfig::new(w, h, 60);
    cfg.preset = "veryfast".into();
    cfg.video_queue_frames = 2;
    // Live default: a full queue drops instead of waiting.
    assert!(!cfg.block_when_full);
    let mut enc = LiveEncoder::start(cfg, &[OutputSpec::File(flv.clone())]).expect("start");
    // Pushed as fast as the caller can convert: faster than real time.
    let frames = 120u64;
    let images: Vec<Vec<u8>> = (0..4).map(|i| gradient_frame(w, h, i * 40)).collect();
    for i in 0..frames {
        enc.push_video(&images[(i % 4) as usize], w as usize * 4, i)
            .expect("push never fails for a full queue");
    }
    let stats = enc.finish().expect("finish");
    assert_eq!(
        stats.video_frames_encoded + stats.video_frames_dropped,
        frames,
        "{stats:?}"
    );
    assert_eq!(probe(&flv).video_frames, stats.video_frames_encoded);
}

#[test]
fn mono_audio_and_drop_without_finish_still_close_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("mono.mp4");
    let (w, h) = (320u32, 180u32);
    let mut cfg = EncoderConfig::new(w, h, 30);
    cfg.preset = "ultrafast".into();
    cfg.channels = 1;
    cfg.audio_bitrate_kbps = 96;
    cfg.block_when_full = true;
    let mut enc = LiveEncoder::start(cfg, &[OutputSpec::File(mp4.clone())]).expect("start");
    for i in 0..45u64 {
        enc.push_video(&gradient_frame(w, h, i), w as usize * 4, i)
            .expect("push video");
        enc.push_audio(&vec![0.1f32; 1600], i * 1600)
            .expect("push audio");
    }
    // An error path in the host drops the encoder instead of finishing it.
    drop(enc);
    let p = probe(&mp4);
    assert_eq!(p.video_frames, 45);
    assert_eq!((p.audio_codec.as_str(), p.channels), ("aac", 1));
    assert!((p.duration - 1.5).abs() < 0.1, "duration {}", p.duration);
}

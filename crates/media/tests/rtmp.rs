//! Publishing to a real nginx-rtmp on 127.0.0.1 (started by the test, `record all`).

mod common;

use common::{gradient_frame, probe, wait_until, Nginx, SyncPattern};
use crosscast_media::{
    EncoderConfig, EncoderStats, LiveEncoder, OutputKind, OutputSpec, OutputState,
};
use std::time::{Duration, Instant};

const W: u32 = 320;
const H: u32 = 180;
const FPS: u32 = 30;

fn config() -> EncoderConfig {
    let mut cfg = EncoderConfig::new(W, H, FPS);
    cfg.preset = "ultrafast".into();
    cfg.video_bitrate_kbps = 800;
    // One-second GOP so a reconnect resumes quickly.
    cfg.keyint_frames = FPS;
    // The local file must get every frame: the encoder waits rather than drops.
    cfg.block_when_full = true;
    cfg
}

fn rtmp_states(s: &EncoderStats) -> Vec<OutputState> {
    s.outputs
        .iter()
        .filter(|o| o.kind == OutputKind::Rtmp)
        .map(|o| o.state.clone())
        .collect()
}

fn all_live(enc: &LiveEncoder) -> bool {
    rtmp_states(&enc.stats())
        .iter()
        .all(|s| *s == OutputState::Live)
}

/// Pushes frames `range` paced at the real frame rate (as the host's output clock would).
struct Pacer {
    start: Instant,
    tone: SyncPattern,
}

impl Pacer {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            tone: SyncPattern::new(W, H, FPS),
        }
    }

    fn push(&self, enc: &mut LiveEncoder, i: u64, first_frame: u64) {
        let due = self.start + Duration::from_secs_f64((i - first_frame) as f64 / f64::from(FPS));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        enc.push_video(&gradient_frame(W, H, i), W as usize * 4, i)
            .expect("push video");
        let (first, n) = self.tone.audio_range_for_frame(i);
        enc.push_audio(&self.tone.audio(first, n), first)
            .expect("push audio");
    }
}

#[test]
fn two_ingests_and_a_local_file_from_one_encode() {
    let mut nginx = Nginx::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local.flv");
    let mut enc = LiveEncoder::start(
        config(),
        &[
            OutputSpec::File(local.clone()),
            OutputSpec::Push(nginx.url("alpha")),
            OutputSpec::Push(nginx.url("beta")),
        ],
    )
    .expect("start");
    assert!(
        wait_until(Duration::from_secs(30), || all_live(&enc)),
        "RTMP outputs never went live: {:?}\n{}",
        enc.stats().outputs,
        nginx.error_log()
    );
    let frames = u64::from(FPS) * 3;
    let pacer = Pacer::new();
    for i in 0..frames {
        pacer.push(&mut enc, i, 0);
    }
    let stats = enc.finish().expect("finish");
    for o in &stats.outputs {
        assert_eq!(o.state, OutputState::Finished, "{}", o.name);
        assert!(o.bytes > 0, "{} sent nothing", o.name);
        assert!(
            !o.name.contains("alpha") && !o.name.contains("beta"),
            "key leaked: {}",
            o.name
        );
    }
    // Let nginx close the recordings.
    nginx.stop();

    let p = probe(&local);
    assert_eq!(p.video_frames, frames, "local recording");
    for key in ["alpha", "beta"] {
        let recs = nginx.recordings(key);
        assert_eq!(recs.len(), 1, "{key}: {recs:?}");
        let p = probe(&recs[0]);
        eprintln!("{key}: server recorded {p:?}");
        assert_eq!(p.video_codec, "h264", "{key}");
        assert_eq!((p.width, p.height), (u64::from(W), u64::from(H)), "{key}");
        assert_eq!(p.audio_codec, "aac", "{key}");
        assert_eq!((p.sample_rate, p.channels), (48_000, 2), "{key}");
        // The session starts at the first keyframe, which is frame 0 here.
        let expect = frames as f64;
        assert!(
            (p.video_frames as f64 - expect).abs() <= expect * 0.02,
            "{key}: server recorded {} frames, pushed {expect}",
            p.video_frames
        );
    }
}

#[test]
fn reconnects_after_server_restart_and_local_file_has_no_gap() {
    let mut nginx = Nginx::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local.flv");
    let mut enc = LiveEncoder::start(
        config(),
        &[
            OutputSpec::File(local.clone()),
            OutputSpec::Push(nginx.url("gamma")),
        ],
    )
    .expect("start");
    assert!(
        wait_until(Duration::from_secs(30), || all_live(&enc)),
        "never went live: {:?}",
        enc.stats().outputs
    );

    let pacer = Pacer::new();
    let mut i = 0u64;
    // ~1.5 s live.
    while i < u64::from(FPS) * 3 / 2 {
        pacer.push(&mut enc, i, 0);
        i += 1;
    }
    nginx.stop();
    // Keep streaming until the output notices the loss.
    let mut saw_reconnecting = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        pacer.push(&mut enc, i, 0);
        i += 1;
        if matches!(
            rtmp_states(&enc.stats())[0],
            OutputState::Reconnecting { .. }
        ) {
            saw_reconnecting = true;
            break;
        }
    }
    assert!(
        saw_reconnecting,
        "state never left Live: {:?}",
        enc.stats().outputs
    );
    // Down for a while (so at least one retry fails), then back on the same port.
    for _ in 0..FPS {
        pacer.push(&mut enc, i, 0);
        i += 1;
    }
    nginx.restart();
    let mut live_again = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        pacer.push(&mut enc, i, 0);
        i += 1;
        if rtmp_states(&enc.stats())[0] == OutputState::Live {
            live_again = true;
            break;
        }
    }
    assert!(live_again, "never reconnected: {:?}", enc.stats().outputs);
    // Two more seconds, so the new session gets keyframes and frames through.
    for _ in 0..2 * FPS {
        pacer.push(&mut enc, i, 0);
        i += 1;
    }
    let stats = enc.finish().expect("finish");
    let rtmp = &stats.outputs[1];
    eprintln!("after restart: {rtmp:?}, {i} frames pushed");
    assert!(rtmp.reconnects >= 1, "{rtmp:?}");
    assert_eq!(rtmp.state, OutputState::Finished);
    nginx.stop();

    // The local recording saw every frame, no gap, whatever the network did.
    assert_eq!(stats.video_frames_encoded, i);
    let p = probe(&local);
    assert_eq!(p.video_frames, i, "local recording");
    let expected_duration = i as f64 / f64::from(FPS);
    assert!(
        (p.duration - expected_duration).abs() < 0.2,
        "local duration {} for {i} frames",
        p.duration
    );

    // The server got a second session after the restart, decodable on its own.
    let recs = nginx.recordings("gamma");
    assert!(
        recs.len() >= 2,
        "recordings: {recs:?}\n{}",
        nginx.error_log()
    );
    let last = probe(recs.last().expect("a recording"));
    eprintln!("server sessions: {recs:?}, last: {last:?}");
    assert_eq!(last.video_codec, "h264");
    assert_eq!(last.audio_codec, "aac");
    assert!(
        last.video_frames >= u64::from(FPS),
        "second session has only {} frames",
        last.video_frames
    );
}

#[test]
fn pushing_before_the_connection_is_up_loses_at_most_one_gop() {
    let mut nginx = Nginx::start();
    // Frames flow from the first moment, as from the host's output clock.
    let mut enc =
        LiveEncoder::start(config(), &[OutputSpec::Push(nginx.url("early"))]).expect("start");
    let frames = u64::from(FPS) * 3;
    let pacer = Pacer::new();
    for i in 0..frames {
        pacer.push(&mut enc, i, 0);
    }
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.outputs[0].state, OutputState::Finished);
    nginx.stop();
    let recs = nginx.recordings("early");
    assert_eq!(recs.len(), 1, "{recs:?}");
    let p = probe(&recs[0]);
    eprintln!("early start: server recorded {p:?}");
    // The session starts at the newest keyframe queued while connecting (keyint = 1 s).
    assert!(
        p.video_frames >= frames - u64::from(FPS),
        "server recorded {} of {frames} frames",
        p.video_frames
    );
}

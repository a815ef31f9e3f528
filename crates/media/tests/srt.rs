//! SRT output (MPEG-TS, caller mode) against a real `ffmpeg` SRT listener on 127.0.0.1 started
//! by the test: stream id and passphrase reach it, a wrong passphrase is refused with a clear
//! error while the recording completes, and one encode feeds SRT, RTMP and a file at once.

mod common;

use common::{gradient_frame, probe, wait_until, Nginx, SrtListener, SyncPattern};
use crosscast_media::{EncoderConfig, LiveEncoder, OutputKind, OutputSpec, OutputState};
use std::time::{Duration, Instant};

const W: u32 = 320;
const H: u32 = 180;
const FPS: u32 = 30;
const PASS: &str = "correct-horse-battery";

fn config() -> EncoderConfig {
    let mut cfg = EncoderConfig::new(W, H, FPS);
    cfg.preset = "ultrafast".into();
    cfg.video_bitrate_kbps = 800;
    cfg.keyint_frames = FPS;
    cfg.block_when_full = true;
    cfg
}

/// Pushes frames `0..frames` paced at the frame rate, as the host's output clock would.
fn stream(enc: &mut LiveEncoder, first: u64, frames: u64) {
    let tone = SyncPattern::new(W, H, FPS);
    let start = Instant::now();
    for i in first..first + frames {
        let due = start + Duration::from_secs_f64((i - first) as f64 / f64::from(FPS));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        enc.push_video(&gradient_frame(W, H, i), W as usize * 4, i)
            .expect("push video");
        let (a, n) = tone.audio_range_for_frame(i);
        enc.push_audio(&tone.audio(a, n), a).expect("push audio");
    }
}

fn state_of(enc: &LiveEncoder, kind: OutputKind) -> OutputState {
    enc.stats()
        .outputs
        .iter()
        .find(|o| o.kind == kind)
        .map(|o| o.state.clone())
        .expect("output")
}

#[test]
fn srt_rtmp_and_a_file_from_one_encode_with_streamid_and_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut listener = SrtListener::start(dir.path(), "srt-in", Some(PASS));
    let mut nginx = Nginx::start();
    let local = dir.path().join("local.mp4");
    let srt = listener.url(&format!(
        "streamid=%23!::r=live/secret-id,m=publish&passphrase={PASS}&pbkeylen=16&latency=120000"
    ));
    let mut enc = LiveEncoder::start(
        config(),
        &[
            OutputSpec::File(local.clone()),
            OutputSpec::Push(srt),
            OutputSpec::Push(nginx.url("both")),
        ],
    )
    .expect("start");
    let names: Vec<String> = enc.stats().outputs.iter().map(|o| o.name.clone()).collect();
    assert!(
        names[1].starts_with(&format!(
            "srt://127.0.0.1:{}?streamid=***&passphrase=***",
            listener.port
        )),
        "{names:?}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || enc
            .stats()
            .outputs
            .iter()
            .skip(1)
            .all(|o| o.state == OutputState::Live)),
        "outputs never went live: {:?}\nlistener: {}",
        enc.stats().outputs,
        listener.log()
    );
    let frames = u64::from(FPS) * 4;
    stream(&mut enc, 0, frames);
    let stats = enc.finish().expect("finish");
    for o in &stats.outputs {
        assert_eq!(o.state, OutputState::Finished, "{o:?}");
        assert!(o.bytes > 0, "{o:?}");
        assert!(
            !o.name.contains("secret") && !o.name.contains(PASS),
            "{o:?}"
        );
    }
    assert_eq!(stats.outputs[1].kind, OutputKind::Srt);
    nginx.stop();
    // The listener's input ends when we hang up; it then finishes its file.
    let log = listener.finish(Duration::from_secs(20));
    assert!(
        log.contains("#!::r=live/secret-id,m=publish"),
        "the listener never saw the stream id:\n{log}"
    );
    let p = probe(&listener.out);
    eprintln!("SRT listener recorded {p:?}");
    assert_eq!(
        (p.video_codec.as_str(), p.width, p.height),
        ("h264", u64::from(W), u64::from(H)),
        "{log}"
    );
    assert_eq!(
        (p.audio_codec.as_str(), p.sample_rate, p.channels),
        ("aac", 48_000, 2)
    );
    assert!(
        p.video_frames as f64 >= frames as f64 * 0.97,
        "the listener decoded {} of {frames} frames",
        p.video_frames
    );
    let rtmp = nginx.recordings("both");
    assert_eq!(rtmp.len(), 1, "{rtmp:?}");
    assert!(probe(&rtmp[0]).video_frames as f64 >= frames as f64 * 0.97);
    assert_eq!(probe(&local).video_frames, frames, "local recording");
}

#[test]
fn a_wrong_passphrase_is_refused_clearly_and_the_recording_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = SrtListener::start(dir.path(), "srt-locked", Some(PASS));
    let local = dir.path().join("local.flv");
    let wrong = "not-the-passphrase-at-all";
    let mut enc = LiveEncoder::start(
        config(),
        &[
            OutputSpec::File(local.clone()),
            OutputSpec::Push(listener.url(&format!("passphrase={wrong}"))),
        ],
    )
    .expect("start");
    let frames = u64::from(FPS) * 4;
    stream(&mut enc, 0, frames);
    let state = state_of(&enc, OutputKind::Srt);
    let stats = enc.finish().expect("finish: the recording must not suffer");
    eprintln!("wrong passphrase: {state:?}");
    match &state {
        OutputState::Reconnecting { last_error, .. } => {
            assert!(
                last_error.starts_with("connect failed: ") && last_error.contains("(srt)"),
                "FFmpeg's own reason must be named: {last_error}"
            );
            assert!(
                last_error.contains("reject") || last_error.contains("passphrase"),
                "{last_error}"
            );
            assert!(!last_error.contains(wrong), "{last_error}");
        }
        other => panic!("a wrong passphrase must be refused, got {other:?}"),
    }
    assert_eq!(stats.outputs[1].bytes, 0);
    assert_eq!(probe(&local).video_frames, frames, "local recording");
    drop(listener);
}

#[test]
fn a_listener_that_vanishes_is_retried_and_the_recording_has_no_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut listener = SrtListener::start(dir.path(), "srt-gone", None);
    let port = listener.port;
    let local = dir.path().join("local.flv");
    let mut cfg = config();
    cfg.rtmp_timeout = Duration::from_secs(2);
    let mut enc = LiveEncoder::start(
        cfg,
        &[
            OutputSpec::File(local.clone()),
            OutputSpec::Push(listener.url("latency=100000")),
        ],
    )
    .expect("start");
    assert!(
        wait_until(Duration::from_secs(30), || state_of(&enc, OutputKind::Srt)
            == OutputState::Live),
        "never went live: {:?}\n{}",
        enc.stats().outputs,
        listener.log()
    );
    stream(&mut enc, 0, u64::from(FPS));
    assert!(listener.running());
    drop(listener); // SIGKILL by pid: the far end vanishes without a word
    let mut i = u64::from(FPS);
    let mut noticed = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        stream(&mut enc, i, 5);
        i += 5;
        if matches!(
            state_of(&enc, OutputKind::Srt),
            OutputState::Reconnecting { .. }
        ) {
            noticed = true;
            break;
        }
    }
    assert!(
        noticed,
        "the loss was never noticed: {:?}",
        enc.stats().outputs
    );
    stream(&mut enc, i, u64::from(FPS));
    i += u64::from(FPS);
    // The listener comes back on the same port: a new session, decodable from its start
    // (PAT/PMT first, then a keyframe with SPS/PPS; timestamps rebased).
    let mut back = SrtListener::start_on(port, dir.path(), "srt-back", None);
    let mut live_again = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        stream(&mut enc, i, 5);
        i += 5;
        if state_of(&enc, OutputKind::Srt) == OutputState::Live {
            live_again = true;
            break;
        }
    }
    assert!(
        live_again,
        "never reconnected: {:?}\n{}",
        enc.stats().outputs,
        back.log()
    );
    stream(&mut enc, i, 2 * u64::from(FPS));
    i += 2 * u64::from(FPS);
    let stats = enc.finish().expect("finish");
    eprintln!(
        "after the listener vanished and came back: {:?}",
        stats.outputs[1]
    );
    assert!(stats.outputs[1].reconnects >= 1);
    assert_eq!(stats.video_frames_encoded, i);
    assert_eq!(probe(&local).video_frames, i, "local recording");
    let log = back.finish(Duration::from_secs(20));
    let p = probe(&back.out);
    eprintln!("second session: {p:?}");
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac"),
        "{log}"
    );
    // Two seconds after going live again, less at most the GOP before the first keyframe.
    assert!(p.video_frames >= u64::from(FPS), "{p:?}\n{log}");
}

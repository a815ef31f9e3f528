//! A SIGKILLed encoder process must still leave playable recordings (FLV, fragmented MP4).
//!
//! The test re-runs its own binary as the recording child (selected by an environment
//! variable), kills it with SIGKILL by pid once it has recorded a few seconds, and probes what
//! is on disk.

mod common;

use common::{gradient_frame, probe, wait_until, SyncPattern};
use crosscast_media::{EncoderConfig, LiveEncoder, OutputSpec};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "CROSSCAST_MEDIA_CRASH_CHILD_DIR";
const FPS: u32 = 30;
/// Frames recorded before the parent may kill the child: 4 s, i.e. 4 one-second GOPs.
const FRAMES_BEFORE_KILL: u64 = 120;

/// The child: records until killed (or gives up after a minute so it can never linger).
fn child(dir: &Path) {
    let (w, h) = (320, 180);
    let mut cfg = EncoderConfig::new(w, h, FPS);
    cfg.preset = "ultrafast".into();
    cfg.keyint_frames = FPS;
    cfg.block_when_full = true;
    let mut enc = LiveEncoder::start(
        cfg,
        &[
            OutputSpec::File(dir.join("rec.flv")),
            OutputSpec::File(dir.join("rec.mp4")),
        ],
    )
    .expect("start");
    let tone = SyncPattern::new(w, h, FPS);
    let start = Instant::now();
    for i in 0.. {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(FPS));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        enc.push_video(&gradient_frame(w, h, i), w as usize * 4, i)
            .expect("push");
        let (first, n) = tone.audio_range_for_frame(i);
        enc.push_audio(&tone.audio(first, n), first).expect("audio");
        if i == FRAMES_BEFORE_KILL {
            std::fs::write(dir.join("ready"), b"").expect("marker");
        }
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    std::process::exit(3);
}

#[test]
fn sigkilled_process_leaves_playable_files() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "sigkilled_process_leaves_playable_files",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let ready = wait_until(Duration::from_secs(60), || {
        dir.path().join("ready").exists()
    });
    // SIGKILL by pid: no destructor, no trailer, exactly what a crash or OOM kill does.
    let _ = c.kill();
    let _ = c.wait();
    assert!(ready, "child never recorded {FRAMES_BEFORE_KILL} frames");

    for name in ["rec.flv", "rec.mp4"] {
        let p = probe(&dir.path().join(name));
        eprintln!("{name} after SIGKILL: {p:?}");
        assert_eq!(p.video_codec, "h264", "{name}: {p:?}");
        assert_eq!(p.audio_codec, "aac", "{name}: {p:?}");
        // FLV is flushed per packet; fragmented MP4 loses at most the fragment in progress
        // (at most one second), so at least two of the four seconds must be there even when
        // the encoder lags behind on a loaded machine.
        assert!(
            p.video_frames >= 2 * u64::from(FPS),
            "{name}: only {} frames survived: {p:?}",
            p.video_frames
        );
    }
}

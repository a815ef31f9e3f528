//! Bad input gives a clear `MediaError` (never a panic), and an unreachable ingest is retried
//! in the background while local recording goes on.

mod common;

use common::{free_port, gradient_frame, probe, wait_until};
use crosscast_media::{EncoderConfig, LiveEncoder, MediaError, OutputSpec, OutputState};
use std::path::PathBuf;
use std::time::Duration;

fn cfg() -> EncoderConfig {
    let mut c = EncoderConfig::new(160, 90, 30);
    c.preset = "ultrafast".into();
    c
}

fn start_err(outputs: &[OutputSpec]) -> MediaError {
    match LiveEncoder::start(cfg(), outputs) {
        Ok(_) => panic!("start accepted {outputs:?}"),
        Err(e) => e,
    }
}

#[test]
fn unwritable_paths_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/dir/out.flv");
    let e = start_err(&[OutputSpec::File(missing.clone())]);
    assert!(
        matches!(&e, MediaError::OpenOutput { output, .. } if output.contains("out.flv")),
        "{e}"
    );
    assert!(e.to_string().contains("No such file"), "{e}");
    eprintln!("missing dir: {e}");

    // A directory where the file should be.
    let is_dir = dir.path().join("taken.mp4");
    std::fs::create_dir(&is_dir).expect("mkdir");
    let e = start_err(&[OutputSpec::File(is_dir)]);
    assert!(matches!(e, MediaError::OpenOutput { .. }), "{e}");

    // A read-only filesystem (root ignores permission bits, not this).
    let e = start_err(&[OutputSpec::File(PathBuf::from("/proc/crosscast-test.flv"))]);
    assert!(matches!(e, MediaError::OpenOutput { .. }), "{e}");
    eprintln!("read-only: {e}");

    // One bad file fails the start even when other outputs are fine, and leaves nothing running.
    let good = dir.path().join("good.flv");
    let e = start_err(&[OutputSpec::File(good), OutputSpec::File(missing)]);
    assert!(matches!(e, MediaError::OpenOutput { .. }), "{e}");
}

#[test]
fn full_disk_is_a_clear_error_and_other_outputs_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every write to /dev/full fails with ENOSPC, like a full disk.
    let full = dir.path().join("full.flv");
    std::os::unix::fs::symlink("/dev/full", &full).expect("symlink");
    let good = dir.path().join("good.mp4");
    let mut c = cfg();
    c.block_when_full = true;
    match LiveEncoder::start(c, &[OutputSpec::File(full), OutputSpec::File(good.clone())]) {
        // The header write already failed.
        Err(e) => {
            assert!(matches!(e, MediaError::OpenOutput { .. }), "{e}");
            assert!(e.to_string().contains("No space left"), "{e}");
        }
        // The header was buffered: the failure shows up while streaming.
        Ok(mut enc) => {
            for i in 0..60 {
                enc.push_video(&gradient_frame(160, 90, i), 640, i)
                    .expect("push");
                enc.push_audio(&[0.0; 3200], i * 1600).expect("audio");
            }
            let e = enc.finish().unwrap_err();
            eprintln!("{e}");
            assert!(matches!(e, MediaError::OutputFailed { .. }), "{e}");
            assert_eq!(probe(&good).video_frames, 60);
        }
    }
}

#[test]
fn bad_names_and_urls_are_rejected_before_anything_starts() {
    let e = start_err(&[OutputSpec::File(PathBuf::from("out.mkv"))]);
    assert!(matches!(e, MediaError::UnsupportedExtension { .. }), "{e}");
    let e = start_err(&[OutputSpec::File(PathBuf::from("noext"))]);
    assert!(matches!(e, MediaError::UnsupportedExtension { .. }), "{e}");
    for url in [
        "http://127.0.0.1/live/key",
        "rtmp://127.0.0.1",
        "rtmp://127.0.0.1/live",
        "rtmp://127.0.0.1:notaport/live/key",
        "rtmp:///live/key",
        "",
        "udp://127.0.0.1:9000",
        "srt://127.0.0.1",
        "srt://127.0.0.1:9000?pbkeylen=16",
        "srt://127.0.0.1:9000?mode=listener",
        "srt://127.0.0.1:9000?passphrase=short",
    ] {
        let e = start_err(&[OutputSpec::Push(url.into())]);
        assert!(matches!(e, MediaError::InvalidPushUrl { .. }), "{url}: {e}");
        eprintln!("{e}");
    }
    let e = start_err(&[]);
    assert!(matches!(e, MediaError::InvalidConfig(_)), "{e}");
    let mut odd = cfg();
    odd.width = 161;
    let e = LiveEncoder::start(odd, &[OutputSpec::Push("rtmp://h/a/k".into())]).err();
    assert!(matches!(e, Some(MediaError::InvalidConfig(_))), "{e:?}");
    let mut bad = cfg();
    bad.preset = "ludicrous".into();
    let e = LiveEncoder::start(bad, &[OutputSpec::Push("rtmp://h/a/k".into())]).err();
    assert!(matches!(e, Some(MediaError::InvalidConfig(_))), "{e:?}");
}

#[test]
fn bad_frames_and_audio_are_refused_and_the_encode_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.flv");
    let mut enc = LiveEncoder::start(cfg(), &[OutputSpec::File(out.clone())]).expect("start");
    let good = gradient_frame(160, 90, 0);
    enc.push_video(&good, 640, 0).expect("first frame");
    let e = enc.push_video(&good[..100], 640, 1).unwrap_err();
    assert!(matches!(e, MediaError::InvalidFrame(_)), "{e}");
    let e = enc.push_video(&good, 100, 1).unwrap_err();
    assert!(matches!(e, MediaError::InvalidFrame(_)), "{e}");
    // Time never goes backwards on a constant-rate stream.
    let e = enc.push_video(&good, 640, 0).unwrap_err();
    assert!(matches!(e, MediaError::InvalidFrame(_)), "{e}");
    let e = enc.push_audio(&[0.0; 3], 0).unwrap_err();
    assert!(matches!(e, MediaError::InvalidAudio(_)), "{e}");
    let e = enc.push_audio(&[0.0; 2], u64::MAX).unwrap_err();
    assert!(matches!(e, MediaError::InvalidAudio(_)), "{e}");
    // NaN samples are not an error; they are silenced.
    enc.push_audio(&[f32::NAN; 2048], 0).expect("nan audio");
    enc.push_video(&good, 640, 1).expect("later frame");
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.video_frames_encoded, 2);
    assert_eq!(probe(&out).video_frames, 2);
}

#[test]
fn unreachable_ingest_retries_while_recording_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.mp4");
    // Nothing listens on this port: connections are refused at once.
    let url = format!("rtmp://127.0.0.1:{}/live/secret", free_port());
    let mut c = cfg();
    c.block_when_full = true;
    let mut enc = LiveEncoder::start(c, &[OutputSpec::File(out.clone()), OutputSpec::Push(url)])
        .expect("an unreachable server is not a start error");
    assert!(
        wait_until(Duration::from_secs(30), || matches!(
            enc.stats().outputs[1].state,
            OutputState::Reconnecting { attempt, .. } if attempt >= 2
        )),
        "{:?}",
        enc.stats().outputs
    );
    if let OutputState::Reconnecting { last_error, .. } = &enc.stats().outputs[1].state {
        assert!(!last_error.is_empty());
    }
    assert!(!enc.stats().outputs[1].name.contains("secret"));
    for i in 0..30 {
        enc.push_video(&gradient_frame(160, 90, i), 640, i)
            .expect("push");
    }
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.outputs[0].state, OutputState::Finished);
    assert_eq!(stats.outputs[1].state, OutputState::Finished);
    assert_eq!(probe(&out).video_frames, 30);
}

#[test]
fn silent_server_times_out_and_is_retried() {
    // Accepts TCP connections and never answers: the RTMP handshake would wait forever.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        held.len()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg();
    c.rtmp_timeout = Duration::from_millis(500);
    let url = format!("rtmp://127.0.0.1:{port}/live/key");
    let enc = LiveEncoder::start(
        c,
        &[
            OutputSpec::File(dir.path().join("o.flv")),
            OutputSpec::Push(url),
        ],
    )
    .expect("start");
    let timed_out = wait_until(Duration::from_secs(60), || {
        matches!(
            &enc.stats().outputs[1].state,
            OutputState::Reconnecting { attempt, last_error }
                if *attempt >= 2 && last_error.contains("no progress")
        )
    });
    assert!(timed_out, "{:?}", enc.stats().outputs);
    // Finishing while a connect is hanging must not hang.
    let stats = enc.finish().expect("finish");
    assert_eq!(stats.outputs[1].state, OutputState::Finished);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let accepted = holder.join().expect("holder thread");
    assert!(accepted >= 2, "only {accepted} connection attempts");
}

#[test]
fn encoder_thread_gets_the_requested_nice_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg();
    // Raising nice needs no privilege.
    c.encoder_nice = Some(7);
    let enc = LiveEncoder::start(c, &[OutputSpec::File(dir.path().join("n.flv"))]).expect("start");
    // Other tests in this process run encoders too, and x264's workers inherit the thread
    // name, so look for any "cc-encoder" thread at nice 7 rather than expecting only one.
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc") {
        let task = task.expect("task").path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() == "cc-encoder" {
            let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
                continue; // the thread ended meanwhile
            };
            // Field 19 is nice; fields after the parenthesised comm are space separated.
            let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let nice: i32 = after
                .split_whitespace()
                .nth(16)
                .and_then(|n| n.parse().ok())
                .expect("nice field");
            nices.push(nice);
        }
    }
    eprintln!("cc-encoder threads: nice {nices:?}");
    assert!(nices.contains(&7), "cc-encoder threads have nice {nices:?}");
    enc.finish().expect("finish");
}

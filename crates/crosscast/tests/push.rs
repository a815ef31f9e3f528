//! `crosscast live --push`: SRT to a real `ffmpeg` listener, RTMPS through nginx with a test
//! CA (trusted with --ca-file, refused without, --insecure-tls with its warning), and bad URLs
//! refused before anything starts. Every peer runs on 127.0.0.1, started by the test.

mod common;
#[path = "../../media/tests/common/mod.rs"]
mod media;

use common::*;
use std::time::Duration;

const ARGS: &[&str] = &[
    "live",
    "--seconds",
    "5",
    "--size",
    "640x360",
    "--fps",
    "30",
    "--preset",
    "ultrafast",
    "--preview",
    "none",
];

fn live(extra: &[&str], dir: &TempDir) -> (bool, String) {
    let args: Vec<&str> = ARGS.iter().chain(extra).copied().collect();
    let out = run(&args, &dir.0, Duration::from_secs(120));
    (out.status.success(), stderr(&out))
}

#[test]
fn pushes_srt_with_streamid_and_passphrase_and_records_at_once() {
    let dir = TempDir::new("srt");
    let mut listener = media::SrtListener::start(&dir.0, "in", Some("a-long-passphrase"));
    let url =
        listener.url("streamid=crosscast-test-id&passphrase=a-long-passphrase&latency=200000");
    let (ok, err) = live(&["--push", &url, "--out", "local.mp4"], &dir);
    assert!(ok, "{err}");
    assert!(
        !err.contains("a-long-passphrase") && !err.contains("crosscast-test-id"),
        "secret leaked:\n{err}"
    );
    let status = format!(
        "| srt://127.0.0.1:{}?streamid=***&passphrase=***&latency=200000 live",
        listener.port
    );
    assert!(
        err.contains(&status),
        "no `{status}` on the status line:\n{err}"
    );
    let log = listener.finish(Duration::from_secs(20));
    assert!(
        log.contains("crosscast-test-id"),
        "the listener never saw the stream id:\n{log}"
    );
    let p = media::probe(&listener.out);
    assert_eq!(
        (p.video_codec.as_str(), p.width, p.audio_codec.as_str()),
        ("h264", 640, "aac"),
        "{p:?}"
    );
    // 5 s at 30 fps; the session starts at the first keyframe after connecting.
    assert!(p.video_frames >= 140, "the listener decoded {p:?}\n{err}");
    let local = media::probe(&dir.path("local.mp4"));
    assert!((148..=152).contains(&local.video_frames), "{local:?}");
}

#[test]
fn rtmps_verifies_the_server_certificate() {
    let pki = media::TestPki::new();
    let mut nginx = media::Nginx::start_tls(&pki.server_cert(), &pki.server_key());
    let dir = TempDir::new("rtmps");
    let ca = pki.ca();
    let ca = ca.to_str().expect("utf-8 path");

    let url = nginx.rtmps_url("trusted");
    let (ok, err) = live(&["--push", &url, "--ca-file", ca, "--out", "a.mp4"], &dir);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!(
            "| rtmps://127.0.0.1:{}/live/*** live",
            nginx.tls_port.unwrap()
        )),
        "{err}"
    );

    let url = nginx.rtmps_url("untrusted");
    let (ok, err) = live(&["--push", &url, "--out", "b.mp4"], &dir);
    assert!(ok, "a refused ingest must not fail the run: {err}");
    let line = err
        .lines()
        .find(|l| l.contains("connect failed"))
        .unwrap_or_else(|| panic!("no error line for the refused ingest:\n{err}"));
    assert!(
        line.contains("certificate") && line.contains("verif") && line.contains("/live/***"),
        "the error must name certificate verification: {line}"
    );
    let b = media::probe(&dir.path("b.mp4"));
    assert!(
        (148..=152).contains(&b.video_frames),
        "the recording must be whole: {b:?}"
    );

    let url = nginx.rtmps_url("insecure");
    let (ok, err) = live(&["--rtmp", &url, "--insecure-tls", "--out", "c.flv"], &dir);
    assert!(ok, "{err}");
    let warning = format!(
        "crosscast: warning: --insecure-tls: the server's certificate is not verified for rtmps://127.0.0.1:{}/live/***",
        nginx.tls_port.unwrap()
    );
    assert_eq!(
        err.matches(&warning).count(),
        1,
        "one warning naming the output:\n{err}"
    );

    nginx.stop();
    for key in ["trusted", "insecure"] {
        let recs = nginx.recordings(key);
        let p = media::probe(
            recs.last()
                .unwrap_or_else(|| panic!("nothing recorded for {key}")),
        );
        assert_eq!(p.video_codec, "h264", "{key}");
        assert!(p.video_frames >= 120, "{key}: {p:?}");
    }
    assert!(nginx.recordings("untrusted").is_empty());
}

#[test]
fn bad_push_urls_and_ca_files_are_refused_before_anything_starts() {
    let dir = TempDir::new("badurl");
    std::fs::write(dir.path("junk.pem"), "not a certificate").expect("write");
    for (args, says) in [
        (
            vec!["--push", "http://127.0.0.1/live/SECRETKEY"],
            "unsupported scheme http://",
        ),
        (
            vec!["--push", "udp://127.0.0.1:9000"],
            "unsupported scheme udp://",
        ),
        (vec!["--push", "rtmp://127.0.0.1"], "/app/key"),
        (vec!["--rtmp", "rtmp:/oops/SECRETKEY"], "not a URL"),
        (
            vec![
                "--push",
                "srt://127.0.0.1:9000?pbkeylen=16&streamid=SECRETID",
            ],
            "missing passphrase",
        ),
        (
            vec!["--push", "srt://127.0.0.1:9000?passphrase=SECRET"],
            "10..=79",
        ),
        (
            vec!["--push", "srt://127.0.0.1:9000?mode=listener"],
            "caller",
        ),
        (
            vec!["--push", "srt://127.0.0.1:9000?latency=0.2"],
            "microseconds",
        ),
        (
            vec!["--push", "srt://127.0.0.1:9000?foo=1"],
            "unknown query key \"foo\"",
        ),
        (vec!["--push", "srt://127.0.0.1"], "missing port"),
        (
            vec![
                "--push",
                "rtmps://127.0.0.1/live/k",
                "--ca-file",
                "junk.pem",
            ],
            "no PEM certificate",
        ),
        (
            vec![
                "--push",
                "rtmps://127.0.0.1/live/k",
                "--ca-file",
                "missing.pem",
            ],
            "missing.pem",
        ),
    ] {
        let mut all: Vec<&str> = args.clone();
        all.extend(["--out", "never.flv"]);
        let started = std::time::Instant::now();
        let (ok, err) = live(&all, &dir);
        assert!(!ok, "{args:?} was accepted:\n{err}");
        assert!(err.contains(says), "{args:?}: no `{says}` in:\n{err}");
        assert!(!err.contains("SECRET"), "{args:?}: secret leaked:\n{err}");
        assert!(
            !err.contains("00:00:0"),
            "{args:?}: the stream started:\n{err}"
        );
        assert!(
            !dir.path("never.flv").exists(),
            "{args:?}: something was recorded"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?}: not refused at once"
        );
    }
}

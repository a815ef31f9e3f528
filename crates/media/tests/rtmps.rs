//! RTMPS that verifies: nginx on 127.0.0.1 terminates TLS (stream module, a certificate from a
//! test CA made with `openssl`) in front of nginx-rtmp (`record all`). Trusted through
//! `ca_file` it streams; untrusted it is refused with FFmpeg's own reason while the recording
//! continues; `insecure` streams without checking.

mod common;

use common::{gradient_frame, probe, wait_until, Nginx, SyncPattern, TestPki};
use crosscast_media::{
    EncoderConfig, LiveEncoder, MediaError, OutputSpec, OutputState, TlsOptions,
};
use std::time::{Duration, Instant};

const W: u32 = 320;
const H: u32 = 180;
const FPS: u32 = 30;

fn config(tls: TlsOptions) -> EncoderConfig {
    let mut cfg = EncoderConfig::new(W, H, FPS);
    cfg.preset = "ultrafast".into();
    cfg.video_bitrate_kbps = 800;
    cfg.keyint_frames = FPS;
    cfg.block_when_full = true;
    cfg.tls = tls;
    cfg
}

fn stream(enc: &mut LiveEncoder, frames: u64) {
    let tone = SyncPattern::new(W, H, FPS);
    let start = Instant::now();
    for i in 0..frames {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(FPS));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        enc.push_video(&gradient_frame(W, H, i), W as usize * 4, i)
            .expect("push video");
        let (a, n) = tone.audio_range_for_frame(i);
        enc.push_audio(&tone.audio(a, n), a).expect("push audio");
    }
}

/// Streams 3 s to `key` over RTMPS plus a local MP4; returns the RTMPS output's final state
/// and its last state before finishing.
fn run(
    nginx: &Nginx,
    tls: TlsOptions,
    key: &str,
    local: &std::path::Path,
) -> (OutputState, OutputState) {
    let mut enc = LiveEncoder::start(
        config(tls),
        &[
            OutputSpec::File(local.to_owned()),
            // `byname-…` keys go to the host name, checked against the DNS SAN (and SNI).
            OutputSpec::Push(if key.starts_with("byname") {
                nginx.rtmps_url(key).replace("127.0.0.1", "localhost")
            } else {
                nginx.rtmps_url(key)
            }),
        ],
    )
    .expect("start");
    // Up to 10 s for the TLS + RTMP handshake (or its refusal) before frames flow.
    wait_until(Duration::from_secs(10), || {
        !matches!(enc.stats().outputs[1].state, OutputState::Connecting)
    });
    let frames = u64::from(FPS) * 3;
    stream(&mut enc, frames);
    let before = enc.stats().outputs[1].state.clone();
    let stats = enc.finish().expect("finish: the recording must not suffer");
    assert_eq!(probe(local).video_frames, frames, "local recording");
    assert!(
        !stats.outputs[1].name.contains(key),
        "key leaked: {}",
        stats.outputs[1].name
    );
    (stats.outputs[1].state.clone(), before)
}

#[test]
fn trusted_through_ca_file_streams_untrusted_is_refused_insecure_streams() {
    let pki = TestPki::new();
    let mut nginx = Nginx::start_tls(&pki.server_cert(), &pki.server_key());
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = f64::from(FPS) * 3.0;

    // Trusted: the test CA added to the system's store.
    let (end, before) = run(
        &nginx,
        TlsOptions {
            insecure: false,
            ca_file: Some(pki.ca()),
        },
        "trusted",
        &dir.path().join("a.mp4"),
    );
    assert_eq!(before, OutputState::Live, "{}", nginx.error_log());
    assert_eq!(end, OutputState::Finished);

    // By host name: the certificate's DNS SAN `localhost` matches too.
    let (_, before) = run(
        &nginx,
        TlsOptions {
            insecure: false,
            ca_file: Some(pki.ca()),
        },
        "byname",
        &dir.path().join("n.mp4"),
    );
    assert_eq!(before, OutputState::Live, "{}", nginx.error_log());

    // Untrusted: no CA file (the system store does not know the test CA)…
    let (_, before) = run(
        &nginx,
        TlsOptions::default(),
        "untrusted",
        &dir.path().join("b.mp4"),
    );
    eprintln!("untrusted: {before:?}");
    match &before {
        OutputState::Reconnecting { last_error, .. } => assert!(
            last_error.contains("certificate") && last_error.contains("verif"),
            "the error must name certificate verification: {last_error}"
        ),
        other => panic!("an untrusted server must be refused, got {other:?}"),
    }
    // …or a CA file with another CA: still refused (the given CA is added, nothing else).
    let (_, before) = run(
        &nginx,
        TlsOptions {
            insecure: false,
            ca_file: Some(pki.other_ca()),
        },
        "other",
        &dir.path().join("c.mp4"),
    );
    assert!(
        matches!(&before, OutputState::Reconnecting { last_error, .. } if last_error.contains("certificate")),
        "{before:?}"
    );

    // Insecure: streams without verification.
    let (_, before) = run(
        &nginx,
        TlsOptions {
            insecure: true,
            ca_file: None,
        },
        "insecure",
        &dir.path().join("d.mp4"),
    );
    assert_eq!(before, OutputState::Live);

    nginx.stop();
    for key in ["trusted", "byname", "insecure"] {
        let recs = nginx.recordings(key);
        assert_eq!(recs.len(), 1, "{key}: {recs:?}\n{}", nginx.error_log());
        let p = probe(&recs[0]);
        eprintln!("{key}: nginx recorded {p:?}");
        assert_eq!(
            (p.video_codec.as_str(), p.audio_codec.as_str()),
            ("h264", "aac")
        );
        assert!(p.video_frames as f64 >= frames * 0.97, "{key}: {p:?}");
    }
    for key in ["untrusted", "other"] {
        let recs = nginx.recordings(key);
        assert!(
            recs.iter().all(|r| probe(r).video_frames == 0),
            "{key} reached the server: {recs:?}"
        );
    }
}

#[test]
fn a_bad_ca_file_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello").expect("write");
    let out = dir.path().join("never.flv");
    for ca in [junk, dir.path().join("missing.pem")] {
        let e = LiveEncoder::start(
            config(TlsOptions {
                insecure: false,
                ca_file: Some(ca.clone()),
            }),
            &[
                OutputSpec::File(out.clone()),
                OutputSpec::Push("rtmps://127.0.0.1:1/live/k".into()),
            ],
        )
        .err();
        assert!(
            matches!(e, Some(MediaError::CaFile { .. })),
            "{ca:?}: {e:?}"
        );
        assert!(!out.exists(), "a file was started");
    }
}

//! Adaptive bitrate on a real squeezed link, through `crosscast bench squeeze`: two network
//! namespaces the bench creates (a veth pair between them, `tc tbf` on the sender's side),
//! nginx-rtmp (or an `ffmpeg` SRT listener) recording in one, `crosscast live` streaming and
//! recording in the other. Needs root, iproute2, nginx with libnginx-mod-rtmp and ffmpeg
//! (scripts/test.sh installs them).

mod common;

use common::{bin, TempDir};
use std::process::Command;

/// Runs the bench once with short phases and returns its one row.
fn squeeze(dir: &TempDir, extra: &[&str]) -> serde_json::Value {
    let json = dir.path("squeeze.json");
    let out = Command::new(bin())
        .args([
            "bench",
            "squeeze",
            "--runs",
            "1",
            "--before",
            "5",
            "--squeeze",
            "15",
            "--after",
            "25",
            "--size",
            "640x360",
            "--bitrate",
            "1500",
            "--min-bitrate",
            "300",
            "--link-kbps",
            "800",
            "--json",
        ])
        .arg(&json)
        .args(extra)
        .output()
        .expect("run crosscast bench squeeze");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench squeeze failed:\n{log}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    report["rows"][0].clone()
}

fn figure(row: &serde_json::Value, name: &str) -> f64 {
    row[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {row:#}"))
}

/// What every protocol must show on a squeezed link that comes back.
fn rode_the_squeeze(row: &serde_json::Value) {
    // It reacts within seconds of the squeeze, to below what the link carries.
    assert!(figure(row, "first_step_down_s") < 5.0, "{row:#}");
    assert!(figure(row, "lowest_kbps") < 800.0, "{row:#}");
    // The stream kept playing: no disconnect, nothing lost at the ingest, and it decodes
    // cleanly across the switches between the two encodes.
    assert_eq!(figure(row, "reconnects"), 0.0, "{row:#}");
    assert_eq!(figure(row, "live_frames_lost"), 0.0, "{row:#}");
    assert_eq!(figure(row, "live_decode_errors"), 0.0, "{row:#}");
    // The link came back, and so did the full bitrate.
    assert!(figure(row, "recovery_s") < 25.0, "{row:#}");
    // The recording has every frame, at the full bitrate (it never followed the live one).
    assert_eq!(figure(row, "recording_frames_lost"), 0.0, "{row:#}");
    assert_eq!(figure(row, "recording_decode_errors"), 0.0, "{row:#}");
    assert!(figure(row, "recording_kbps") > 1500.0 * 0.85, "{row:#}");
}

#[test]
fn a_squeezed_link_lowers_the_live_bitrate_without_a_disconnect_and_the_recording_keeps_it_all() {
    let dir = TempDir::new("abr");
    // A namespace as a killed bench leaves it (named after the bench's pid, now gone): the
    // next bench removes it.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead_pid = gone.id();
    gone.wait().expect("wait");
    let stale = format!("ccsq{dead_pid}x0s");
    let made = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("ip netns add");
    assert!(made.success());
    rode_the_squeeze(&squeeze(&dir, &[]));
    let left = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&stale)),
        "{stale} is still there:\n{left}"
    );
}

#[test]
fn a_reconnect_during_a_squeeze_keeps_the_lowered_bitrate() {
    let dir = TempDir::new("abr-reconnect");
    let row = squeeze(&dir, &["--restart-ingest"]);
    // The ingest went away for two seconds in the middle of the squeeze: the output
    // reconnected once, and the bitrate did not jump back to full on the fresh connection
    // (what early dynamic-bitrate implementations did, congesting it at once).
    assert_eq!(figure(&row, "reconnects"), 1.0, "{row:#}");
    assert_eq!(figure(&row, "full_before_release"), 0.0, "{row:#}");
    assert!(figure(&row, "recovery_s") < 25.0, "{row:#}");
    // Every session at the ingest decodes; the recording is whole whatever the network did.
    assert_eq!(figure(&row, "live_decode_errors"), 0.0, "{row:#}");
    assert_eq!(figure(&row, "recording_frames_lost"), 0.0, "{row:#}");
    assert!(figure(&row, "recording_kbps") > 1500.0 * 0.85, "{row:#}");
}

#[test]
fn a_squeezed_srt_link_lowers_the_live_bitrate_and_loses_no_packet_to_late_drops() {
    let dir = TempDir::new("abr-srt");
    // SRT in live mode drops packets that wait about a second in its sender buffer; with the
    // buffer bounded below that, the backlog shows in crosscast's queue instead, adaptive
    // bitrate steps down as it does for RTMP, and nothing is dropped as too late.
    rode_the_squeeze(&squeeze(&dir, &["--protocol", "srt"]));
}

//! `bench pipeline`, `bench preview`, `bench wayland`, `bench input`, `bench pulse` and `bench encoder` run briefly and write reports of the promised shape:
//! every variant's row present, `null` (never 0) for figures a row did not measure, each
//! median within its range, and the comment flood accepted at no more than the rate limit.

mod common;
use common::*;

use std::time::Duration;

use crosscast_bench::stats::DELAY_FIELDS;

type Json = serde_json::Value;

/// The report's rows, after checking the bench wrote it and exited cleanly.
fn rows(args: &[&str], dir: &TempDir, limit: Duration) -> Vec<Json> {
    let json = dir.path("report.json");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let out = run(&all, &dir.0, limit);
    assert!(out.status.success(), "{args:?} failed:\n{}", stderr(&out));
    let report: Json = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    report["rows"].as_array().expect("rows").clone()
}

fn row<'a>(rows: &'a [Json], case: &str, transport: &str) -> &'a Json {
    rows.iter()
        .find(|r| r["case"] == case && r["transport"] == transport)
        .unwrap_or_else(|| panic!("no row {case} / {transport} in {rows:#?}"))
}

/// Every delay field of a cost row is null, and every figure is either null with its range, or
/// a median within its min..max.
fn check_shape(r: &Json, figures: &[&str]) {
    for delay in DELAY_FIELDS {
        assert!(r[delay].is_null(), "{delay} should be null in {r:#}");
    }
    for f in std::iter::once(&"frames").chain(figures) {
        let (med, min, max) = (&r[*f], &r[format!("{f}_min")], &r[format!("{f}_max")]);
        if med.is_null() {
            assert!(
                min.is_null() && max.is_null(),
                "{f}: range without a median in {r:#}"
            );
            continue;
        }
        let (med, min, max) = (
            med.as_f64().unwrap(),
            min.as_f64().unwrap(),
            max.as_f64().unwrap(),
        );
        assert!(
            min <= med && med <= max,
            "{f}: median {med} outside {min}..{max} in {r:#}"
        );
    }
}

fn measured(r: &Json, f: &str) -> f64 {
    r[f].as_f64()
        .unwrap_or_else(|| panic!("{f} should be measured in {r:#}"))
}

fn unmeasured(r: &Json, f: &str) {
    assert!(r[f].is_null(), "{f} should be null (not measured) in {r:#}");
}

const PIPELINE: &[&str] = &[
    "streamer_cpu_ms_per_frame",
    "cpu_ratio_to_floor",
    "game_cpu_ms_per_frame",
    "output_fps",
    "game_fps",
    "game_fps_loss",
    "frames_lost",
    "frames_lost_share",
];

#[test]
fn bench_pipeline_reports_every_variant_with_ranges_and_nulls_where_unmeasured() {
    let dir = TempDir::new("bench-pipeline");
    let rows = rows(
        &["bench", "pipeline", "--seconds", "1", "--runs", "2"],
        &dir,
        Duration::from_secs(400),
    );
    let streamed = [
        "crosscast",
        "ffmpeg-pipe-careful",
        "ffmpeg-pipe-naive",
        "crosscast+2hogs",
        "crosscast+2hogs,nice-10",
    ];
    for case in ["1280x720@60", "1920x1080@30"] {
        let alone = row(&rows, case, "game-alone");
        check_shape(alone, PIPELINE);
        assert_eq!(alone["runs"], 2);
        measured(alone, "game_fps");
        for f in [
            "streamer_cpu_ms_per_frame",
            "cpu_ratio_to_floor",
            "output_fps",
            "frames_lost",
            "game_fps_loss",
        ] {
            unmeasured(alone, f);
        }
        let floor = row(&rows, case, "encode-floor");
        check_shape(floor, PIPELINE);
        assert!(measured(floor, "frames") > 0.0, "{floor:#}");
        assert!(
            measured(floor, "streamer_cpu_ms_per_frame") > 0.0,
            "{floor:#}"
        );
        assert_eq!(measured(floor, "cpu_ratio_to_floor"), 1.0, "{floor:#}");
        for f in ["game_fps", "game_cpu_ms_per_frame", "game_fps_loss"] {
            unmeasured(floor, f);
        }
        for t in streamed {
            let r = row(&rows, case, t);
            check_shape(r, PIPELINE);
            assert_eq!(r["runs"], 2, "{r:#}");
            for f in PIPELINE {
                measured(r, f);
            }
            assert!(measured(r, "frames_lost") >= 0.0, "{r:#}");
        }
    }
    assert_eq!(rows.len(), 2 * 7, "{rows:#?}");
}

#[test]
fn bench_preview_floods_above_the_rate_limit_and_the_host_accepts_no_more() {
    let dir = TempDir::new("bench-preview");
    let rows = rows(
        &["bench", "preview", "--seconds", "4"],
        &dir,
        Duration::from_secs(120),
    );
    let figures = [
        "game_fps",
        "game_fps_loss",
        "host_cpu_ms_per_frame",
        "game_cpu_ms_per_frame",
        "comments_written_per_s",
        "comments_accepted_per_s",
        "comments_accepted",
        "comments_allowed",
    ];
    let quiet = row(&rows, "no-comments", "crosscast");
    check_shape(quiet, &figures);
    assert_eq!(measured(quiet, "comments_accepted"), 0.0, "{quiet:#}");
    for f in [
        "comments_written_per_s",
        "comments_accepted_per_s",
        "comments_allowed",
        "game_fps_loss",
    ] {
        unmeasured(quiet, f);
    }
    let flood = row(&rows, "comments-flood", "crosscast");
    check_shape(flood, &figures);
    for f in figures {
        measured(flood, f);
    }
    // Written at well above the 20/s default; accepted at no more than the token bucket lets
    // through (one second's burst plus 20/s), and at all (the feed did read the flood).
    assert!(
        measured(flood, "comments_written_per_s") > 200.0,
        "{flood:#}"
    );
    let accepted = measured(flood, "comments_accepted");
    assert!(accepted > 0.0, "{flood:#}");
    assert!(accepted <= measured(flood, "comments_allowed"), "{flood:#}");
    assert_eq!(rows.len(), 2, "{rows:#?}");
}

const WAYLAND: &[&str] = &[
    "game_fps",
    "fps_ratio_to_weston",
    "game_cpu_ms_per_frame",
    "host_cpu_ms_per_frame",
    "host_cpu_core_pct",
    "handoff_p50_ms",
    "handoff_p99_ms",
    "handoff_avg_ms",
    "handoff_max_ms",
    "output_fps",
    "commits",
    "commits_shown",
    "commits_shown_share",
];

/// Needs the Debian packages glmark2-es2-wayland and weston (the bench fails naming them).
#[test]
fn bench_wayland_reports_glmark2_under_crosscast_and_weston() {
    let dir = TempDir::new("bench-wayland");
    let rows = rows(
        &[
            "bench",
            "wayland",
            "--runs",
            "1",
            "--seconds",
            "3",
            "--size",
            "320x240",
        ],
        &dir,
        Duration::from_secs(90),
    );
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let ours = row(&rows, "glmark2-build-320x240", "crosscast");
    let unsandboxed = row(&rows, "glmark2-build-320x240", "crosscast-sandbox-off");
    let bare = row(&rows, "glmark2-build-320x240", "crosscast-no-encode");
    let theirs = row(&rows, "glmark2-build-320x240", "weston-headless");
    for r in [ours, theirs] {
        check_shape(r, WAYLAND);
        assert_eq!(r["runs"], 1, "{r:#}");
        assert!(measured(r, "game_fps") > 0.0, "{r:#}");
        assert!(measured(r, "game_cpu_ms_per_frame") > 0.0, "{r:#}");
        assert!(measured(r, "host_cpu_ms_per_frame") > 0.0, "{r:#}");
        assert!(measured(r, "host_cpu_core_pct") > 0.0, "{r:#}");
    }
    for f in WAYLAND {
        measured(ours, f);
        measured(unsandboxed, f);
        measured(bare, f);
    }
    check_shape(unsandboxed, WAYLAND);
    check_shape(bare, WAYLAND);
    // The ratio is the two rows' fps, within the round.
    let ratio = measured(ours, "fps_ratio_to_weston");
    let expected = measured(ours, "game_fps") / measured(theirs, "game_fps");
    assert!((ratio - expected).abs() < 1e-9, "{ratio} != {expected}");
    let (p50, p99) = (
        measured(ours, "handoff_p50_ms"),
        measured(ours, "handoff_p99_ms"),
    );
    assert!(0.0 < p50 && p50 <= p99, "p50 {p50} p99 {p99} in {ours:#}");
    let (avg, max) = (
        measured(ours, "handoff_avg_ms"),
        measured(ours, "handoff_max_ms"),
    );
    assert!(0.0 < avg && avg <= max && p99 <= max, "{ours:#}");
    // The output clock is constant-rate at the default 60 fps, whatever glmark2 does.
    let out_fps = measured(ours, "output_fps");
    assert!((50.0..=70.0).contains(&out_fps), "{ours:#}");
    assert!(measured(ours, "frames") > 0.0, "{ours:#}");
    let (commits, shown) = (measured(ours, "commits"), measured(ours, "commits_shown"));
    assert!(0.0 < shown && shown <= commits, "{ours:#}");
    // What only a streaming compositor has: null for weston, never 0.
    for f in [
        "fps_ratio_to_weston",
        "handoff_p50_ms",
        "handoff_p99_ms",
        "handoff_avg_ms",
        "handoff_max_ms",
        "output_fps",
        "commits",
        "commits_shown",
        "commits_shown_share",
        "frames",
    ] {
        unmeasured(theirs, f);
    }
}

#[test]
fn bench_wayland_without_glmark2_fails_naming_the_debian_package() {
    let dir = TempDir::new("bench-wayland-missing");
    // A PATH with nothing on it: neither glmark2 nor weston can be found.
    let out = std::process::Command::new(bin())
        .args(["bench", "wayland", "--runs", "1", "--seconds", "1"])
        .env("PATH", dir.path("empty"))
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn crosscast");
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("apt-get install glmark2-es2-wayland"),
        "the error should name the package:\n{err}"
    );
}

/// The input figures `bench input` reports for each path.
const INPUT: &[&str] = &[
    "press_p50_ms",
    "press_p99_ms",
    "press_max_ms",
    "press_p50_frames",
    "press_p99_frames",
    "release_p50_ms",
    "release_p99_ms",
    "to_clock_p50_ms",
    "to_clock_p99_ms",
    "presses",
    "missed",
];

#[test]
fn bench_input_measures_key_to_encoded_frame_on_both_paths() {
    let dir = TempDir::new("bench-input");
    // `cargo test --workspace` builds the probe beside the binary under test.
    let probe = std::path::Path::new(bin()).with_file_name("crosscast-input-probe");
    assert!(
        probe.exists(),
        "{} is missing: cargo build -p crosscast-bench",
        probe.display()
    );
    let rows = rows(
        &[
            "bench",
            "input",
            "--runs",
            "1",
            "--presses",
            "4",
            "--size",
            "320x240",
            "--fps",
            "30",
            "--probe",
            probe.to_str().unwrap(),
        ],
        &dir,
        Duration::from_secs(180),
    );
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for case in ["native", "wayland"] {
        let r = row(&rows, case, "320x240@30");
        check_shape(r, INPUT);
        assert_eq!(measured(r, "presses"), 4.0, "{r:#}");
        assert!(measured(r, "missed") < 4.0, "{r:#}");
        let (p50, p99) = (measured(r, "press_p50_ms"), measured(r, "press_p99_ms"));
        assert!(0.0 < p50 && p50 <= p99 && p99 < 500.0, "{r:#}");
        // Frames at 30 fps: 33.3 ms each.
        let frames = measured(r, "press_p50_frames");
        assert!((frames - p50 / (1000.0 / 30.0)).abs() < 1e-6, "{r:#}");
        // The output clock has the frame before the encoder is done with it.
        assert!(measured(r, "to_clock_p50_ms") <= p50, "{r:#}");
    }
}

/// The figures `bench pulse` reports for each client and server.
const PULSE: &[&str] = &[
    "delay_p50_ms",
    "delay_p99_ms",
    "delay_max_ms",
    "writes",
    "audio_s",
    "heard_s",
    "cpu_ms_per_audio_s",
    "cpu_core_pct",
    "cpu_ms_per_played_s",
    "cpu_ms_per_audio_s_over_idle",
    "cpu_core_pct_over_idle",
    "cpu_ratio_to_idle",
    "cpu_ratio_to_pulseaudio",
    "client_cpu_ms_per_audio_s",
];

/// Whether `program` is on PATH (the reference daemon is optional; its rows say so).
fn on_path(program: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join(program).is_file())
}

/// Needs the Debian packages pulseaudio-utils and libsdl2-tests (the bench fails naming them);
/// with pulseaudio installed the reference rows must be measured too.
#[test]
fn bench_pulse_measures_write_delay_and_cpu_for_every_client() {
    let dir = TempDir::new("bench-pulse");
    let seconds = 2.0;
    let rows = rows(
        &["bench", "pulse", "--runs", "1", "--seconds", "2"],
        &dir,
        Duration::from_secs(150),
    );
    assert_eq!(rows.len(), 8, "{rows:#?}");
    let clients = ["paplay", "pacat-20ms", "sdl2-loopwave"];
    let idle = row(&rows, "idle", "crosscast-pulse");
    check_shape(idle, PULSE);
    assert_eq!(idle["runs"], 1, "{idle:#}");
    // The pump mixes in real time whether or not anyone plays, and only silence here.
    let audio = measured(idle, "audio_s");
    assert!((seconds * 0.9..seconds * 1.2).contains(&audio), "{idle:#}");
    assert_eq!(measured(idle, "heard_s"), 0.0, "{idle:#}");
    assert!(measured(idle, "cpu_ms_per_audio_s") > 0.0, "{idle:#}");
    for f in [
        "delay_p50_ms",
        "writes",
        "cpu_ms_per_audio_s_over_idle",
        "cpu_ratio_to_idle",
        "cpu_ms_per_played_s",
        "client_cpu_ms_per_audio_s",
    ] {
        unmeasured(idle, f);
    }
    let daemon = on_path("pulseaudio");
    for case in clients {
        let r = row(&rows, case, "crosscast-pulse");
        check_shape(r, PULSE);
        let (p50, p99, max) = (
            measured(r, "delay_p50_ms"),
            measured(r, "delay_p99_ms"),
            measured(r, "delay_max_ms"),
        );
        // No write reaches the timeline before it arrives, and none waits beyond the
        // server's buffers (a few seconds at most).
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= max && max < 5000.0,
            "{r:#}"
        );
        assert!(measured(r, "writes") >= 1.0, "{r:#}");
        // The client's tone reached the mix: most of its two seconds were heard.
        let heard = measured(r, "heard_s");
        assert!(heard > seconds * 0.5, "{r:#}");
        assert!(heard <= measured(r, "audio_s") + 1e-9, "{r:#}");
        let (cpu, over) = (
            measured(r, "cpu_ms_per_audio_s"),
            measured(r, "cpu_ms_per_audio_s_over_idle"),
        );
        let idle_cpu = measured(idle, "cpu_ms_per_audio_s");
        assert!((over - (cpu - idle_cpu)).abs() < 1e-9, "{r:#}");
        let ratio = measured(r, "cpu_ratio_to_idle");
        assert!((ratio - cpu / idle_cpu).abs() < 1e-9, "{r:#}");
        let pct = measured(r, "cpu_core_pct");
        assert!(0.0 < pct && pct < 100.0, "{r:#}");
        measured(r, "client_cpu_ms_per_audio_s");
        if daemon {
            assert!(measured(r, "cpu_ratio_to_pulseaudio") > 0.0, "{r:#}");
        } else {
            unmeasured(r, "cpu_ratio_to_pulseaudio");
        }
    }
    // The low-latency client asked for 20 ms: its writes reach the timeline within a few
    // blocks (generous for a loaded CI machine), far below the casual one's default buffering.
    let pacat = row(&rows, "pacat-20ms", "crosscast-pulse");
    assert!(measured(pacat, "delay_p99_ms") < 100.0, "{pacat:#}");
    assert!(
        measured(row(&rows, "pacat-20ms", "crosscast-pulse"), "delay_p50_ms")
            < measured(row(&rows, "paplay", "crosscast-pulse"), "delay_p50_ms"),
        "{rows:#?}"
    );
    for case in std::iter::once("idle").chain(clients) {
        let r = row(&rows, case, "pulseaudio-null-sink");
        check_shape(r, PULSE);
        // Only crosscast's server measures write delays and what reached the mix.
        for f in [
            "delay_p50_ms",
            "writes",
            "heard_s",
            "cpu_ratio_to_pulseaudio",
        ] {
            unmeasured(r, f);
        }
        if daemon {
            assert!(measured(r, "audio_s") > 0.0, "{r:#}");
            assert!(measured(r, "cpu_ms_per_audio_s") >= 0.0, "{r:#}");
        } else {
            unmeasured(r, "cpu_ms_per_audio_s");
            assert!(
                r["note"]
                    .as_str()
                    .unwrap_or("")
                    .contains("apt-get install pulseaudio"),
                "{r:#}"
            );
        }
    }
}

#[test]
fn bench_pulse_without_its_clients_fails_naming_the_debian_package() {
    let dir = TempDir::new("bench-pulse-missing");
    let out = std::process::Command::new(bin())
        .args(["bench", "pulse", "--runs", "1", "--seconds", "1"])
        .env("PATH", dir.path("empty"))
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn crosscast");
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("apt-get install pulseaudio-utils"),
        "the error should name the package:\n{err}"
    );
}

#[test]
fn bench_encoder_reports_both_presets_with_ranges() {
    let dir = TempDir::new("bench-encoder");
    let rows = rows(
        &[
            "bench",
            "encoder",
            "--seconds",
            "2",
            "--runs",
            "2",
            "--size",
            "320x180",
            "--fps",
            "30",
        ],
        &dir,
        Duration::from_secs(120),
    );
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let figures = [
        "frames_dropped",
        "dropped_share",
        "preset_steps",
        "host_cpu_s",
    ];
    for preset in ["veryfast", "auto"] {
        let r = row(&rows, &format!("320x180@30/{preset}"), "x264");
        check_shape(r, &figures);
        assert_eq!(r["runs"], 2, "{r:#}");
        // 2 s at 30 fps, every frame encoded or dropped, none lost from the count.
        let (encoded, dropped) = (measured(r, "frames"), measured(r, "frames_dropped"));
        assert!((55.0..=65.0).contains(&(encoded + dropped)), "{r:#}");
        assert!(measured(r, "host_cpu_s") > 0.0, "{r:#}");
    }
    // A fixed preset never steps.
    let fixed = row(&rows, "320x180@30/veryfast", "x264");
    assert_eq!(measured(fixed, "preset_steps_max"), 0.0, "{fixed:#}");
}

//! `crosscast bench encoder`: the overload case of the encoder (1920x1080 at 60 fps of the demo
//! game by default) streamed by this executable with x264 at a fixed `veryfast` and with
//! `--preset auto`, alternating, so both see the same machine: frames encoded and dropped,
//! preset steps, host CPU.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use crosscast_bench::stats::Report;

use crate::cli::Size;
use crate::pipeline::{aggregate, Figures};

/// The report's figure columns, after `frames` (frames encoded).
pub(crate) const COLUMNS: &[&str] = &[
    "frames_dropped",
    "dropped_share",
    "preset_steps",
    "host_cpu_s",
];

/// The variants, in the order each round runs them: `--preset` values.
const PRESETS: &[&str] = &["veryfast", "auto"];

/// The number after `label` in `text`'s first line containing it.
fn number_after(text: &str, label: &str) -> Option<f64> {
    let at = text.find(label)? + label.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().ok()
}

fn one_run(
    dir: &Path,
    size: Size,
    fps: &str,
    seconds: f64,
    preset: &str,
) -> anyhow::Result<Figures> {
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let file = format!("bench-{preset}.mp4");
    let out = Command::new(exe)
        .args([
            "live",
            "--preview",
            "none",
            "--encoder",
            "x264",
            "--preset",
            preset,
        ])
        .args([
            "--size",
            &format!("{}x{}", size.width, size.height),
            "--fps",
            fps,
        ])
        .args(["--seconds", &seconds.to_string(), "--out", &file])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run crosscast live")?;
    let err = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "crosscast live --preset {preset} failed:\n{err}"
    );
    let _ = std::fs::remove_file(dir.join(&file));
    let encoded = number_after(&err, "crosscast: encoded ").context("no encoded count")?;
    let dropped = number_after(&err, "video frames (").context("no dropped count")?;
    let steps = err
        .lines()
        .filter(|l| l.starts_with("crosscast: encoder: ") && l.contains(": now "))
        .count() as f64;
    let cpu = number_after(&err, "crosscast: host cpu ").unwrap_or(f64::NAN);
    Ok(Figures::from([
        ("frames", encoded),
        ("frames_dropped", dropped),
        ("dropped_share", dropped / (encoded + dropped).max(1.0)),
        ("preset_steps", steps),
        ("host_cpu_s", cpu),
    ]))
}

/// Runs `runs` rounds of every preset variant; one row per variant, median and range.
pub(crate) fn encoder(size: Size, fps: &str, seconds: f64, runs: u32) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); PRESETS.len()];
    for round in 0..runs {
        for (i, preset) in PRESETS.iter().enumerate() {
            let f = one_run(dir.path(), size, fps, seconds, preset)?;
            say!(
                "bench encoder: round {} {preset}: {} encoded, {} dropped, {} steps",
                round + 1,
                f["frames"],
                f["frames_dropped"],
                f["preset_steps"]
            );
            rounds[i].push(f);
        }
    }
    let mut report = Report::new("encoder");
    for (preset, r) in PRESETS.iter().zip(&rounds) {
        let case = format!("{}x{}@{fps}/{preset}", size.width, size.height);
        report.rows.push(aggregate(&case, "x264", r, COLUMNS));
    }
    Ok(report)
}

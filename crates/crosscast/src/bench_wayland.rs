//! `crosscast bench wayland`: a real Wayland game, glmark2 (`glmark2-es2-wayland`, Mesa's
//! llvmpipe), streamed by `crosscast live` against the same glmark2 under weston's headless
//! backend, the reference compositor that streams nothing. The two alternate in each round
//! (crosscast, weston, crosscast, weston, …) with the same glmark2 arguments: one fixed scene
//! (`build`) for `--seconds`, at the stream's size, not waiting for vsync (its default on
//! Wayland).
//!
//! A third run per round streams glmark2 with `--sandbox off`, as it runs under weston, so that
//! the sandbox's share of any difference shows apart from the compositor's and the encoder's.
//!
//! Per run: glmark2's own `FPS` and CPU per frame (its `--results fps:cpu`); the compositor's
//! CPU (crosscast: the host's own user+sys, which it prints at exit, over its frames out;
//! weston: `getrusage(RUSAGE_CHILDREN)` around it, over its 60 Hz headless repaints, composing
//! with pixman and encoding nothing); for crosscast, the delay from each shown frame's commit to
//! the output clock taking it (the host's `frame handoff` line: p50 and p99 are upper bounds of
//! its histogram's power-of-two buckets, mean and max exact) and how many of glmark2's
//! commits the 60 fps clock showed. Figures are medians with their range over the rounds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crosscast_bench::stats::Report;

use crate::cli::Size;
use crate::pipeline::{aggregate, children_cpu, line_with, number_after, Figures};

/// The game, and the Debian package that has it.
const GLMARK2: (&str, &str) = ("glmark2-es2-wayland", "glmark2-es2-wayland");
/// The reference compositor, and the Debian package that has it.
const WESTON: (&str, &str) = ("weston", "weston");
/// Weston's headless output repaints at most this often (its fixed 60 Hz mode).
const WESTON_HZ: f64 = 60.0;

/// Columns of the report, in table order.
const COLUMNS: &[&str] = &[
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

/// The report's columns, for the table on stdout.
pub(crate) fn columns() -> Vec<&'static str> {
    COLUMNS.to_vec()
}

/// `program` on `PATH`, or an error naming the Debian package to install.
fn find_tool((program, package): (&str, &str)) -> anyhow::Result<PathBuf> {
    crate::pipeline::find_tool("bench wayland", program, package)
}

/// glmark2's arguments, the same under both compositors.
fn glmark2_args(seconds: f64, size: Size) -> Vec<String> {
    vec![
        "-b".into(),
        format!("build:duration={seconds:.1}"),
        "--size".into(),
        size.to_string(),
        // Its own CPU time per frame beside the FPS, to see the game's share of the machine.
        "--results".into(),
        "fps:cpu".into(),
    ]
}

/// glmark2's figures from its output (possibly prefixed by crosscast's `[out]` forwarding):
/// `FPS: N FrameTime: … (User: U ms, System: S ms)` → (fps, cpu ms per frame).
fn glmark2_figures(output: &str) -> anyhow::Result<(f64, f64)> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains(" FPS: "))
        .with_context(|| format!("glmark2 printed no FPS line:\n{output}"))?;
    let get = |key: &str| {
        number_after(line, key).with_context(|| format!("no '{key}' figure in: {line}"))
    };
    let fps = get(" FPS: ")?;
    let cpu = get("(User: ")? + get(", System: ")?;
    if fps <= 0.0 {
        bail!("glmark2 drew nothing: {line}");
    }
    Ok((fps, cpu))
}

/// How a crosscast run is set up: the game's sandbox (`strict`, live's default, or `off`) and
/// whether the host encodes (a recording, what a user runs) or only composes (`--no-encode`:
/// the compositor's and output clock's own cost, the encoder's left out).
#[derive(Clone, Copy)]
struct Setup {
    sandbox: &'static str,
    encode: bool,
}

/// One run of glmark2 under `crosscast live`.
fn crosscast_run(
    setup: Setup,
    glmark2: &Path,
    seconds: f64,
    size: Size,
    dir: &Path,
) -> anyhow::Result<Figures> {
    let file = dir.join("wayland.flv");
    let _ = std::fs::remove_file(&file);
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let started = Instant::now();
    // No --seconds: the host exits with the game, when glmark2 has run its scene.
    let mut cmd = Command::new(exe);
    cmd.args(["live", "--size", &size.to_string(), "--preview", "none"])
        .args(["--sandbox", setup.sandbox]);
    if setup.encode {
        cmd.arg("--out").arg(&file);
    } else {
        cmd.arg("--no-encode");
    }
    let out = cmd
        .arg("--")
        .arg(glmark2)
        .args(glmark2_args(seconds, size))
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run crosscast live")?;
    let wall = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("crosscast live -- glmark2 failed ({}):\n{err}", out.status);
    }
    let (fps, game_cpu) = glmark2_figures(&err)?;
    let get = |prefix: &str, key: &str| -> anyhow::Result<f64> {
        let line = line_with(&err, prefix)?;
        number_after(line, key).with_context(|| format!("no '{key}' figure in: {line}"))
    };
    let done = "crosscast: done: ";
    let duration = get(done, done)?;
    let frames_out = get(done, " s, ")?;
    let commits = get(done, "frames queued ")?;
    let shown = get(done, " acquired ")?;
    let handoff = "crosscast: frame handoff";
    let host_cpu = get("crosscast: host cpu ", "crosscast: host cpu ")?;
    Ok(Figures::from([
        ("frames", frames_out),
        ("game_fps", fps),
        ("game_cpu_ms_per_frame", game_cpu),
        (
            "host_cpu_ms_per_frame",
            host_cpu * 1e3 / frames_out.max(1.0),
        ),
        ("host_cpu_core_pct", host_cpu / wall * 100.0),
        ("handoff_p50_ms", get(handoff, " p50 ")?),
        ("handoff_p99_ms", get(handoff, " p99 ")?),
        ("handoff_avg_ms", get(handoff, " avg ")?),
        ("handoff_max_ms", get(handoff, " max ")?),
        ("output_fps", frames_out / duration.max(1e-9)),
        ("commits", commits),
        ("commits_shown", shown),
        ("commits_shown_share", shown / commits.max(1.0)),
    ]))
}

/// Kills and reaps weston on every path out of a weston run.
struct Weston(Child);

impl Drop for Weston {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One run of glmark2 under weston's headless backend (pixman renderer, kiosk shell).
fn weston_run(
    weston: &Path,
    glmark2: &Path,
    seconds: f64,
    size: Size,
    dir: &Path,
    round: u32,
) -> anyhow::Result<Figures> {
    use std::os::unix::fs::PermissionsExt;
    let runtime = dir.join(format!("xdg-{round}"));
    std::fs::create_dir_all(&runtime)?;
    // Wayland clients refuse a runtime dir others can read.
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))?;
    let socket = format!("crosscast-bench-{}-{round}", std::process::id());
    let log = dir.join(format!("weston-{round}.log"));
    let started = Instant::now();
    let mut server = Weston(
        Command::new(weston)
            .arg("--backend=headless-backend.so")
            // The default headless renderer draws nothing; pixman composes each repaint on
            // the CPU, reading the client's buffer as crosscast's output clock does.
            .arg("--use-pixman")
            .arg("--shell=kiosk-shell.so")
            .arg("--no-config")
            .arg(format!("--width={}", size.width))
            .arg(format!("--height={}", size.height))
            .arg(format!("--socket={socket}"))
            .arg(format!("--log={}", log.display()))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DISPLAY")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start weston")?,
    );
    let until = Instant::now() + Duration::from_secs(10);
    while !runtime.join(&socket).exists() {
        if let Some(status) = server.0.try_wait()? {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("weston exited at start ({status}):\n{log}");
        }
        if Instant::now() > until {
            bail!("weston's socket did not appear within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(glmark2)
        .args(glmark2_args(seconds, size))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("WAYLAND_DISPLAY", &socket)
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .env_remove("DISPLAY")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run glmark2")?;
    // glmark2 is reaped: what children_cpu gains from here on is weston's alone.
    let cpu_with_glmark2 = children_cpu()?;
    crosscast_ipc::os::process::terminate(&server.0);
    let status = server.0.wait()?;
    let wall = started.elapsed().as_secs_f64();
    let weston_cpu = children_cpu()? - cpu_with_glmark2;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("glmark2 under weston failed ({}):\n{text}", out.status);
    }
    log::debug!("weston exited: {status}");
    let (fps, game_cpu) = glmark2_figures(&text)?;
    // Weston repaints at most at its output's 60 Hz, and glmark2 damages every frame.
    Ok(Figures::from([
        ("game_fps", fps),
        ("game_cpu_ms_per_frame", game_cpu),
        (
            "host_cpu_ms_per_frame",
            weston_cpu * 1e3 / (wall * WESTON_HZ),
        ),
        ("host_cpu_core_pct", weston_cpu / wall * 100.0),
    ]))
}

/// Runs `runs` rounds of crosscast then weston, glmark2 for `seconds` at `size` in each.
pub(crate) fn wayland(seconds: f64, runs: u32, size: Size) -> anyhow::Result<Report> {
    let glmark2 = find_tool(GLMARK2)?;
    let weston = find_tool(WESTON)?;
    let dir = std::env::temp_dir().join(format!("crosscast-bench-wayland-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<Report> {
        let (mut ours, mut theirs, mut unsandboxed, mut bare) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let strict = Setup {
            sandbox: "strict",
            encode: true,
        };
        for r in 1..=runs {
            let round = format!("bench wayland: {size}: round {r}/{runs}:");
            say!("{round} crosscast live -- glmark2 ...");
            let mut c = crosscast_run(strict, &glmark2, seconds, size, &dir)?;
            say!("{round} weston (headless) + glmark2 ...");
            let w = weston_run(&weston, &glmark2, seconds, size, &dir, r)?;
            // glmark2 is not sandboxed under weston: this run tells the sandbox's share of
            // the difference from the compositor's and encoder's.
            say!("{round} crosscast live --sandbox off -- glmark2 ...");
            let off = Setup {
                sandbox: "off",
                ..strict
            };
            let mut u = crosscast_run(off, &glmark2, seconds, size, &dir)?;
            // Nothing encoded: what the compositor itself costs the game, beside what a
            // streamer sees.
            say!("{round} crosscast live --no-encode -- glmark2 ...");
            let no_encode = Setup {
                encode: false,
                ..strict
            };
            let mut b = crosscast_run(no_encode, &glmark2, seconds, size, &dir)?;
            // The ratios within the round, so that all runs saw the same machine.
            for f in [&mut c, &mut u, &mut b] {
                if let (Some(a), Some(b)) = (f.get("game_fps"), w.get("game_fps")) {
                    f.insert("fps_ratio_to_weston", a / b);
                }
            }
            ours.push(c);
            theirs.push(w);
            unsandboxed.push(u);
            bare.push(b);
        }
        let case = format!("glmark2-build-{size}");
        let mut report = Report::new("wayland");
        report.rows.push(
            aggregate(&case, "crosscast", &ours, COLUMNS)
                .with_extra("note", "host CPU: crosscast's own, encoding x264 to a file"),
        );
        report.rows.push(aggregate(&case, "weston-headless", &theirs, COLUMNS).with_extra(
            "note",
            "host CPU: weston's own, pixman composition only, nothing encoded; per 60 Hz repaint",
        ));
        report.rows.push(
            aggregate(&case, "crosscast-sandbox-off", &unsandboxed, COLUMNS).with_extra(
                "note",
                "as crosscast, the game unsandboxed (as under weston): the sandbox's share",
            ),
        );
        report.rows.push(
            aggregate(&case, "crosscast-no-encode", &bare, COLUMNS).with_extra(
                "note",
                "as crosscast, nothing encoded: the compositor's and output clock's own share",
            ),
        );
        Ok(report)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_glmark2_figures_plain_and_forwarded() {
        let plain = "[build] duration=3.0: FPS: 422 FrameTime: 2.375 ms (User: 1.382 ms, \
                     System: 0.222 ms) CpuBusy: 99%\n";
        let (fps, cpu) = glmark2_figures(plain).unwrap();
        assert_eq!(fps, 422.0);
        assert!((cpu - 1.604).abs() < 1e-9);
        let forwarded = format!("glmark2-es2-wayland[out]: {plain}");
        assert_eq!(glmark2_figures(&forwarded).unwrap().0, 422.0);
        assert!(glmark2_figures("glmark2 Score: 0\n").is_err());
    }

    #[test]
    fn a_missing_tool_names_its_debian_package() {
        let e = find_tool(("no-such-tool-here", "some-package")).unwrap_err();
        assert!(
            e.to_string().contains("apt-get install some-package"),
            "{e}"
        );
    }
}

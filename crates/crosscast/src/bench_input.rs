//! `crosscast bench input`: input-to-stream latency, the time from a key event injected at the
//! preview window to the first encoded frame that shows the game's reaction.
//!
//! Each run starts its own Xvfb, runs `crosscast live` with the preview window on it and
//! `--frame-times` (when each video frame left the encoder, CLOCK_MONOTONIC), focuses the
//! window, and presses and releases a key through XTEST at random intervals, stamping
//! CLOCK_MONOTONIC just before each event goes to the X server. The game reacts to a held key
//! with a white 32x32 square in its top-left corner: the demo game on crosscast's protocol
//! (`native`), or `crosscast-input-probe`, a minimal `wl_shm` client, through the compositor
//! (`wayland`). The recording is decoded afterwards: for each press, the first frame with the
//! square whose packet left the encoder after the press gives the latency (and for each
//! release, the first frame without it); beside it, the time until the output clock handed
//! that frame to the encoder (the latency without the encode). Figures are per run (p50, p99, max over the presses),
//! then the median and range over the runs, which alternate native, wayland, native, …

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crosscast_bench::stats::{percentile_sorted, Report};
use crosscast_wire::FrameRate;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::xtest::ConnectionExt as _;

use crate::cli::Size;
use crate::pipeline::{aggregate, Figures};

/// Columns of the report, in table order.
const COLUMNS: &[&str] = &[
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

/// The report's columns, for the table on stdout.
pub(crate) fn columns() -> Vec<&'static str> {
    COLUMNS.to_vec()
}

/// The X keycode pressed: `a` (evdev 30 + 8) in Xvfb's default keymap. Neither game does
/// anything with it but show the marker.
const KEYCODE: u8 = 38;
/// The marker's corner, in stream pixels.
const MARKER: u32 = 32;
/// Mean luma above which the corner shows the marker (it is white; the games keep the corner
/// below 100 otherwise).
const MARKER_ON: f64 = 180.0;
/// How long a key stays down.
const HOLD: Duration = Duration::from_millis(150);

/// Which path a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path_ {
    /// The demo game on crosscast's protocol.
    Native,
    /// `crosscast-input-probe` through the compositor.
    Wayland,
}

impl Path_ {
    fn name(self) -> &'static str {
        match self {
            Path_::Native => "native",
            Path_::Wayland => "wayland",
        }
    }
}

/// A child process killed (and reaped) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(program: &str, package: &str) -> anyhow::Result<PathBuf> {
    crate::pipeline::find_tool("bench input", program, package)
}

/// The probe client: beside this executable (a cargo build puts both in one directory), else
/// on `PATH`.
fn probe_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("crosscast-input-probe");
    if beside.is_file() {
        return Ok(beside);
    }
    tool("crosscast-input-probe", "(cargo build -p crosscast-bench)")
}

/// Starts Xvfb on a display it picks itself (`-displayfd`: it writes the number once it
/// accepts connections, so there is no race with other servers or with its own start-up).
fn xvfb() -> anyhow::Result<(Reaped, String)> {
    let xvfb = tool("Xvfb", "xvfb")?;
    let mut child = Reaped(
        Command::new(&xvfb)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1920x1080x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb")?,
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().context("Xvfb stdout")?).read_line(&mut line)?;
    let n: u32 = line
        .trim()
        .parse()
        .with_context(|| format!("Xvfb did not say its display (it wrote {line:?})"))?;
    Ok((child, format!(":{n}")))
}

/// The window titled `title` on `display`, waiting up to `limit` (and failing at once if
/// `host` exits first).
fn find_window(
    display: &str,
    title: &str,
    limit: Duration,
    host: &mut Reaped,
) -> anyhow::Result<String> {
    let xdotool = tool("xdotool", "xdotool")?;
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = host.0.try_wait()? {
            bail!("crosscast live exited ({status}) before its window appeared");
        }
        let out = Command::new(&xdotool)
            .args(["search", "--name", title])
            .env("DISPLAY", display)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(id) = text.lines().next() {
            return Ok(id.trim().to_string());
        }
        if Instant::now() > until {
            bail!("no window titled {title:?} on {display} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn xdotool(display: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(tool("xdotool", "xdotool")?)
        .args(args)
        .env("DISPLAY", display)
        .status()?;
    if !status.success() {
        bail!("xdotool {args:?} failed: {status}");
    }
    Ok(())
}

/// A tiny deterministic generator for the gaps between presses (no dependency for 60 numbers).
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo + 1)
    }
}

/// Presses and releases the key `presses` times; returns the (press, release) stamps.
fn inject(display: &str, presses: u32, seed: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    let (conn, screen) = x11rb::connect(Some(display)).context("connecting to Xvfb")?;
    conn.extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)?
        .context("Xvfb has no XTEST extension")?;
    let root = conn.setup().roots[screen].root;
    let mut rng = Lcg(seed);
    let mut stamps = Vec::new();
    let send = |kind: u8| -> anyhow::Result<u64> {
        let t = crosscast_ipc::monotonic_ns();
        conn.xtest_fake_input(kind, KEYCODE, x11rb::CURRENT_TIME, root, 0, 0, 0)?;
        // A round trip: the server has the event queued before we go on.
        conn.get_input_focus()?.reply()?;
        Ok(t)
    };
    for _ in 0..presses {
        std::thread::sleep(Duration::from_millis(rng.next_ms(200, 400)));
        let down = send(x11rb::protocol::xproto::KEY_PRESS_EVENT)?;
        std::thread::sleep(HOLD);
        let up = send(x11rb::protocol::xproto::KEY_RELEASE_EVENT)?;
        stamps.push((down, up));
    }
    conn.flush()?;
    Ok(stamps)
}

/// Mean luma of the marker corner in every frame of `recording`, in decode order.
fn corner_levels(recording: &Path) -> anyhow::Result<Vec<f64>> {
    let ffmpeg = tool("ffmpeg", "ffmpeg")?;
    let mut child = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(recording)
        .args([
            "-vf",
            &format!("crop={MARKER}:{MARKER}:0:0"),
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting ffmpeg")?;
    let mut raw = Vec::new();
    child
        .stdout
        .take()
        .context("ffmpeg stdout")?
        .read_to_end(&mut raw)?;
    if !child.wait()?.success() {
        bail!("ffmpeg could not decode {}", recording.display());
    }
    let n = (MARKER * MARKER) as usize;
    Ok(raw
        .chunks_exact(n)
        .map(|c| c.iter().map(|&p| f64::from(p)).sum::<f64>() / n as f64)
        .collect())
}

/// `--frame-times` lines, in encode order: when each frame left the encoder, and when the
/// output clock handed it over (0 for a repeat).
fn frame_times(path: &Path) -> anyhow::Result<Vec<(u64, u64)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading frame times {}", path.display()))?;
    text.lines()
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(str::parse)
                .collect::<Result<_, _>>()
                .with_context(|| format!("bad frame-times line {l:?}"))?;
            match v[..] {
                [encoded, handed, _taken] => Ok((encoded, handed)),
                _ => bail!("bad frame-times line {l:?}"),
            }
        })
        .collect()
}

/// The latency of each transition: the first frame at or after `t` (by when it left the
/// encoder) whose marker state is `on`; `None` when none came within `limit`.
fn reaction(times: &[u64], on: &[bool], t: u64, want: bool, limit: u64) -> Option<u64> {
    times
        .iter()
        .zip(on)
        .find(|(&ft, &o)| ft >= t && o == want)
        .map(|(&ft, _)| ft - t)
        .filter(|&d| d <= limit)
}

/// One run of `path`: returns its figures.
fn run_once(
    path: Path_,
    presses: u32,
    size: Size,
    fps: FrameRate,
    probe: &Path,
    dir: &Path,
    seed: u64,
) -> anyhow::Result<Figures> {
    let (_x, display) = xvfb()?;
    let rec = dir.join(format!("input-{}.mp4", path.name()));
    let times_file = dir.join(format!("input-{}.times", path.name()));
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    // Long enough for start-up, the presses (at most 550 ms each) and a margin; the host
    // stops itself, which finishes the recording.
    let seconds = 6.0 + f64::from(presses) * 0.6;
    let mut cmd = Command::new(exe);
    cmd.args(["live", "--preview", "window", "--size", &size.to_string()])
        .args([
            "--fps",
            &fps.to_string(),
            "--seconds",
            &format!("{seconds:.1}"),
        ])
        .arg("--out")
        .arg(&rec)
        .arg("--frame-times")
        .arg(&times_file)
        .env("DISPLAY", &display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if path == Path_::Wayland {
        cmd.arg("--").arg(probe);
    }
    let mut host = Reaped(cmd.spawn().context("starting crosscast live")?);
    // Keep the host's log for errors, without letting its pipe fill.
    let stderr = host.0.stderr.take().context("host stderr")?;
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let win = match find_window(
        &display,
        "crosscast preview",
        Duration::from_secs(30),
        &mut host,
    ) {
        Ok(w) => w,
        Err(e) => {
            drop(host);
            let log = log.join().unwrap_or_default().join("\n");
            return Err(e.context(format!("host log:\n{log}")));
        }
    };
    xdotool(&display, &["windowfocus", "--sync", &win])?;
    // The game streams within a few seconds of the window; presses before that would find no
    // game (the summary counts them as unrouted).
    std::thread::sleep(Duration::from_secs(4));
    let stamps = inject(&display, presses, seed)?;
    let status = host.0.wait()?;
    let log = log.join().unwrap_or_default().join("\n");
    if !status.success() {
        bail!("crosscast live failed ({status}):\n{log}");
    }
    let levels = corner_levels(&rec)?;
    let times = frame_times(&times_file)?;
    if levels.len() != times.len() {
        bail!(
            "{} decoded frames but {} frame times",
            levels.len(),
            times.len()
        );
    }
    let on: Vec<bool> = levels.iter().map(|&l| l > MARKER_ON).collect();
    let (times, handed): (Vec<u64>, Vec<u64>) = times.into_iter().unzip();
    let limit = 500_000_000;
    let (mut down, mut up, mut clock, mut missed) = (Vec::new(), Vec::new(), Vec::new(), 0u64);
    for &(d, u) in &stamps {
        match reaction(&times, &on, d, true, limit) {
            Some(l) => {
                down.push(l);
                // The same frame, when the output clock handed it to the encoder: the latency
                // without the encode (what a local recording's viewer would not see sooner).
                let i = times.iter().position(|&t| t == d + l).unwrap_or(0);
                if handed[i] >= d {
                    clock.push(handed[i] - d);
                }
            }
            None => missed += 1,
        }
        if let Some(l) = reaction(&times, &on, u, false, limit) {
            up.push(l);
        }
    }
    if down.is_empty() {
        bail!("the game never showed the key marker; host log:\n{log}");
    }
    down.sort_unstable();
    up.sort_unstable();
    clock.sort_unstable();
    let period_ms = 1000.0 / fps.as_f64();
    let ms = |v: u64| v as f64 / 1e6;
    let mut f = Figures::new();
    f.insert("frames", times.len() as f64);
    f.insert("press_p50_ms", ms(percentile_sorted(&down, 50.0)));
    f.insert("press_p99_ms", ms(percentile_sorted(&down, 99.0)));
    f.insert("press_max_ms", ms(*down.last().unwrap_or(&0)));
    f.insert(
        "press_p50_frames",
        ms(percentile_sorted(&down, 50.0)) / period_ms,
    );
    f.insert(
        "press_p99_frames",
        ms(percentile_sorted(&down, 99.0)) / period_ms,
    );
    f.insert("release_p50_ms", ms(percentile_sorted(&up, 50.0)));
    f.insert("release_p99_ms", ms(percentile_sorted(&up, 99.0)));
    f.insert("to_clock_p50_ms", ms(percentile_sorted(&clock, 50.0)));
    f.insert("to_clock_p99_ms", ms(percentile_sorted(&clock, 99.0)));
    f.insert("presses", stamps.len() as f64);
    f.insert("missed", missed as f64);
    Ok(f)
}

/// Runs `runs` rounds of both paths and reports the median and range of each figure.
pub(crate) fn input(
    runs: u32,
    presses: u32,
    size: Size,
    fps: FrameRate,
    probe: Option<&Path>,
) -> anyhow::Result<Report> {
    let probe = probe_path(probe)?;
    let dir = tempfile::tempdir()?;
    let mut figures: [(Path_, Vec<Figures>); 2] =
        [(Path_::Native, Vec::new()), (Path_::Wayland, Vec::new())];
    for round in 0..runs {
        for (path, rounds) in &mut figures {
            say!(
                "bench input: round {}/{runs}, {} path, {presses} presses",
                round + 1,
                path.name()
            );
            let f = run_once(
                *path,
                presses,
                size,
                fps,
                &probe,
                dir.path(),
                u64::from(round) + 1,
            )?;
            say!(
                "bench input:   press p50 {:.1} ms, p99 {:.1} ms; {} missed",
                f["press_p50_ms"],
                f["press_p99_ms"],
                f["missed"]
            );
            rounds.push(f);
        }
    }
    let mut report = Report::new("input");
    for (path, rounds) in &figures {
        report.rows.push(aggregate(
            path.name(),
            &format!("{size}@{fps}"),
            rounds,
            COLUMNS,
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaction_is_the_first_matching_frame_after_the_event() {
        let times = [10, 20, 30, 40, 50];
        let on = [false, false, true, true, false];
        assert_eq!(reaction(&times, &on, 15, true, 100), Some(15));
        assert_eq!(reaction(&times, &on, 31, true, 100), Some(9));
        assert_eq!(reaction(&times, &on, 35, false, 100), Some(15));
        assert_eq!(reaction(&times, &on, 41, true, 100), None);
        assert_eq!(reaction(&times, &on, 15, true, 10), None);
    }
}

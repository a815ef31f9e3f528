//! Helpers for tests that run the real `crosscast` binary as separate processes.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_crosscast")
}

/// A fresh, world-traversable temp dir (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(
            // Only characters no tool quotes (pkg-config escapes braces, shells spaces).
            format!(
                "crosscast-test-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
        );
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `crosscast ARGS` to completion, killing it after `limit` (a watchdog, not an assertion).
pub fn run(args: &[&str], dir: &Path, limit: Duration) -> Output {
    let child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crosscast");
    wait_with_watchdog(child, limit)
}

/// Starts `crosscast ARGS` in `dir` in the background, stderr captured for the summary.
pub fn spawn(args: &[&str], dir: &Path) -> Child {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crosscast")
}

pub fn wait_with_watchdog(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let watchdog = std::thread::spawn(move || {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if d.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().expect("wait");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watchdog.join();
    out
}

/// The number after the first `label` on the host's closing summary line (or anywhere in the
/// output when that line lacks it), e.g. `stat(&err, "stamps ok")`.
pub fn stat(text: &str, label: &str) -> u64 {
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("crosscast: done:"))
        .unwrap_or("");
    let (hay, at) = match summary.find(label) {
        Some(at) => (summary, at),
        None => (
            text,
            text.find(label)
                .unwrap_or_else(|| panic!("'{label}' not in output:\n{text}")),
        ),
    };
    hay[at + label.len()..]
        .trim_start_matches([' ', '='])
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after '{label}' in:\n{text}"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs ffprobe and returns its JSON output.
pub fn ffprobe(path: &Path, extra: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .args(extra)
        .arg(path)
        .output()
        .expect("ffprobe must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number that ends right before `label` in `line` (`"35 frames out"` → 35).
fn number_before(line: &str, label: &str) -> u64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("'{label}' not in: {line}"));
    let digits: String = line[..at]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before '{label}' in: {line}"))
}

/// The number right after `label`, searching `line` from byte `from` on; with where it ends.
fn number_after(line: &str, from: usize, label: &str) -> (u64, usize) {
    let at = from
        + line[from..]
            .find(label)
            .unwrap_or_else(|| panic!("'{label}' not in: {line}"));
    let rest = &line[at + label.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n = digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after '{label}' in: {line}"));
    (n, at + label.len() + digits.len())
}

/// Every counter of the host's closing summary (`crosscast: done: …`) and, when it encoded,
/// of its `crosscast: encoded …` line: what the tests compare against the game's own count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSummary {
    /// Output ticks (frames sent to the encoder, repeats included).
    pub frames_out: u64,
    /// Output ticks that showed no new game frame.
    pub repeated: u64,
    /// Gaps in the sequence numbers of the frames the host acquired.
    pub skipped: u64,
    /// Game sessions that streamed.
    pub sessions: u64,
    /// Frames the host's I/O thread received from the game.
    pub queued: u64,
    /// Frames the output clock took.
    pub acquired: u64,
    /// Frames a newer one replaced before they were taken (mailbox only).
    pub dropped: u64,
    /// Frames drawn for a surface configuration already replaced.
    pub stale: u64,
    /// Surface configurations sent.
    pub configs: u64,
    /// Audio blocks received.
    pub audio_blocks: u64,
    /// Audio blocks that left a gap after the one before.
    pub audio_gaps: u64,
    /// Audio blocks that overlapped the one before.
    pub audio_overlaps: u64,
    /// Audio blocks discarded behind the backlog limit.
    pub audio_dropped: u64,
    /// Fresh frames whose stamp verified.
    pub stamps_ok: u64,
    /// Fresh frames whose stamp did not verify.
    pub stamps_bad: u64,
    /// Video frames the encoder encoded, when it ran.
    pub encoded: Option<u64>,
    /// Video frames the encoder dropped (queue full), when it ran.
    pub encoder_dropped: Option<u64>,
}

impl HostSummary {
    /// Parses the host's stderr; panics (failing the test) when the summary line is missing.
    pub fn parse(text: &str) -> HostSummary {
        let l = text
            .lines()
            .rev()
            .find(|l| l.starts_with("crosscast: done:"))
            .unwrap_or_else(|| panic!("no 'crosscast: done:' summary in:\n{text}"));
        let (sessions, _) = number_after(l, 0, "game sessions ");
        let (queued, at) = number_after(l, 0, "frames queued ");
        let (acquired, at) = number_after(l, at, " acquired ");
        let (dropped, at) = number_after(l, at, " dropped ");
        let (stale, _) = number_after(l, at, " stale ");
        let (audio_blocks, at) = number_after(l, 0, "audio blocks ");
        let (audio_gaps, at) = number_after(l, at, "(gaps ");
        let (audio_overlaps, at) = number_after(l, at, "overlaps ");
        let (audio_dropped, _) = number_after(l, at, "dropped ");
        let (stamps_ok, at) = number_after(l, 0, "stamps ok ");
        let (stamps_bad, _) = number_after(l, at, " bad ");
        let enc = text
            .lines()
            .rev()
            .find(|l| l.starts_with("crosscast: encoded "));
        HostSummary {
            frames_out: number_before(l, " frames out"),
            repeated: number_before(l, " repeated"),
            skipped: number_before(l, " skipped)"),
            sessions,
            queued,
            acquired,
            dropped,
            stale,
            configs: number_after(l, 0, "configs ").0,
            audio_blocks,
            audio_gaps,
            audio_overlaps,
            audio_dropped,
            stamps_ok,
            stamps_bad,
            encoded: enc.map(|e| number_after(e, 0, "encoded ").0),
            encoder_dropped: enc.map(|e| number_after(e, 0, "video frames (").0),
        }
    }
}

/// What the game printed at exit (`game: rendered N frames in … s (… fps), skipped K, …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GameSummary {
    /// Frames the game drew and queued.
    pub rendered: u64,
    /// Frame times the game let pass without drawing (it fell behind, or had no free slot).
    pub skipped: u64,
}

impl GameSummary {
    /// Parses the game's summary line out of `text`; panics when there is none or several.
    pub fn parse(text: &str) -> GameSummary {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("game: rendered "))
            .collect();
        assert_eq!(lines.len(), 1, "one game summary expected in:\n{text}");
        GameSummary {
            rendered: number_after(lines[0], 0, "game: rendered ").0,
            skipped: number_after(lines[0], 0, ", skipped ").0,
        }
    }
}

/// The path of a program the tests run as a game (`name` on PATH, or a path), or a failure
/// naming the Debian package that has it.
pub fn find_program(name: &str, package: &str) -> String {
    let found = if name.contains('/') {
        Path::new(name).exists().then(|| name.to_string())
    } else {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.exists())
                .map(|f| f.display().to_string())
        })
    };
    found.unwrap_or_else(|| panic!("{name} not found: install the Debian package {package}"))
}

/// Mean and standard deviation of a luma frame.
pub fn luma_mean_sd(frame: &[u8]) -> (f64, f64) {
    let n = frame.len() as f64;
    let mean = frame.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = frame
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

/// `crosscast live OPTIONS… -- COMMAND…` for `seconds` at 320x240 and `fps`, encoding
/// `ultrafast` into `r.mp4` in `dir`, with no preview.
pub fn stream_command(
    dir: &Path,
    fps: &str,
    seconds: &str,
    options: &[&str],
    command: &[&str],
) -> Output {
    let mut args = vec![
        "live",
        "--seconds",
        seconds,
        "--size",
        "320x240",
        "--fps",
        fps,
        "--preset",
        "ultrafast",
        "--preview",
        "none",
        "--out",
        "r.mp4",
    ];
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(command);
    run(&args, dir, Duration::from_secs(120))
}

/// An Xvfb server on a free display number (`.1`), stopped by pid when dropped.
pub struct Xvfb(pub Child, pub String);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Xvfb {
    /// Starts Xvfb with one screen of `geometry` (e.g. `800x600x24`) on a display it picks
    /// itself (`-displayfd`: written once it accepts connections).
    pub fn start(geometry: &str) -> Xvfb {
        use std::io::BufRead;
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", geometry, "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is needed for the window tests (Debian package xvfb; scripts/test.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not say its display: {line:?}"));
        Xvfb(child, format!(":{n}"))
    }
}

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
            format!(
                "crosscast-test-{tag}-{}-{:?}",
                std::process::id(),
                Instant::now()
            )
            .replace([' ', ':', '.'], ""),
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

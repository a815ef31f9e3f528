//! `crosscast bench pipeline`: what streaming costs, crosscast against the pipeline a user would
//! build instead (the same game writing raw RGBA into `ffmpeg -f rawvideo … -c:v libx264 -f flv`),
//! same size, rate, duration, bitrate and preset, run one after the other in one invocation.
//!
//! CPU is user+system time from `getrusage(RUSAGE_CHILDREN)` around each waited-for process
//! tree; the game reports its own CPU, which is subtracted from the host's tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use crosscast_bench::stats::{Report, Row};
use crosscast_ipc::os::process::{resource_usage, UsageOf};

fn children_cpu() -> anyhow::Result<f64> {
    let u = resource_usage(UsageOf::Children)?;
    Ok((u.user_ns + u.system_ns) as f64 / 1e9)
}

/// Numbers the game prints at exit: (rendered frames, seconds, cpu seconds).
fn game_line(stderr: &str) -> anyhow::Result<(f64, f64, f64)> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("game: rendered"))
        .with_context(|| format!("the game printed no summary:\n{stderr}"))?;
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse().ok())
        .collect();
    // rendered N frames in S s (F fps), skipped K, cpu C s
    match nums.as_slice() {
        [rendered, secs, _fps, _skipped, cpu, ..] => Ok((*rendered, *secs, *cpu)),
        _ => bail!("cannot read the game summary: {line}"),
    }
}

fn frames_in(path: &Path) -> anyhow::Result<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .context("ffprobe is needed to count the frames written (apt-get install ffmpeg)")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("ffprobe could not count frames in {}", path.display()))
}

struct Case {
    width: u32,
    height: u32,
    fps: u32,
    seconds: f64,
    bitrate: u32,
    preset: &'static str,
}

struct Measured {
    streamer_cpu: f64,
    game_cpu: f64,
    frames: f64,
    game_fps: f64,
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find our own executable")
}

fn game_alone(c: &Case, dir: &Path) -> anyhow::Result<f64> {
    let out = Command::new(exe()?)
        .args([
            "game",
            "--raw-out",
            "/dev/null",
            "--size",
            &format!("{}x{}", c.width, c.height),
        ])
        .args([
            "--fps",
            &c.fps.to_string(),
            "--seconds",
            &c.seconds.to_string(),
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let (rendered, secs, _) = game_line(&err)?;
    Ok(rendered / secs)
}

fn crosscast_run(c: &Case, dir: &Path, nice: Option<i32>) -> anyhow::Result<Measured> {
    let file = dir.join("crosscast.flv");
    let _ = std::fs::remove_file(&file);
    let before = children_cpu()?;
    let mut cmd = Command::new(exe()?);
    cmd.args([
        "live",
        "--seconds",
        &c.seconds.to_string(),
        "--size",
        &format!("{}x{}", c.width, c.height),
    ])
    .args([
        "--fps",
        &c.fps.to_string(),
        "--bitrate",
        &c.bitrate.to_string(),
        "--preset",
        c.preset,
    ])
    .args(["--pattern", "aquarium", "--no-restart", "--out"])
    .arg(&file);
    if let Some(n) = nice {
        cmd.args(["--encoder-nice", &n.to_string()]);
    }
    let out = cmd.current_dir(dir).stdin(Stdio::null()).output()?;
    let total = children_cpu()? - before;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("crosscast live failed:\n{err}");
    }
    let (rendered, secs, game_cpu) = game_line(&err)?;
    Ok(Measured {
        streamer_cpu: total - game_cpu,
        game_cpu,
        frames: frames_in(&file)?,
        game_fps: rendered / secs,
    })
}

fn ffmpeg_run(c: &Case, dir: &Path) -> anyhow::Result<Measured> {
    let file = dir.join("ffmpeg.flv");
    // Named pipes for both streams, so that the game closing its end is an end of file for
    // ffmpeg (a process's stdout cannot be closed early from safe Rust).
    let audio = dir.join("audio.fifo");
    let video = dir.join("video.fifo");
    let _ = std::fs::remove_file(&file);
    for f in [&audio, &video] {
        let _ = std::fs::remove_file(f);
        if !Command::new("mkfifo")
            .arg(f)
            .status()
            .context("mkfifo")?
            .success()
        {
            bail!("mkfifo {} failed", f.display());
        }
    }
    let size = format!("{}x{}", c.width, c.height);
    let (fps, gop, b) = (
        c.fps.to_string(),
        (c.fps * 2).to_string(),
        format!("{}k", c.bitrate),
    );
    let before = children_cpu()?;
    let ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba",
            "-s",
            &size,
            "-framerate",
            &fps,
            "-i",
        ])
        .arg(&video)
        .args(["-f", "s16le", "-ar", "48000", "-ac", "2", "-i"])
        .arg(&audio)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            c.preset,
            "-tune",
            "zerolatency",
        ])
        .args([
            "-b:v", &b, "-maxrate", &b, "-bufsize", &b, "-g", &gop, "-bf", "0",
        ])
        .args(["-c:a", "aac", "-b:a", "160k", "-f", "flv"])
        .arg(&file)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("ffmpeg is needed for the baseline (apt-get install ffmpeg)")?;
    let game = Command::new(exe()?)
        .args([
            "game",
            "--size",
            &size,
            "--fps",
            &fps,
            "--seconds",
            &c.seconds.to_string(),
        ])
        .arg("--raw-out")
        .arg(&video)
        .arg("--raw-audio-out")
        .arg(&audio)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let ff = ffmpeg.wait_with_output()?;
    let ffmpeg_cpu = children_cpu()? - before;
    let game = game.wait_with_output()?;
    let err = String::from_utf8_lossy(&game.stderr);
    let _ = std::fs::remove_file(&audio);
    let _ = std::fs::remove_file(&video);
    if !ff.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&ff.stderr));
    }
    let (rendered, secs, game_cpu) = game_line(&err)?;
    Ok(Measured {
        streamer_cpu: ffmpeg_cpu,
        game_cpu,
        frames: frames_in(&file)?,
        game_fps: rendered / secs,
    })
}

/// Two busy loops for the length of a run: the contention the article's encoder starved under.
struct Hogs(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Hogs {
    fn start() -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Hogs(stop, threads)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

fn row(case: &str, transport: &str, m: &Measured, c: &Case) -> Row {
    Row::without_delays(case)
        .with_transport(transport)
        .with_extra("frames", m.frames)
        .with_extra(
            "streamer_cpu_ms_per_frame",
            m.streamer_cpu * 1000.0 / m.frames.max(1.0),
        )
        .with_extra(
            "game_cpu_ms_per_frame",
            m.game_cpu * 1000.0 / m.frames.max(1.0),
        )
        .with_extra("output_fps", m.frames / c.seconds)
        .with_extra("game_fps", m.game_fps)
}

pub(crate) fn pipeline(seconds: f64) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("crosscast-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut report = Report::new("pipeline");
    for (width, height, fps) in [(1280, 720, 60), (1920, 1080, 30)] {
        let c = Case {
            width,
            height,
            fps,
            seconds,
            bitrate: crosscast_media::EncoderConfig::default_bitrate_kbps(width, height),
            preset: "ultrafast",
        };
        let case = format!("{width}x{height}@{fps}");
        eprintln!("bench pipeline: {case}: game alone ...");
        let off = game_alone(&c, &dir)?;
        eprintln!("bench pipeline: {case}: crosscast ...");
        let cc = crosscast_run(&c, &dir, None)?;
        eprintln!("bench pipeline: {case}: ffmpeg pipe ...");
        let ff = ffmpeg_run(&c, &dir)?;
        eprintln!("bench pipeline: {case}: crosscast with 2 CPU hogs ...");
        let hogged = {
            let _hogs = Hogs::start();
            crosscast_run(&c, &dir, None)?
        };
        eprintln!("bench pipeline: {case}: crosscast with 2 CPU hogs, --encoder-nice -10 ...");
        let hogged_nice = {
            let _hogs = Hogs::start();
            crosscast_run(&c, &dir, Some(-10))?
        };
        let ratio = (cc.streamer_cpu / cc.frames) / (ff.streamer_cpu / ff.frames);
        report.rows.push(
            row(&case, "crosscast", &cc, &c)
                .with_extra("ratio", ratio)
                .with_extra("game_fps_off", off)
                .with_extra("game_fps_loss", 1.0 - cc.game_fps / off),
        );
        report.rows.push(
            row(&case, "ffmpeg-pipe", &ff, &c)
                .with_extra("game_fps_off", off)
                .with_extra("game_fps_loss", 1.0 - ff.game_fps / off),
        );
        report.rows.push(row(&case, "crosscast+2hogs", &hogged, &c));
        report
            .rows
            .push(row(&case, "crosscast+2hogs,nice-10", &hogged_nice, &c));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// `bench preview`: the game's own frame rate while the streamer's comments flood in, against
/// the same run without comments. The overlay lives in the host, so the game should not notice.
pub(crate) fn preview(seconds: f64) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("crosscast-bench-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let comments = dir.join("comments.jsonl");
    std::fs::write(&comments, b"")?;
    let mut report = Report::new("preview");
    let mut fps = Vec::new();
    for flood in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = flood.then(|| {
            let (stop, path) = (stop.clone(), comments.clone());
            std::thread::spawn(move || -> std::io::Result<u64> {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // 2000 comments a second, 100 times the feed's accepted rate.
                    for _ in 0..20 {
                        writeln!(f, "{{\"user\":\"viewer{n}\",\"text\":\"flood {n} 弹幕 — only the streamer sees this\"}}")?;
                        n += 1;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(n)
            })
        });
        let out = Command::new(exe()?)
            .args([
                "live",
                "--no-encode",
                "--seconds",
                &seconds.to_string(),
                "--preview",
            ])
            .arg(format!(
                "png:{}",
                dir.join(if flood { "flood" } else { "quiet" }).display()
            ))
            .args(["--comments"])
            .arg(&comments)
            .stdin(Stdio::null())
            .output()?;
        stop.store(true, Ordering::Relaxed);
        let sent = writer
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("writer panicked")))
            .transpose()?
            .transpose()?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("crosscast live failed:\n{err}");
        }
        let (rendered, secs, cpu) = game_line(&err)?;
        fps.push(rendered / secs);
        report.rows.push(
            Row::without_delays(if flood {
                "comments-flood"
            } else {
                "no-comments"
            })
            .with_extra("frames", rendered)
            .with_extra("game_fps", rendered / secs)
            .with_extra("game_cpu_ms_per_frame", cpu * 1000.0 / rendered.max(1.0))
            .with_extra("comments_written", sent.unwrap_or(0) as f64),
        );
    }
    if let Some(r) = report.rows.last_mut() {
        r.extra
            .insert("game_fps_loss".into(), (1.0 - fps[1] / fps[0]).into());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// A text table of a cost report: case, transport, frames, then the named extra fields. The
/// delay columns of the docs/design.md schema do not apply to these benches and are left out.
pub(crate) fn cost_table(report: &Report, columns: &[&str]) -> String {
    use std::fmt::Write;
    let mut out = format!("{:<14} {:<24} {:>7}", "case", "transport", "frames");
    for c in columns {
        let _ = write!(out, " {c:>26}");
    }
    out.push('\n');
    for r in &report.rows {
        let _ = write!(
            out,
            "{:<14} {:<24} {:>7}",
            r.case,
            r.transport.as_deref().unwrap_or("-"),
            r.extra
                .get("frames")
                .and_then(|v| v.as_u64())
                .map_or("-".into(), |n| n.to_string())
        );
        for c in columns {
            match r.extra.get(*c).and_then(|v| v.as_f64()) {
                Some(v) => {
                    let _ = write!(out, " {v:>26.3}");
                }
                None => {
                    let _ = write!(out, " {:>26}", "-");
                }
            }
        }
        out.push('\n');
    }
    out
}

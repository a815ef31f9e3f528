//! `crosscast bench pipeline`: what streaming costs. Per case (size and rate), the same game is
//! streamed by crosscast, piped raw into `ffmpeg -f rawvideo … -c:v libx264 -f flv` by a
//! careful writer (writer thread, bounded queue, enlarged pipe) and by a naive one (blocking
//! writes on the game's thread), and its frames, rendered once into memory, are encoded with the
//! same x264/AAC settings in this process (the encoder's own floor). The game also runs alone,
//! for the frame rate it loses. All variants run one after the other in each round, and rounds
//! repeat (`--runs`), so that each figure is a median with its range over alternating runs.
//!
//! CPU is user+system time from `getrusage(RUSAGE_CHILDREN)` around each waited-for process
//! tree (the game reports its own CPU, which is subtracted), or `getrusage(RUSAGE_SELF)` around
//! the in-process floor.
//!
//! `bench preview`: a comment flood well above the accepted rate, with the encoder running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use crosscast_bench::stats::{Report, Row};
use crosscast_demo::{Mixer, Pattern, Scene};
use crosscast_ipc::os::process::{resource_usage, UsageOf};
use crosscast_media::{EncoderConfig, LiveEncoder, OutputSpec};

use crate::cli::RawWriter;

fn cpu_of(of: UsageOf) -> anyhow::Result<f64> {
    let u = resource_usage(of)?;
    Ok((u.user_ns + u.system_ns) as f64 / 1e9)
}

pub(crate) fn children_cpu() -> anyhow::Result<f64> {
    cpu_of(UsageOf::Children)
}

/// The number right after `key` in `line`, if any.
pub(crate) fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `program` on `PATH`, or an error saying that `bench` needs it and which Debian package has
/// it.
pub(crate) fn find_tool(bench: &str, program: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{bench} needs {program}: apt-get install {package} (Debian package)")
        })
}

/// The last line of `stderr` starting with `prefix`.
pub(crate) fn line_with<'a>(stderr: &'a str, prefix: &str) -> anyhow::Result<&'a str> {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no line starting with '{prefix}' in:\n{stderr}"))
}

/// Frames crosscast lost between the game and the stream, from the host's summary: frames the
/// game queued that the host never acquired (replaced in the mailbox, or queued for a replaced
/// surface), plus frames the encoder dropped. The summary's `skipped` is not added: it counts
/// gaps in the sequence numbers of the frames shown, which include those mailbox drops and the
/// frames the game itself skipped (its own fps loss), so adding it would count them twice.
fn crosscast_lost(stderr: &str) -> anyhow::Result<f64> {
    let done = line_with(stderr, "crosscast: done:")?;
    let enc = line_with(stderr, "crosscast: encoded ")?;
    let get = |line: &str, key: &str| {
        number_after(line, key).with_context(|| format!("no '{key}' figure in: {line}"))
    };
    let queued = get(done, "frames queued ")?;
    let acquired = get(done, " acquired ")?;
    Ok((queued - acquired).max(0.0) + get(enc, " video frames (")?)
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

/// Video frames (packets) in a recording, counted by ffprobe.
pub(crate) fn frames_in(path: &Path) -> anyhow::Result<f64> {
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
    // An MPEG-TS stream is listed twice (under its program and on its own): take the first.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .with_context(|| {
            format!(
                "ffprobe could not count frames in {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

struct Case {
    width: u32,
    height: u32,
    fps: u32,
    seconds: f64,
    bitrate: u32,
    preset: &'static str,
}

impl Case {
    fn size(&self) -> String {
        format!("{}x{}", self.width, self.height)
    }
}

/// The figures of one run of one variant, by column name; a column it did not measure is absent
/// (and `null` in the report).
pub(crate) type Figures = BTreeMap<&'static str, f64>;

/// Columns of the pipeline report, in table order.
const PIPELINE_COLUMNS: &[&str] = &[
    "streamer_cpu_ms_per_frame",
    "cpu_ratio_to_floor",
    "game_cpu_ms_per_frame",
    "output_fps",
    "game_fps",
    "game_fps_loss",
    "frames_lost",
    "frames_lost_share",
];

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find our own executable")
}

/// Figures common to every streamed variant: output frames, CPU per output frame, rates.
fn streamed(c: &Case, frames: f64, streamer_cpu: f64, game: (f64, f64, f64), lost: f64) -> Figures {
    let (rendered, secs, game_cpu) = game;
    let per_frame = |cpu: f64| cpu * 1000.0 / frames.max(1.0);
    Figures::from([
        ("frames", frames),
        ("streamer_cpu_ms_per_frame", per_frame(streamer_cpu)),
        ("game_cpu_ms_per_frame", per_frame(game_cpu)),
        ("output_fps", frames / c.seconds),
        ("game_fps", rendered / secs),
        ("frames_lost", lost),
        ("frames_lost_share", lost / rendered.max(1.0)),
    ])
}

fn game_alone(c: &Case, dir: &Path) -> anyhow::Result<Figures> {
    let out = Command::new(exe()?)
        .args(["game", "--raw-out", "/dev/null", "--size", &c.size()])
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
    if !out.status.success() {
        bail!("the game alone failed:\n{err}");
    }
    let (rendered, secs, cpu) = game_line(&err)?;
    Ok(Figures::from([
        ("frames", rendered),
        ("game_fps", rendered / secs),
        ("game_cpu_ms_per_frame", cpu * 1000.0 / rendered.max(1.0)),
    ]))
}

fn crosscast_run(c: &Case, dir: &Path, nice: Option<i32>) -> anyhow::Result<Figures> {
    let file = dir.join("crosscast.flv");
    let _ = std::fs::remove_file(&file);
    let before = children_cpu()?;
    let mut cmd = Command::new(exe()?);
    cmd.args([
        "live",
        "--seconds",
        &c.seconds.to_string(),
        "--size",
        &c.size(),
    ])
    .args([
        "--fps",
        &c.fps.to_string(),
        "--bitrate",
        &c.bitrate.to_string(),
        "--preset",
        c.preset,
    ])
    .args(["--pattern", "aquarium", "--no-restart", "--preview", "none"])
    .arg("--out")
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
    let game = game_line(&err)?;
    Ok(streamed(
        c,
        frames_in(&file)?,
        total - game.2,
        game,
        crosscast_lost(&err)?,
    ))
}

fn mkfifo(path: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    if !Command::new("mkfifo")
        .arg(path)
        .status()
        .context("mkfifo")?
        .success()
    {
        bail!("mkfifo {} failed", path.display());
    }
    Ok(())
}

fn ffmpeg_run(c: &Case, dir: &Path, writer: RawWriter) -> anyhow::Result<Figures> {
    let file = dir.join("ffmpeg.flv");
    // Named pipes for both streams, so that the game closing its end is an end of file for
    // ffmpeg (a process's stdout cannot be closed early from safe Rust).
    let audio = dir.join("audio.fifo");
    let video = dir.join("video.fifo");
    let _ = std::fs::remove_file(&file);
    mkfifo(&audio)?;
    mkfifo(&video)?;
    let size = c.size();
    let (fps, gop, b) = (
        c.fps.to_string(),
        (c.fps * 2).to_string(),
        format!("{}k", c.bitrate),
    );
    let before = children_cpu()?;
    let ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        // Both inputs are fully described, so nothing needs probing: without this, ffmpeg
        // reads no video for its default analysis time (the pipe fills) before it encodes.
        .args(["-probesize", "32", "-analyzeduration", "0"])
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
        .args(["-probesize", "32", "-analyzeduration", "0"])
        .args(["-f", "s16le", "-ar", "48000", "-ac", "2", "-i"])
        .arg(&audio)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            c.preset,
            "-tune",
            "zerolatency",
            // Slice threads, as crosscast's encoder uses (FFmpeg's default frame threads would
            // hold frames inside x264, which zerolatency means to avoid).
            "-thread_type",
            "slice",
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
        .args(["game", "--size", &size, "--fps", &fps])
        .args(["--seconds", &c.seconds.to_string()])
        .args(["--raw-writer", &writer.to_string(), "--raw-out"])
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
    let counts = game_line(&err)?;
    let frames = frames_in(&file)?;
    // Every frame the game rendered and ffmpeg did not encode was lost on the way: dropped by
    // the careful writer's full queue, or cut off at the end.
    Ok(streamed(
        c,
        frames,
        ffmpeg_cpu,
        counts,
        (counts.0 - frames).max(0.0),
    ))
}

/// Most memory the floor keeps its pre-rendered frames in; a longer run cycles through them.
const FLOOR_FRAME_MEMORY: usize = 512 << 20;

/// The encoder's own floor: the game's frames (rendered once into memory by the same scene) and
/// its audio, encoded with crosscast's encoder and the same settings into a file, paced at the
/// frame rate, in this process. No game, no handoff, no second process.
fn floor_run(c: &Case, dir: &Path) -> anyhow::Result<Figures> {
    let file = dir.join("floor.flv");
    let _ = std::fs::remove_file(&file);
    let stride = c.width as usize * 4;
    let frame_bytes = stride * c.height as usize;
    let total = (c.seconds * f64::from(c.fps)).round().max(1.0) as u64;
    let kept = (total as usize).min((FLOOR_FRAME_MEMORY / frame_bytes).max(1));
    let period = 1_000_000_000 / u64::from(c.fps);
    let mut scene = Scene::new(Pattern::Aquarium, c.width, c.height)?;
    let mut frames = Vec::with_capacity(kept);
    for n in 0..kept as u64 {
        let mut f = vec![0u8; frame_bytes];
        scene.render(&mut f, stride, n, n * period)?;
        frames.push(f);
    }
    let per_frame = (48_000 / c.fps) as usize;
    let mut mixer = Mixer::new(Pattern::Aquarium, 48_000, 2)?;
    let mut audio = vec![0f32; total as usize * per_frame * 2];
    mixer.fill(&mut audio, 0);

    let mut cfg = EncoderConfig::new(c.width, c.height, c.fps);
    cfg.video_bitrate_kbps = c.bitrate;
    cfg.preset = c.preset.into();
    cfg.keyint_frames = c.fps * 2;
    // Lossless, so that the floor encodes every frame it is given.
    cfg.block_when_full = true;
    let before = cpu_of(UsageOf::Process)?;
    let t0 = std::time::Instant::now();
    let mut enc = LiveEncoder::start(cfg, &[OutputSpec::File(file.clone())])?;
    for k in 0..total {
        let due = t0 + std::time::Duration::from_nanos(k * period);
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        enc.push_video(&frames[k as usize % kept], stride, k)?;
        let first = k as usize * per_frame;
        enc.push_audio(&audio[first * 2..(first + per_frame) * 2], (first) as u64)?;
    }
    let stats = enc.finish()?;
    let cpu = cpu_of(UsageOf::Process)? - before;
    let frames_out = frames_in(&file)?;
    Ok(Figures::from([
        ("frames", frames_out),
        (
            "streamer_cpu_ms_per_frame",
            cpu * 1000.0 / frames_out.max(1.0),
        ),
        ("output_fps", frames_out / c.seconds),
        ("frames_lost", stats.video_frames_dropped as f64),
    ]))
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

/// The median of `v` (the mean of the middle two for an even count); `v` is not empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// One report row from the rounds of one variant: for every column, the median under its own
/// name and the range as `<name>_min` and `<name>_max`; `null` for each where a round did not
/// measure it.
pub(crate) fn aggregate(case: &str, transport: &str, rounds: &[Figures], columns: &[&str]) -> Row {
    let mut row = Row::without_delays(case)
        .with_transport(transport)
        .with_extra("runs", rounds.len() as u64);
    for name in std::iter::once(&"frames").chain(columns) {
        let mut v: Vec<f64> = rounds.iter().filter_map(|r| r.get(name).copied()).collect();
        let (med, min, max) = if v.len() == rounds.len() && !v.is_empty() {
            let (min, max) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            (Some(median(&mut v)), Some(min), Some(max))
        } else {
            (None, None, None)
        };
        row = row
            .with_extra(*name, med)
            .with_extra(format!("{name}_min"), min)
            .with_extra(format!("{name}_max"), max);
    }
    row
}

/// The variants of one round, in the order they run.
const VARIANTS: &[&str] = &[
    "game-alone",
    "crosscast",
    "ffmpeg-pipe-careful",
    "ffmpeg-pipe-naive",
    "encode-floor",
    "crosscast+2hogs",
    "crosscast+2hogs,nice-10",
];

fn run_variant(variant: &str, c: &Case, dir: &Path) -> anyhow::Result<Figures> {
    match variant {
        "game-alone" => game_alone(c, dir),
        "crosscast" => crosscast_run(c, dir, None),
        "ffmpeg-pipe-careful" => ffmpeg_run(c, dir, RawWriter::Careful),
        "ffmpeg-pipe-naive" => ffmpeg_run(c, dir, RawWriter::Naive),
        "encode-floor" => floor_run(c, dir),
        "crosscast+2hogs" => {
            let _hogs = Hogs::start();
            crosscast_run(c, dir, None)
        }
        "crosscast+2hogs,nice-10" => {
            let _hogs = Hogs::start();
            crosscast_run(c, dir, Some(-10))
        }
        other => bail!("unknown pipeline variant {other}"),
    }
}

/// Cross-variant figures of one round: game fps loss against the game alone, and streamer CPU
/// per frame as a ratio to the floor's, both within the round.
fn relate(round: &mut [Figures]) {
    let alone = round[0].get("game_fps").copied();
    let floor = round[VARIANTS
        .iter()
        .position(|v| *v == "encode-floor")
        .unwrap_or(0)]
    .get("streamer_cpu_ms_per_frame")
    .copied();
    for f in round.iter_mut() {
        if let (Some(off), Some(on)) = (alone, f.get("game_fps").copied()) {
            if f.contains_key("frames_lost") {
                f.insert("game_fps_loss", 1.0 - on / off);
            }
        }
        if let (Some(fl), Some(cpu)) = (floor, f.get("streamer_cpu_ms_per_frame").copied()) {
            f.insert("cpu_ratio_to_floor", cpu / fl);
        }
    }
}

pub(crate) fn pipeline(seconds: f64, runs: u32) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("crosscast-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut report = Report::new("pipeline");
    let result = (|| -> anyhow::Result<()> {
        for (width, height, fps) in [(1280, 720, 60), (1920, 1080, 30)] {
            let c = Case {
                width,
                height,
                fps,
                seconds,
                bitrate: EncoderConfig::default_bitrate_kbps(width, height),
                preset: "ultrafast",
            };
            let case = format!("{width}x{height}@{fps}");
            let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); VARIANTS.len()];
            for r in 1..=runs {
                let mut round = Vec::with_capacity(VARIANTS.len());
                for v in VARIANTS {
                    say!("bench pipeline: {case}: round {r}/{runs}: {v} ...");
                    round.push(run_variant(v, &c, &dir)?);
                }
                relate(&mut round);
                for (all, f) in rounds.iter_mut().zip(round) {
                    all.push(f);
                }
            }
            for (v, r) in VARIANTS.iter().zip(&rounds) {
                report.rows.push(aggregate(&case, v, r, PIPELINE_COLUMNS));
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| report)
}

/// The default of `--comments-rate`, the accepted rate the flood is measured at.
const COMMENTS_RATE: u32 = 20;
/// Comments the flood writes per second: 100 times the accepted rate.
const FLOOD_PER_SECOND: u64 = 2000;

/// Columns of the preview report, in table order.
const PREVIEW_COLUMNS: &[&str] = &[
    "game_fps",
    "game_fps_loss",
    "host_cpu_ms_per_frame",
    "game_cpu_ms_per_frame",
    "comments_written_per_s",
    "comments_accepted_per_s",
    "comments_accepted",
    "comments_allowed",
];

/// Writes comments into `path` at [`FLOOD_PER_SECOND`] until `stop`; returns how many and for
/// how long.
fn flood(path: &Path, stop: &AtomicBool) -> std::io::Result<(u64, f64)> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    let t0 = std::time::Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (t0.elapsed().as_secs_f64() * FLOOD_PER_SECOND as f64) as u64;
        while n < due {
            writeln!(
                f,
                "{{\"user\":\"viewer{n}\",\"text\":\"flood {n} 弹幕 — only the streamer sees this\"}}"
            )?;
            n += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok((n, t0.elapsed().as_secs_f64()))
}

/// One `crosscast live` run encoding to a file, with the comments file on the preview, flooded
/// from the host's first status line (so that none of the flood is read as history) to its exit.
fn preview_run(seconds: f64, dir: &Path, with_flood: bool) -> anyhow::Result<Figures> {
    use std::io::BufRead;
    let comments = dir.join("comments.jsonl");
    std::fs::write(&comments, b"")?;
    let file = dir.join("preview.flv");
    let _ = std::fs::remove_file(&file);
    let before = children_cpu()?;
    let mut child = Command::new(exe()?)
        .args(["live", "--seconds", &seconds.to_string(), "--no-restart"])
        .args(["--comments-rate", &COMMENTS_RATE.to_string(), "--preview"])
        .arg(format!("png:{}", dir.join("png").display()))
        .arg("--comments")
        .arg(&comments)
        .arg("--out")
        .arg(&file)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = None;
    let mut err = String::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line?;
        // The status line, once a second, starts with the elapsed time (00:00:01).
        if with_flood && writer.is_none() && line.starts_with("00:") {
            let (stop, path) = (stop.clone(), comments.clone());
            writer = Some(std::thread::spawn(move || flood(&path, &stop)));
        }
        err.push_str(&line);
        err.push('\n');
    }
    let status = child.wait()?;
    stop.store(true, Ordering::Relaxed);
    let total = children_cpu()? - before;
    let flooded = writer
        .map(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("the flood writer panicked"))
        })
        .transpose()?
        .transpose()?;
    if !status.success() {
        bail!("crosscast live failed:\n{err}");
    }
    if with_flood && flooded.is_none() {
        bail!("the host printed no status line, so no flood was written:\n{err}");
    }
    let (rendered, secs, game_cpu) = game_line(&err)?;
    let done = line_with(&err, "crosscast: done:")?;
    let frames_out = number_after(done, "done: ")
        .and_then(|_| number_after(done, " s, "))
        .context("no frame count in the host's summary")?;
    let feed = line_with(&err, "crosscast: comments:")?;
    let accepted = number_after(feed, "comments: ")
        .and_then(|_| number_after(feed, " lines, "))
        .with_context(|| format!("no accepted count in: {feed}"))?;
    let mut f = Figures::from([
        ("frames", frames_out),
        ("game_fps", rendered / secs),
        (
            "game_cpu_ms_per_frame",
            game_cpu * 1000.0 / rendered.max(1.0),
        ),
        (
            "host_cpu_ms_per_frame",
            (total - game_cpu) * 1000.0 / frames_out.max(1.0),
        ),
        ("comments_accepted", accepted),
    ]);
    if let Some((written, flood_secs)) = flooded {
        // The token bucket lets one second's worth through at once, then the rate.
        let allowed = (f64::from(COMMENTS_RATE) * (flood_secs + 1.0)).ceil();
        if accepted > allowed {
            bail!("the host accepted {accepted} comments in {flood_secs:.1} s of flood, more than the {allowed} its rate limit of {COMMENTS_RATE}/s allows");
        }
        f.insert("comments_written_per_s", written as f64 / flood_secs);
        f.insert("comments_accepted_per_s", accepted / flood_secs);
        f.insert("comments_allowed", allowed);
    }
    Ok(f)
}

/// `bench preview`: a comment flood at [`FLOOD_PER_SECOND`] against the accepted rate of
/// [`COMMENTS_RATE`]/s, with the host encoding to a file as `crosscast live` does, against the
/// same run without comments: the rate the host accepted (it fails if it accepted more than its
/// limit), the game's frame rate, and the host's CPU per output frame. The overlay lives in the
/// host, so the game should not notice.
pub(crate) fn preview(seconds: f64) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("crosscast-bench-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<Report> {
        let mut report = Report::new("preview");
        say!("bench preview: no comments ...");
        let quiet = preview_run(seconds, &dir, false)?;
        say!("bench preview: flood of {FLOOD_PER_SECOND} comments/s ...");
        let mut flooded = preview_run(seconds, &dir, true)?;
        if let (Some(off), Some(on)) = (quiet.get("game_fps"), flooded.get("game_fps")) {
            flooded.insert("game_fps_loss", 1.0 - on / off);
        }
        report.rows.push(aggregate(
            "no-comments",
            "crosscast",
            &[quiet],
            PREVIEW_COLUMNS,
        ));
        report.rows.push(aggregate(
            "comments-flood",
            "crosscast",
            &[flooded],
            PREVIEW_COLUMNS,
        ));
        Ok(report)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Table columns of the pipeline report.
pub(crate) fn pipeline_columns() -> Vec<&'static str> {
    std::iter::once("frames")
        .chain(PIPELINE_COLUMNS.iter().copied())
        .collect()
}

/// Table columns of the preview report.
pub(crate) fn preview_columns() -> Vec<&'static str> {
    std::iter::once("frames")
        .chain(PREVIEW_COLUMNS.iter().copied())
        .collect()
}

//! `crosscast bench squeeze`: adaptive bitrate on a real link that is squeezed and released.
//!
//! The bench builds its own network: two network namespaces joined by a veth pair, nothing in
//! the machine's own namespace. nginx-rtmp listens in one (recording what arrives), and
//! `crosscast live` streams the demo game from the other to it while also recording to a file.
//! With `--protocol srt` the ingest is an `ffmpeg` SRT listener (remuxing to MPEG-TS files)
//! instead, and crosscast pushes `srt://` to it.
//! After `before` seconds of a clear link, `tc`'s token bucket (`tbf`) limits the sender's side
//! of the veth to `link_kbps` for `squeeze` seconds, then the limit goes and the run goes on
//! for `after` seconds. With `restart_ingest`, nginx is also stopped and started again in the
//! middle of the squeeze, so adaptive bitrate and reconnection are exercised together.
//!
//! Figures per run (median and range over `runs`): how long the first step down took after the
//! squeeze began, the lowest bitrate, how long after the link came back the bitrate was full
//! again, the longest send queue seen, reconnects, and frames lost: in the recording (encoded
//! frames minus frames in the file) and on the live output (encoded frames minus frames that
//! reached the ingest). Needs root (namespaces, tc), nginx with libnginx-mod-rtmp, and ffprobe.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crosscast_bench::stats::Report;
use crosscast_wire::FrameRate;

use crate::cli::{parse_fps, parse_seconds, Size};
use crate::pipeline::{aggregate, frames_in, Figures};

/// Columns of the report, in table order.
pub(crate) const COLUMNS: &[&str] = &[
    "first_step_down_s",
    "lowest_kbps",
    "squeeze_mean_kbps",
    "steps",
    "recovery_s",
    "max_queue_s",
    "reconnects",
    "recording_frames_lost",
    "live_frames_lost",
    "live_packets_dropped",
    "live_decode_errors",
    "recording_decode_errors",
    "recording_kbps",
    "full_before_release",
];

/// What the squeeze bench runs (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Squeeze {
    /// Seconds of clear link before the squeeze.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub(crate) before: f64,
    /// Seconds the link is limited.
    #[arg(long, default_value_t = 30.0, value_parser = parse_seconds)]
    pub(crate) squeeze: f64,
    /// Seconds of clear link after it.
    #[arg(long, default_value_t = 40.0, value_parser = parse_seconds)]
    pub(crate) after: f64,
    /// The limit during the squeeze, kb/s on the wire.
    #[arg(long, default_value_t = 1200)]
    pub(crate) link_kbps: u32,
    /// The stream's video bitrate, kb/s.
    #[arg(long, default_value_t = 2500)]
    pub(crate) bitrate: u32,
    /// The lowest bitrate adaptive bitrate may use, kb/s.
    #[arg(long, default_value_t = 400)]
    pub(crate) min_bitrate: u32,
    /// The stream's size.
    #[arg(long, default_value = "960x540")]
    pub(crate) size: Size,
    /// The stream's frame rate.
    #[arg(long, default_value = "30", value_parser = parse_fps)]
    pub(crate) fps: FrameRate,
    /// Stop and restart the ingest in the middle of the squeeze (reconnect under pressure).
    #[arg(long)]
    pub(crate) restart_ingest: bool,
    /// The live output's protocol: rtmp (nginx-rtmp ingest) or srt (an ffmpeg SRT listener).
    #[arg(long, value_enum, default_value_t = Protocol::Rtmp)]
    pub(crate) protocol: Protocol,
    /// Run `live` with --shared-encode (recordings follow the live bitrate).
    #[arg(long)]
    pub(crate) shared_encode: bool,
    /// Runs; figures are the median and range over them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) runs: u32,
    /// Write the JSON report here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Keep what `crosscast live` printed in each run, as DIR/run-N.log (each line with its
    /// time in seconds since the stream went live).
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,
}

/// The protocol of the squeezed live output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// RTMP to nginx-rtmp.
    Rtmp,
    /// SRT (caller) to an `ffmpeg` listener.
    Srt,
}

/// Runs the bench `s.runs` times and reports the median and range of each figure.
pub(crate) fn squeeze(s: &Squeeze) -> anyhow::Result<Report> {
    let runs = s.runs;
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    remove_stale_namespaces();
    let mut rounds = Vec::new();
    for run in 0..runs {
        say!("bench squeeze: run {}/{runs}", run + 1);
        rounds.push(one_run(&exe, s, run)?);
    }
    let mut report = Report::new("squeeze");
    let case = format!(
        "{} {}x{}@{} {} kb/s, link {} kb/s for {} s{}",
        if s.protocol == Protocol::Srt {
            "srt"
        } else {
            "rtmp"
        },
        s.size.width,
        s.size.height,
        s.fps,
        s.bitrate,
        s.link_kbps,
        s.squeeze,
        if s.restart_ingest {
            ", ingest restarted"
        } else {
            ""
        }
    );
    let encode = if s.shared_encode {
        "shared"
    } else {
        "separate"
    };
    report
        .rows
        .push(aggregate(&case, encode, &rounds, COLUMNS).with_extra("min_bitrate", s.min_bitrate));
    Ok(report)
}

/// Removes the namespaces of squeeze benches that were killed before they could clean up
/// (their names carry the bench's pid, and that process is gone).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for name in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix("ccsq")
            .and_then(|rest| rest.split('x').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            say!("bench squeeze: removing {name}, left by a bench that was killed");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Two network namespaces joined by a veth pair; removed (with the pair) on drop.
struct NetPair {
    send: String,
    recv: String,
    send_addr: String,
    recv_addr: String,
}

/// Runs `ip`/`tc`/… and fails with its stderr.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?} (needs iproute2)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetPair {
    fn create(run_no: u32) -> anyhow::Result<Self> {
        let tag = format!("ccsq{}x{run_no}", std::process::id());
        // A private /30 per run; the namespaces are ours alone, so the addresses never leave them.
        let net = std::process::id() % 200 + 20;
        let pair = Self {
            send: format!("{tag}s"),
            recv: format!("{tag}r"),
            send_addr: format!("10.{net}.{run_no}.1"),
            recv_addr: format!("10.{net}.{run_no}.2"),
        };
        run(Command::new("ip").args(["netns", "add", &pair.send]))
            .context("creating a network namespace (the squeeze bench needs root)")?;
        run(Command::new("ip").args(["netns", "add", &pair.recv]))?;
        run(Command::new("ip").args([
            "link", "add", "ccsqs", "netns", &pair.send, "type", "veth", "peer", "name", "ccsqr",
            "netns", &pair.recv,
        ]))?;
        for (ns, dev, addr) in [
            (&pair.send, "ccsqs", &pair.send_addr),
            (&pair.recv, "ccsqr", &pair.recv_addr),
        ] {
            run(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                dev,
            ]))?;
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]))?;
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
        }
        Ok(pair)
    }

    /// A command run inside namespace `ns`.
    fn exec(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Limits what the sender can put on the wire to `kbps`.
    fn limit(&self, kbps: u32) -> anyhow::Result<()> {
        // A bucket of 32 kB and at most 400 ms of queue in it: the shape of a congested uplink.
        run(Self::exec(&self.send, "tc").args([
            "qdisc",
            "replace",
            "dev",
            "ccsqs",
            "root",
            "tbf",
            "rate",
            &format!("{kbps}kbit"),
            "burst",
            "32kb",
            "latency",
            "400ms",
        ]))
    }

    /// Removes the limit.
    fn clear(&self) -> anyhow::Result<()> {
        run(Self::exec(&self.send, "tc").args(["qdisc", "del", "dev", "ccsqs", "root"]))
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the other end.
        for ns in [&self.send, &self.recv] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The ingest inside the receiving namespace, recording every session it gets; stopped by pid:
/// nginx-rtmp, or an `ffmpeg` SRT listener (one per session, each remuxing to its own file).
struct Ingest {
    dir: PathBuf,
    ns: String,
    protocol: Protocol,
    addr: String,
    sessions: u32,
    child: Option<Child>,
}

/// The SRT listener's port.
const SRT_PORT: u16 = 9000;

impl Ingest {
    fn start(dir: &Path, ns: &str, addr: &str, protocol: Protocol) -> anyhow::Result<Self> {
        let rec = dir.join("rec");
        std::fs::create_dir_all(&rec)?;
        if protocol == Protocol::Rtmp {
            let listen = format!("{addr}:1935");
            let conf = crosscast_bench::peers::NginxRtmp {
                dir,
                listen: &listen,
                record_path: &rec,
                user_root: true,
                tls: None,
            }
            .config();
            std::fs::write(dir.join("nginx.conf"), conf)?;
        }
        let mut ingest = Self {
            dir: dir.to_owned(),
            ns: ns.to_owned(),
            protocol,
            addr: addr.to_owned(),
            sessions: 0,
            child: None,
        };
        ingest.restart()?;
        Ok(ingest)
    }

    /// The URL crosscast pushes to.
    fn url(&self) -> String {
        match self.protocol {
            Protocol::Rtmp => format!("rtmp://{}:1935/live/squeeze", self.addr),
            Protocol::Srt => format!("srt://{}:{SRT_PORT}", self.addr),
        }
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        self.sessions += 1;
        let log_path = self.dir.join(format!("ingest-{}.log", self.sessions));
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = match self.protocol {
            Protocol::Rtmp => {
                let mut c = NetPair::exec(&self.ns, "nginx");
                c.arg("-p")
                    .arg(&self.dir)
                    .arg("-c")
                    .arg(self.dir.join("nginx.conf"))
                    .arg("-e")
                    .arg(self.dir.join("error.log"));
                c
            }
            Protocol::Srt => {
                // One listener per session: it remuxes what arrives and exits when the
                // caller goes.
                let mut c = NetPair::exec(&self.ns, "ffmpeg");
                c.args(["-nostdin", "-v", "error", "-i"])
                    .arg(format!("srt://{}:{SRT_PORT}?mode=listener", self.addr))
                    .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
                    .arg(
                        self.dir
                            .join("rec")
                            .join(format!("session-{:03}.ts", self.sessions)),
                    );
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context(match self.protocol {
                Protocol::Rtmp => {
                    "cannot start nginx (Debian packages nginx and libnginx-mod-rtmp)"
                }
                Protocol::Srt => "cannot start ffmpeg (Debian package ffmpeg)",
            })?;
        self.child = Some(child);
        // Both bind at once; a short wait covers their start-up.
        std::thread::sleep(Duration::from_millis(300));
        if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
            bail!(
                "the ingest exited at start ({st}): {}{}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `ip netns exec` execs the program in place: this pid is nginx's master (or
            // ffmpeg, which finishes its file on SIGTERM).
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// The recorded FLV files, oldest first.
    fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.join("rec"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A line of crosscast's output and when it arrived (seconds since the stream went live).
type Timed = (f64, String);

fn one_run(exe: &Path, s: &Squeeze, run_no: u32) -> anyhow::Result<Figures> {
    let dir = tempfile::Builder::new().prefix("cc-squeeze").tempdir()?;
    let net = NetPair::create(run_no)?;
    let mut ingest = Ingest::start(dir.path(), &net.recv, &net.recv_addr, s.protocol)?;
    let url = ingest.url();
    let recording = dir.path().join("recording.mp4");
    let total = s.before + s.squeeze + s.after;
    let mut cmd = NetPair::exec(&net.send, exe);
    cmd.args(["live", "--preview", "none", "--seconds"])
        .arg(format!("{}", total + 3.0))
        .args(["--size", &s.size.to_string(), "--fps", &s.fps.to_string()])
        .args(["--bitrate", &s.bitrate.to_string()])
        .args(["--min-bitrate", &s.min_bitrate.to_string()])
        .args(["--push", &url, "--out"])
        .arg(&recording)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if s.shared_encode {
        cmd.arg("--shared-encode");
    }
    let mut child = cmd.spawn().context("cannot start crosscast live")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || read_lines(stderr, &tx));

    let mut lines: Vec<(Instant, String)> = Vec::new();
    let start = Instant::now();
    // The clock starts when the network output is live.
    let live_at = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((t, l)) => {
                // The status line names the output with its state: `rtmp://…/*** live`.
                let live = l
                    .split(" | ")
                    .any(|part| part.contains("://") && part.ends_with(" live"));
                lines.push((t, l));
                if live {
                    break t;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("crosscast exited before going live:\n{}", tail(&lines))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!("the stream did not go live in 30 s:\n{}", tail(&lines));
        }
    };
    let at = |secs: f64| live_at + Duration::from_secs_f64(secs);
    let mut events: Vec<(Instant, &str)> = vec![(at(s.before), "squeeze")];
    if s.restart_ingest {
        events.push((at(s.before + s.squeeze / 2.0), "ingest down"));
        events.push((at(s.before + s.squeeze / 2.0 + 2.0), "ingest up"));
    }
    events.push((at(s.before + s.squeeze), "release"));
    for (when, what) in events {
        while Instant::now() < when {
            collect(&rx, &mut lines, when);
        }
        match what {
            "squeeze" => net.limit(s.link_kbps)?,
            "release" => net.clear()?,
            "ingest down" => ingest.stop(),
            _ => ingest.restart()?,
        }
        say!("bench squeeze: {what}");
    }
    let status = child.wait()?;
    let _ = reader.join();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    if !status.success() {
        bail!("crosscast live failed ({status}):\n{}", tail(&lines));
    }
    ingest.stop();
    let timed: Vec<Timed> = lines
        .into_iter()
        .map(|(t, l)| {
            let secs = t.checked_duration_since(live_at).unwrap_or_default();
            (secs.as_secs_f64(), l)
        })
        .collect();
    if let Some(dir) = &s.log_dir {
        let text: String = timed
            .iter()
            .map(|(t, l)| format!("{t:8.3} {l}\n"))
            .collect();
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(format!("run-{}.log", run_no + 1)), text))
            .with_context(|| format!("cannot write the log to {}", dir.display()))?;
    }
    let mut f = figures(&timed, s)?;
    let encoded = f.get("encoded_frames").copied().unwrap_or(0.0);
    f.insert("recording_frames_lost", encoded - frames_in(&recording)?);
    let mut at_ingest = 0.0;
    let mut live_errors = 0.0;
    for r in ingest.recordings() {
        // A session that got no stream (a listener waiting when the run ended) is empty.
        if std::fs::metadata(&r)?.len() == 0 {
            continue;
        }
        at_ingest += frames_in(&r)?;
        live_errors += decode_errors(&r)?;
    }
    f.insert("live_frames_lost", encoded - at_ingest);
    f.insert("live_decode_errors", live_errors);
    f.insert("recording_decode_errors", decode_errors(&recording)?);
    let bytes = std::fs::metadata(&recording)?.len() as f64;
    f.insert("recording_kbps", bytes * 8.0 / 1000.0 / total.max(1.0));
    Ok(f)
}

/// Lines FFmpeg prints at level `error` while decoding a whole file (0: it decodes cleanly,
/// across every switch between encodes and every reconnect).
fn decode_errors(path: &Path) -> anyhow::Result<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .context("ffmpeg is needed to decode the recordings (apt-get install ffmpeg)")?;
    Ok(String::from_utf8_lossy(&out.stderr).lines().count() as f64)
}

/// Reads crosscast's stderr, where status lines end in `\r` on a terminal and in `\n` here.
fn read_lines(stderr: impl Read, tx: &mpsc::Sender<(Instant, String)>) {
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    while let Ok(n) = r.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        for part in buf.split(|&b| b == b'\r' || b == b'\n') {
            if !part.is_empty() {
                let _ = tx.send((Instant::now(), String::from_utf8_lossy(part).into_owned()));
            }
        }
        buf.clear();
    }
}

fn collect(
    rx: &mpsc::Receiver<(Instant, String)>,
    lines: &mut Vec<(Instant, String)>,
    until: Instant,
) {
    let wait = until
        .saturating_duration_since(Instant::now())
        .min(Duration::from_millis(100));
    if let Ok(l) = rx.recv_timeout(wait) {
        lines.push(l);
    }
}

fn tail(lines: &[(Instant, String)]) -> String {
    let start = lines.len().saturating_sub(30);
    lines[start..]
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The figures the log gives: bitrate steps, queue, reconnects, frames encoded.
fn figures(lines: &[Timed], s: &Squeeze) -> anyhow::Result<Figures> {
    let (squeeze_at, release_at) = (s.before, s.before + s.squeeze);
    let mut f = Figures::new();
    let mut steps: Vec<(f64, u32, u32)> = Vec::new();
    let mut max_queue: f64 = 0.0;
    for (t, l) in lines {
        if let Some(rest) = l.split("encoder: bitrate ").nth(1) {
            let nums: Vec<u32> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .take(2)
                .filter_map(|w| w.parse().ok())
                .collect();
            if let [from, to] = nums[..] {
                steps.push((*t, from, to));
            }
        }
        if let Some(q) = l
            .split(" s queued)")
            .next()
            .filter(|_| l.contains(" s queued)"))
        {
            if let Some(v) = q.rsplit('(').next().and_then(|v| v.parse::<f64>().ok()) {
                max_queue = max_queue.max(v);
            }
        }
        if let Some(rest) = l.strip_prefix("crosscast: encoded ") {
            if let Some(n) = rest.split(' ').next().and_then(|n| n.parse::<f64>().ok()) {
                f.insert("encoded_frames", n);
            }
        }
        if l.starts_with("crosscast: output rtmp://") || l.starts_with("crosscast: output srt://") {
            let num_before = |word: &str| {
                l.split(", ")
                    .find(|p| p.ends_with(word))
                    .and_then(|p| p.split(' ').next())
                    .and_then(|n| n.parse::<f64>().ok())
            };
            if let Some(n) = num_before(" reconnects") {
                f.insert("reconnects", n);
            }
            if let Some(n) = num_before(" packets dropped") {
                f.insert("live_packets_dropped", n);
            }
        }
    }
    if !f.contains_key("encoded_frames") {
        bail!("crosscast's summary has no encoded-frames line");
    }
    if let Some(&(t, _, _)) = steps
        .iter()
        .find(|(t, from, to)| *t >= squeeze_at && to < from)
    {
        f.insert("first_step_down_s", t - squeeze_at);
    }
    if let Some(low) = steps.iter().map(|&(_, _, to)| to).min() {
        f.insert("lowest_kbps", f64::from(low));
    }
    // Recovery: the first time after the release that the bitrate is full again (and stays so).
    let last_full = steps
        .iter()
        .rev()
        .take_while(|(_, _, to)| *to == s.bitrate)
        .last()
        .filter(|(t, _, _)| *t >= release_at);
    if let Some(&(t, _, _)) = last_full {
        f.insert("recovery_s", t - release_at);
    }
    // 1 if the bitrate went back to full while the link was still squeezed (a reconnect
    // that reset it, say).
    let early_full = steps
        .iter()
        .any(|&(t, _, to)| t > squeeze_at && t < release_at && to == s.bitrate);
    f.insert("full_before_release", if early_full { 1.0 } else { 0.0 });
    f.insert("max_queue_s", max_queue);
    f.insert("steps", steps.len() as f64);
    // The live bitrate averaged over the squeeze (it holds between steps): how much of the
    // narrow link the stream used.
    let rate_at = |t: f64| {
        steps
            .iter()
            .take_while(|(at, _, _)| *at <= t)
            .last()
            .map_or(s.bitrate, |&(_, _, to)| to)
    };
    let mut sum = 0.0;
    let n = 200;
    for k in 0..n {
        let t = squeeze_at + s.squeeze * (f64::from(k) + 0.5) / f64::from(n);
        sum += f64::from(rate_at(t));
    }
    f.insert("squeeze_mean_kbps", sum / f64::from(n));
    Ok(f)
}

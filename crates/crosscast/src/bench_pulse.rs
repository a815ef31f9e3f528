//! `crosscast bench pulse`: the game's own audio through the host's PulseAudio server (issue
//! #14): the delay from a client's write to its place on the host timeline, and the host's CPU
//! per second of audio.
//!
//! Each round starts the server exactly as `live` does ([`PulseSource`], its pump mixing every
//! 10 ms on CLOCK_MONOTONIC) in this process, drains its blocks every 16 ms as the output clock
//! would, and plays real Debian clients into it one after the other: none (`idle`, the pump's
//! own cost), `paplay` with default buffering, `pacat --latency-msec=20` (a low-latency
//! client) and SDL2's `loopwave`. The delays come from the server (`take_write_delays`); CPU
//! is this whole process's (getrusage) over the client's run, divided by the seconds of audio
//! the pump mixed in it, raw and minus the round's idle figure. The same clients then play
//! into a real `pulseaudio` daemon with a null sink, whose own CPU (from `/proc`) is the
//! like-for-like reference. Figures are per run, then the median and range over the rounds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crosscast_bench::stats::{percentile_sorted, Report};
use crosscast_host::{AudioSource, PulseSource};
use crosscast_ipc::os::process::{resource_usage, stop_child, UsageOf};
use crosscast_pulse::{Limits, MIX_RATE};
use crosscast_wire::AudioBlock;

use crate::pipeline::{aggregate, Figures};

/// Columns of the report, in table order.
const COLUMNS: &[&str] = &[
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

/// The report's columns, for the table on stdout.
pub(crate) fn columns() -> Vec<&'static str> {
    COLUMNS.to_vec()
}

/// How often the bench drains the pump's blocks: the output clock's period at 60 fps.
const DRAIN: Duration = Duration::from_millis(16);
/// Time a fresh server (or daemon) gets before the first run, and each run before it starts
/// measuring, so that start-up and the previous client's leftovers stay out of the figures.
const SETTLE: Duration = Duration::from_millis(500);
/// How long a client may take beyond its audio (connecting, prebuffering, draining) before
/// the bench gives up on it.
const GRACE: Duration = Duration::from_secs(15);
/// A block with a sample above this (full scale 1.0) carries the client's sine, not silence.
const HEARD: f32 = 0.01;
/// The test tone: frequency and amplitude (a quarter of full scale).
const TONE_HZ: f64 = 440.0;
const TONE_AMPLITUDE: f64 = 0.25;
/// Where the SDL2 test programs live (`libsdl2-tests` installs them off `PATH`).
const SDL2_TESTS: &str = "/usr/libexec/installed-tests/SDL2";

/// One client kind, and `Idle` for the server alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// No client: what the server and its pump cost by themselves.
    Idle,
    /// `paplay` with libpulse's default buffering, as a casual client has it.
    Paplay,
    /// `pacat --latency-msec=20` fed raw s16le from a file: a low-latency game engine.
    Pacat,
    /// SDL2's `loopwave` on its PulseAudio driver.
    Loopwave,
}

const CLIENTS: [Client; 4] = [
    Client::Idle,
    Client::Paplay,
    Client::Pacat,
    Client::Loopwave,
];

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Idle => "idle",
            Client::Paplay => "paplay",
            Client::Pacat => "pacat-20ms",
            Client::Loopwave => "sdl2-loopwave",
        }
    }
}

/// Which server the clients play into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// crosscast's own server and pump, in this process.
    Crosscast,
    /// A `pulseaudio` daemon with a null sink, the reference.
    Daemon,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Crosscast => "crosscast-pulse",
            Server::Daemon => "pulseaudio-null-sink",
        }
    }
}

/// A child process killed (and reaped) when dropped, whatever path the bench leaves by.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The client programs, found before anything runs so a missing one fails at once.
struct Tools {
    paplay: PathBuf,
    pacat: PathBuf,
    loopwave: PathBuf,
}

fn tools() -> anyhow::Result<Tools> {
    let find = |p: &str, pkg: &str| crate::pipeline::find_tool("bench pulse", p, pkg);
    let paplay = find("paplay", "pulseaudio-utils")?;
    let pacat = find("pacat", "pulseaudio-utils")?;
    let loopwave = Path::new(SDL2_TESTS).join("loopwave");
    let loopwave = if loopwave.is_file() {
        loopwave
    } else {
        find("loopwave", "libsdl2-tests")?
    };
    Ok(Tools {
        paplay,
        pacat,
        loopwave,
    })
}

/// `seconds` of a stereo sine as interleaved s16le at the mix rate.
fn tone(seconds: f64) -> Vec<u8> {
    let frames = (seconds * f64::from(MIX_RATE)).round() as usize;
    let mut out = Vec::with_capacity(frames * 4);
    for i in 0..frames {
        let t = i as f64 / f64::from(MIX_RATE);
        let s = (TONE_AMPLITUDE
            * (2.0 * std::f64::consts::PI * TONE_HZ * t).sin()
            * f64::from(i16::MAX))
        .round() as i16;
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// `pcm` (s16le stereo at the mix rate) in a RIFF WAVE container.
fn wav(pcm: &[u8]) -> Vec<u8> {
    let (channels, bits) = (2u16, 16u16);
    let block = channels * bits / 8;
    let len = u32::try_from(pcm.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&MIX_RATE.to_le_bytes());
    out.extend_from_slice(&(MIX_RATE * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// The scratch files every run shares.
struct Scratch {
    dir: tempfile::TempDir,
    /// The tone as a WAV file, for paplay and loopwave.
    wav: PathBuf,
    /// The tone as raw s16le, pacat's stdin.
    raw: PathBuf,
    /// A libpulse client.conf that forbids autospawn: a client that cannot reach the server
    /// under test must fail, not start a daemon of its own.
    client_conf: PathBuf,
}

impl Scratch {
    fn new(seconds: f64) -> anyhow::Result<Scratch> {
        let dir = tempfile::tempdir()?;
        let pcm = tone(seconds);
        let wav_path = dir.path().join("tone.wav");
        std::fs::write(&wav_path, wav(&pcm))?;
        let raw = dir.path().join("tone.raw");
        std::fs::write(&raw, &pcm)?;
        let client_conf = dir.path().join("client.conf");
        std::fs::write(&client_conf, "autospawn = no\n")?;
        Ok(Scratch {
            dir,
            wav: wav_path,
            raw,
            client_conf,
        })
    }
}

/// Starts `client` against the server at `socket`.
fn spawn_client(
    client: Client,
    tools: &Tools,
    scratch: &Scratch,
    socket: &Path,
) -> anyhow::Result<Reaped> {
    let mut cmd = match client {
        Client::Idle => bail!("the idle case has no client"),
        Client::Paplay => {
            let mut c = Command::new(&tools.paplay);
            c.arg(&scratch.wav).stdin(Stdio::null());
            c
        }
        Client::Pacat => {
            let mut c = Command::new(&tools.pacat);
            c.args([
                "--playback",
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=2",
                "--latency-msec=20",
            ])
            // A file, not a pipe from this process: feeding it would add our own CPU to the
            // host's figure. pacat reads as fast as the server asks for data.
            .stdin(std::fs::File::open(&scratch.raw)?);
            c
        }
        Client::Loopwave => {
            let mut c = Command::new(&tools.loopwave);
            c.arg(&scratch.wav)
                .env("SDL_AUDIODRIVER", "pulseaudio")
                .env("SDL_VIDEODRIVER", "dummy")
                .stdin(Stdio::null());
            c
        }
    };
    let mut server = std::ffi::OsString::from("unix:");
    server.push(socket);
    cmd.env("PULSE_SERVER", server)
        .env("PULSE_CLIENTCONFIG", &scratch.client_conf)
        // libpulse keeps a cookie and state under HOME: keep them in the scratch directory.
        .env("HOME", scratch.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", client.name()))?;
    Ok(Reaped(child))
}

/// The server under test: crosscast's in this process, or a pulseaudio daemon child.
enum Running {
    Crosscast(PulseSource),
    Daemon { child: Reaped, pid: u32 },
}

impl Running {
    /// CPU the server has used so far, in ns: this whole process for crosscast's (its threads,
    /// the pump and this drain loop), the daemon's for pulseaudio.
    fn cpu_ns(&self) -> anyhow::Result<u64> {
        match self {
            Running::Crosscast(_) => {
                let u = resource_usage(UsageOf::Process)?;
                Ok(u.user_ns + u.system_ns)
            }
            Running::Daemon { pid, .. } => proc_cpu_ns(*pid),
        }
    }

    /// 48 kHz frames the pump has mixed so far (`None` for the daemon, which does not say).
    fn frames_mixed(&self) -> Option<u64> {
        match self {
            Running::Crosscast(s) => Some(s.server().stats().frames_mixed),
            Running::Daemon { .. } => None,
        }
    }

    /// Drains the pump's blocks into `out` as the output clock would; the daemon has none.
    fn drain(&mut self, out: &mut Vec<AudioBlock>) {
        if let Running::Crosscast(s) = self {
            s.drain_audio(out);
        }
    }

    /// Fails if the daemon has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Running::Daemon { child, .. } = self {
            if let Some(status) = child.0.try_wait()? {
                bail!("pulseaudio exited during the run ({status})");
            }
        }
        Ok(())
    }
}

/// CPU time of process `pid` so far, in ns: the sum over its threads of the time the
/// scheduler ran them (`/proc/<pid>/task/*/schedstat`, nanosecond-exact where `/proc/<pid>/stat`
/// counts 10 ms ticks, too coarse for a mostly idle daemon). A thread that has exited no longer
/// counts; pulseaudio's (its main loop and the sink's I/O thread) live as long as it does.
fn proc_cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let path = task?.path().join("schedstat");
        // A thread can exit between the listing and the read.
        let Ok(line) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += parse_schedstat_ns(&line)
            .with_context(|| format!("bad {}: {line:?}", path.display()))?;
    }
    Ok(total)
}

/// The first field of a `schedstat` line: ns spent running on a CPU.
fn parse_schedstat_ns(line: &str) -> Option<u64> {
    line.split_whitespace().next()?.parse().ok()
}

/// Starts a `pulseaudio` daemon with only a null sink and a native socket, and waits for the
/// socket.
fn start_daemon(pulseaudio: &Path, dir: &Path) -> anyhow::Result<(Running, PathBuf)> {
    let socket = dir.join("native");
    let _ = std::fs::remove_file(&socket);
    let script = dir.join("null.pa");
    std::fs::write(
        &script,
        format!(
            "load-module module-null-sink sink_name=null rate={MIX_RATE} channels=2\n\
             load-module module-native-protocol-unix socket={} auth-anonymous=1\n\
             set-default-sink null\n",
            socket.display()
        ),
    )?;
    let log = std::fs::File::create(dir.join("pulseaudio.log"))?;
    let child = Command::new(pulseaudio)
        .args([
            "--daemonize=no",
            "-n",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            // crosscast's server has no shared memory: the samples go through the socket
            // in both, so the comparison is of the servers, not of the transports.
            "--disable-shm=yes",
            "--log-target=stderr",
            "-F",
        ])
        .arg(&script)
        .env("HOME", dir)
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting pulseaudio")?;
    let pid = child.id();
    let mut child = Reaped(child);
    let until = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if let Some(status) = child.0.try_wait()? {
            let log = std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default();
            bail!("pulseaudio exited ({status}) before serving:\n{log}");
        }
        if Instant::now() > until {
            bail!("pulseaudio made no socket at {} in 10 s", socket.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Running::Daemon { child, pid }, socket))
}

/// Drains blocks every [`DRAIN`] for `d`, adding them to `blocks`.
fn drain_for(server: &mut Running, d: Duration, blocks: &mut Vec<AudioBlock>) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::thread::sleep(DRAIN);
        server.drain(blocks);
    }
}

/// One run of `client` against `server`: its figures, before the cross-row ones.
fn run_once(
    client: Client,
    server: &mut Running,
    socket: &Path,
    tools: &Tools,
    scratch: &Scratch,
    seconds: f64,
) -> anyhow::Result<Figures> {
    let mut blocks = Vec::new();
    // Let the previous run's last blocks and write delays go before measuring.
    drain_for(server, SETTLE, &mut blocks);
    blocks.clear();
    if let Running::Crosscast(s) = server {
        s.server().take_write_delays(&mut Vec::new());
    }
    let children_before = resource_usage(UsageOf::Children)?;
    let (cpu0, frames0, wall0) = (server.cpu_ns()?, server.frames_mixed(), Instant::now());
    let audio = Duration::from_secs_f64(seconds);
    match client {
        Client::Idle => drain_for(server, audio, &mut blocks),
        _ => {
            let mut child = spawn_client(client, tools, scratch, socket)?;
            let stderr = child.0.stderr.take().context("client stderr")?;
            let log = std::thread::spawn(move || {
                BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                    .collect::<Vec<_>>()
            });
            // paplay and pacat leave once their audio has played; loopwave loops until asked
            // to stop (SIGTERM, which SDL turns into a clean quit).
            let stop_at = (client == Client::Loopwave).then(|| wall0 + audio);
            let give_up = wall0 + audio + GRACE;
            let status = loop {
                std::thread::sleep(DRAIN);
                server.drain(&mut blocks);
                server.check()?;
                if let Some(status) = child.0.try_wait()? {
                    break status;
                }
                if stop_at.is_some_and(|t| Instant::now() >= t) {
                    stop_child(&mut child.0, Duration::from_secs(3));
                    break child.0.wait()?;
                }
                if Instant::now() > give_up {
                    bail!(
                        "{} still playing {:.0} s after its {seconds} s of audio",
                        client.name(),
                        GRACE.as_secs_f64()
                    );
                }
            };
            let log = log.join().unwrap_or_default().join("\n");
            // SDL's clean quit on SIGTERM exits 0; anything else is a failed client.
            if !status.success() {
                bail!("{} failed ({status}):\n{log}", client.name());
            }
        }
    }
    server.drain(&mut blocks);
    let wall_ns = wall0.elapsed().as_nanos().max(1) as f64;
    let cpu_ns = server.cpu_ns()?.saturating_sub(cpu0) as f64;
    let children = resource_usage(UsageOf::Children)?;
    let client_ns = (children.user_ns + children.system_ns)
        .saturating_sub(children_before.user_ns + children_before.system_ns)
        as f64;
    let mut f = Figures::new();
    // Seconds of audio over the run: what the pump mixed for crosscast; for the daemon, whose
    // null sink plays at real time and does not count, the wall time.
    let audio_s = match (frames0, server.frames_mixed()) {
        (Some(a), Some(b)) => {
            let frames = b.saturating_sub(a);
            f.insert("frames", frames as f64);
            frames as f64 / f64::from(MIX_RATE)
        }
        _ => wall_ns / 1e9,
    };
    if audio_s <= 0.0 {
        bail!("the pump mixed no audio during the run");
    }
    f.insert("audio_s", audio_s);
    f.insert("cpu_ms_per_audio_s", cpu_ns / 1e6 / audio_s);
    f.insert("cpu_core_pct", cpu_ns / wall_ns * 100.0);
    if client != Client::Idle {
        f.insert("client_cpu_ms_per_audio_s", client_ns / 1e6 / audio_s);
        // Per second of the client's own audio (each plays `seconds` of the tone): the same
        // work on either server, however long each takes to start and drain.
        f.insert("cpu_ms_per_played_s", cpu_ns / 1e6 / seconds);
    }
    if let Running::Crosscast(s) = server {
        let heard = blocks
            .iter()
            .filter(|b| b.to_f32().iter().any(|s| s.abs() > HEARD))
            .map(|b| b.frames())
            .sum::<usize>();
        f.insert("heard_s", heard as f64 / f64::from(MIX_RATE));
        let mut delays = Vec::new();
        s.server().take_write_delays(&mut delays);
        if client != Client::Idle {
            if delays.is_empty() {
                bail!("{}: the server measured no writes", client.name());
            }
            delays.sort_unstable();
            let ms = |v: u64| v as f64 / 1e6;
            f.insert("delay_p50_ms", ms(percentile_sorted(&delays, 50.0)));
            f.insert("delay_p99_ms", ms(percentile_sorted(&delays, 99.0)));
            f.insert("delay_max_ms", ms(*delays.last().unwrap_or(&0)));
            f.insert("writes", delays.len() as f64);
        }
    }
    Ok(f)
}

/// Cross-row figures of one server's round (rows in [`CLIENTS`] order, idle first): each
/// client's CPU minus the idle server's, and their ratio.
fn relate_to_idle(round: &mut [Figures]) {
    let Some((idle, rest)) = round.split_first_mut() else {
        return;
    };
    let (idle_ms, idle_pct) = (idle["cpu_ms_per_audio_s"], idle["cpu_core_pct"]);
    for f in rest {
        let (ms, pct) = (f["cpu_ms_per_audio_s"], f["cpu_core_pct"]);
        f.insert("cpu_ms_per_audio_s_over_idle", ms - idle_ms);
        f.insert("cpu_core_pct_over_idle", pct - idle_pct);
        if idle_ms > 0.0 {
            f.insert("cpu_ratio_to_idle", ms / idle_ms);
        }
    }
}

/// crosscast's CPU per second of the client's audio as a ratio to pulseaudio's, client by
/// client, within the round (the idle rows play nothing and get none).
fn relate_to_daemon(ours: &mut [Figures], daemon: &[Figures]) {
    for (o, d) in ours.iter_mut().zip(daemon) {
        if let (Some(mine), Some(&theirs)) =
            (o.get("cpu_ms_per_played_s"), d.get("cpu_ms_per_played_s"))
        {
            if theirs > 0.0 {
                let r = mine / theirs;
                o.insert("cpu_ratio_to_pulseaudio", r);
            }
        }
    }
}

/// Runs `runs` rounds (crosscast's server with every client, then the pulseaudio daemon with
/// every client, unless `reference` is false) and reports the median and range of each figure.
pub(crate) fn pulse(seconds: f64, runs: u32, reference: bool) -> anyhow::Result<Report> {
    let tools = tools()?;
    // The reference is optional: without pulseaudio its rows say why and carry no figures.
    let daemon = if reference {
        crate::pipeline::find_tool("bench pulse", "pulseaudio", "pulseaudio")
            .map_err(|e| format!("{e:#}"))
    } else {
        Err("not run (--no-reference)".to_string())
    };
    let scratch = Scratch::new(seconds)?;
    let mut ours: Vec<Vec<Figures>> = vec![Vec::new(); CLIENTS.len()];
    let mut theirs: Vec<Vec<Figures>> = vec![Vec::new(); CLIENTS.len()];
    for round in 0..runs {
        let mut servers = vec![Server::Crosscast];
        if daemon.is_ok() {
            servers.push(Server::Daemon);
        }
        let mut by_server: Vec<Vec<Figures>> = Vec::new();
        for server in servers {
            let dir = tempfile::tempdir_in(scratch.dir.path())?;
            let (mut running, socket) = match (server, &daemon) {
                (Server::Crosscast, _) => {
                    let s = PulseSource::start(dir.path(), Limits::default())?;
                    let socket = s.server().socket_path().to_path_buf();
                    (Running::Crosscast(s), socket)
                }
                (Server::Daemon, Ok(pa)) => start_daemon(pa, dir.path())?,
                (Server::Daemon, Err(_)) => continue,
            };
            let mut figures = Vec::new();
            for client in CLIENTS {
                say!(
                    "bench pulse: round {}/{runs}, {}, {}, {seconds} s ...",
                    round + 1,
                    server.name(),
                    client.name()
                );
                let f = run_once(client, &mut running, &socket, &tools, &scratch, seconds)
                    .with_context(|| format!("{} on {}", client.name(), server.name()))?;
                let delay = match (f.get("delay_p50_ms"), f.get("delay_p99_ms")) {
                    (Some(p50), Some(p99)) => format!("delay p50 {p50:.1} ms, p99 {p99:.1} ms; "),
                    _ => String::new(),
                };
                say!(
                    "bench pulse:   {delay}CPU {:.2} ms per s of audio ({:.2}% of a core)",
                    f["cpu_ms_per_audio_s"],
                    f["cpu_core_pct"]
                );
                figures.push(f);
            }
            relate_to_idle(&mut figures);
            by_server.push(figures);
        }
        let mut by_server = by_server.into_iter();
        let mut mine = by_server.next().context("no crosscast round")?;
        if let Some(pa) = by_server.next() {
            relate_to_daemon(&mut mine, &pa);
            for (all, f) in theirs.iter_mut().zip(pa) {
                all.push(f);
            }
        }
        for (all, f) in ours.iter_mut().zip(mine) {
            all.push(f);
        }
    }
    let mut report = Report::new("pulse");
    for (client, rounds) in CLIENTS.iter().zip(&ours) {
        report.rows.push(aggregate(
            client.name(),
            Server::Crosscast.name(),
            rounds,
            COLUMNS,
        ));
    }
    for (client, rounds) in CLIENTS.iter().zip(&theirs) {
        let mut row = aggregate(client.name(), Server::Daemon.name(), rounds, COLUMNS);
        if let Err(why) = &daemon {
            row = row.with_extra("note", why.as_str());
        }
        report.rows.push(row);
    }
    for row in &mut report.rows {
        row.extra.insert("seconds".into(), seconds.into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_gives_the_run_time() {
        assert_eq!(parse_schedstat_ns("693985 590329 2\n"), Some(693_985));
        assert_eq!(parse_schedstat_ns(""), None);
        // The sum covers every thread: this test's (not the process's main thread) spinning
        // for 30 ms of its own CPU shows in it, however busy the machine.
        let me = std::process::id();
        let thread_ns = || {
            let u = resource_usage(UsageOf::Thread).unwrap();
            u.user_ns + u.system_ns
        };
        let a = proc_cpu_ns(me).unwrap();
        let t0 = thread_ns();
        let mut x = 0u64;
        while thread_ns() < t0 + 30_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = proc_cpu_ns(me).unwrap();
        // Both clocks count the scheduler's run time; a tick's worth of slack between them.
        assert!(a > 0 && b >= a + 25_000_000, "{a} -> {b}");
    }

    #[test]
    fn the_tone_is_a_valid_wav_of_the_asked_length() {
        let pcm = tone(0.5);
        assert_eq!(pcm.len(), 24_000 * 4);
        let w = wav(&pcm);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(w[4..8].try_into().unwrap()) as usize,
            w.len() - 8
        );
        assert_eq!(u32::from_le_bytes(w[24..28].try_into().unwrap()), 48_000);
        assert_eq!(
            u32::from_le_bytes(w[40..44].try_into().unwrap()) as usize,
            pcm.len()
        );
        // A quarter of full scale, reached (a 440 Hz sine peaks within every period).
        let peak = pcm
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs())
            .max()
            .unwrap();
        assert!((8000..=8200).contains(&peak), "{peak}");
    }

    #[test]
    fn client_costs_are_relative_to_the_idle_server_of_the_round() {
        let mut round: Vec<Figures> = [2.0, 5.0]
            .iter()
            .map(|&ms| {
                let mut f = Figures::new();
                f.insert("cpu_ms_per_audio_s", ms);
                f.insert("cpu_core_pct", ms / 10.0);
                f
            })
            .collect();
        relate_to_idle(&mut round);
        assert_eq!(round[1]["cpu_ms_per_audio_s_over_idle"], 3.0);
        assert!((round[1]["cpu_core_pct_over_idle"] - 0.3).abs() < 1e-12);
        assert_eq!(round[1]["cpu_ratio_to_idle"], 2.5);
        assert!(!round[0].contains_key("cpu_ratio_to_idle"));
        let mut daemon = round.clone();
        daemon[1].insert("cpu_ms_per_played_s", 4.0);
        let mut ours = round.clone();
        ours[1].insert("cpu_ms_per_played_s", 10.0);
        relate_to_daemon(&mut ours, &daemon);
        assert_eq!(ours[1]["cpu_ratio_to_pulseaudio"], 2.5);
        assert!(!ours[0].contains_key("cpu_ratio_to_pulseaudio"));
    }
}

//! `crosscast bench ipc`: the article's transport comparison, on Linux, with two real processes.
//!
//! WeChat's team chose how to move audio between processes by sending 3 KB, 4 MB and 10 MB
//! objects every 16 ms over each candidate and measuring the delay from "sent" to "usable object
//! in the receiver". This module repeats that for the Linux transports crosscast could use, and
//! puts crosscast's own zero-copy surface and iceoryx2 (as an outside reference) in the same table.
//!
//! # Method
//! For every transport and size, [`run_ipc`] spawns `peer_exe bench ipc-peer ARGS` (which runs
//! [`ipc_peer_main`]) as the *sender*, the game's side; the bench process itself is the
//! *receiver*, the host's side. A Unix socketpair on the peer's stdin carries the set-up (the
//! transport's fds, by SCM_RIGHTS) and the start/finish steps. The peer then sends
//! `warmup + count` messages, one every `interval_ms` (absolute deadlines, so a slow send does not
//! shift the schedule). Each message is a 32-byte header (sequence, length, sender's
//! `CLOCK_MONOTONIC` timestamp taken just before sending, XXH3 checksum) and a payload of the
//! given size. The payload is produced before the timestamp (for the zero-copy transports in
//! place in shared memory, which is their point): when the deadline comes, then sent at once, as
//! crosscast's game renders and queues a frame; or, with [`IpcOptions::produce_ahead`], before
//! the deadline and sent on it, as a game presenting on vsync. Everything after the timestamp
//! is the transport's cost.
//!
//! The delay for a message ends, as docs/design.md defines it, when the receiver holds a usable
//! object: every byte copied into its buffer, or for the zero-copy transports the shared
//! memory mapped and handed over. Every message is then validated (the checksum over every
//! payload byte, so no transport can pass without delivering all of its data; a mismatch fails
//! the case), outside the delay because it costs the same for every transport. Rows also report
//! `validated_p50_us` and `validated_p99_us` (the delay until validation had finished, in
//! the thread that uses the object) and `checksum_avg_us`, plus `min_us` and `p90_us` for the
//! chart and whatever the transport was configured with (buffer sizes, datagram size).
//! Warm-up messages are not counted. Stall rate as in docs/design.md.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use serde_json::{Map, Value};

use crate::stats::{percentile_sorted, Report, Row, Summary};
use crate::BenchError;

mod ctl;
mod iox;
mod msg;
mod seqpacket;
mod shm;
mod stream;
mod surface;

/// Every transport, in table order: the copying transports first, the zero-copy ones last.
pub const TRANSPORTS: [&str; 8] = [
    "uds-stream",
    "uds-seqpacket",
    "pipe",
    "tcp",
    "shm-ring",
    "mmap-file",
    "iceoryx2",
    "surface",
];

/// Transports whose receiver uses the sender's memory in place instead of copying the object.
pub const ZERO_COPY: [&str; 2] = ["iceoryx2", "surface"];

/// The article's object sizes: 3 KB, 4 MB and 10 MB (as 3 KiB, 4 MiB and 10 MiB).
pub const DEFAULT_SIZES: [usize; 3] = [3072, 4_194_304, 10_485_760];

/// Messages per case with `--quick`.
pub const QUICK_COUNT: usize = 50;
/// Warm-up messages per case with `--quick`.
pub const QUICK_WARMUP: usize = 5;

/// How long the receiver waits for one message beyond its due time before giving up on a case.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long set-up and tear-down steps may take (spawning, mapping, iceoryx2 service creation).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What `crosscast bench ipc` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct IpcOptions {
    /// Measured messages per transport and size (`--count`, default 300).
    pub count: usize,
    /// Milliseconds between messages (`--interval-ms`, default 16, the article's frame period).
    pub interval_ms: u64,
    /// Payload sizes in bytes (`--sizes`, default [`DEFAULT_SIZES`]).
    pub sizes: Vec<usize>,
    /// Transports to run (`--transports`); empty means all of [`TRANSPORTS`].
    pub transports: Vec<String>,
    /// Fewer messages ([`QUICK_COUNT`] and [`QUICK_WARMUP`]), so a full run takes under 30 s.
    pub quick: bool,
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Where to draw the delay chart (`.svg` or `.png`), if anywhere.
    pub plot: Option<PathBuf>,
    /// Messages sent and discarded before measuring (`--warmup`, default 10).
    pub warmup: usize,
    /// The sender produces each message ahead and sends it on its deadline, as a game that
    /// presents on vsync (`--produce-ahead`); by default it produces the message when the
    /// deadline comes and sends it at once, as crosscast's game renders a frame and queues it.
    pub produce_ahead: bool,
}

impl Default for IpcOptions {
    fn default() -> IpcOptions {
        IpcOptions {
            count: 300,
            interval_ms: 16,
            sizes: DEFAULT_SIZES.to_vec(),
            transports: Vec::new(),
            quick: false,
            json: None,
            plot: None,
            warmup: 10,
            produce_ahead: false,
        }
    }
}

impl IpcOptions {
    /// The transports this run covers, in table order, after checking every name.
    pub fn selected_transports(&self) -> Result<Vec<&'static str>, BenchError> {
        for t in &self.transports {
            if !TRANSPORTS.contains(&t.as_str()) {
                return Err(BenchError::Options(format!(
                    "unknown transport {t:?}; known: {}",
                    TRANSPORTS.join(", ")
                )));
            }
        }
        Ok(TRANSPORTS
            .into_iter()
            .filter(|t| self.transports.is_empty() || self.transports.iter().any(|s| s == t))
            .collect())
    }

    /// (measured messages, warm-up messages) per case, `--quick` applied.
    pub fn counts(&self) -> (usize, usize) {
        if self.quick {
            (self.count.min(QUICK_COUNT), self.warmup.min(QUICK_WARMUP))
        } else {
            (self.count, self.warmup)
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        let (count, warmup) = self.counts();
        if count == 0 {
            return Err(BenchError::Options("--count must be at least 1".into()));
        }
        if count + warmup > u32::MAX as usize {
            return Err(BenchError::Options("--count is absurdly large".into()));
        }
        if self.interval_ms > MAX_INTERVAL_MS {
            return Err(BenchError::Options(format!(
                "--interval-ms {} is over the limit of {MAX_INTERVAL_MS}",
                self.interval_ms
            )));
        }
        if self.sizes.is_empty() || self.sizes.contains(&0) {
            return Err(BenchError::Options(
                "--sizes needs at least one size, each at least 1 byte".into(),
            ));
        }
        if let Some(&big) = self.sizes.iter().find(|&&s| s > MAX_SIZE) {
            return Err(BenchError::Options(format!(
                "size {big} exceeds the bench's limit of {MAX_SIZE} bytes"
            )));
        }
        Ok(())
    }
}

/// Longest interval between messages the bench accepts (one minute).
pub const MAX_INTERVAL_MS: u64 = 60_000;

/// Largest payload the bench accepts (256 MiB): beyond that the shared segments of the
/// zero-copy transports would crowd this machine's memory.
pub const MAX_SIZE: usize = 256 << 20;

/// Runs the comparison: every selected transport at every size, each case with a fresh peer
/// process started as `peer_exe bench ipc-peer ARGS`. Writes `opts.json` and `opts.plot` when
/// set. A case that cannot run here becomes a row with `messages: 0` and a `note` saying why.
/// `progress` receives one status line per case.
pub fn run_ipc(
    opts: &IpcOptions,
    peer_exe: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, BenchError> {
    opts.check()?;
    let transports = opts.selected_transports()?;
    if !peer_exe.exists() {
        return Err(BenchError::Spawn {
            path: peer_exe.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let (count, warmup) = opts.counts();
    let mut report = Report::new("ipc");
    for transport in transports {
        for &size in &opts.sizes {
            let case = format!("{transport}/{size}");
            progress(&format!(
                "ipc: {transport} {} ({} messages, every {} ms)",
                crate::stats::human_size(size as u64),
                count + warmup,
                opts.interval_ms
            ));
            let plan = Plan {
                transport,
                size,
                count,
                warmup,
                interval_ms: opts.interval_ms,
                produce_ahead: opts.produce_ahead,
            };
            let row = match run_case(&plan, peer_exe) {
                Ok(outcome) => outcome.into_row(&case),
                Err(reason) => {
                    progress(&format!("ipc: {case}: {reason}"));
                    Row::without_delays(&case).with_extra("note", reason)
                }
            };
            report.rows.push(
                row.with_transport(transport)
                    .with_size(size as u64)
                    .with_extra("zero_copy", ZERO_COPY.contains(&transport))
                    .with_extra("interval_ms", opts.interval_ms)
                    .with_extra("warmup", warmup),
            );
        }
    }
    if let Some(path) = &opts.json {
        report.write_json(path)?;
    }
    if let Some(path) = &opts.plot {
        crate::plot::write_plot(&report, path)?;
    }
    Ok(report)
}

/// One case.
struct Plan {
    transport: &'static str,
    size: usize,
    count: usize,
    warmup: usize,
    interval_ms: u64,
    produce_ahead: bool,
}

/// What the receiver measured for one message, all `CLOCK_MONOTONIC` nanoseconds.
pub(crate) struct Received {
    /// Sender's timestamp from the header.
    sent_ns: u64,
    /// When the receiver held the usable object (bytes in place, or the slot mapped and
    /// handed over): the end of the delay.
    received_ns: u64,
    /// When validation (the checksum over every payload byte) started.
    checked_from_ns: u64,
    /// When the object had also passed validation.
    valid_ns: u64,
}

/// The host side of a transport.
pub(crate) trait Receive {
    /// Starts the peer. Transports that hand the peer more than the control socket (the
    /// surface's session socket and key) override this.
    fn spawn(&mut self, mut cmd: Command) -> Result<Child, String> {
        cmd.spawn().map_err(|e| format!("spawning the peer: {e}"))
    }

    /// Completes the connection once the peer has its set-up step (e.g. a handshake).
    fn connect(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Waits up to `timeout` for message `expect_seq`, takes it and validates it.
    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String>;

    /// Figures the transport kept itself over the run, added to its row at the end.
    fn report(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// The game side of a transport.
pub(crate) trait Transmit {
    /// Produces message `seq` before it is sent: in the sender's buffer for the copying
    /// transports, in shared memory for the zero-copy ones.
    fn prepare(&mut self, seq: u32) -> Result<(), String>;
    /// Timestamps the prepared message `seq` and sends it; it was scheduled for `due_ns`
    /// (CLOCK_MONOTONIC).
    fn send(&mut self, seq: u32, due_ns: u64) -> Result<(), String>;
}

/// A transport's receiver plus what the peer needs to build the sender.
pub(crate) struct Setup {
    rx: Box<dyn Receive>,
    /// Fds handed to the peer, closed here once sent so that a dead peer shows as end-of-file.
    fds: Vec<OwnedFd>,
    /// Extra peer arguments.
    args: Vec<String>,
    /// Extra row fields describing how the transport was configured.
    extra: Map<String, Value>,
}

impl Setup {
    fn new(rx: Box<dyn Receive>, fds: Vec<OwnedFd>) -> Setup {
        Setup {
            rx,
            fds,
            args: Vec::new(),
            extra: Map::new(),
        }
    }
}

/// The `produce` field of a row and the peer's `--produce` value: when the sender produces
/// each message.
fn produce_mode(ahead: bool) -> &'static str {
    if ahead {
        "ahead"
    } else {
        "on-time"
    }
}

fn setup_receiver(transport: &str, size: usize) -> Result<Setup, String> {
    match transport {
        "uds-stream" => stream::setup_uds(size),
        "uds-seqpacket" => seqpacket::setup(size),
        "pipe" => stream::setup_pipe(size),
        "tcp" => stream::setup_tcp(size),
        "shm-ring" => shm::setup_ring(size),
        "mmap-file" => shm::setup_file(size),
        "iceoryx2" => iox::setup(size),
        "surface" => surface::setup(size),
        other => Err(format!("unknown transport {other}")),
    }
}

fn setup_sender(args: &PeerArgs, fds: Vec<OwnedFd>) -> Result<Box<dyn Transmit>, String> {
    let size = args.size;
    let mut fds = fds.into_iter();
    let mut next_fd = |what: &str| {
        fds.next()
            .ok_or_else(|| format!("the set-up step carried no {what} fd"))
    };
    Ok(match args.transport.as_str() {
        "uds-stream" | "tcp" | "pipe" => Box::new(stream::StreamTx::new(next_fd("data")?, size)),
        "uds-seqpacket" => {
            let datagram = args.number("--datagram")?;
            Box::new(seqpacket::SeqTx::new(next_fd("socket")?, size, datagram)?)
        }
        "shm-ring" => Box::new(shm::RingTx::new(
            next_fd("ring memfd")?,
            next_fd("data eventfd")?,
            next_fd("space eventfd")?,
            size,
        )?),
        "mmap-file" => Box::new(shm::FileTx::new(
            args.text("--file")?,
            next_fd("notification socket")?,
            size,
        )?),
        "iceoryx2" => Box::new(iox::IoxTx::new(args.text("--service")?, size)?),
        "surface" => Box::new(surface::SurfaceTx::new(size)?),
        other => return Err(format!("unknown transport {other}")),
    })
}

/// What one case measured.
struct Outcome {
    delays_ns: Vec<u64>,
    validated_ns: Vec<u64>,
    checksum_ns: u128,
    extra: Map<String, Value>,
}

impl Outcome {
    fn into_row(mut self, case: &str) -> Row {
        let summary = Summary::from_delays_ns(&self.delays_ns);
        self.delays_ns.sort_unstable();
        self.validated_ns.sort_unstable();
        let n = self.delays_ns.len().max(1) as f64;
        let us = |ns: u64| ns as f64 / 1000.0;
        let mut row = Row::new(case, summary)
            .with_extra("min_us", us(self.delays_ns.first().copied().unwrap_or(0)))
            .with_extra("p90_us", us(percentile_sorted(&self.delays_ns, 90.0)))
            .with_extra(
                "validated_p50_us",
                us(percentile_sorted(&self.validated_ns, 50.0)),
            )
            .with_extra(
                "validated_p99_us",
                us(percentile_sorted(&self.validated_ns, 99.0)),
            )
            .with_extra("checksum_avg_us", self.checksum_ns as f64 / n / 1000.0);
        row.extra.append(&mut self.extra);
        row
    }
}

/// Kills the peer if a case ends early, so no sender outlives its receiver.
struct PeerGuard(Option<Child>);

impl PeerGuard {
    /// Waits up to `timeout` for the peer to exit; kills it after that. Returns its stderr on
    /// failure.
    fn finish(&mut self, timeout: Duration) -> Result<(), String> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("peer did not exit within {timeout:?}; killed"));
                }
                Err(e) => return Err(format!("waiting for the peer: {e}")),
            }
        };
        if status.success() {
            Ok(())
        } else {
            let said = stderr_of(&mut child);
            Err(if said.is_empty() {
                format!("peer {status}")
            } else {
                format!("peer {status}: {said}")
            })
        }
    }

    /// Kills the peer and returns what it said on stderr, for an error message.
    fn kill(&mut self) -> String {
        let Some(mut child) = self.0.take() else {
            return String::new();
        };
        // Give a peer that is already failing a moment to finish its own message.
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
        stderr_of(&mut child)
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    let text = text.trim();
    // The last line is the error; earlier lines are context the row does not need.
    text.lines().last().unwrap_or("").to_string()
}

fn run_case(plan: &Plan, peer_exe: &Path) -> Result<Outcome, String> {
    let setup =
        setup_receiver(plan.transport, plan.size).map_err(|e| format!("could not run: {e}"))?;
    let Setup {
        mut rx,
        fds,
        args,
        mut extra,
    } = setup;
    extra.insert("produce".into(), produce_mode(plan.produce_ahead).into());
    let (ctl, ctl_child) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("could not run: control socketpair: {e}"))?;
    let total = plan.count + plan.warmup;
    let mut cmd = Command::new(peer_exe);
    cmd.args(["bench", "ipc-peer"])
        .args(["--transport", plan.transport])
        .args(["--size", &plan.size.to_string()])
        .args(["--count", &total.to_string()])
        .args(["--interval-ms", &plan.interval_ms.to_string()])
        .args(["--produce", produce_mode(plan.produce_ahead)])
        .args(&args)
        .stdin(Stdio::from(ctl_child))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = rx
        .spawn(cmd)
        .map_err(|e| format!("could not run: {e} ({})", peer_exe.display()))?;
    let mut peer = PeerGuard(Some(child));
    let fail = |peer: &mut PeerGuard, what: String| {
        let said = peer.kill();
        if said.is_empty() {
            format!("failed: {what}")
        } else {
            format!("failed: {what} (peer: {said})")
        }
    };

    let sent = ctl::send(ctl.as_fd(), ctl::Step::Setup, &ctl::borrow_all(&fds));
    drop(fds);
    let ready = sent
        .and_then(|()| rx.connect())
        .and_then(|()| ctl::recv(ctl.as_fd(), ctl::Step::Ready, STEP_TIMEOUT));
    if let Err(e) = ready {
        // A peer that cannot set its side up is an environment limit, not a broken transport.
        let said = peer.kill();
        return Err(if said.is_empty() {
            format!("could not run: {e}")
        } else {
            format!("could not run: {e} (peer: {said})")
        });
    }
    if let Err(e) = ctl::send(ctl.as_fd(), ctl::Step::Go, &[]) {
        return Err(fail(&mut peer, e));
    }

    let timeout = Duration::from_millis(plan.interval_ms) + MESSAGE_TIMEOUT;
    let mut out = Outcome {
        delays_ns: Vec::with_capacity(plan.count),
        validated_ns: Vec::with_capacity(plan.count),
        checksum_ns: 0,
        extra,
    };
    for seq in 0..total {
        // `check` bounds total by u32::MAX.
        let r = match rx.recv(seq as u32, timeout) {
            Ok(r) => r,
            Err(e) => return Err(fail(&mut peer, e)),
        };
        if seq >= plan.warmup {
            out.delays_ns.push(r.received_ns.saturating_sub(r.sent_ns));
            out.validated_ns.push(r.valid_ns.saturating_sub(r.sent_ns));
            out.checksum_ns += u128::from(r.valid_ns.saturating_sub(r.checked_from_ns));
        }
    }
    if let Err(e) = ctl::recv(ctl.as_fd(), ctl::Step::Done, STEP_TIMEOUT) {
        return Err(fail(&mut peer, e));
    }
    out.extra.append(&mut rx.report());
    // Closing the control socket tells the peer it may release the transport and exit.
    drop(ctl);
    peer.finish(STEP_TIMEOUT)
        .map_err(|e| format!("failed: {e}"))?;
    drop(rx);
    Ok(out)
}

/// The peer's parsed arguments.
struct PeerArgs {
    transport: String,
    size: usize,
    count: usize,
    interval_ms: u64,
    /// `--produce ahead`: produce each message before its deadline, not on it.
    ahead: bool,
    rest: Vec<(String, String)>,
}

impl PeerArgs {
    fn parse(args: &[String]) -> Result<PeerArgs, BenchError> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !flag.starts_with("--") {
                return Err(BenchError::PeerArgs(format!(
                    "unexpected argument {flag:?}"
                )));
            }
            let value = it
                .next()
                .ok_or_else(|| BenchError::PeerArgs(format!("{flag} needs a value")))?;
            pairs.push((flag.clone(), value.clone()));
        }
        let mut me = PeerArgs {
            transport: String::new(),
            size: 0,
            count: 0,
            interval_ms: 0,
            ahead: false,
            rest: pairs,
        };
        me.transport = me
            .text("--transport")
            .map_err(BenchError::PeerArgs)?
            .to_string();
        if !TRANSPORTS.contains(&me.transport.as_str()) {
            return Err(BenchError::PeerArgs(format!(
                "unknown transport {:?}",
                me.transport
            )));
        }
        me.size = me.number("--size").map_err(BenchError::PeerArgs)?;
        me.count = me.number("--count").map_err(BenchError::PeerArgs)?;
        me.interval_ms = me.number("--interval-ms").map_err(BenchError::PeerArgs)? as u64;
        me.ahead = match me.text("--produce").unwrap_or(produce_mode(false)) {
            m if m == produce_mode(true) => true,
            m if m == produce_mode(false) => false,
            m => return Err(BenchError::PeerArgs(format!("unknown --produce {m:?}"))),
        };
        if me.size == 0 || me.size > MAX_SIZE {
            return Err(BenchError::PeerArgs(format!(
                "size {} out of range",
                me.size
            )));
        }
        if me.count > u32::MAX as usize {
            return Err(BenchError::PeerArgs("count out of range".into()));
        }
        if me.interval_ms > MAX_INTERVAL_MS {
            return Err(BenchError::PeerArgs("interval out of range".into()));
        }
        Ok(me)
    }

    fn text(&self, flag: &str) -> Result<&str, String> {
        self.rest
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("missing {flag}"))
    }

    fn number(&self, flag: &str) -> Result<usize, String> {
        let v = self.text(flag)?;
        v.parse()
            .map_err(|_| format!("{flag} {v:?} is not a number"))
    }
}

/// The peer process: `crosscast bench ipc-peer ARGS`, where `args` are the arguments after
/// `ipc-peer`, as [`run_ipc`] passes them. Its stdin must be the control socket `run_ipc` set up;
/// it builds the transport's sender, waits for the go step, sends every message on schedule and
/// returns. On error the caller should print the error on stderr and exit non-zero: the parent
/// shows that line as the reason in the transport's row.
pub fn ipc_peer_main(args: &[String]) -> Result<(), BenchError> {
    let args = PeerArgs::parse(args)?;
    let ctl = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| BenchError::Peer(format!("stdin is not usable: {e}")))?;
    let peer = |what: &str, e: String| BenchError::Peer(format!("{}: {what}: {e}", args.transport));
    let fds = ctl::recv(ctl.as_fd(), ctl::Step::Setup, STEP_TIMEOUT)
        .map_err(|e| peer("set-up (is stdin the bench's control socket?)", e))?;
    let mut tx = setup_sender(&args, fds).map_err(|e| peer("sender set-up", e))?;
    ctl::send(ctl.as_fd(), ctl::Step::Ready, &[]).map_err(|e| peer("ready", e))?;
    ctl::recv(ctl.as_fd(), ctl::Step::Go, STEP_TIMEOUT).map_err(|e| peer("go", e))?;
    let interval = Duration::from_millis(args.interval_ms);
    let start = Instant::now();
    let start_ns = msg::now_ns();
    let prepare = |tx: &mut Box<dyn Transmit>, seq: usize| {
        tx.prepare(seq as u32)
            .map_err(|e| peer(&format!("producing message {seq}"), e))
    };
    for seq in 0..args.count {
        if args.ahead {
            prepare(&mut tx, seq)?;
        }
        // Absolute deadlines: a slow send delays only itself, not the rest of the schedule.
        // Both factors are bounded by `PeerArgs::parse`, so this cannot overflow.
        let due = start + interval * seq as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if !args.ahead {
            prepare(&mut tx, seq)?;
        }
        let due_ns = start_ns + (interval * seq as u32).as_nanos() as u64;
        tx.send(seq as u32, due_ns)
            .map_err(|e| peer(&format!("message {seq}"), e))?;
    }
    ctl::send(ctl.as_fd(), ctl::Step::Done, &[]).map_err(|e| peer("done", e))?;
    // Hold the transport until the receiver has seen everything: it closes the control socket
    // only after the last message, and a sender that vanished early could take shared memory
    // or a queued message with it.
    let _ = ctl::wait_readable(ctl.as_fd(), STEP_TIMEOUT);
    drop(tx);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn peer_args_parse_and_reject() {
        let a = PeerArgs::parse(&s(&[
            "--transport",
            "pipe",
            "--size",
            "3072",
            "--count",
            "10",
            "--interval-ms",
            "16",
            "--datagram",
            "4096",
        ]))
        .unwrap();
        assert_eq!(a.transport, "pipe");
        assert_eq!((a.size, a.count, a.interval_ms), (3072, 10, 16));
        assert_eq!(a.number("--datagram"), Ok(4096));
        assert!(a.text("--service").is_err());
        assert!(!a.ahead, "messages are produced on time unless asked");
        let with = |mode: &str| {
            let mut v = s(&["--transport", "pipe", "--size", "1", "--count", "1"]);
            v.extend(s(&["--interval-ms", "1", "--produce", mode]));
            PeerArgs::parse(&v)
        };
        assert!(with("ahead").unwrap().ahead);
        assert!(!with("on-time").unwrap().ahead);
        assert!(matches!(with("late"), Err(BenchError::PeerArgs(_))));

        for bad in [
            &[
                "--transport",
                "carrier-pigeon",
                "--size",
                "1",
                "--count",
                "1",
                "--interval-ms",
                "1",
            ][..],
            &[
                "--transport",
                "pipe",
                "--size",
                "0",
                "--count",
                "1",
                "--interval-ms",
                "1",
            ],
            &[
                "--transport",
                "pipe",
                "--size",
                "x",
                "--count",
                "1",
                "--interval-ms",
                "1",
            ],
            &["--transport", "pipe", "--size"],
            &[
                "--transport",
                "pipe",
                "--size",
                "1",
                "--count",
                "1",
                "--interval-ms",
                "99999999",
            ],
            &["pipe"],
        ] {
            assert!(
                matches!(PeerArgs::parse(&s(bad)), Err(BenchError::PeerArgs(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn options_select_and_validate() {
        let mut o = IpcOptions::default();
        assert_eq!(o.selected_transports().unwrap(), TRANSPORTS.to_vec());
        assert_eq!(o.counts(), (300, 10));
        o.transports = s(&["surface", "tcp"]);
        // Table order, not command-line order.
        assert_eq!(o.selected_transports().unwrap(), vec!["tcp", "surface"]);
        o.transports = s(&["smoke-signals"]);
        assert!(matches!(
            o.selected_transports(),
            Err(BenchError::Options(_))
        ));
        o.transports.clear();
        o.quick = true;
        assert_eq!(o.counts(), (QUICK_COUNT, QUICK_WARMUP));
        o.interval_ms = MAX_INTERVAL_MS + 1;
        assert!(matches!(o.check(), Err(BenchError::Options(_))));
        o.interval_ms = 16;
        o.sizes = vec![0];
        assert!(matches!(o.check(), Err(BenchError::Options(_))));
        o.sizes = vec![MAX_SIZE + 1];
        assert!(matches!(o.check(), Err(BenchError::Options(_))));
    }
}

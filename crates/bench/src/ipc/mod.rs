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
//! The delay for a message ends at the same point for every transport: when the thread that
//! consumes the object holds it, usable, after the checking the protocol requires (every byte
//! copied into its buffer; for iceoryx2 the sample received; for the surface the frame
//! acquired by the consumer after the host's I/O thread validated it). Where a thread sits
//! between the socket and the consumer (the surface's I/O thread), its own arrival is reported
//! beside the delay (`io_thread_p50_us`, `io_thread_p99_us`; `null` elsewhere). Every receiver
//! is scheduled alike: default priority and timer slack, sleeping until its message comes (no
//! busy-poll for the surface's host session). Every message is then validated (the checksum
//! over every payload byte, so no transport can pass without delivering all of its data; a
//! mismatch fails the case), outside the delay because it costs the same for every transport.
//! Rows also report `validated_p50_us` and `validated_p99_us` (the delay until validation had
//! finished, in the consuming thread) and `checksum_avg_us`, plus `min_us` and `p90_us` for
//! the chart and whatever the transport was configured with (buffer sizes, datagram size).
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
#[cfg(feature = "iceoryx2")]
mod iox;
#[cfg(feature = "iceoryx2")]
mod mmapfile;
mod msg;
mod seqpacket;
mod shm;
mod stream;
mod surface;

/// A transport `bench ipc` measures; `--transports` takes these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Transport {
    /// Unix stream socketpair.
    UdsStream,
    /// Unix SEQPACKET socketpair (crosscast's control-channel type).
    UdsSeqpacket,
    /// Anonymous pipe with its buffer enlarged.
    Pipe,
    /// Loopback TCP with Nagle off.
    Tcp,
    /// Byte ring in a sealed memfd, copied in and out.
    ShmRing,
    /// A shared regular file, copied out (the MMKV analogue).
    MmapFile,
    /// iceoryx2 zero-copy publish-subscribe (outside reference).
    Iceoryx2,
    /// crosscast's own surface: sealed memfd slots and the BufferQueue.
    Surface,
}

impl Transport {
    /// Every transport, in table order: the copying transports first, the zero-copy ones last.
    pub const ALL: [Transport; 8] = [
        Transport::UdsStream,
        Transport::UdsSeqpacket,
        Transport::Pipe,
        Transport::Tcp,
        Transport::ShmRing,
        Transport::MmapFile,
        Transport::Iceoryx2,
        Transport::Surface,
    ];

    /// The name used on the command line, in rows and on the chart.
    pub fn name(self) -> &'static str {
        match self {
            Transport::UdsStream => "uds-stream",
            Transport::UdsSeqpacket => "uds-seqpacket",
            Transport::Pipe => "pipe",
            Transport::Tcp => "tcp",
            Transport::ShmRing => "shm-ring",
            Transport::MmapFile => "mmap-file",
            Transport::Iceoryx2 => "iceoryx2",
            Transport::Surface => "surface",
        }
    }

    /// Whether the receiver uses the sender's memory in place instead of copying the object.
    pub fn zero_copy(self) -> bool {
        matches!(self, Transport::Iceoryx2 | Transport::Surface)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Transport, BenchError> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Transport::ALL.iter().map(|t| t.name()).collect();
                BenchError::Options(format!(
                    "unknown transport {s:?}; known: {}",
                    known.join(", ")
                ))
            })
    }
}

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
    /// Transports to run (`--transports`); empty means all of [`Transport::ALL`].
    pub transports: Vec<Transport>,
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
    /// The transports this run covers, in table order.
    pub fn selected_transports(&self) -> Vec<Transport> {
        Transport::ALL
            .into_iter()
            .filter(|t| self.transports.is_empty() || self.transports.contains(t))
            .collect()
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
        if cfg!(not(feature = "plot")) && self.plot.is_some() {
            return Err(BenchError::Options(
                "this build draws no charts: build crosscast-bench with the `plot` feature \
                 (crosscast: `cargo build --release --features bench`)"
                    .into(),
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

/// `bench ipc`'s command-line options, shared by `crosscast bench ipc` and
/// `crosscast-bench-peer bench ipc`.
#[derive(Debug, Clone, clap::Args)]
pub struct IpcArgs {
    /// Messages per transport and size.
    #[arg(long, default_value_t = 300)]
    pub count: usize,
    /// Messages sent and discarded before measuring.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Milliseconds between messages.
    #[arg(long, default_value_t = 16)]
    pub interval_ms: u64,
    /// Payload sizes in bytes (default 3072, 4194304, 10485760).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Transports to run (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub transports: Vec<Transport>,
    /// Fewer messages, for a quick check (under 30 s).
    #[arg(long)]
    pub quick: bool,
    /// Produce each message ahead and send it on its deadline, as a game presenting on vsync
    /// (default: produce it when the deadline comes and send it at once).
    #[arg(long)]
    pub produce_ahead: bool,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the delay chart here (.svg or .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl From<IpcArgs> for IpcOptions {
    fn from(a: IpcArgs) -> IpcOptions {
        let defaults = IpcOptions::default();
        IpcOptions {
            count: a.count,
            warmup: a.warmup,
            interval_ms: a.interval_ms,
            sizes: if a.sizes.is_empty() {
                defaults.sizes
            } else {
                a.sizes
            },
            transports: a.transports,
            quick: a.quick,
            json: a.json,
            plot: a.plot,
            produce_ahead: a.produce_ahead,
        }
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
    let transports = opts.selected_transports();
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
                row.with_transport(transport.name())
                    .with_size(size as u64)
                    .with_extra("zero_copy", transport.zero_copy())
                    .with_extra("interval_ms", opts.interval_ms)
                    .with_extra("warmup", warmup),
            );
        }
    }
    if let Some(path) = &opts.json {
        report.write_json(path)?;
    }
    #[cfg(feature = "plot")]
    if let Some(path) = &opts.plot {
        crate::plot::write_plot(&report, path)?;
    }
    Ok(report)
}

/// Delays of the platform's floor, in ns: a payload-free ping (the 32-byte header alone, one
/// datagram) from a separate peer process (`peer_exe bench ipc-peer`) over an `AF_UNIX`
/// `SOCK_SEQPACKET` socketpair, the socket type crosscast's sessions use, one every
/// `interval_ms`, received by a thread sleeping in a blocking `recvmsg` with the process's
/// default scheduling. `warmup` messages go first and are not returned. Whatever a frame handoff
/// costs above this is crosscast's; this much any two processes on this machine pay.
pub fn run_floor(
    peer_exe: &Path,
    count: usize,
    warmup: usize,
    interval_ms: u64,
) -> Result<Vec<u64>, BenchError> {
    if count == 0 || count + warmup > u32::MAX as usize || interval_ms > MAX_INTERVAL_MS {
        return Err(BenchError::Options(format!(
            "floor: {count} pings after {warmup} every {interval_ms} ms is out of range"
        )));
    }
    let plan = Plan {
        transport: Transport::UdsSeqpacket,
        size: 0,
        count,
        warmup,
        interval_ms,
        produce_ahead: false,
    };
    run_case(&plan, peer_exe)
        .map(|o| o.delays_ns)
        .map_err(BenchError::Floor)
}

/// One case.
struct Plan {
    transport: Transport,
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
    /// When the thread that consumes the object held it, usable and checked as the protocol
    /// requires (bytes in place, or the slot mapped, validated by the host and acquired): the
    /// end of the delay, the same point for every transport.
    received_ns: u64,
    /// When an intermediate thread had it, for transports where one comes between the
    /// socket and the consumer (the surface: the host's I/O thread held the validated slot);
    /// `None` where the consuming thread reads the transport itself.
    io_thread_ns: Option<u64>,
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

/// Why the iceoryx2 and mmap-file rows (its file is mapped through iceoryx2's POSIX layer)
/// are empty in a build without iceoryx2.
#[cfg(not(feature = "iceoryx2"))]
const NO_ICEORYX2: &str = "this build has no iceoryx2: build crosscast-bench with the \
    `iceoryx2` feature (crosscast: `cargo build --release --features bench`)";

fn setup_receiver(transport: Transport, size: usize) -> Result<Setup, String> {
    match transport {
        Transport::UdsStream => stream::setup_uds(size),
        Transport::UdsSeqpacket => seqpacket::setup(size),
        Transport::Pipe => stream::setup_pipe(size),
        Transport::Tcp => stream::setup_tcp(size),
        Transport::ShmRing => shm::setup_ring(size),
        #[cfg(feature = "iceoryx2")]
        Transport::MmapFile => mmapfile::setup_file(size),
        #[cfg(not(feature = "iceoryx2"))]
        Transport::MmapFile => Err(NO_ICEORYX2.into()),
        #[cfg(feature = "iceoryx2")]
        Transport::Iceoryx2 => iox::setup(size),
        #[cfg(not(feature = "iceoryx2"))]
        Transport::Iceoryx2 => Err(NO_ICEORYX2.into()),
        Transport::Surface => surface::setup(size),
    }
}

fn setup_sender(args: &PeerArgs, fds: Vec<OwnedFd>) -> Result<Box<dyn Transmit>, String> {
    let size = args.size;
    let mut fds = fds.into_iter();
    let mut next_fd = |what: &str| {
        fds.next()
            .ok_or_else(|| format!("the set-up step carried no {what} fd"))
    };
    #[cfg(feature = "iceoryx2")]
    let needs = |v: &Option<String>, flag: &str| {
        v.clone()
            .ok_or_else(|| format!("{} needs --{flag}", args.transport))
    };
    Ok(match args.transport {
        Transport::UdsStream | Transport::Tcp | Transport::Pipe => {
            Box::new(stream::StreamTx::new(next_fd("data")?, size))
        }
        Transport::UdsSeqpacket => {
            let datagram = args
                .datagram
                .ok_or_else(|| format!("{} needs --datagram", args.transport))?;
            Box::new(seqpacket::SeqTx::new(next_fd("socket")?, size, datagram)?)
        }
        Transport::ShmRing => Box::new(shm::RingTx::new(
            next_fd("ring memfd")?,
            next_fd("data eventfd")?,
            next_fd("space eventfd")?,
            size,
        )?),
        #[cfg(feature = "iceoryx2")]
        Transport::MmapFile => Box::new(mmapfile::FileTx::new(
            &needs(&args.file, "file")?,
            next_fd("notification socket")?,
            size,
        )?),
        #[cfg(not(feature = "iceoryx2"))]
        Transport::MmapFile => return Err(NO_ICEORYX2.into()),
        #[cfg(feature = "iceoryx2")]
        Transport::Iceoryx2 => Box::new(iox::IoxTx::new(&needs(&args.service, "service")?, size)?),
        #[cfg(not(feature = "iceoryx2"))]
        Transport::Iceoryx2 => return Err(NO_ICEORYX2.into()),
        Transport::Surface => Box::new(surface::SurfaceTx::new(size)?),
    })
}

/// What one case measured.
struct Outcome {
    delays_ns: Vec<u64>,
    /// Sent → intermediate (I/O) thread, when the transport has one.
    io_thread_ns: Vec<u64>,
    validated_ns: Vec<u64>,
    checksum_ns: u128,
    extra: Map<String, Value>,
}

impl Outcome {
    fn into_row(mut self, case: &str) -> Row {
        let summary = Summary::from_delays_ns(&self.delays_ns);
        self.delays_ns.sort_unstable();
        self.io_thread_ns.sort_unstable();
        self.validated_ns.sort_unstable();
        let n = self.delays_ns.len().max(1) as f64;
        let us = |ns: u64| ns as f64 / 1000.0;
        // Only transports with an intermediate thread measured it for every message; the
        // others carry null, not a figure they never took.
        let io = |p: f64| {
            (self.io_thread_ns.len() == self.delays_ns.len())
                .then(|| us(percentile_sorted(&self.io_thread_ns, p)))
        };
        let mut row = Row::new(case, summary)
            .with_extra("min_us", us(self.delays_ns.first().copied().unwrap_or(0)))
            .with_extra("p90_us", us(percentile_sorted(&self.delays_ns, 90.0)))
            .with_extra("io_thread_p50_us", io(50.0))
            .with_extra("io_thread_p99_us", io(99.0))
            .with_extra(
                "validated_p50_us",
                us(percentile_sorted(&self.validated_ns, 50.0)),
            )
            .with_extra(
                "validated_p99_us",
                us(percentile_sorted(&self.validated_ns, 99.0)),
            )
            .with_extra("checksum_avg_us", self.checksum_ns as f64 / n / 1000.0)
            .with_extra("receiver_sched", RECEIVER_SCHED);
        row.extra.append(&mut self.extra);
        row
    }
}

/// How every receiver thread is scheduled, the same for every transport: the process's
/// default priority and timer slack, no busy-polling (the surface's host session runs with
/// `io_nice: None` and `busy_poll: 0`). Recorded in each row.
const RECEIVER_SCHED: &str = "default priority, default timer slack, no busy-poll";

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
    extra.insert(
        "produce".into(),
        Produce::of(plan.produce_ahead).name().into(),
    );
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
        .args(["--transport", plan.transport.name()])
        .args(["--size", &plan.size.to_string()])
        .args(["--count", &total.to_string()])
        .args(["--interval-ms", &plan.interval_ms.to_string()])
        .args(["--produce", Produce::of(plan.produce_ahead).name()])
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
        io_thread_ns: Vec::new(),
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
            if let Some(io) = r.io_thread_ns {
                out.io_thread_ns.push(io.saturating_sub(r.sent_ns));
            }
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

/// When the sender produces each message: the peer's `--produce` and the rows' `produce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Produce {
    /// When its deadline comes, then sent at once (as crosscast's game renders and queues).
    OnTime,
    /// Before its deadline, sent on it (as a game presenting on vsync).
    Ahead,
}

impl Produce {
    fn of(ahead: bool) -> Produce {
        if ahead {
            Produce::Ahead
        } else {
            Produce::OnTime
        }
    }

    fn name(self) -> &'static str {
        match self {
            Produce::OnTime => "on-time",
            Produce::Ahead => "ahead",
        }
    }
}

/// The peer's arguments, as [`run_case`] passes them.
#[derive(Debug, clap::Parser)]
#[command(name = "ipc-peer", no_binary_name = true, disable_help_flag = true)]
struct PeerArgs {
    /// The transport to send over.
    #[arg(long)]
    transport: Transport,
    /// Payload bytes per message (0 only for the payload-free floor over uds-seqpacket).
    #[arg(long)]
    size: usize,
    /// Messages to send, warm-up included.
    #[arg(long)]
    count: usize,
    /// Milliseconds between messages.
    #[arg(long)]
    interval_ms: u64,
    /// When each message is produced.
    #[arg(long, value_enum, default_value_t = Produce::OnTime)]
    produce: Produce,
    /// uds-seqpacket: the datagram size the receiver expects.
    #[arg(long)]
    datagram: Option<usize>,
    /// mmap-file: the shared file.
    #[arg(long)]
    file: Option<String>,
    /// iceoryx2: the service name.
    #[arg(long)]
    service: Option<String>,
}

impl PeerArgs {
    fn parse(args: &[String]) -> Result<PeerArgs, BenchError> {
        use clap::Parser;
        let me = PeerArgs::try_parse_from(args)
            .map_err(|e| BenchError::PeerArgs(e.to_string().trim().to_string()))?;
        let floor = me.size == 0 && me.transport == Transport::UdsSeqpacket;
        if (me.size == 0 && !floor) || me.size > MAX_SIZE {
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
        if args.produce == Produce::Ahead {
            prepare(&mut tx, seq)?;
        }
        // Absolute deadlines: a slow send delays only itself, not the rest of the schedule.
        // Both factors are bounded by `PeerArgs::parse`, so this cannot overflow.
        let due = start + interval * seq as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if args.produce == Produce::OnTime {
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

    fn base(transport: &str, size: &str) -> Vec<String> {
        s(&[
            "--transport",
            transport,
            "--size",
            size,
            "--count",
            "10",
            "--interval-ms",
            "16",
        ])
    }

    #[test]
    fn peer_args_parse_and_reject() {
        let mut v = base("pipe", "3072");
        v.extend(s(&["--datagram", "4096"]));
        let a = PeerArgs::parse(&v).unwrap();
        assert_eq!(a.transport, Transport::Pipe);
        assert_eq!((a.size, a.count, a.interval_ms), (3072, 10, 16));
        assert_eq!(a.datagram, Some(4096));
        assert_eq!(a.service, None);
        assert_eq!(a.produce, Produce::OnTime, "on time unless asked");
        let with = |mode: &str| {
            let mut v = base("pipe", "1");
            v.extend(s(&["--produce", mode]));
            PeerArgs::parse(&v)
        };
        assert_eq!(with("ahead").unwrap().produce, Produce::Ahead);
        assert_eq!(with("on-time").unwrap().produce, Produce::OnTime);
        assert!(matches!(with("late"), Err(BenchError::PeerArgs(_))));
        // The payload-free floor exists for uds-seqpacket only.
        assert_eq!(
            PeerArgs::parse(&base("uds-seqpacket", "0")).unwrap().size,
            0
        );

        let mut long_interval = base("pipe", "1");
        long_interval[7] = "99999999".into();
        for bad in [
            base("carrier-pigeon", "1"),
            base("pipe", "0"),
            base("pipe", "x"),
            base("pipe", &(MAX_SIZE + 1).to_string()),
            s(&["--transport", "pipe", "--size"]),
            long_interval,
            s(&["pipe"]),
            {
                let mut v = base("pipe", "1");
                v.extend(s(&["--colour", "red"]));
                v
            },
        ] {
            assert!(
                matches!(PeerArgs::parse(&bad), Err(BenchError::PeerArgs(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transport_names_round_trip_and_unknown_ones_are_refused() {
        use clap::ValueEnum;
        for t in Transport::ALL {
            assert_eq!(t.name().parse::<Transport>().unwrap(), t);
            assert_eq!(t.to_string(), t.name());
            // clap's value names are the same names.
            assert_eq!(t.to_possible_value().unwrap().get_name(), t.name());
        }
        assert!(matches!(
            "smoke-signals".parse::<Transport>(),
            Err(BenchError::Options(_))
        ));
        let zero: Vec<_> = Transport::ALL
            .into_iter()
            .filter(|t| t.zero_copy())
            .collect();
        assert_eq!(zero, [Transport::Iceoryx2, Transport::Surface]);
    }

    #[test]
    fn options_select_and_validate() {
        let mut o = IpcOptions::default();
        assert_eq!(o.selected_transports(), Transport::ALL.to_vec());
        assert_eq!(o.counts(), (300, 10));
        o.transports = vec![Transport::Surface, Transport::Tcp];
        // Table order, not command-line order.
        assert_eq!(
            o.selected_transports(),
            vec![Transport::Tcp, Transport::Surface]
        );
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

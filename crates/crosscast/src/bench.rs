//! `crosscast bench …`: handoff (here), ipc (crosscast-bench), pipeline (pipeline.rs),
//! wayland (bench_wayland.rs), input (bench_input.rs), pulse (bench_pulse.rs), encoder
//! (bench_encoder.rs).

use std::time::{Duration, Instant};

use anyhow::Context;
use crosscast_bench::ipc::{ipc_peer_main, run_floor, IpcArgs};
use crosscast_bench::stats::{Report, Row, Summary};
use crosscast_host::{GameLaunch, SessionSource, SourceEvent};
use crosscast_ipc::HostOptions;

use crate::cli::BenchCommand;

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Handoff {
            seconds,
            busy_poll_us,
            json,
        } => {
            let report = handoff(seconds, Duration::from_micros(busy_poll_us))?;
            print!("{}", report.table());
            print!(
                "{}",
                report.figures_table(
                    &[
                        "io_thread_p50_us",
                        "io_thread_p99_us",
                        "floor_p50_us",
                        "floor_p99_us",
                        "p50_over_floor",
                        "p99_over_floor",
                    ],
                    2,
                )
            );
            print!(
                "{}",
                report.figures_table(
                    &[
                        "busy_poll_us",
                        "polled_share",
                        "io_cpu_us_per_frame",
                        "io_cpu_core_pct",
                        "busy_poll_cpu_us_per_frame",
                        "busy_poll_core_pct",
                    ],
                    2,
                )
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Preview { seconds, json } => {
            let report = crate::pipeline::preview(seconds)?;
            print!(
                "{}",
                report.figures_table(&crate::pipeline::preview_columns(), 3)
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Ipc(a) => ipc(a),
        BenchCommand::Encoder {
            seconds,
            runs,
            size,
            fps,
            json,
        } => {
            let report = crate::bench_encoder::encoder(size, &fps, seconds, runs)?;
            print!("{}", report.figures_table(crate::bench_encoder::COLUMNS, 3));
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Pipeline {
            seconds,
            runs,
            json,
        } => {
            let report = crate::pipeline::pipeline(seconds, runs)?;
            print!(
                "{}",
                report.figures_table(&crate::pipeline::pipeline_columns(), 3)
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Wayland {
            seconds,
            runs,
            size,
            json,
        } => {
            let report = crate::bench_wayland::wayland(seconds, runs, size)?;
            print!(
                "{}",
                report.figures_table(&crate::bench_wayland::columns(), 3)
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Input {
            runs,
            presses,
            size,
            fps,
            probe,
            json,
        } => {
            let report = crate::bench_input::input(runs, presses, size, fps, probe.as_deref())?;
            print!(
                "{}",
                report.figures_table(&crate::bench_input::columns(), 2)
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Pulse {
            seconds,
            runs,
            no_reference,
            json,
        } => {
            let report = crate::bench_pulse::pulse(seconds, runs, !no_reference)?;
            print!(
                "{}",
                report.figures_table(&crate::bench_pulse::columns(), 2)
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Squeeze(s) => {
            let report = crate::bench_squeeze::squeeze(&s)?;
            print!("{}", report.figures_table(crate::bench_squeeze::COLUMNS, 2));
            if let Some(p) = &s.json {
                report.write_json(p)?;
            }
            Ok(())
        }
        BenchCommand::IpcPeer { args } => Ok(ipc_peer_main(&args)?),
    }
}

#[cfg(feature = "bench")]
fn ipc(a: IpcArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let report = crosscast_bench::ipc::run_ipc(&a.into(), &exe, &mut |line| say!("{line}"))?;
    print!("{}", report.table());
    // Beside the fair delay: the surface's I/O-thread arrival and validation in the consumer.
    print!(
        "{}",
        report.figures_table(
            &[
                "io_thread_p50_us",
                "io_thread_p99_us",
                "validated_p50_us",
                "validated_p99_us",
                "checksum_avg_us",
            ],
            2,
        )
    );
    Ok(())
}

#[cfg(not(feature = "bench"))]
fn ipc(_: IpcArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this crosscast was built without `bench ipc` (its iceoryx2 reference and chart stay \
         out of the shipped streamer); build it with `cargo build --release --features bench` \
         and run target/release/crosscast bench ipc"
    )
}

/// Delays of one handoff case, in ns.
struct Handoff {
    /// Game `queue` → the host's I/O thread has validated the frame and holds its mapped slot.
    held: Vec<u64>,
    /// Game `queue` → a consumer thread waiting for frames has acquired it (one more wake-up):
    /// the headline, what a thread that uses the frame sees.
    acquired: Vec<u64>,
    /// Game send → the host has validated the audio block.
    audio: Vec<u64>,
    /// CPU time of the host session's I/O thread per frame it received, in µs.
    io_cpu_us_per_frame: f64,
    /// The I/O thread's CPU time over the session's wall time, in % of one core.
    io_cpu_core_pct: f64,
    /// Share of frames the I/O thread was already polling for when they came.
    polled_share: f64,
}

/// Frame rate of the handoff's game, and of the floor's pings.
const HANDOFF_FPS: u32 = 60;
/// Frames (and pings) of each case not counted while the session settles.
const HANDOFF_WARMUP: usize = 30;

/// One handoff case: a real game process at `size`, the host acquiring each frame as soon as it
/// is queued.
fn handoff_case(
    width: u32,
    height: u32,
    seconds: f64,
    busy_poll: Duration,
) -> anyhow::Result<Handoff> {
    let exe = std::env::current_exe()?;
    let args = vec![
        "game".into(),
        "--pattern".into(),
        "bars".into(),
        "--fps".into(),
        HANDOFF_FPS.to_string(),
        "--seconds".into(),
        format!("{}", seconds + 1.0),
    ];
    let host = HostOptions {
        width,
        height,
        record_delays: true,
        busy_poll,
        ..HostOptions::default()
    };
    let source = SessionSource::start(
        GameLaunch::Spawn {
            program: exe,
            args,
            restart: false,
        },
        host,
    )?;
    let mut session = loop {
        match source
            .next_timeout(Duration::from_secs(10))
            .context("the game never connected")?
        {
            SourceEvent::Session(s) => break s,
            SourceEvent::Note(n) => say!("bench: {n}"),
            SourceEvent::GameExited(status) => anyhow::bail!("the game exited: {status}"),
            SourceEvent::GameFailed(why) => anyhow::bail!("the game failed: {why}"),
            SourceEvent::Feed(_) => anyhow::bail!("the bench game is not a Wayland client"),
            SourceEvent::Audio(_) => {}
        }
    };
    let started = Instant::now();
    let mut consumer = session.consumer().context("consumer")?;
    let mut acquired = Vec::new();
    let warmup = HANDOFF_WARMUP;
    let mut seen = 0;
    let until = Instant::now() + Duration::from_secs_f64(seconds + 0.5);
    while Instant::now() < until {
        if !consumer.wait_frame(Duration::from_millis(200)) {
            if consumer.closed().is_some() {
                break;
            }
            continue;
        }
        if let Some(f) = consumer.acquire()? {
            seen += 1;
            if seen > warmup {
                acquired.push(f.acquired_ns.saturating_sub(f.sent_ns));
            }
        }
    }
    let (mut held, mut audio) = session.take_delays();
    held.drain(..held.len().min(warmup));
    audio.drain(..audio.len().min(warmup));
    let counters = session.close();
    // The session's wall time from connection to close; its I/O thread's CPU includes the
    // handshake before it, a few hundred µs at most against seconds.
    let wall_ns = started.elapsed().as_nanos().max(1) as f64;
    say!(
        "bench: {width}x{height}: {} frames queued, {} acquired, {} dropped",
        counters.frames_queued,
        counters.frames_acquired,
        counters.frames_dropped
    );
    Ok(Handoff {
        held,
        acquired,
        audio,
        io_cpu_us_per_frame: counters.io_cpu_ns as f64 / 1e3 / counters.frames_queued.max(1) as f64,
        io_cpu_core_pct: counters.io_cpu_ns as f64 / wall_ns * 100.0,
        polled_share: counters.frames_polled as f64 / counters.frames_queued.max(1) as f64,
    })
}

/// The summary of `delays_ns`, or `None` when nothing was measured (its row then carries
/// `null` delay fields, never zeros).
fn summary(delays_ns: &[u64]) -> Option<Summary> {
    (!delays_ns.is_empty()).then(|| Summary::from_delays_ns(delays_ns))
}

/// A row for `case` with `delays` summarised, or with null delay fields when there are none.
fn row_of(case: &str, delays: Option<Summary>) -> Row {
    match delays {
        Some(s) => Row::new(case, s),
        None => Row::without_delays(case),
    }
}

/// `a / b` where both were measured and `b` is not zero; `None` (a `null` field) otherwise.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn handoff(seconds: f64, busy_poll: Duration) -> anyhow::Result<Report> {
    let mut report = Report::new("handoff");
    // The floor first, in the same run: a payload-free ping between this process and a
    // separate peer process over the session's socket type, received by a sleeping thread.
    say!("bench handoff: platform floor (SEQPACKET ping between two processes) ...");
    let exe = std::env::current_exe()?;
    let pings = (seconds * f64::from(HANDOFF_FPS)).ceil() as usize;
    let floor_ns = run_floor(
        &exe,
        pings.max(1),
        HANDOFF_WARMUP,
        1000 / u64::from(HANDOFF_FPS),
    )?;
    let floor = summary(&floor_ns);
    let (floor_p50, floor_p99) = (floor.map(|f| f.p50_us), floor.map(|f| f.p99_us));
    let floor_row = row_of("floor-ping", floor)
        .with_transport("uds-seqpacket")
        .with_size(0)
        .with_extra("receiver", "blocking recvmsg, default scheduling");
    report.rows.push(floor_row);

    // Each size with the host polling around the expected frame (live's default) and with
    // the plain blocking wait, alternating, so that both see the same machine.
    for (w, h) in [(1280, 720), (1920, 1080)] {
        // (row index, I/O CPU µs per frame, % of a core) of this size's polling case.
        let mut polled: Option<(usize, f64, f64)> = None;
        for (poll, suffix) in [(busy_poll, ""), (Duration::ZERO, "-no-busy-poll")] {
            say!("bench handoff: {w}x{h}{suffix} for {seconds} s ...");
            let d = handoff_case(w, h, seconds, poll)?;
            let consumer = summary(&d.acquired);
            let io = summary(&d.held);
            let (p50, p99) = (consumer.map(|s| s.p50_us), consumer.map(|s| s.p99_us));
            let (io_p50, io_p99) = (io.map(|s| s.p50_us), io.map(|s| s.p99_us));
            let case = format!("video-{w}x{h}{suffix}");
            if !poll.is_zero() {
                polled = Some((report.rows.len(), d.io_cpu_us_per_frame, d.io_cpu_core_pct));
            }
            // What busy-poll costs is filled in on the polling row once its blocking twin has
            // run; the blocking row itself has no such cost (null).
            let no_cost: Option<f64> = None;
            report.rows.push(
                row_of(&case, consumer)
                    .with_transport("surface")
                    .with_size(u64::from(w) * u64::from(h) * 4)
                    .with_extra("delay_end", "consumer thread acquired")
                    .with_extra("io_thread_p50_us", io_p50)
                    .with_extra("io_thread_p99_us", io_p99)
                    .with_extra("floor_p50_us", floor_p50)
                    .with_extra("floor_p99_us", floor_p99)
                    .with_extra("p50_over_floor", ratio(p50, floor_p50))
                    .with_extra("p99_over_floor", ratio(p99, floor_p99))
                    .with_extra("io_thread_p50_over_floor", ratio(io_p50, floor_p50))
                    .with_extra("io_thread_p99_over_floor", ratio(io_p99, floor_p99))
                    .with_extra("busy_poll_us", poll.as_micros() as f64)
                    .with_extra("io_cpu_us_per_frame", d.io_cpu_us_per_frame)
                    .with_extra("io_cpu_core_pct", d.io_cpu_core_pct)
                    .with_extra("polled_share", d.polled_share)
                    .with_extra("busy_poll_cpu_us_per_frame", no_cost)
                    .with_extra("busy_poll_core_pct", no_cost),
            );
            if let (true, Some((at, cpu, pct))) = (poll.is_zero(), polled) {
                let row = &mut report.rows[at];
                row.extra.insert(
                    "busy_poll_cpu_us_per_frame".into(),
                    (cpu - d.io_cpu_us_per_frame).into(),
                );
                row.extra.insert(
                    "busy_poll_core_pct".into(),
                    (pct - d.io_cpu_core_pct).into(),
                );
            }
            if w == 1280 {
                let case = format!("audio-10ms{suffix}");
                report.rows.push(
                    row_of(&case, summary(&d.audio))
                        .with_transport("seqpacket")
                        .with_size(480 * 2 * 4)
                        .with_extra("delay_end", "host I/O thread validated")
                        .with_extra("busy_poll_us", poll.as_micros() as f64),
                );
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_measured_is_null_not_zero() {
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[2_000]).map(|s| s.p99_us), Some(2.0));
        let row = row_of("empty", None);
        assert!(row.summary.is_none());
        assert_eq!(ratio(Some(4.0), Some(2.0)), Some(2.0));
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(4.0), None), None);
        assert_eq!(
            ratio(Some(4.0), Some(0.0)),
            None,
            "no ratio to a zero floor"
        );
    }
}

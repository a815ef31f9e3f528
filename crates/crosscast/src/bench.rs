//! `crosscast bench …`: handoff (here), ipc (crosscast-bench), pipeline (pipeline.rs).

use std::time::Duration;

use anyhow::Context;
use crosscast_bench::ipc::{ipc_peer_main, run_ipc, IpcOptions};
use crosscast_bench::stats::{Report, Row, Summary};
use crosscast_host::{GameLaunch, SessionSource, SourceEvent};
use crosscast_ipc::host::DEFAULT_BUSY_POLL;
use crosscast_ipc::HostOptions;

use crate::cli::{BenchCommand, IpcBenchArgs};

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Handoff { seconds, json } => {
            let report = handoff(seconds)?;
            print!("{}", report.table());
            print!(
                "{}",
                crate::pipeline::cost_table(
                    &report,
                    &[
                        "busy_poll_us",
                        "io_cpu_us_per_frame",
                        "polled_share",
                        "consumer_p50_us",
                        "consumer_p99_us"
                    ]
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
                crate::pipeline::range_table(&report, crate::pipeline::preview_columns())
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::Ipc(a) => ipc(a),
        BenchCommand::Pipeline {
            seconds,
            runs,
            json,
        } => {
            let report = crate::pipeline::pipeline(seconds, runs)?;
            print!(
                "{}",
                crate::pipeline::range_table(&report, crate::pipeline::pipeline_columns())
            );
            if let Some(p) = json {
                report.write_json(&p)?;
            }
            Ok(())
        }
        BenchCommand::IpcPeer { args } => Ok(ipc_peer_main(&args)?),
    }
}

fn ipc(a: IpcBenchArgs) -> anyhow::Result<()> {
    let mut opts = IpcOptions {
        count: a.count,
        interval_ms: a.interval_ms,
        quick: a.quick,
        produce_ahead: a.produce_ahead,
        json: a.json,
        plot: a.plot,
        transports: a.transports,
        ..IpcOptions::default()
    };
    if !a.sizes.is_empty() {
        opts.sizes = a.sizes;
    }
    let exe = std::env::current_exe()?;
    let report = run_ipc(&opts, &exe, &mut |line| eprintln!("{line}"))?;
    print!("{}", report.table());
    Ok(())
}

/// Delays of one handoff case, in ns.
struct Handoff {
    /// Game `queue` → the host's I/O thread has validated the frame and holds its mapped slot.
    held: Vec<u64>,
    /// Game `queue` → a consumer thread waiting for frames has acquired it (one more wake-up).
    acquired: Vec<u64>,
    /// Game send → the host has validated the audio block.
    audio: Vec<u64>,
    /// CPU time of the host session's I/O thread per frame it received, in µs.
    io_cpu_us_per_frame: f64,
    /// Share of frames the I/O thread was already polling for when they came.
    polled_share: f64,
}

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
        "60".into(),
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
            SourceEvent::Note(n) => eprintln!("bench: {n}"),
        }
    };
    let mut consumer = session.consumer().context("consumer")?;
    let mut acquired = Vec::new();
    let warmup = 30;
    let mut seen = 0;
    let until = std::time::Instant::now() + Duration::from_secs_f64(seconds + 0.5);
    while std::time::Instant::now() < until {
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
    eprintln!(
        "bench: {width}x{height}: {} frames queued, {} acquired, {} dropped",
        counters.frames_queued, counters.frames_acquired, counters.frames_dropped
    );
    Ok(Handoff {
        held,
        acquired,
        audio,
        io_cpu_us_per_frame: counters.io_cpu_ns as f64 / 1e3 / counters.frames_queued.max(1) as f64,
        polled_share: counters.frames_polled as f64 / counters.frames_queued.max(1) as f64,
    })
}

fn handoff(seconds: f64) -> anyhow::Result<Report> {
    let mut report = Report::new("handoff");
    // The default (polling around the expected frame) at both sizes, then the plain blocking
    // wait at 720p in the same run, for the latency and CPU it trades.
    let cases = [
        (1280, 720, DEFAULT_BUSY_POLL, ""),
        (1920, 1080, DEFAULT_BUSY_POLL, ""),
        (1280, 720, Duration::ZERO, "-blocking"),
    ];
    for (w, h, busy_poll, suffix) in cases {
        eprintln!("bench handoff: {w}x{h}{suffix} for {seconds} s ...");
        let d = handoff_case(w, h, seconds, busy_poll)?;
        let woken = Summary::from_delays_ns(&d.acquired);
        report.rows.push(
            Row::new(
                format!("video-{w}x{h}{suffix}"),
                Summary::from_delays_ns(&d.held),
            )
            .with_transport("surface")
            .with_size(u64::from(w) * u64::from(h) * 4)
            .with_extra("busy_poll_us", busy_poll.as_micros() as f64)
            .with_extra("io_cpu_us_per_frame", d.io_cpu_us_per_frame)
            .with_extra("polled_share", d.polled_share)
            .with_extra("consumer_p50_us", woken.p50_us)
            .with_extra("consumer_p99_us", woken.p99_us),
        );
        if w == 1280 {
            report.rows.push(
                Row::new(
                    format!("audio-10ms{suffix}"),
                    Summary::from_delays_ns(&d.audio),
                )
                .with_transport("seqpacket")
                .with_size(480 * 2 * 4),
            );
        }
    }
    Ok(report)
}

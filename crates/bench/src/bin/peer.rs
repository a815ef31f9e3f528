//! Standalone driver of `crosscast bench ipc`, and the peer process it spawns.
//!
//! `crosscast-bench-peer bench ipc-peer ARGS` is the sender process [`run_ipc`] starts (the
//! crosscast binary offers the same as a hidden subcommand); `crosscast-bench-peer bench ipc
//! [OPTIONS]` runs the comparison with this executable as its own peer, for working on the
//! bench without the main binary. `crosscast-bench-peer bench markdown REPORT.json [KEY...]`
//! prints a saved report as a Markdown table (with extra columns KEY...), for the docs.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crosscast_bench::ipc::{ipc_peer_main, run_ipc, IpcOptions};
use crosscast_bench::{BenchError, Report};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bench", "ipc-peer", ..] => ipc_peer_main(&args[2..]),
        ["bench", "ipc", ..] => run(&args[2..]),
        ["bench", "markdown", json, extra @ ..] => markdown(json, extra),
        _ => Err(BenchError::Options(
            "usage: crosscast-bench-peer bench ipc [--count N] [--interval-ms N] [--sizes A,B] \
             [--transports A,B] [--warmup N] [--quick] [--produce-ahead] [--json FILE] [--plot FILE]"
                .into(),
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crosscast-bench-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), BenchError> {
    let opts = parse(args)?;
    let exe = std::env::current_exe().map_err(|source| BenchError::Spawn {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let report = run_ipc(&opts, &exe, &mut |line| eprintln!("{line}"))?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", report.table()).map_err(|source| BenchError::Write {
        path: PathBuf::from("<stdout>"),
        source,
    })
}

fn markdown(json: &str, extra: &[&str]) -> Result<(), BenchError> {
    let path = PathBuf::from(json);
    let text = std::fs::read_to_string(&path).map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text).map_err(BenchError::Json)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", report.markdown(extra)).map_err(|source| BenchError::Write {
        path: PathBuf::from("<stdout>"),
        source,
    })
}

fn parse(args: &[String]) -> Result<IpcOptions, BenchError> {
    let mut o = IpcOptions::default();
    let mut it = args.iter();
    let bad = |m: String| BenchError::Options(m);
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            o.quick = true;
            continue;
        }
        if flag == "--produce-ahead" {
            o.produce_ahead = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        let num = |v: &str| -> Result<usize, BenchError> {
            v.parse()
                .map_err(|_| bad(format!("{flag}: {v:?} is not a number")))
        };
        match flag.as_str() {
            "--count" => o.count = num(value)?,
            "--warmup" => o.warmup = num(value)?,
            "--interval-ms" => o.interval_ms = num(value)? as u64,
            "--sizes" => {
                o.sizes = value.split(',').map(num).collect::<Result<_, _>>()?;
            }
            "--transports" => o.transports = value.split(',').map(str::to_string).collect(),
            "--json" => o.json = Some(PathBuf::from(value)),
            "--plot" => o.plot = Some(PathBuf::from(value)),
            other => return Err(bad(format!("unknown option {other}"))),
        }
    }
    Ok(o)
}

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

use clap::{Parser, Subcommand};
use crosscast_bench::ipc::{ipc_peer_main, run_ipc, IpcArgs, IpcOptions};
use crosscast_bench::{BenchError, Report};

/// The bench crate's own driver and peer process.
#[derive(Debug, Parser)]
#[command(name = "crosscast-bench-peer")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Benchmarks (the same names as under `crosscast bench`).
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The transport comparison, with this executable as the peer.
    Ipc(IpcArgs),
    /// (internal) the sender process of `bench ipc`.
    #[command(hide = true)]
    IpcPeer {
        /// The peer's own arguments, parsed by `ipc_peer_main`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Prints a saved report as a Markdown table.
    Markdown {
        /// The report's JSON file.
        json: PathBuf,
        /// Extra row fields to show as columns.
        extra: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Top::Bench(bench) = cli.command;
    let result = match bench {
        Bench::IpcPeer { args } => ipc_peer_main(&args),
        Bench::Ipc(a) => run(a.into()),
        Bench::Markdown { json, extra } => markdown(json, &extra),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crosscast-bench-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: IpcOptions) -> Result<(), BenchError> {
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

fn markdown(path: PathBuf, extra: &[String]) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(&path).map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text).map_err(BenchError::Json)?;
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", report.markdown(&extra)).map_err(|source| BenchError::Write {
        path: PathBuf::from("<stdout>"),
        source,
    })
}

//! `crosscast`: stream a sandboxed game process live from a privileged host process.
//!
//! Subcommands: `live` (spawn the game and stream it), `host` (named mode: wait for games),
//! `game` (the demo game), `keygen` (a session key file), `bench` (the measurements the design
//! rests on). Run `crosscast <command> --help` for each.
#![forbid(unsafe_code)]
// The CLI is where output belongs: bench tables go to stdout, status and logs to stderr.
#![allow(clippy::print_stdout)]

/// `eprintln!` in one `write`: a line stays whole on a stderr the host shares with its game
/// (`eprintln!` writes piece by piece, so two processes' lines interleave mid-line), and the
/// benches and tests read these lines back.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(&format_args!($($arg)*))
    };
}

mod bench;
mod bench_encoder;
mod bench_input;
mod bench_pulse;
mod bench_squeeze;
mod bench_wayland;
mod cli;
mod game;
mod live;
mod pipeline;

use std::io::Write as _;

use clap::Parser;

/// Prints `line` and a newline to stderr in one write (see [`say!`]).
pub(crate) fn say_line(line: &dyn std::fmt::Display) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Live(args) => match live::live(args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        cli::Command::Host(args) => match live::host(args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        cli::Command::Game(args) => game::run(args),
        cli::Command::Keygen { file } => crosscast_ipc::SessionKey::write_new(&file)
            .map(|_| say!("wrote a new 32-byte key to {} (mode 0600)", file.display()))
            .map_err(anyhow::Error::from),
        cli::Command::Bench(b) => bench::run(b),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say!("crosscast: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

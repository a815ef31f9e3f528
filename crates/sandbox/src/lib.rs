//! Runs an arbitrary game program (one that does not cooperate with crosscast's own sandbox)
//! inside [bubblewrap](https://github.com/containers/bubblewrap).
//!
//! The host calls [`preflight`] once at startup, creates a [`RuntimeDir`] per game (where it
//! serves that game's Wayland socket), and spawns what [`command`] returns, with its own fds 3
//! and 4 (`crosscast_ipc::connect::spawn_game`). In strict mode the game gets:
//!
//! | rule | how |
//! |---|---|
//! | own user, pid, mount, network, IPC and UTS namespaces | `--unshare-user --unshare-pid --unshare-net --unshare-ipc --unshare-uts --unshare-cgroup-try` |
//! | no nested user namespaces | the seccomp filter, and `--disable-userns` where bwrap has it (0.8+) |
//! | no capabilities, even when the host runs as root | `--cap-drop ALL` |
//! | killed when the host dies | `--die-with-parent` (see below) |
//! | no controlling terminal (no `TIOCSTI` keystroke injection into the host's shell) | `--new-session` |
//! | the system read-only | `--ro-bind / /` |
//! | empty private `/tmp`, `/var/tmp`, `/run`, `/dev/shm`, `/home`, `/root`, `/mnt`, `/media`, `/srv`, `$HOME`, the host's `$XDG_RUNTIME_DIR` | `--tmpfs` each (those that exist); `HOME` is the (now empty) home path |
//! | its own `/proc`, a minimal `/dev` (null, zero, random, tty…) | `--proc /proc --dev /dev`; `/dev/dri` bound read-write only if it exists |
//! | writable: its data directory and its runtime directory, nothing else | `--bind` each at its own path; the runtime dir is the only socket directory (`XDG_RUNTIME_DIR`) |
//! | a program living in a hidden directory (`~/Games/x/game`) | its directory bound read-only |
//! | no network: only a loopback of its own; no abstract Unix sockets of the host (X11, D-Bus) | the network namespace |
//! | no ptrace, io_uring, mount, keyrings, bpf, perf, kexec, modules, namespaces, userfaultfd… | the seccomp filter (`EPERM`), see [`filter`](crate#seccomp) |
//! | inherited fds: only stdio and the protocol's 3 and 4 (nothing the host itself inherited) | every fd from 5 up is marked close-on-exec in the forked child; bwrap closes the seccomp fd before it runs the game |
//! | env: `DISPLAY`, `XAUTHORITY`, `WAYLAND_SOCKET`, `DBUS_SESSION_BUS_ADDRESS`, `SSH_AUTH_SOCK`, `TMPDIR`, `XDG_{CONFIG,DATA,CACHE,STATE}_HOME` removed | they point at what is hidden |
//!
//! ## seccomp
//!
//! The filter is compiled with `seccompiler` and handed to bwrap as a raw `struct sock_filter`
//! array on an fd numbered 10 or more (`--seccomp FD`), which bwrap closes before it runs the
//! game; the table of what it denies and why is in the `filter` module's source.
//!
//! ## Dying with the host
//!
//! `--die-with-parent` is `PR_SET_PDEATHSIG`, which fires when the **thread** that spawned
//! bwrap exits, not only when the host process dies. Spawn games from a thread that lives as
//! long as the game (the session source's own thread, not a short-lived helper), or the game
//! is killed when that thread ends.
//!
//! `--sandbox off` runs the program itself, unsandboxed, with a warning from [`preflight`].
#![deny(unsafe_code)]

mod bwrap;
mod error;
mod filter;
mod os;
mod output;
mod preflight;
mod runtime_dir;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

pub use crosscast_ipc::os::sandbox::SandboxLevel;
pub use error::{SandboxError, UsernsBlock};
pub use output::{forward_lines, MAX_LOG_LINE};
pub use preflight::SandboxInfo;
pub use runtime_dir::RuntimeDir;

/// One game to launch: the program, its environment and the two directories it may write.
#[derive(Debug, Clone)]
pub struct GameCommand {
    /// The program: a name looked up on `PATH` (the game's `PATH` from `env` if it sets one,
    /// else the host's), or a path.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables to set (applied last, so they win over the sandbox's defaults).
    pub env: Vec<(OsString, OsString)>,
    /// Environment variables to remove from what the host passes on.
    pub env_remove: Vec<OsString>,
    /// The game's private runtime directory (see [`RuntimeDir`]); its `XDG_RUNTIME_DIR`.
    pub runtime_dir: PathBuf,
    /// The game's writable data directory; must exist.
    pub data_dir: PathBuf,
    /// Strict (bwrap) or off (the program itself).
    pub level: SandboxLevel,
    /// Extra read-write binds (host path, path inside the sandbox), mounted after the private
    /// tmpfs mounts (e.g. the X socket directory onto `/tmp/.X11-unix`); ignored when off.
    pub binds: Vec<(PathBuf, PathBuf)>,
}

/// Checks once, at startup and before anything else starts, that `level` can be enforced on
/// this machine; the answer's `Display` is the line to log.
///
/// Strict: finds `bwrap` (else [`SandboxError::BwrapMissing`]), compiles the seccomp filter and
/// runs `bwrap … true` with the game's namespaces, mounts and filter. If that fails because the
/// system blocks user namespaces the error names the cause and both ways out (the sysctl, or
/// `--sandbox off`). Off: logs a warning and returns.
pub fn preflight(level: SandboxLevel) -> Result<SandboxInfo, SandboxError> {
    preflight::run(level)
}

/// A `Command` ready to spawn `game` (`bwrap … -- program args` for strict, the program itself
/// for off), with the environment applied.
///
/// Fds the caller places on the child (fds 3 and 4 by `spawn_game`) reach the game. The
/// program is resolved outside the sandbox first, so a missing one is
/// [`SandboxError::NoSuchProgram`] rather than bwrap's message. Both levels set
/// `XDG_RUNTIME_DIR` to the runtime dir; strict also sets `HOME` and removes the variables
/// listed in the crate's rules table.
pub fn command(game: &GameCommand) -> Result<Command, SandboxError> {
    for (what, dir) in [
        ("runtime directory", &game.runtime_dir),
        ("data directory", &game.data_dir),
    ] {
        if !dir.is_absolute() {
            return Err(SandboxError::NotAbsolute {
                what,
                path: dir.clone(),
            });
        }
        if !dir.is_dir() {
            return Err(SandboxError::NotADirectory {
                what,
                path: dir.clone(),
            });
        }
    }
    let path_var = game
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"));
    let cwd = std::env::current_dir().map_err(SandboxError::io("reading the current directory"))?;
    let program = bwrap::resolve_program(&game.program, path_var.as_deref(), &cwd)?;

    let mut cmd = match game.level {
        SandboxLevel::Off => {
            let mut cmd = Command::new(&program);
            cmd.args(&game.args);
            cmd
        }
        SandboxLevel::Strict => {
            let bwrap_path = preflight::find_bwrap()?;
            let facts = bwrap::HostFacts::gather(&bwrap_path);
            let filter = filter::build()?;
            let fd = os::sealed_memfd("crosscast-seccomp", &filter::to_bytes(&filter.program))
                .map_err(SandboxError::io("creating the seccomp memfd"))?;
            let mut cmd = Command::new(bwrap_path);
            let fd_number = os::inherit_at_start(&mut cmd, fd);
            let layout = bwrap::Layout {
                runtime_dir: &game.runtime_dir,
                data_dir: &game.data_dir,
                program: &program,
                args: &game.args,
                binds: &game.binds,
            };
            cmd.args(bwrap::game_args(&facts, &layout, fd_number));
            for var in bwrap::STRICT_ENV_REMOVE {
                cmd.env_remove(var);
            }
            cmd.env("HOME", facts.game_home());
            cmd
        }
    };
    cmd.env("XDG_RUNTIME_DIR", &game.runtime_dir);
    for var in &game.env_remove {
        cmd.env_remove(var);
    }
    for (k, v) in &game.env {
        cmd.env(k, v);
    }
    Ok(cmd)
}

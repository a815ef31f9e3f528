//! Xwayland, started when the first X client connects (or up front), in the game's sandbox.

use crosscast_ipc::os::process::stop_child;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crosscast_sandbox::{GameCommand, SandboxLevel};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::{X11Display, XwaylandError};

/// The fd number Xwayland gets the listening socket on (`-listenfd 3`).
pub const LISTEN_FD: i32 = 3;

/// An Xwayland that exits this soon after starting, three times in a row, is not restarted.
const QUICK_EXIT: Duration = Duration::from_secs(5);

/// Where the watcher's notes go (the host's log).
pub type Notify = Arc<dyn Fn(String) + Send + Sync>;

/// How to run Xwayland for one game.
#[derive(Clone)]
pub struct XwaylandOptions {
    /// The game's private runtime directory: Xwayland's `XDG_RUNTIME_DIR`, holding the
    /// compositor's socket.
    pub runtime_dir: PathBuf,
    /// The game's data directory (the sandbox binds it for Xwayland too).
    pub data_dir: PathBuf,
    /// The game's sandbox level; Xwayland runs at the same one, on the game's behalf.
    pub level: SandboxLevel,
    /// The compositor's socket name in `runtime_dir` (Xwayland's `WAYLAND_DISPLAY`).
    pub wayland_display: String,
    /// Start Xwayland now rather than when an X client first connects.
    pub eager: bool,
    /// Receives one line per event (started, exited, failed) for the host's log.
    pub notify: Notify,
}

impl std::fmt::Debug for XwaylandOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XwaylandOptions")
            .field("runtime_dir", &self.runtime_dir)
            .field("data_dir", &self.data_dir)
            .field("level", &self.level)
            .field("wayland_display", &self.wayland_display)
            .field("eager", &self.eager)
            .finish_non_exhaustive()
    }
}

/// The watcher thread and the Xwayland it owns; dropping it stops both.
///
/// The thread polls the display's listening socket for a waiting client (without accepting
/// it) and then spawns `Xwayland <display> -listenfd 3 …` with the socket inherited, so the
/// client's connection is Xwayland's first. It spawns from its own thread because the strict
/// sandbox kills its process when the spawning thread ends (`--die-with-parent`), and this
/// thread lives exactly as long as Xwayland should.
#[derive(Debug)]
pub struct XwaylandServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl XwaylandServer {
    /// Starts watching `display`. With `options.eager` Xwayland is spawned before this
    /// returns, and a failure to spawn it (e.g. [`XwaylandError::Missing`]) is the error;
    /// otherwise such failures come as notes when a client connects, and X clients are then
    /// refused (their connection is closed) rather than left waiting.
    pub fn serve(display: &X11Display, options: XwaylandOptions) -> Result<Self, XwaylandError> {
        let listen = display.listener_fd()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let eager = options.eager;
        let watcher = Watcher {
            listen,
            display: display.display().to_owned(),
            binds: display.binds(),
            options,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("cc-xwayland".into())
            .spawn(move || watcher.run(ready_tx))
            .map_err(|source| XwaylandError::Watcher {
                what: "cannot start its thread",
                source,
            })?;
        let mut server = XwaylandServer {
            stop,
            thread: Some(thread),
        };
        if eager {
            if let Ok(Err(e)) = ready_rx.recv() {
                server.shutdown();
                return Err(e);
            }
        }
        Ok(server)
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for XwaylandServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Watcher {
    listen: OwnedFd,
    display: String,
    binds: Vec<(PathBuf, PathBuf)>,
    options: XwaylandOptions,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    fn note(&self, text: String) {
        (self.options.notify)(text);
    }

    fn run(self, ready: SyncSender<Result<(), XwaylandError>>) {
        let mut server: Option<(Child, Instant)> = None;
        if self.options.eager {
            match self.spawn() {
                Ok(child) => {
                    self.note(format!(
                        "Xwayland started up front (--x11) for DISPLAY={}",
                        self.display
                    ));
                    server = Some((child, Instant::now()));
                    let _ = ready.send(Ok(()));
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            }
        }
        drop(ready);
        let mut quick_exits = 0u32;
        let mut refusing: Option<UnixListener> = None;
        while !self.stop.load(Ordering::Relaxed) {
            if let Some((child, started)) = &mut server {
                if let Ok(Some(status)) = child.try_wait() {
                    self.note(format!("Xwayland exited: {status}"));
                    quick_exits = if started.elapsed() < QUICK_EXIT {
                        quick_exits + 1
                    } else {
                        0
                    };
                    server = None;
                    if quick_exits >= 3 {
                        self.note(
                            "Xwayland keeps exiting: X clients are refused from now on".into(),
                        );
                        refusing = self.refuser();
                        if refusing.is_none() {
                            return;
                        }
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
            match readable(&self.listen, Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => {
                    self.note(format!("X socket watcher: poll failed ({e}); X11 is off"));
                    return;
                }
            }
            if let Some(l) = &refusing {
                // Close waiting clients' connections so they fail instead of hanging.
                while let Ok((conn, _)) = l.accept() {
                    drop(conn);
                }
                continue;
            }
            match self.spawn() {
                Ok(child) => {
                    self.note(format!(
                        "Xwayland started lazily: an X client connected to DISPLAY={}",
                        self.display
                    ));
                    server = Some((child, Instant::now()));
                }
                Err(e) => {
                    self.note(format!(
                        "an X client connected but Xwayland cannot start: {}",
                        chain(&e)
                    ));
                    refusing = self.refuser();
                    if refusing.is_none() {
                        return;
                    }
                }
            }
        }
        if let Some((mut child, _)) = server {
            stop_child(&mut child, Duration::from_secs(2));
        }
    }

    /// A non-blocking listener on the same socket for refusing clients (no Xwayland will run
    /// on it again, so its shared non-blocking flag bothers no one).
    fn refuser(&self) -> Option<UnixListener> {
        let l = self.listen.try_clone().ok().map(UnixListener::from)?;
        l.set_nonblocking(true).ok()?;
        Some(l)
    }

    fn spawn(&self) -> Result<Child, XwaylandError> {
        let program = find_on_path("Xwayland").ok_or(XwaylandError::Missing)?;
        let command = xwayland_command(program, &self.display, &self.binds, &self.options);
        let mut cmd = crosscast_sandbox::command(&command)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let fd = self
            .listen
            .try_clone()
            .map_err(|source| XwaylandError::Watcher {
                what: "cannot duplicate the listening socket",
                source,
            })?;
        let mut child = crosscast_ipc::os::process::spawn_with_fds(cmd, vec![(fd, LISTEN_FD)])
            .map_err(XwaylandError::Spawn)?;
        if let Some(err) = child.stderr.take() {
            crosscast_sandbox::forward_lines(err, "Xwayland".into(), "cc-xwayland-log");
        }
        Ok(child)
    }
}

/// Xwayland's command for `display`: rootful (no `-rootless`), the socket on [`LISTEN_FD`],
/// at the game's sandbox level and with its directories.
fn xwayland_command(
    program: PathBuf,
    display: &str,
    binds: &[(PathBuf, PathBuf)],
    options: &XwaylandOptions,
) -> GameCommand {
    let args: Vec<OsString> = [
        display,
        "-listenfd",
        &LISTEN_FD.to_string(),
        "-nolisten",
        "tcp",
        "-noreset",
        // The compositor streams wl_shm buffers only.
        "-shm",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    GameCommand {
        program: program.into(),
        args,
        env: vec![(
            "WAYLAND_DISPLAY".into(),
            options.wayland_display.clone().into(),
        )],
        env_remove: vec!["DISPLAY".into(), "WAYLAND_SOCKET".into()],
        runtime_dir: options.runtime_dir.clone(),
        data_dir: options.data_dir.clone(),
        level: options.level,
        binds: binds.to_vec(),
    }
}

/// Whether a client waits on the listening socket, within `timeout`.
fn readable(fd: &OwnedFd, timeout: Duration) -> std::io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    });
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(n) => Ok(n > 0 && fds[0].revents().contains(PollFlags::IN)),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `program` in the host's `PATH` (only absolute entries).
fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xwayland_runs_rootful_on_the_inherited_socket_in_the_games_sandbox() {
        let options = XwaylandOptions {
            runtime_dir: "/run/user/0/cc-1".into(),
            data_dir: "/run/user/0/cc-1/data".into(),
            level: SandboxLevel::Strict,
            wayland_display: "wayland-0".into(),
            eager: false,
            notify: Arc::new(|_| {}),
        };
        let binds = [(
            PathBuf::from("/run/user/0/cc-1/.X11-unix"),
            PathBuf::from("/tmp/.X11-unix"),
        )];
        let c = xwayland_command("/usr/bin/Xwayland".into(), ":0", &binds, &options);
        let args: Vec<&str> = c.args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                ":0",
                "-listenfd",
                "3",
                "-nolisten",
                "tcp",
                "-noreset",
                "-shm"
            ]
        );
        assert_eq!(c.env, [("WAYLAND_DISPLAY".into(), "wayland-0".into())]);
        assert!(c.env_remove.contains(&"DISPLAY".into()));
        assert_eq!(c.level, SandboxLevel::Strict);
        assert_eq!(c.runtime_dir, options.runtime_dir);
        assert_eq!(c.data_dir, options.data_dir);
        assert_eq!(c.binds, binds);
    }
}

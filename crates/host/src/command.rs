//! Any program as the game (`crosscast live -- COMMAND`): launched in the sandbox with a
//! private runtime directory that holds the host's Wayland socket, and offered crosscast's own
//! protocol too (the spawn-mode socket on fd 3, its key on fd 4). Whichever the game speaks
//! streams: a Wayland game's frames come through the compositor's feed, sent to the pipeline
//! when its first frame is committed; a crosscast game's through an authenticated session.
//! An X11 game gets `DISPLAY`, served by a rootful Xwayland (a client of the same compositor)
//! that starts when the game first connects to it, or up front with `x11`
//! (`crosscast_xwayland`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender, TryRecvError};
use std::time::{Duration, Instant};

use crosscast_compositor::{Compositor, CompositorOptions};
use crosscast_ipc::auth::authenticate_game;
use crosscast_ipc::connect::spawn_game;
use crosscast_ipc::os::process::stop_child;
use crosscast_ipc::os::sandbox::SandboxLevel;
use crosscast_ipc::{HostOptions, HostSession, SessionKey};
use crosscast_sandbox::{forward_lines, GameCommand, RuntimeDir};
use crosscast_wire::{FrameRate, UidPolicy};
use crosscast_xwayland::{X11Display, XwaylandOptions, XwaylandServer};

use crate::pulse::PulseSource;
use crate::source::{Relaunch, SourceEvent};
use crate::wayland::WaylandFeed;
use crate::HostError;

/// The Wayland socket's name inside the game's runtime directory.
pub const WAYLAND_SOCKET: &str = "wayland-0";

/// How long `x11` waits for Xwayland's screen (its first frame) before starting the game.
const XWAYLAND_SCREEN_WAIT: Duration = Duration::from_secs(10);

/// How to run an arbitrary program as the game.
#[derive(Debug, Clone)]
pub struct CommandLaunch {
    /// The program (looked up in PATH).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Relaunch it (with backoff) when it exits.
    pub restart: bool,
    /// The sandbox it runs in.
    pub sandbox: SandboxLevel,
    /// Its writable data directory; `None` for a fresh one inside the runtime directory.
    pub data_dir: Option<PathBuf>,
    /// The stream's size: each toplevel is configured fullscreen at it.
    pub size: (u32, u32),
    /// The stream's rate: the display's refresh, and the frame callbacks' pace.
    pub fps: FrameRate,
    /// Start Xwayland before the game rather than when it first connects to its X display.
    pub x11: bool,
    /// The keyboard layout Wayland clients get (`--keymap`).
    pub keymap: crosscast_compositor::Keymap,
}

/// The environment that makes engines pick the host's Wayland socket (still preferred:
/// `SDL_VIDEODRIVER` and friends), with `DISPLAY` for X11-only programs.
fn wayland_env(runtime: &Path, display: &str) -> (Vec<(OsString, OsString)>, Vec<OsString>) {
    let mut env: Vec<(OsString, OsString)> = [
        ("WAYLAND_DISPLAY", WAYLAND_SOCKET),
        ("SDL_VIDEODRIVER", "wayland"),
        ("GDK_BACKEND", "wayland"),
        ("QT_QPA_PLATFORM", "wayland"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    env.push(("XDG_RUNTIME_DIR".into(), runtime.as_os_str().to_owned()));
    env.push(("DISPLAY".into(), display.into()));
    // Without a render node Mesa must draw in software (llvmpipe into wl_shm); with one, the
    // game may use the GPU as it would anywhere.
    if !has_render_node() {
        env.push(("LIBGL_ALWAYS_SOFTWARE".into(), "1".into()));
    }
    // The host's X authority file is for the host's X server, not the game's.
    // Nor are the host's sound server settings: the game's PulseAudio is the one in its
    // runtime directory (`PULSE_RUNTIME_PATH` would win over `XDG_RUNTIME_DIR`).
    let remove = [
        "XAUTHORITY",
        "WAYLAND_SOCKET",
        "PULSE_SERVER",
        "PULSE_RUNTIME_PATH",
        "PULSE_COOKIE",
        "PULSE_SINK",
    ];
    (env, remove.into_iter().map(OsString::from).collect())
}

/// Whether the machine has a DRM render node (a GPU the game could render with).
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri")
        .map(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false)
}

/// Everything one run of the command mode owns: the runtime directory (removed at the end),
/// the compositor until its first frame, the game's data directory, its X display and the
/// Xwayland serving it.
pub(crate) struct CommandRun {
    launch: CommandLaunch,
    // Dropped before `runtime` (fields drop in order): Xwayland stops, then the socket goes.
    xwayland: Option<XwaylandServer>,
    x11: X11Display,
    runtime: RuntimeDir,
    data_dir: PathBuf,
    compositor: Option<Compositor>,
    /// The game's PulseAudio server, until `run` hands it to the pipeline.
    pulse: Option<PulseSource>,
    host: HostOptions,
}

static FEED_IDS: AtomicU64 = AtomicU64::new(1_000_000);

impl CommandRun {
    /// Checks the sandbox, makes the private directories and starts the compositor: every
    /// error that can be known before the game starts comes from here.
    pub(crate) fn prepare(launch: CommandLaunch, host: HostOptions) -> Result<Self, HostError> {
        let info = crosscast_sandbox::preflight(launch.sandbox)?;
        log::info!("sandbox: {info}");
        let runtime = RuntimeDir::create("crosscast-game")?;
        let data_dir = match &launch.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|source| HostError::DataDir {
                    path: d.clone(),
                    source,
                })?;
                d.clone()
            }
            None => {
                let d = runtime.path().join("data");
                std::fs::create_dir(&d).map_err(|source| HostError::DataDir {
                    path: d.clone(),
                    source,
                })?;
                d
            }
        };
        let compositor = Compositor::start(CompositorOptions {
            width: launch.size.0,
            height: launch.size.1,
            fps: launch.fps,
            runtime_dir: runtime.path().to_path_buf(),
            socket_name: WAYLAND_SOCKET.into(),
            max_clients: 16,
            keymap: launch.keymap.clone(),
        })?;
        // The game's sound server: its PulseAudio clients find it at
        // `$XDG_RUNTIME_DIR/pulse/native` with no configuration, and nobody else's sound is
        // on it.
        let pulse = PulseSource::start(runtime.path(), crosscast_pulse::Limits::default())?;
        let x11 = X11Display::open(runtime.path(), launch.sandbox)?;
        let xwayland = XwaylandServer::serve(
            &x11,
            XwaylandOptions {
                runtime_dir: runtime.path().to_path_buf(),
                data_dir: data_dir.clone(),
                level: launch.sandbox,
                wayland_display: WAYLAND_SOCKET.into(),
                eager: launch.x11,
                notify: std::sync::Arc::new(|note| say(&format_args!("crosscast: {note}"))),
            },
        )?;
        // The compositor streams the most recently mapped toplevel: Xwayland's screen must be
        // up before the game starts, or a Wayland game that maps first loses the stream to it.
        if launch.x11 && !compositor.wait_frame(XWAYLAND_SCREEN_WAIT) {
            say(&format_args!(
                "crosscast: Xwayland showed no screen within {XWAYLAND_SCREEN_WAIT:?}; starting \
                 the game anyway"
            ));
        }
        Ok(CommandRun {
            launch,
            xwayland: Some(xwayland),
            x11,
            runtime,
            data_dir,
            compositor: Some(compositor),
            pulse: Some(pulse),
            host,
        })
    }

    /// Runs the game (and relaunches it if asked) until it ends for good or `stop` is set.
    /// Runs on the source's thread, which must outlive the game: the sandbox kills the game
    /// when the thread that started it dies.
    pub(crate) fn run(mut self, stop: &AtomicBool, tx: &Sender<SourceEvent>) {
        if let Some(pulse) = self.pulse.take() {
            let _ = tx.send(SourceEvent::Audio(Box::new(pulse)));
        }
        let mut relaunch = Relaunch::default();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            match self.run_once(stop, tx) {
                Ok(Some(status)) => {
                    let _ = tx.send(SourceEvent::Note(format!("game exited: {status}")));
                    if !self.launch.restart {
                        let _ = tx.send(SourceEvent::GameExited(status));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(SourceEvent::Note(format!("game failed: {e}")));
                    if !self.launch.restart {
                        let _ = tx.send(SourceEvent::GameFailed(e.to_string()));
                    }
                }
            }
            if !self.launch.restart || stop.load(Ordering::Relaxed) {
                break;
            }
            relaunch.wait(started.elapsed(), stop, tx, &mut || self.offer_feed(tx));
        }
        // The game run is over: Xwayland stops (from this thread, the one its sandbox is tied
        // to, or already gone), and the runtime directory goes when this returns.
        drop(self.xwayland.take());
        drop(self.runtime);
    }

    /// Sends the compositor's feed to the pipeline once a client has committed a frame.
    fn offer_feed(&mut self, tx: &Sender<SourceEvent>) {
        if self
            .compositor
            .as_ref()
            .is_some_and(|c| c.wait_frame(Duration::ZERO))
        {
            if let Some(c) = self.compositor.take() {
                let id = FEED_IDS.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(SourceEvent::Feed(Box::new(WaylandFeed::new(c, id))));
                let _ = tx.send(SourceEvent::Note(
                    "the game speaks Wayland: streaming its surface".into(),
                ));
            }
        }
    }

    /// One launch of the game: its exit status, or `None` when the host stopped it.
    fn run_once(
        &mut self,
        stop: &AtomicBool,
        tx: &Sender<SourceEvent>,
    ) -> Result<Option<ExitStatus>, HostError> {
        let (env, env_remove) = wayland_env(self.runtime.path(), self.x11.display());
        let game = GameCommand {
            program: self.launch.program.clone(),
            args: self.launch.args.clone(),
            env,
            env_remove,
            runtime_dir: self.runtime.path().to_path_buf(),
            data_dir: self.data_dir.clone(),
            level: self.launch.sandbox,
            binds: self.x11.binds(),
        };
        let mut cmd = crosscast_sandbox::command(&game)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let key = SessionKey::generate()?;
        let program = PathBuf::from(&self.launch.program);
        let (mut child, channel) = spawn_game(cmd, &key).map_err(|source| HostError::Spawn {
            program: program.clone(),
            source,
        })?;
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "game".into());
        forward_output(&mut child, &name);

        // crosscast's own protocol, if the game speaks it: the handshake waits on its own
        // thread for as long as the game lives (a Wayland game never says a word on fd 3, and
        // its socket closes when it exits).
        let (auth_tx, auth_rx) = mpsc::channel();
        let host = self.host.clone();
        let me = crosscast_ipc::os::process::current_uid();
        let id = FEED_IDS.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name("cc-game-auth".into())
            .spawn(move || {
                let session = authenticate_game(
                    &channel,
                    &key,
                    &UidPolicy::only(me),
                    Duration::from_secs(365 * 24 * 3600),
                    id,
                )
                .and_then(|(o, peer)| HostSession::start(channel, host, o.session_id, peer));
                let _ = auth_tx.send(session);
            })
            .map_err(|source| HostError::Thread {
                name: "game handshake",
                source,
            })?;
        let mut auth_pending = true;
        loop {
            self.offer_feed(tx);
            if auth_pending {
                match auth_rx.try_recv() {
                    Ok(Ok(s)) => {
                        auth_pending = false;
                        let _ = tx.send(SourceEvent::Note(
                            "the game speaks crosscast's protocol: streaming its slots".into(),
                        ));
                        let _ = tx.send(SourceEvent::Session(s));
                    }
                    Ok(Err(e)) => {
                        auth_pending = false;
                        log::debug!("no crosscast handshake from the game: {e}");
                    }
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => auth_pending = false,
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(Some(status));
            }
            if stop.load(Ordering::Relaxed) {
                stop_child(&mut child, Duration::from_secs(2));
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Copies the game's stdout and stderr to the host's stderr, each line prefixed with the
/// game's name and which stream it came on.
fn forward_output(child: &mut Child, name: &str) {
    if let Some(out) = child.stdout.take() {
        forward_lines(out, format!("{name}[out]"), "cc-game-log");
    }
    if let Some(err) = child.stderr.take() {
        forward_lines(err, format!("{name}[err]"), "cc-game-log");
    }
}

/// Prints `line` to stderr in one write, so that it stays whole on a stderr the host shares
/// with its game (`eprintln!` writes piece by piece).
fn say(line: &dyn std::fmt::Display) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

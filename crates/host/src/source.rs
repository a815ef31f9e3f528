//! Where game sessions come from: a spawned child (restarted with backoff when it dies) or
//! connections to a named socket. Either way the pipeline receives ready [`HostSession`]s on a
//! channel and never blocks on a game.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crosscast_ipc::auth::{authenticate_game, DEFAULT_HANDSHAKE_TIMEOUT};
use crosscast_ipc::connect::{spawn_game, AcceptEvent, Acceptor, AcceptorOptions};
use crosscast_ipc::{HostOptions, HostSession, IpcError, SessionKey};
use crosscast_wire::UidPolicy;

use crate::command::{CommandLaunch, CommandRun};
use crate::feed::GameFeed;
use crate::HostError;

/// How the host gets its game.
#[derive(Debug, Clone)]
pub enum GameLaunch {
    /// Start the game as a child over a socketpair.
    Spawn {
        /// The game executable.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// Restart it (with backoff) when it exits or dies.
        restart: bool,
    },
    /// Any program as the game: a Wayland client of the host's compositor, or a game on
    /// crosscast's protocol; it runs in the sandbox for arbitrary programs.
    Command(CommandLaunch),
    /// Wait for games to connect to the named socket.
    Named {
        /// Key, uid policy, handshake timeout, pending limit.
        acceptor: AcceptorOptions,
        /// App id the socket name is derived from.
        app_id: String,
        /// User id the socket name is derived from.
        user_id: String,
        /// Games connected at once: one streams, the others wait on standby and take over,
        /// in order, the moment it leaves. More are refused with a limit error.
        max_sessions: usize,
    },
}

/// What the source reports to the pipeline.
pub enum SourceEvent {
    /// A new authenticated session, ready to stream.
    Session(HostSession),
    /// Something worth one line in the log (a rejection, a restart).
    Note(String),
    /// A game of another kind than crosscast's protocol (a Wayland client), ready to stream.
    Feed(Box<dyn GameFeed + Send>),
    /// The game's sound on its own path (its PulseAudio server), to mix into the stream.
    Audio(Box<dyn crate::feed::AudioSource>),
    /// The game (launched without restart) has exited with this status.
    GameExited(ExitStatus),
    /// The game (launched without restart) could not be started or run.
    GameFailed(String),
}

/// A background supplier of game sessions.
pub struct SessionSource {
    events: Receiver<SourceEvent>,
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    name: Option<String>,
}

/// Backoff before the n-th consecutive restart: fast first (the stream should resume within a
/// second of a crash), then doubling to 5 s so a game that crashes at once cannot spin.
pub fn restart_delay(consecutive_failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << consecutive_failures.min(6)))
        .min(Duration::from_secs(5))
}

/// The backoff between launches of a game that keeps exiting: consecutive launches that lasted
/// under 10 s count as failures and lengthen the wait ([`restart_delay`]).
#[derive(Debug, Default)]
pub(crate) struct Relaunch {
    failures: u32,
}

impl Relaunch {
    /// After a launch that ran for `ran_for`: says when the game restarts and waits that long
    /// (or until `stop`), calling `idle` every 20 ms meanwhile.
    pub(crate) fn wait(
        &mut self,
        ran_for: Duration,
        stop: &AtomicBool,
        tx: &Sender<SourceEvent>,
        idle: &mut dyn FnMut(),
    ) {
        self.failures = if ran_for > Duration::from_secs(10) {
            0
        } else {
            self.failures + 1
        };
        let delay = restart_delay(self.failures.saturating_sub(1));
        let _ = tx.send(SourceEvent::Note(format!(
            "restarting the game in {delay:?}"
        )));
        let until = Instant::now() + delay;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            idle();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl SessionSource {
    /// Starts supplying sessions.
    pub fn start(launch: GameLaunch, host: HostOptions) -> Result<SessionSource, HostError> {
        let (tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicUsize::new(0));
        let (thread, name) = match launch {
            GameLaunch::Spawn {
                program,
                args,
                restart,
            } => {
                let stop = stop.clone();
                let t = std::thread::Builder::new()
                    .name("cc-game-spawner".into())
                    .spawn(move || spawn_loop(&program, &args, restart, &host, &stop, &tx))
                    .map_err(|source| HostError::Thread {
                        name: "game spawner",
                        source,
                    })?;
                (t, None)
            }
            GameLaunch::Command(launch) => {
                // Everything knowable before the game starts fails here, not on a thread.
                let run = CommandRun::prepare(launch, host)?;
                let stop = stop.clone();
                let t = std::thread::Builder::new()
                    .name("cc-game-spawner".into())
                    .spawn(move || run.run(&stop, &tx))
                    .map_err(|source| HostError::Thread {
                        name: "game spawner",
                        source,
                    })?;
                (t, None)
            }
            GameLaunch::Named {
                acceptor,
                app_id,
                user_id,
                max_sessions,
            } => {
                let acc = Acceptor::bind(acceptor, &app_id, &user_id)?;
                let name = acc.name().to_owned();
                let (stop, connected) = (stop.clone(), connected.clone());
                let t = std::thread::Builder::new()
                    .name("cc-game-listener".into())
                    .spawn(move || {
                        named_loop(&acc, &host, max_sessions.max(1), &stop, &connected, &tx)
                    })
                    .map_err(|source| HostError::Thread {
                        name: "game listener",
                        source,
                    })?;
                (t, Some(name))
            }
        };
        Ok(SessionSource {
            events,
            stop,
            connected,
            thread: Some(thread),
            name,
        })
    }

    /// The abstract socket name in named mode.
    pub fn socket_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Next event, if one is ready.
    pub fn try_next(&self) -> Option<SourceEvent> {
        self.events.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event.
    pub fn next_timeout(&self, timeout: Duration) -> Option<SourceEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Tells the source a session it supplied has ended, making room for another game.
    pub fn session_ended(&self) {
        let _ = self
            .connected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

impl Drop for SessionSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

fn spawn_loop(
    program: &PathBuf,
    args: &[String],
    restart: bool,
    host: &HostOptions,
    stop: &AtomicBool,
    tx: &Sender<SourceEvent>,
) {
    let mut relaunch = Relaunch::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match run_child(program, args, host, stop, tx) {
            Ok(status) => {
                let _ = tx.send(SourceEvent::Note(format!("game exited: {status}")));
            }
            Err(e) => {
                let _ = tx.send(SourceEvent::Note(format!("game failed: {e}")));
            }
        }
        if !restart || stop.load(Ordering::Relaxed) {
            return;
        }
        relaunch.wait(started.elapsed(), stop, tx, &mut || {});
    }
}

fn run_child(
    program: &PathBuf,
    args: &[String],
    host: &HostOptions,
    stop: &AtomicBool,
    tx: &Sender<SourceEvent>,
) -> Result<String, HostError> {
    let key = SessionKey::generate()?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    let (mut child, channel) = spawn_game(cmd, &key).map_err(|source| HostError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let me = crosscast_ipc::os::process::current_uid();
    let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let session = authenticate_game(
        &channel,
        &key,
        &UidPolicy::only(me),
        DEFAULT_HANDSHAKE_TIMEOUT,
        id,
    )
    .and_then(|(o, peer)| HostSession::start(channel, host.clone(), o.session_id, peer));
    match session {
        Ok(s) => {
            let _ = tx.send(SourceEvent::Session(s));
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
    }
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(status.to_string());
        }
        if stop.load(Ordering::Relaxed) {
            // The pipeline said goodbye; give the game a moment to leave on its own.
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    return Ok(status.to_string());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            return Ok(child.wait().map(|s| s.to_string()).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn named_loop(
    acc: &Acceptor,
    host: &HostOptions,
    max_sessions: usize,
    stop: &AtomicBool,
    connected: &AtomicUsize,
    tx: &Sender<SourceEvent>,
) {
    while !stop.load(Ordering::Relaxed) {
        let event = match acc.events().recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let note = match event {
            AcceptEvent::Authenticated {
                channel,
                outcome,
                peer,
            } => {
                if connected.load(Ordering::Acquire) >= max_sessions {
                    let err = IpcError::Limit(format!(
                        "a game is already streaming and {max_sessions} are connected (max sessions {max_sessions})"
                    ));
                    channel.send_error(&err);
                    format!("refused game pid {} uid {}: {err}", peer.pid, peer.uid)
                } else {
                    match HostSession::start(channel, host.clone(), outcome.session_id, peer) {
                        Ok(s) => {
                            connected.fetch_add(1, Ordering::AcqRel);
                            let _ = tx.send(SourceEvent::Session(s));
                            format!(
                                "game pid {} uid {} connected (session {})",
                                peer.pid, peer.uid, outcome.session_id
                            )
                        }
                        Err(e) => format!("session with pid {} failed to start: {e}", peer.pid),
                    }
                }
            }
            AcceptEvent::Rejected { peer, reason } => match peer {
                Some(p) => format!(
                    "rejected connection from pid {} uid {}: {reason}",
                    p.pid, p.uid
                ),
                None => format!("rejected connection: {reason}"),
            },
        };
        let _ = tx.send(SourceEvent::Note(note));
    }
}

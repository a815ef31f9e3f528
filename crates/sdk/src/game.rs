//! A connected, sandboxed, authenticated game session: slots, audio, input, resize.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crosscast_ipc::auth::{authenticate_host, DEFAULT_HANDSHAKE_TIMEOUT};
use crosscast_ipc::connect::{adopt_spawned, connect_named};
use crosscast_ipc::os::sandbox::{apply_sandbox, SandboxLevel};
use crosscast_ipc::{GameSession, SessionKey, SlotWriter};
use crosscast_wire::{AudioConfig, Input, SurfaceConfig};

use crate::{AudioOut, SdkError};

/// How the game reaches its host.
#[derive(Debug)]
pub enum Connection {
    /// The host started the game (`crosscast live -- GAME`, or [`crate::supervise`]): the
    /// connection is on fd 3 and the key on fd 4.
    Spawned,
    /// A separately launched game reaching `crosscast host --listen` under a shared key.
    Named {
        /// The key both sides hold (`crosscast keygen`).
        key: SessionKey,
        /// The application id the host listens for.
        app_id: String,
        /// The user id the host listens for.
        user_id: String,
    },
}

/// Settings for [`Game::connect`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// The sandbox the game puts itself in once connected (`Strict` unless the engine needs
    /// more, say a GPU driver).
    pub sandbox: SandboxLevel,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// How long to wait for the host's first surface configuration.
    pub config_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sandbox: SandboxLevel::Strict,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            config_timeout: Duration::from_secs(10),
        }
    }
}

/// A slot dequeued for drawing: write RGBA pixels (`stride` bytes a row, top row first), then
/// hand it back with [`Game::queue`]. Queue every frame you dequeue: a dropped `Frame` keeps
/// its slot out of use until the host's next surface configuration.
pub struct Frame(SlotWriter);

impl Frame {
    /// The slot's pixels, `height * stride` bytes.
    pub fn pixels(&mut self) -> &mut [u8] {
        self.0.pixels()
    }

    /// The surface this slot belongs to (size and stride may change with a resize).
    pub fn config(&self) -> &SurfaceConfig {
        self.0.config()
    }
}

/// A game session with its host.
pub struct Game {
    session: Arc<GameSession>,
    report: Option<String>,
    /// Input taken from the session but not yet handed out (`take_input_up_to`'s rest).
    pending: Mutex<VecDeque<Input>>,
}

impl Game {
    /// Connects, sandboxes the process (the connection is made first: a sandboxed process
    /// opens no socket), authenticates and waits for the host's surface configuration.
    pub fn connect(connection: Connection, opts: &ConnectOptions) -> Result<Game, SdkError> {
        let (channel, key) = match connection {
            Connection::Spawned => adopt_spawned().map_err(SdkError::NotSpawned)?,
            Connection::Named {
                key,
                app_id,
                user_id,
            } => (
                connect_named(&key, &app_id, &user_id).map_err(SdkError::NoHost)?,
                key,
            ),
        };
        let report = if opts.sandbox != SandboxLevel::Off {
            Some(
                apply_sandbox(opts.sandbox)
                    .map_err(SdkError::Sandbox)?
                    .to_string(),
            )
        } else {
            None
        };
        // A host that goes away during the handshake (killed, or a connection that reached
        // it as it died) is a lost host, which a supervisor retries, not a refusal.
        let outcome = authenticate_host(&channel, &key, opts.handshake_timeout).map_err(|e| {
            if SdkError::is_disconnect(&e) {
                SdkError::HostGone { goodbye: false }
            } else {
                SdkError::Handshake(e)
            }
        })?;
        let session = GameSession::start(channel, outcome.session_id).map_err(SdkError::session)?;
        session
            .wait_config(opts.config_timeout)
            .map_err(|e| SdkError::from_session(&session, e))?;
        Ok(Game {
            session: Arc::new(session),
            report,
            pending: Mutex::new(VecDeque::new()),
        })
    }

    /// What the sandbox says is in force (`None` when the game runs unsandboxed).
    pub fn sandbox_report(&self) -> Option<&str> {
        self.report.as_deref()
    }

    /// The current surface: size, stride, slot count, queue policy.
    pub fn surface(&self) -> SurfaceConfig {
        // `connect` waited for the first configuration, so there always is one.
        self.session
            .config()
            .expect("a configuration arrived before connect returned")
    }

    /// Takes a free slot to draw the next frame into; `None` when none came free within
    /// `timeout` (the host is behind: skip the frame, keep the pace).
    pub fn dequeue(&self, timeout: Duration) -> Result<Option<Frame>, SdkError> {
        Ok(self
            .session
            .dequeue(timeout)
            .map_err(|e| SdkError::from_session(&self.session, e))?
            .map(Frame))
    }

    /// Hands a drawn frame to the host: `seq` counts frames (+1 each; a gap tells the host
    /// frames were skipped), `pts_ns` is when it should be shown (CLOCK_MONOTONIC).
    pub fn queue(&self, frame: Frame, seq: u64, pts_ns: u64) -> Result<(), SdkError> {
        self.session
            .queue(frame.0, seq, pts_ns)
            .map(|_| ())
            .map_err(|e| SdkError::from_session(&self.session, e))
    }

    /// Announces the audio format and returns the sender for it. Call once, before the first
    /// block; blocks of another format are refused by the host.
    pub fn audio(&self, config: AudioConfig) -> Result<AudioOut, SdkError> {
        AudioOut::new(Arc::clone(&self.session), config)
    }

    /// Asks the host for the streamer's input (`true`) or stops it; a game that never asks
    /// gets none.
    pub fn want_input(&self, enabled: bool) -> Result<(), SdkError> {
        self.session
            .want_input(enabled)
            .map_err(|e| SdkError::from_session(&self.session, e))
    }

    /// Moves the input events received since the last call to the end of `out`, oldest first.
    pub fn take_input(&self, out: &mut Vec<Input>) {
        self.take_input_up_to(out, usize::MAX);
    }

    /// Like [`Game::take_input`], at most `max` events; the rest wait for the next call.
    pub fn take_input_up_to(&self, out: &mut Vec<Input>, max: usize) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fresh = Vec::new();
        self.session.take_input(&mut fresh);
        pending.extend(fresh);
        let n = max.min(pending.len());
        out.extend(pending.drain(..n));
    }

    /// Waits up to `timeout` for input; true when some is waiting. A game that draws on
    /// input at once, instead of at its next frame time, cuts the streamer's latency.
    pub fn wait_input(&self, timeout: Duration) -> bool {
        self.session.wait_input(timeout)
    }

    /// Input events dropped because the game did not take them fast enough.
    pub fn input_dropped(&self) -> u64 {
        self.session.input_dropped()
    }

    /// Asks the host for a new surface size; frames dequeued after it arrives have it.
    pub fn request_resize(&self, width: u32, height: u32) -> Result<(), SdkError> {
        self.session
            .request_resize(width, height)
            .map_err(|e| SdkError::from_session(&self.session, e))
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<SdkError> {
        self.session.closed().map(SdkError::session)
    }

    /// Says goodbye and closes the session.
    pub fn close(self) {
        if let Ok(s) = Arc::try_unwrap(self.session) {
            s.close();
        }
    }
}

#[doc(hidden)]
impl Game {
    /// The transport session underneath, for the CLI's demo (bench hooks, early frames).
    pub fn session(&self) -> &Arc<GameSession> {
        &self.session
    }
}

//! Reconnecting after a host restart, for games in named mode.
//!
//! A sandboxed process can open no socket, so a game cannot reconnect by itself. The
//! supervisor is a small unsandboxed parent that does only that: it connects (retrying while
//! no host listens), starts the game as a child holding the connection on fd 3 and the key on
//! fd 4 (exactly as `crosscast live` starts a spawned game, so the child connects with
//! [`crate::Connection::Spawned`]), and starts it again when it exits with
//! [`crate::EXIT_HOST_LOST`]. It never reads a byte from the host itself.

use std::process::Command;
use std::time::{Duration, Instant};

use crosscast_ipc::connect::{GAME_KEY_FD, GAME_SOCKET_FD};
use crosscast_ipc::os::process::{key_pipe, spawn_with_fds};
use crosscast_ipc::os::socket::SeqPacket;
use crosscast_ipc::os::OsError;
use crosscast_ipc::SessionKey;

use crate::{SdkError, EXIT_HOST_LOST};

/// How a supervised run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperviseEnd {
    /// The game exited with status 0.
    Finished,
    /// The deadline passed.
    TimeUp,
}

/// Runs `game` (a fresh command for each connection; `remaining` is the time left before
/// `deadline`) under the host listening as `app_id`/`user_id` for `key`, reconnecting when it
/// reports [`EXIT_HOST_LOST`]. `note` receives one line per event worth logging. Any other
/// exit status of the game is an error.
pub fn supervise(
    key: &SessionKey,
    app_id: &str,
    user_id: &str,
    deadline: Option<Instant>,
    mut game: impl FnMut(Option<Duration>) -> Command,
    mut note: impl FnMut(&str),
) -> Result<SuperviseEnd, SdkError> {
    let name = key.socket_name(app_id, user_id);
    let mut waited = false;
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining.is_some_and(|r| r.is_zero()) {
            return Ok(SuperviseEnd::TimeUp);
        }
        let sock = match SeqPacket::connect_abstract(&name) {
            Ok(s) => s,
            Err(OsError::NoListener) => {
                if !waited {
                    note("no host is listening yet; retrying");
                    waited = true;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) => return Err(SdkError::NoHost(e.into())),
        };
        waited = false;
        let key_fd = key_pipe(key.as_bytes()).map_err(|e| SdkError::Session(e.into()))?;
        let mut child = spawn_with_fds(
            game(remaining),
            vec![(sock.into(), GAME_SOCKET_FD), (key_fd, GAME_KEY_FD)],
        )
        .map_err(|e| SdkError::Session(e.into()))?;
        let status = child.wait().map_err(|source| SdkError::Os {
            what: "waiting for the game",
            source,
        })?;
        match status.code() {
            Some(0) => return Ok(SuperviseEnd::Finished),
            Some(EXIT_HOST_LOST) => note("reconnecting to the host"),
            _ => {
                return Err(SdkError::Invalid(format!("the game exited with {status}")));
            }
        }
    }
}

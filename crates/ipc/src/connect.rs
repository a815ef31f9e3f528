//! The two ways a game reaches the host.
//!
//! - **Spawn** (`crosscast live`): the host starts the game with one end of a socketpair on fd
//!   [`GAME_SOCKET_FD`] and a pipe holding the 32-byte key on fd [`GAME_KEY_FD`]. The key is
//!   never in argv or the environment, where other processes of the user could read it.
//! - **Named** (`crosscast host --listen` + `crosscast game --connect`): the host listens on an
//!   abstract socket named from the key, app id and user id ([`SessionKey::socket_name`]);
//!   [`Acceptor`] authenticates each connection on its own thread with a deadline, keeps at most
//!   a bounded number in flight, and reports every rejection with its reason.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crosscast_wire::{HandshakeOutcome, PeerCred, UidPolicy};

use crate::auth::{authenticate_game, SessionKey};
use crate::channel::Channel;
use crate::os::process::{key_pipe, read_key_from_fd, spawn_with_fds, take_inherited_fd};
use crate::os::socket::{Listener, SeqPacket};
use crate::IpcError;

/// Fd number of the game's end of the socketpair in spawn mode.
pub const GAME_SOCKET_FD: i32 = 3;
/// Fd number of the pipe carrying the session key in spawn mode.
pub const GAME_KEY_FD: i32 = 4;

/// Host side of spawn mode: starts `cmd` as the game with the socket and key inherited.
pub fn spawn_game(cmd: Command, key: &SessionKey) -> Result<(Child, Channel), IpcError> {
    let (host_end, game_end) = SeqPacket::pair()?;
    let key_fd = key_pipe(key.as_bytes())?;
    let child = spawn_with_fds(
        cmd,
        vec![(game_end.into(), GAME_SOCKET_FD), (key_fd, GAME_KEY_FD)],
    )?;
    Ok((child, Channel::new(host_end)))
}

/// Game side of spawn mode: adopts the inherited socket and reads the key.
pub fn adopt_spawned() -> Result<(Channel, SessionKey), IpcError> {
    let sock = take_inherited_fd(GAME_SOCKET_FD)?;
    let key_fd = take_inherited_fd(GAME_KEY_FD)?;
    let key = read_key_from_fd(key_fd)?;
    Ok((
        Channel::new(SeqPacket::from_checked(sock)?),
        SessionKey::from_bytes(key),
    ))
}

/// Game side of named mode: connects to the host's abstract socket for this app and user.
pub fn connect_named(key: &SessionKey, app_id: &str, user_id: &str) -> Result<Channel, IpcError> {
    let sock = SeqPacket::connect_abstract(&key.socket_name(app_id, user_id))?;
    Ok(Channel::new(sock))
}

/// How the named-mode host admits connections.
#[derive(Debug, Clone)]
pub struct AcceptorOptions {
    /// The shared key.
    pub key: SessionKey,
    /// Which peer uids may connect.
    pub uid_policy: UidPolicy,
    /// Time a connection has to finish the handshake.
    pub handshake_timeout: Duration,
    /// Connections allowed in the handshake at once; more are refused immediately.
    pub max_pending: usize,
}

/// What happened to one incoming connection.
#[derive(Debug)]
pub enum AcceptEvent {
    /// Authenticated: ready for [`crate::HostSession::start`].
    Authenticated {
        /// The connection.
        channel: Channel,
        /// The handshake's result.
        outcome: HandshakeOutcome,
        /// The peer's kernel credentials.
        peer: PeerCred,
    },
    /// Refused; the connection is closed. Nothing else was affected.
    Rejected {
        /// The peer's kernel credentials, when they could be read.
        peer: Option<PeerCred>,
        /// Why.
        reason: String,
    },
}

/// A listening named-mode host socket that authenticates connections in the background.
pub struct Acceptor {
    name: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    events: Receiver<AcceptEvent>,
}

impl Acceptor {
    /// Binds the abstract socket for `app_id`/`user_id` and starts accepting.
    pub fn bind(opts: AcceptorOptions, app_id: &str, user_id: &str) -> Result<Acceptor, IpcError> {
        let name = opts.key.socket_name(app_id, user_id);
        let listener = Listener::bind_abstract(&name)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = sync_channel(64);
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cc-acceptor".into())
                .spawn(move || accept_loop(listener, opts, &stop, tx))
                .map_err(|e| crate::os::OsError::thread_spawn("spawn the acceptor thread", &e))?
        };
        Ok(Acceptor {
            name,
            stop,
            thread: Some(thread),
            events,
        })
    }

    /// The abstract socket name (without the leading NUL).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Authenticated connections and rejections, in the order they happened.
    pub fn events(&self) -> &Receiver<AcceptEvent> {
        &self.events
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: Listener,
    opts: AcceptorOptions,
    stop: &AtomicBool,
    tx: SyncSender<AcceptEvent>,
) {
    let pending = Arc::new(AtomicUsize::new(0));
    let next_id = AtomicU64::new(1);
    while !stop.load(Ordering::Relaxed) {
        match listener.wait_readable(Some(Duration::from_millis(100))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::error!("listening socket failed: {e}");
                return;
            }
        }
        let sock = match listener.try_accept() {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                log::warn!("accept failed: {e}");
                continue;
            }
        };
        let channel = Channel::new(sock);
        if pending.load(Ordering::Acquire) >= opts.max_pending {
            let err = IpcError::Limit(format!(
                "{} connections already in the handshake",
                opts.max_pending
            ));
            channel.send_error(&err);
            let peer = channel.socket().peer_cred().ok().map(|c| PeerCred {
                pid: c.pid,
                uid: c.uid,
                gid: c.gid,
            });
            let _ = tx.try_send(AcceptEvent::Rejected {
                peer,
                reason: err.to_string(),
            });
            continue;
        }
        pending.fetch_add(1, Ordering::AcqRel);
        let session_id = next_id.fetch_add(1, Ordering::Relaxed);
        let (opts, tx, pending) = (opts.clone(), tx.clone(), pending.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("cc-handshake-{session_id}"))
            .spawn(move || {
                let result = authenticate_game(
                    &channel,
                    &opts.key,
                    &opts.uid_policy,
                    opts.handshake_timeout,
                    session_id,
                );
                pending.fetch_sub(1, Ordering::AcqRel);
                let event = match result {
                    Ok((outcome, peer)) => AcceptEvent::Authenticated {
                        channel,
                        outcome,
                        peer,
                    },
                    Err(e) => {
                        let peer = channel.socket().peer_cred().ok().map(|c| PeerCred {
                            pid: c.pid,
                            uid: c.uid,
                            gid: c.gid,
                        });
                        AcceptEvent::Rejected {
                            peer,
                            reason: e.to_string(),
                        }
                    }
                };
                // A full event queue means nobody is consuming; dropping the event closes
                // the connection, which is the safe outcome.
                let _ = tx.send(event);
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a handshake thread: {e}");
        }
    }
}

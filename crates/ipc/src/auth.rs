//! The session key and the handshake drivers that run the `crosscast-wire` state machines over
//! a [`Channel`].

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crosscast_wire::{
    GameHandshake, HandshakeOutcome, HostHandshake, PeerCred, UidPolicy, KEY_LEN, NONCE_LEN,
};
use hmac::{KeyInit, Mac};

use crate::channel::Channel;
use crate::IpcError;

/// Default time a peer has to finish the handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The 32-byte secret both processes hold. Never printed, never put in argv or the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; KEY_LEN]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// Fresh random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], IpcError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| IpcError::Key(format!("no randomness: {e}")))?;
    Ok(out)
}

impl SessionKey {
    /// A new random key.
    pub fn generate() -> Result<Self, IpcError> {
        Ok(SessionKey(random_bytes()?))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SessionKey(bytes)
    }

    /// The raw key, for the handshake and the inherited key pipe.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Writes a new random key to `path` with mode 0600; refuses to overwrite an existing file.
    pub fn write_new(path: &Path) -> Result<Self, IpcError> {
        let key = Self::generate()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| IpcError::Key(format!("cannot create {}: {e}", path.display())))?;
        f.write_all(&key.0)
            .and_then(|_| f.sync_all())
            .map_err(|e| IpcError::Key(format!("cannot write {}: {e}", path.display())))?;
        Ok(key)
    }

    /// Reads a key file: exactly 32 bytes, not readable by group or others.
    pub fn read_file(path: &Path) -> Result<Self, IpcError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| IpcError::Key(format!("cannot read {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(IpcError::Key(format!(
                "{} is accessible by other users (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| IpcError::Key(format!("cannot read {}: {e}", path.display())))?;
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            IpcError::Key(format!(
                "{} holds {} bytes, a key is {KEY_LEN}",
                path.display(),
                bytes.len()
            ))
        })?;
        Ok(SessionKey(key))
    }

    /// The abstract socket name for an app and user: HMAC(key, app id, user id) in hex, so only
    /// key holders can compute it. Not a defence by itself (names show in /proc/net/unix).
    pub fn socket_name(&self, app_id: &str, user_id: &str) -> String {
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC-SHA256 accepts keys of any length");
        m.update(b"crosscast/1 socket name\0");
        m.update(app_id.as_bytes());
        m.update(b"\0");
        m.update(user_id.as_bytes());
        let digest = m.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("crosscast-{hex}")
    }
}

/// Host side: checks the peer's uid, then runs the handshake to completion or failure. On
/// failure the peer is told why (best effort) before the caller drops the connection.
pub fn authenticate_game(
    channel: &Channel,
    key: &SessionKey,
    policy: &UidPolicy,
    timeout: Duration,
    session_id: u64,
) -> Result<(HandshakeOutcome, PeerCred), IpcError> {
    let result = (|| {
        let cred = channel.socket().peer_cred()?;
        let peer = PeerCred {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
        };
        let now = Instant::now();
        let mut hs = HostHandshake::new(
            key.as_bytes(),
            random_bytes::<NONCE_LEN>()?,
            session_id,
            &peer,
            policy,
            now,
            timeout,
        )?;
        loop {
            let msg = channel.recv_until(hs.poll_timeout(), "the game's handshake")?;
            if !msg.fds.is_empty() {
                return Err(IpcError::Protocol("fds sent during the handshake".into()));
            }
            let outcome = hs.handle(&msg.bytes, Instant::now())?;
            while let Some(out) = hs.poll_transmit() {
                channel.send_raw(&out)?;
            }
            if let Some(o) = outcome {
                return Ok((o, peer));
            }
        }
    })();
    if let Err(e) = &result {
        channel.refuse(e, Duration::from_millis(250));
    }
    result
}

/// Game side: runs the handshake and checks the host's proof.
pub fn authenticate_host(
    channel: &Channel,
    key: &SessionKey,
    timeout: Duration,
) -> Result<HandshakeOutcome, IpcError> {
    let mut hs = GameHandshake::new(key.as_bytes(), random_bytes()?, Instant::now(), timeout);
    loop {
        while let Some(out) = hs.poll_transmit() {
            if let Err(e) = channel.send_raw(&out) {
                // The host may have refused us before reading (e.g. our uid): its reason is
                // still queued on the socket and says more than EPIPE.
                return Err(refusal_reason(channel).unwrap_or(e));
            }
        }
        let msg = channel.recv_until(hs.poll_timeout(), "the host's handshake")?;
        if let Some(o) = hs.handle(&msg.bytes, Instant::now())? {
            return Ok(o);
        }
    }
}

fn refusal_reason(channel: &Channel) -> Option<IpcError> {
    let msg = channel.recv(Some(Duration::from_millis(200))).ok()??;
    match crosscast_wire::Message::decode(&msg.bytes).ok()? {
        crosscast_wire::Message::Error { code, reason } => Some(IpcError::Handshake(
            crosscast_wire::HandshakeError::PeerError { code, reason },
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_name_depends_on_every_input() {
        let k = SessionKey::from_bytes([1; 32]);
        let a = k.socket_name("app", "user");
        assert!(a.starts_with("crosscast-") && a.len() == 10 + 64);
        assert_ne!(a, k.socket_name("app", "user2"));
        assert_ne!(a, k.socket_name("app2", "user"));
        assert_ne!(
            a,
            SessionKey::from_bytes([2; 32]).socket_name("app", "user")
        );
        // The separator stops ("ab","c") colliding with ("a","bc").
        assert_ne!(k.socket_name("ab", "c"), k.socket_name("a", "bc"));
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("cc-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        let _ = std::fs::remove_file(&p);
        let k = SessionKey::write_new(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(SessionKey::read_file(&p).unwrap(), k);
        assert!(matches!(SessionKey::write_new(&p), Err(IpcError::Key(_))));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SessionKey::read_file(&p), Err(IpcError::Key(m)) if m.contains("chmod")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

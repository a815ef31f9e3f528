//! Mutual challenge–response authentication, as two state machines driven by the caller.
//!
//! ```text
//! game                                   host
//!  Hello{role, client_nonce}      ──▶    (uid already checked from SO_PEERCRED)
//!                                 ◀──    Challenge{nonce}           (fresh random per connection)
//!  Proof{HMAC(k, "game" ‖ H(t))}  ──▶    verify                     (t = Hello ‖ Challenge bytes)
//!                                 ◀──    Welcome{id, HMAC(k, "host" ‖ H(t ‖ Proof) ‖ id)}
//!  verify → established                  established
//! ```
//!
//! Both sides prove they hold the 32-byte session key without sending it; the host's fresh
//! nonce makes a recorded proof useless on a new connection, and the distinct labels stop a
//! proof being reflected back. Neither machine reads a clock: `now` is passed in, and the driver
//! arms a timer at [`HostHandshake::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::HandshakeError;
use crate::message::{Hello, Message, Role};

/// Length of the shared session key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the host's challenge nonce in bytes.
pub const NONCE_LEN: usize = 32;

type HmacSha256 = hmac::Hmac<Sha256>;
const GAME_LABEL: &[u8] = b"crosscast/1 game proof";
const HOST_LABEL: &[u8] = b"crosscast/1 host proof";

/// Credentials of the connected peer as reported by the kernel (SO_PEERCRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Which peer uids the host accepts before any byte is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidPolicy {
    allowed: Vec<u32>,
}

impl UidPolicy {
    /// Accept only `uid` (normally the host's own).
    pub fn only(uid: u32) -> Self {
        UidPolicy { allowed: vec![uid] }
    }

    /// Also accept `uid`.
    pub fn allow(mut self, uid: u32) -> Self {
        if !self.allowed.contains(&uid) {
            self.allowed.push(uid);
        }
        self
    }

    /// Checks a peer against the policy.
    pub fn check(&self, peer: &PeerCred) -> Result<(), HandshakeError> {
        if self.allowed.contains(&peer.uid) {
            Ok(())
        } else {
            Err(HandshakeError::UidRejected {
                uid: peer.uid,
                expected: self.allowed.clone(),
            })
        }
    }
}

/// What a completed handshake established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeOutcome {
    /// Session id chosen by the host.
    pub session_id: u64,
}

fn mac(key: &[u8; KEY_LEN], label: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .expect("HMAC-SHA256 accepts keys of any length");
    m.update(label);
    for p in parts {
        m.update(p);
    }
    m
}

fn host_mac(key: &[u8; KEY_LEN], transcript: &Sha256, session_id: u64) -> HmacSha256 {
    let hash = transcript.clone().finalize();
    mac(
        key,
        HOST_LABEL,
        &[hash.as_slice(), &session_id.to_le_bytes()],
    )
}

fn game_mac(key: &[u8; KEY_LEN], transcript: &Sha256) -> HmacSha256 {
    let hash = transcript.clone().finalize();
    mac(key, GAME_LABEL, &[hash.as_slice()])
}

fn unexpected(msg: &Message, expected: &'static str) -> HandshakeError {
    match msg {
        Message::Error { code, reason } => HandshakeError::PeerError {
            code: *code,
            reason: reason.clone(),
        },
        other => HandshakeError::Unexpected {
            got: other.kind(),
            expected,
        },
    }
}

/// What both sides keep: the key, the deadline, the transcript so far, what waits to be sent,
/// and how it ended.
struct Common {
    key: [u8; KEY_LEN],
    deadline: Instant,
    transcript: Sha256,
    outbox: VecDeque<Vec<u8>>,
    /// `Some(Ok)` once established, `Some(Err)` once failed; either is final.
    end: Option<Result<HandshakeOutcome, ()>>,
}

impl Common {
    fn new(key: &[u8; KEY_LEN], deadline: Instant) -> Self {
        Common {
            key: *key,
            deadline,
            transcript: Sha256::new(),
            outbox: VecDeque::new(),
            end: None,
        }
    }

    /// Runs one step unless the handshake already ended or timed out; a failing step is final.
    fn step<T>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Self) -> Result<T, HandshakeError>,
    ) -> Result<T, HandshakeError> {
        if self.end.is_some() {
            return Err(HandshakeError::Finished);
        }
        let result = if now >= self.deadline {
            Err(HandshakeError::TimedOut)
        } else {
            f(self)
        };
        if result.is_err() {
            self.end = Some(Err(()));
        }
        result
    }

    fn finish(&mut self, outcome: HandshakeOutcome) -> Option<HandshakeOutcome> {
        self.end = Some(Ok(outcome));
        Some(outcome)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        if matches!(self.end, Some(Ok(_))) || now < self.deadline {
            return Ok(());
        }
        self.end = Some(Err(()));
        Err(HandshakeError::TimedOut)
    }

    fn outcome(&self) -> Option<HandshakeOutcome> {
        match self.end {
            Some(Ok(o)) => Some(o),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum HostStep {
    AwaitHello,
    AwaitProof,
}

/// The host's side of the handshake.
pub struct HostHandshake {
    common: Common,
    nonce: [u8; NONCE_LEN],
    session_id: u64,
    step: HostStep,
}

impl HostHandshake {
    /// Starts a handshake with a peer whose kernel credentials are `peer`; refuses at once if
    /// the uid is not allowed. `nonce` must be fresh random bytes, `session_id` unique.
    pub fn new(
        key: &[u8; KEY_LEN],
        nonce: [u8; NONCE_LEN],
        session_id: u64,
        peer: &PeerCred,
        policy: &UidPolicy,
        now: Instant,
        timeout: Duration,
    ) -> Result<Self, HandshakeError> {
        policy.check(peer)?;
        Ok(HostHandshake {
            common: Common::new(key, now + timeout),
            nonce,
            session_id,
            step: HostStep::AwaitHello,
        })
    }

    /// Feeds one received message. Returns the outcome once the game is authenticated.
    pub fn handle(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Option<HandshakeOutcome>, HandshakeError> {
        let (nonce, session_id) = (self.nonce, self.session_id);
        let step = &mut self.step;
        self.common.step(now, |c| {
            let msg = Message::decode(bytes)?;
            match (&*step, &msg) {
                (HostStep::AwaitHello, Message::Hello(Hello { role, .. })) => {
                    if *role != Role::Game {
                        return Err(HandshakeError::BadHello(format!("role {role:?}")));
                    }
                    c.transcript.update(bytes);
                    let challenge = Message::Challenge { nonce }.encode_to_vec();
                    c.transcript.update(&challenge);
                    c.outbox.push_back(challenge);
                    *step = HostStep::AwaitProof;
                    Ok(None)
                }
                (HostStep::AwaitHello, _) => Err(unexpected(&msg, "Hello")),
                (HostStep::AwaitProof, Message::Proof { mac }) => {
                    game_mac(&c.key, &c.transcript)
                        .verify_slice(mac)
                        .map_err(|_| HandshakeError::AuthFailed("game proof does not verify"))?;
                    c.transcript.update(bytes);
                    let mut host_proof = [0u8; 32];
                    host_proof.copy_from_slice(
                        &host_mac(&c.key, &c.transcript, session_id)
                            .finalize()
                            .into_bytes(),
                    );
                    c.outbox.push_back(
                        Message::Welcome {
                            session_id,
                            mac: host_proof,
                        }
                        .encode_to_vec(),
                    );
                    Ok(c.finish(HandshakeOutcome { session_id }))
                }
                (HostStep::AwaitProof, _) => Err(unexpected(&msg, "Proof")),
            }
        })
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.common.outbox.pop_front()
    }

    /// When the handshake must have finished.
    pub fn poll_timeout(&self) -> Instant {
        self.common.deadline
    }

    /// Tells the machine the time; fails once the deadline has passed without completion.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        self.common.handle_timeout(now)
    }

    /// The outcome, once established.
    pub fn outcome(&self) -> Option<HandshakeOutcome> {
        self.common.outcome()
    }
}

#[derive(Debug)]
enum GameStep {
    AwaitChallenge,
    AwaitWelcome,
}

/// The game's side of the handshake.
pub struct GameHandshake {
    common: Common,
    step: GameStep,
}

impl GameHandshake {
    /// Starts the handshake; the Hello is ready at once in [`GameHandshake::poll_transmit`].
    pub fn new(
        key: &[u8; KEY_LEN],
        client_nonce: [u8; 16],
        now: Instant,
        timeout: Duration,
    ) -> Self {
        let hello = Message::Hello(Hello {
            role: Role::Game,
            client_nonce,
        })
        .encode_to_vec();
        let mut common = Common::new(key, now + timeout);
        common.transcript.update(&hello);
        common.outbox.push_back(hello);
        GameHandshake {
            common,
            step: GameStep::AwaitChallenge,
        }
    }

    /// Feeds one received message. Returns the outcome once the host is authenticated.
    pub fn handle(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Option<HandshakeOutcome>, HandshakeError> {
        let step = &mut self.step;
        self.common.step(now, |c| {
            let msg = Message::decode(bytes)?;
            match (&*step, &msg) {
                (GameStep::AwaitChallenge, Message::Challenge { .. }) => {
                    c.transcript.update(bytes);
                    let mut mac = [0u8; 32];
                    mac.copy_from_slice(&game_mac(&c.key, &c.transcript).finalize().into_bytes());
                    let proof_msg = Message::Proof { mac }.encode_to_vec();
                    c.transcript.update(&proof_msg);
                    c.outbox.push_back(proof_msg);
                    *step = GameStep::AwaitWelcome;
                    Ok(None)
                }
                (GameStep::AwaitChallenge, _) => Err(unexpected(&msg, "Challenge")),
                (GameStep::AwaitWelcome, Message::Welcome { session_id, mac }) => {
                    host_mac(&c.key, &c.transcript, *session_id)
                        .verify_slice(mac)
                        .map_err(|_| HandshakeError::AuthFailed("host proof does not verify"))?;
                    Ok(c.finish(HandshakeOutcome {
                        session_id: *session_id,
                    }))
                }
                (GameStep::AwaitWelcome, _) => Err(unexpected(&msg, "Welcome")),
            }
        })
    }

    /// Next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.common.outbox.pop_front()
    }

    /// When the handshake must have finished.
    pub fn poll_timeout(&self) -> Instant {
        self.common.deadline
    }

    /// Tells the machine the time; fails once the deadline has passed without completion.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        self.common.handle_timeout(now)
    }

    /// The outcome, once established.
    pub fn outcome(&self) -> Option<HandshakeOutcome> {
        self.common.outcome()
    }
}

#[cfg(test)]
mod tests {
    //! In-memory pair on simulated time: no sockets, no sleeps.
    use super::*;
    use crate::message::{ErrorCode, MessageType};

    const ME: PeerCred = PeerCred {
        pid: 10,
        uid: 1000,
        gid: 1000,
    };
    const T: Duration = Duration::from_secs(2);

    fn host(key: &[u8; 32], nonce: u8, now: Instant) -> HostHandshake {
        HostHandshake::new(key, [nonce; 32], 42, &ME, &UidPolicy::only(1000), now, T).unwrap()
    }

    /// Shuttles messages both ways until neither side has anything to send (bounded).
    fn drive(
        g: &mut GameHandshake,
        h: &mut HostHandshake,
        now: Instant,
    ) -> Result<(), HandshakeError> {
        for _ in 0..10 {
            let mut idle = true;
            while let Some(m) = g.poll_transmit() {
                idle = false;
                h.handle(&m, now)?;
            }
            while let Some(m) = h.poll_transmit() {
                idle = false;
                g.handle(&m, now)?;
            }
            if idle {
                return Ok(());
            }
        }
        panic!("handshake did not settle");
    }

    #[test]
    fn mutual_authentication_succeeds_with_the_same_key() {
        let now = Instant::now();
        let mut g = GameHandshake::new(&[7; 32], [1; 16], now, T);
        let mut h = host(&[7; 32], 9, now);
        drive(&mut g, &mut h, now).unwrap();
        assert_eq!(g.outcome(), Some(HandshakeOutcome { session_id: 42 }));
        assert_eq!(h.outcome(), g.outcome());
    }

    #[test]
    fn wrong_key_fails_on_the_host() {
        let now = Instant::now();
        let mut g = GameHandshake::new(&[7; 32], [1; 16], now, T);
        let mut h = host(&[8; 32], 9, now);
        assert_eq!(
            drive(&mut g, &mut h, now),
            Err(HandshakeError::AuthFailed("game proof does not verify"))
        );
        assert_eq!(h.outcome(), None);
    }

    #[test]
    fn an_impostor_host_fails_on_the_game() {
        let now = Instant::now();
        let mut g = GameHandshake::new(&[7; 32], [1; 16], now, T);
        let hello = g.poll_transmit().unwrap();
        let mut h = host(&[7; 32], 9, now);
        h.handle(&hello, now).unwrap();
        g.handle(&h.poll_transmit().unwrap(), now).unwrap();
        let _proof = g.poll_transmit().unwrap();
        let forged = Message::Welcome {
            session_id: 1,
            mac: [0; 32],
        }
        .encode_to_vec();
        assert_eq!(
            g.handle(&forged, now),
            Err(HandshakeError::AuthFailed("host proof does not verify"))
        );
    }

    #[test]
    fn a_replayed_proof_fails_against_a_new_nonce() {
        let now = Instant::now();
        let mut g = GameHandshake::new(&[7; 32], [1; 16], now, T);
        let mut h1 = host(&[7; 32], 1, now);
        let hello = g.poll_transmit().unwrap();
        h1.handle(&hello, now).unwrap();
        g.handle(&h1.poll_transmit().unwrap(), now).unwrap();
        let proof = g.poll_transmit().unwrap();
        h1.handle(&proof, now).unwrap();
        // An eavesdropper replays the same hello and proof to a fresh connection.
        let mut h2 = host(&[7; 32], 2, now);
        h2.handle(&hello, now).unwrap();
        assert!(matches!(
            h2.handle(&proof, now),
            Err(HandshakeError::AuthFailed(_))
        ));
    }

    #[test]
    fn data_before_the_handshake_is_refused() {
        let now = Instant::now();
        let mut h = host(&[7; 32], 1, now);
        let data = Message::Resize {
            width: 64,
            height: 64,
        }
        .encode_to_vec();
        assert!(matches!(
            h.handle(&data, now),
            Err(HandshakeError::Unexpected {
                got: MessageType::Resize,
                ..
            })
        ));
        // Once failed, it stays failed.
        assert_eq!(h.handle(&data, now), Err(HandshakeError::Finished));
    }

    #[test]
    fn uid_is_checked_before_anything() {
        let other = PeerCred { uid: 65534, ..ME };
        let err = HostHandshake::new(
            &[0; 32],
            [0; 32],
            1,
            &other,
            &UidPolicy::only(1000),
            Instant::now(),
            T,
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), ErrorCode::Auth);
        assert!(HostHandshake::new(
            &[0; 32],
            [0; 32],
            1,
            &other,
            &UidPolicy::only(1000).allow(65534),
            Instant::now(),
            T
        )
        .is_ok());
    }

    #[test]
    fn silent_peer_times_out_on_simulated_time() {
        let now = Instant::now();
        let mut h = host(&[7; 32], 1, now);
        assert!(h.handle_timeout(now + Duration::from_secs(1)).is_ok());
        assert_eq!(h.poll_timeout(), now + T);
        assert_eq!(h.handle_timeout(now + T), Err(HandshakeError::TimedOut));
    }

    #[test]
    fn host_error_is_reported_to_the_game() {
        let now = Instant::now();
        let mut g = GameHandshake::new(&[7; 32], [1; 16], now, T);
        let _ = g.poll_transmit();
        let err = Message::Error {
            code: ErrorCode::Limit,
            reason: "too many sessions".into(),
        }
        .encode_to_vec();
        assert_eq!(
            g.handle(&err, now),
            Err(HandshakeError::PeerError {
                code: ErrorCode::Limit,
                reason: "too many sessions".into()
            })
        );
    }
}

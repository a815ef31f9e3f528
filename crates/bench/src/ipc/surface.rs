//! `surface`: crosscast's own zero-copy frame handoff, through the real crosscast-ipc code.
//!
//! The bench process is the host and the peer is the game, connected exactly as in
//! `crosscast live`: spawn mode (socketpair and session key inherited by the child), SO_PEERCRED
//! and the mutual HMAC handshake, then a surface of three host-allocated, sealed memfd slots
//! and the BufferQueue. The game dequeues a slot and produces the object in it (the template
//! copied in and stamped, as a game renders a frame); when the message is due it writes the
//! timestamped header into the slot's first 32 bytes and queues it: only a `FrameQueued`
//! message crosses the socket. The host's I/O thread checks the message and holds the slot
//! (reported as the `io_thread` figure); the delay ends when the consuming thread has acquired
//! the frame, as a copying transport's ends when its receiving thread has read the last byte.
//! The consumer then validates the object where it lies, without copying. The host session
//! runs without busy-poll and raised priority, so its receiver is scheduled like every other.
//!
//! The queue runs in `fifo` mode so that every message is measured; under the live default,
//! `mailbox`, a frame the host has not acquired yet would be replaced by a newer one, which
//! never happens at one message per 16 ms but would make a slow receiver look like a broken
//! transport.

use std::process::{Child, Command};
use std::time::Duration;

use crosscast_ipc::auth::authenticate_game;
use crosscast_ipc::auth::authenticate_host;
use crosscast_ipc::connect::{adopt_spawned, spawn_game};
use crosscast_ipc::{
    Channel, FrameConsumer, GameSession, HostOptions, HostSession, SessionKey, SlotWriter,
};
use crosscast_wire::{QueuePolicy, UidPolicy};
use serde_json::Value;

use super::msg::{now_ns, stamp, take_prepared, template, Header, HEADER_LEN};
use super::{Receive, Received, Setup, Transmit};

/// Slots of the surface, as `crosscast live` allocates them.
const SLOTS: u8 = 3;
/// Handshake and configuration time limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Frame dimensions whose RGBA slot holds the header and `size` payload bytes, within the
/// protocol's limits (even, 16..=4096 pixels a side: the encoder's I420 needs even sides).
fn dims(size: usize) -> Result<(u32, u32), String> {
    let total = HEADER_LEN + size;
    for width in [64usize, 1024, 4096] {
        let stride = width * 4;
        let height = total.div_ceil(stride).max(16).next_multiple_of(2);
        if height <= 4096 {
            return Ok((width as u32, height as u32));
        }
    }
    Err(format!(
        "{size} bytes exceed the largest surface crosscast allows (4096x4096 RGBA)"
    ))
}

/// Parent (host) side: a fresh session key; the connection is made when the peer is spawned.
pub(crate) fn setup(size: usize) -> Result<Setup, String> {
    let (width, height) = dims(size)?;
    let key = SessionKey::generate().map_err(|e| e.to_string())?;
    let rx = SurfaceRx {
        key,
        width,
        height,
        size,
        channel: None,
        consumer: None,
        session: None,
    };
    let mut s = Setup::new(Box::new(rx), Vec::new());
    s.extra.insert(
        "surface".into(),
        Value::from(format!("{width}x{height} RGBA, {SLOTS} slots, fifo")),
    );
    Ok(s)
}

struct SurfaceRx {
    key: SessionKey,
    width: u32,
    height: u32,
    size: usize,
    /// The session socket between spawn and handshake.
    channel: Option<Channel>,
    // The consumer before the session it belongs to (field order is drop order).
    consumer: Option<FrameConsumer>,
    session: Option<HostSession>,
}

impl Receive for SurfaceRx {
    fn spawn(&mut self, cmd: Command) -> Result<Child, String> {
        let (child, channel) = spawn_game(cmd, &self.key).map_err(|e| e.to_string())?;
        self.channel = Some(channel);
        Ok(child)
    }

    fn connect(&mut self) -> Result<(), String> {
        let channel = self.channel.take().ok_or("connect before spawn")?;
        let policy = UidPolicy::only(rustix::process::getuid().as_raw());
        let session_id = now_ns();
        let (outcome, peer) =
            authenticate_game(&channel, &self.key, &policy, CONNECT_TIMEOUT, session_id)
                .map_err(|e| format!("handshake: {e}"))?;
        let opts = HostOptions {
            width: self.width,
            height: self.height,
            slots: SLOTS,
            policy: QueuePolicy::Fifo,
            // The same scheduling as every other transport's receiver: default priority and
            // timer slack, sleeping until the message comes (no busy-poll, which would also
            // lower the I/O thread's timer slack).
            io_nice: None,
            busy_poll: Duration::ZERO,
            ..HostOptions::default()
        };
        let mut session = HostSession::start(channel, opts, outcome.session_id, peer)
            .map_err(|e| format!("host session: {e}"))?;
        self.consumer = session.consumer();
        self.session = Some(session);
        Ok(())
    }

    fn recv(&mut self, expect_seq: u32, timeout: Duration) -> Result<Received, String> {
        let consumer = self.consumer.as_mut().ok_or("recv before connect")?;
        if !consumer.wait_frame(timeout) {
            return Err(match consumer.closed() {
                Some(e) => format!("session closed: {e}"),
                None => format!("no frame {expect_seq} within {timeout:?}"),
            });
        }
        let view = consumer
            .acquire()
            .map_err(|e| format!("acquire: {e}"))?
            .ok_or("a pending frame vanished")?;
        // The consuming thread holds the frame from here: mapped, validated by the host's I/O
        // thread as the protocol requires (slot ownership, configuration) and acquired. This
        // is the end of the delay, the same point as a copying transport's last byte read in
        // its receiving thread; the I/O thread's own arrival stamp is the extra figure.
        let received_ns = now_ns();
        let io_thread_ns = Some(view.received_ns);
        let checked_from_ns = received_ns;
        if view.seq != u64::from(expect_seq) {
            return Err(format!(
                "frame {} acquired where {expect_seq} was expected",
                view.seq
            ));
        }
        let body = view
            .data
            .get(HEADER_LEN..HEADER_LEN + self.size)
            .ok_or("frame smaller than the object")?;
        // Interpreted bytes are snapshotted into private memory before use.
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&view.data[..HEADER_LEN]);
        let header = Header::decode(&head)?;
        header.validate(expect_seq, body)?;
        Ok(Received {
            sent_ns: header.sent_ns,
            received_ns,
            io_thread_ns,
            checked_from_ns,
            valid_ns: now_ns(),
        })
    }

    fn report(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if let Some(c) = self.session.as_ref().map(HostSession::counters) {
            // Frames the I/O thread caught while busy-polling: 0 when it is scheduled like
            // every other receiver (sleeping until the message comes), as this bench asks.
            m.insert("io_polled_frames".into(), Value::from(c.frames_polled));
        }
        m
    }
}

/// Peer (game) side: adopts the inherited session socket and key, authenticates the host and
/// waits for the surface.
pub(crate) struct SurfaceTx {
    /// The slot holding the prepared message, its number and checksum.
    prepared: Option<(u32, u64, SlotWriter)>,
    session: GameSession,
    template: Vec<u8>,
}

impl SurfaceTx {
    /// Connects to the host that spawned this process, for `size`-byte objects.
    pub(crate) fn new(size: usize) -> Result<SurfaceTx, String> {
        let (channel, key) = adopt_spawned().map_err(|e| e.to_string())?;
        let outcome = authenticate_host(&channel, &key, CONNECT_TIMEOUT)
            .map_err(|e| format!("handshake: {e}"))?;
        let session = GameSession::start(channel, outcome.session_id).map_err(|e| e.to_string())?;
        let config = session
            .wait_config(CONNECT_TIMEOUT)
            .map_err(|e| format!("surface configuration: {e}"))?;
        if config.frame_len() < HEADER_LEN + size {
            return Err(format!(
                "the host's {}x{} surface cannot hold {size} bytes",
                config.width, config.height
            ));
        }
        Ok(SurfaceTx {
            prepared: None,
            session,
            template: template(size),
        })
    }
}

impl Transmit for SurfaceTx {
    fn prepare(&mut self, seq: u32) -> Result<(), String> {
        if self.prepared.is_some() {
            return Err(format!(
                "message {seq} prepared before the last one was sent"
            ));
        }
        let mut slot = self
            .session
            .dequeue(CONNECT_TIMEOUT)
            .map_err(|e| format!("dequeue: {e}"))?
            .ok_or("no free slot: the host holds them all")?;
        let body = &mut slot.pixels()[HEADER_LEN..HEADER_LEN + self.template.len()];
        body.copy_from_slice(&self.template);
        let sum = stamp(body, seq);
        self.prepared = Some((seq, sum, slot));
        Ok(())
    }

    fn send(&mut self, seq: u32, due_ns: u64) -> Result<(), String> {
        let (sum, mut slot) = take_prepared(&mut self.prepared, seq)?;
        let header = Header {
            seq,
            len: self.template.len() as u64,
            sent_ns: now_ns(),
            sum,
        };
        slot.pixels()[..HEADER_LEN].copy_from_slice(&header.encode());
        let queued = self
            .session
            // A paced game stamps a frame with the time it was due (its presentation time).
            .queue(slot, u64::from(seq), due_ns)
            .map_err(|e| format!("queue: {e}"))?;
        if !queued {
            return Err("the host reconfigured the surface".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_fit_the_object_within_limits() {
        for size in [1, 3072, 4 << 20, 10 << 20, 60 << 20] {
            let (w, h) = dims(size).unwrap();
            assert!(
                (16..=4096).contains(&w) && (16..=4096).contains(&h),
                "{w}x{h}"
            );
            assert!(w % 2 == 0 && h % 2 == 0, "{w}x{h}");
            assert!(w as usize * 4 * h as usize >= HEADER_LEN + size);
        }
        assert!(dims(64 << 20).is_err());
    }
}

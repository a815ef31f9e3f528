//! The streamer's input on crosscast's own protocol: the host's [`InputSender`] and the game's
//! bounded queue (read with [`crate::GameSession::take_input`]).
//!
//! Input is optional traffic on the session's socket, so it must never cost the session
//! anything it needs:
//!
//! - **opt-in**: the host sends [`Message::Input`] only while the game has asked with
//!   [`Message::WantInput`]`{ enabled: true }` (a game written before input existed never sees
//!   a message type it does not know);
//! - **never blocks, never kills**: the sender runs on the preview window's thread, for
//!   latency, so every send is non-blocking and an event that does not fit is dropped and
//!   counted, never an error. It also stays below half the socket's send buffer
//!   ([`INPUT_SHARE_DIVISOR`]): a game that stops reading fills the buffer with input only up
//!   to there, and the `SlotReleased` messages the session needs still fit in the other half;
//! - **bounded in the game**: the game's I/O thread queues what arrives (at most
//!   [`INPUT_QUEUE_LEN`] events) until the game takes it. When full, a new motion or scroll
//!   event is dropped; any other event (keys, buttons, focus, enter/leave, touch down/up) takes
//!   the place of the oldest queued motion or scroll event, and is dropped only when the queue
//!   holds nothing else. Every drop is counted ([`crate::GameSession::input_dropped`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crosscast_wire::{Input, InputEvent, Message, TouchPhase};

use crate::os::socket::SeqPacket;
use crate::os::OsError;

/// The host stops sending input while the game's unread bytes exceed `1 / INPUT_SHARE_DIVISOR`
/// of the socket's send buffer: the rest is kept for the messages the session needs.
pub const INPUT_SHARE_DIVISOR: usize = 2;

/// Most input events the game side holds before it drops some (about 8 s of 120 Hz mouse
/// motion, far more than a game that takes its input every frame ever has waiting).
pub const INPUT_QUEUE_LEN: usize = 1024;

/// What became of one event handed to [`InputSender::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputDelivery {
    /// On its way: the whole message is in the socket.
    Sent,
    /// Not sent: the game has not asked for input (or asked to stop), or the session ended.
    NotWanted,
    /// Not sent: the game is not reading fast enough (its unread share of the socket is full),
    /// the socket failed, or the event did not validate. Counted; never an error.
    Dropped,
}

/// What an [`InputSender`] has done so far, for the host's exit summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct InputCounters {
    /// Events sent.
    pub sent: u64,
    /// Events dropped because the game was not reading (or its socket failed).
    pub dropped: u64,
    /// Events not sent because the game had not asked for input or the session had ended.
    pub not_wanted: u64,
    /// Events refused before sending because they failed [`Input::validate`] (a host bug; also
    /// reported as [`InputDelivery::Dropped`]).
    pub invalid: u64,
}

impl std::ops::AddAssign<&InputCounters> for InputCounters {
    /// Adds another session's counters (a run's summary sums its sessions).
    fn add_assign(&mut self, c: &InputCounters) {
        let InputCounters {
            sent,
            dropped,
            not_wanted,
            invalid,
        } = c;
        self.sent += sent;
        self.dropped += dropped;
        self.not_wanted += not_wanted;
        self.invalid += invalid;
    }
}

/// State shared by a session's I/O thread (which sets `wanted`) and its senders.
#[derive(Debug, Default)]
pub(crate) struct InputShared {
    wanted: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
    not_wanted: AtomicU64,
    invalid: AtomicU64,
}

impl InputShared {
    /// The game asked for input (or to stop).
    pub(crate) fn set_wanted(&self, wanted: bool) {
        self.wanted.store(wanted, Ordering::Release);
    }

    /// Whether the game currently wants input.
    pub(crate) fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    pub(crate) fn counters(&self) -> InputCounters {
        InputCounters {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            not_wanted: self.not_wanted.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
        }
    }
}

/// Delivers the streamer's input to one game session from any thread: cheap to clone, never
/// blocks, never ends the session (see the module documentation). Holds no fd open: once the
/// session is gone every send returns [`InputDelivery::NotWanted`].
#[derive(Debug, Clone)]
pub struct InputSender {
    shared: Arc<InputShared>,
    sock: Weak<SeqPacket>,
    /// Unread bytes above which events are dropped: the send buffer over
    /// [`INPUT_SHARE_DIVISOR`].
    budget: usize,
}

impl InputSender {
    pub(crate) fn new(shared: Arc<InputShared>, sock: Weak<SeqPacket>, sndbuf: usize) -> Self {
        InputSender {
            shared,
            sock,
            budget: sndbuf / INPUT_SHARE_DIVISOR,
        }
    }

    /// Validates `input` and sends it without waiting, if the game wants input and has room
    /// for it; counts what it did either way.
    pub fn send(&self, input: &Input) -> InputDelivery {
        let count = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        if !self.shared.wanted() {
            count(&self.shared.not_wanted);
            return InputDelivery::NotWanted;
        }
        if input.validate().is_err() {
            count(&self.shared.invalid);
            return InputDelivery::Dropped;
        }
        let Some(sock) = self.sock.upgrade() else {
            count(&self.shared.not_wanted);
            return InputDelivery::NotWanted;
        };
        // A game that does not read keeps its unread bytes high: drop rather than take the room
        // its slot releases need. (A failed query leaves only the non-blocking send as guard.)
        if sock.unread_sent_bytes().unwrap_or(0) > self.budget {
            count(&self.shared.dropped);
            return InputDelivery::Dropped;
        }
        match sock.try_send(&Message::Input(*input).encode_to_vec(), &[]) {
            Ok(()) => {
                count(&self.shared.sent);
                InputDelivery::Sent
            }
            Err(OsError::Disconnected { .. }) => {
                // The game is gone; its I/O thread ends the session. Nothing to report here.
                self.shared.set_wanted(false);
                count(&self.shared.not_wanted);
                InputDelivery::NotWanted
            }
            Err(_) => {
                count(&self.shared.dropped);
                InputDelivery::Dropped
            }
        }
    }

    /// Whether the game currently asks for input (a hint: it may change at any moment).
    pub fn wanted(&self) -> bool {
        self.shared.wanted()
    }

    /// What this session's senders have done so far (shared by every clone).
    pub fn counters(&self) -> InputCounters {
        self.shared.counters()
    }
}

/// The game's queue of received input: bounded, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct InputQueue {
    events: VecDeque<Input>,
    dropped: u64,
}

/// Events that a later one of the same kind supersedes: losing one costs a little precision,
/// never a stuck key or a lost click.
fn supersedable(event: &InputEvent) -> bool {
    matches!(
        event,
        InputEvent::PointerMotion { .. }
            | InputEvent::RelativeMotion { .. }
            | InputEvent::Scroll { .. }
            | InputEvent::Touch {
                phase: TouchPhase::Motion,
                ..
            }
    )
}

impl InputQueue {
    /// Queues one event. When the queue is full: a motion or scroll event is dropped itself;
    /// any other (keys, buttons, focus, enter/leave, touch down/up) takes the place of the
    /// oldest queued motion or scroll event, and is dropped only when the queue holds nothing
    /// but such events (a game that has not taken its input for thousands of presses).
    pub(crate) fn push(&mut self, input: Input) {
        if self.events.len() >= INPUT_QUEUE_LEN {
            let victim = if supersedable(&input.event) {
                None
            } else {
                self.events.iter().position(|i| supersedable(&i.event))
            };
            self.dropped += 1;
            match victim {
                Some(at) => {
                    self.events.remove(at);
                }
                None => return,
            }
        }
        self.events.push_back(input);
    }

    /// Moves every queued event into `out`, oldest first.
    pub(crate) fn take(&mut self, out: &mut Vec<Input>) {
        out.extend(self.events.drain(..));
    }

    /// Whether no event waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crosscast_wire::Fixed;

    fn key(code: u32, pressed: bool) -> Input {
        Input {
            time_ns: 1,
            event: InputEvent::Key { code, pressed },
        }
    }

    fn motion(x: i32) -> Input {
        Input {
            time_ns: 1,
            event: InputEvent::PointerMotion {
                x: Fixed(x),
                y: Fixed(0),
            },
        }
    }

    #[test]
    fn a_full_queue_drops_motion_before_keys() {
        let mut q = InputQueue::default();
        q.push(key(30, true));
        for i in 0..INPUT_QUEUE_LEN as i32 - 1 {
            q.push(motion(i));
        }
        // Full: new motion is dropped; a release replaces the oldest motion.
        q.push(motion(-1));
        q.push(key(30, false));
        assert_eq!(q.dropped(), 2);
        let mut out = Vec::new();
        q.take(&mut out);
        assert_eq!(out.len(), INPUT_QUEUE_LEN);
        assert_eq!(out[0], key(30, true));
        assert_eq!(out[1], motion(1), "motion 0 made room for the release");
        assert_eq!(*out.last().unwrap(), key(30, false));
        assert!(!out.contains(&motion(-1)));
    }

    #[test]
    fn a_queue_full_of_keys_drops_the_newest() {
        let mut q = InputQueue::default();
        for i in 0..INPUT_QUEUE_LEN as u32 {
            q.push(key(i % 200, i % 2 == 0));
        }
        q.push(key(1, false));
        assert_eq!(q.dropped(), 1);
        let mut out = Vec::new();
        q.take(&mut out);
        assert_eq!(out.len(), INPUT_QUEUE_LEN);
        assert_eq!(out[0], key(0, true));
        q.push(key(2, true));
        q.take(&mut out);
        assert_eq!(out.len(), INPUT_QUEUE_LEN + 1, "taking empties the queue");
    }

    #[test]
    fn the_sender_is_a_cheap_handle_for_any_thread() {
        fn handle<T: Clone + Send + Sync + 'static>() {}
        handle::<InputSender>();
    }

    #[test]
    fn counters_add_every_field() {
        let one = InputCounters {
            sent: 1,
            dropped: 2,
            not_wanted: 3,
            invalid: 4,
        };
        let mut sum = one;
        sum += &one;
        assert_eq!(
            sum,
            InputCounters {
                sent: 2,
                dropped: 4,
                not_wanted: 6,
                invalid: 8
            }
        );
    }
}

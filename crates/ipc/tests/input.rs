//! Input over real kernel sockets: the host's `InputSender` on one thread, a game session (or a
//! game that misbehaves after a real handshake) on another.

use std::time::{Duration, Instant};

use crosscast_ipc::auth::{authenticate_game, authenticate_host};
use crosscast_ipc::os::socket::SeqPacket;
use crosscast_ipc::{
    monotonic_ns, Channel, GameSession, HostOptions, HostSession, InputDelivery, IpcError,
    SessionKey, INPUT_QUEUE_LEN,
};
use crosscast_wire::input::{BTN_LEFT, BTN_RIGHT};
use crosscast_wire::{
    DecodeError, Fixed, FrameQueued, Input, InputEvent, Message, QueuePolicy, UidPolicy,
};

const T: Duration = Duration::from_secs(5);

fn opts() -> HostOptions {
    HostOptions {
        width: 64,
        height: 32,
        policy: QueuePolicy::Mailbox,
        ..HostOptions::default()
    }
}

/// A real handshake over a socketpair; returns the host's session and the game's raw channel.
fn handshake(opts: HostOptions) -> (HostSession, Channel) {
    let key = SessionKey::generate().unwrap();
    let (a, b) = SeqPacket::pair().unwrap();
    let (host_ch, game_ch) = (Channel::new(a), Channel::new(b));
    let game_key = key.clone();
    let game = std::thread::spawn(move || {
        authenticate_host(&game_ch, &game_key, T).unwrap();
        game_ch
    });
    let uid = crosscast_ipc::os::process::current_uid();
    let (outcome, peer) = authenticate_game(&host_ch, &key, &UidPolicy::only(uid), T, 9).unwrap();
    let host = HostSession::start(host_ch, opts, outcome.session_id, peer).unwrap();
    (host, game.join().unwrap())
}

fn connect() -> (HostSession, GameSession) {
    let (host, ch) = handshake(opts());
    let game = GameSession::start(ch, 9).unwrap();
    game.wait_config(T).unwrap();
    (host, game)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn ev(event: InputEvent) -> Input {
    Input {
        time_ns: monotonic_ns(),
        event,
    }
}

fn key(code: u32, pressed: bool) -> Input {
    ev(InputEvent::Key { code, pressed })
}

fn motion(x: f64, y: f64) -> Input {
    ev(InputEvent::PointerMotion {
        x: Fixed::from_f64(x),
        y: Fixed::from_f64(y),
    })
}

#[test]
fn keys_and_clicks_arrive_in_order_once_the_game_asks() {
    let (host, game) = connect();
    let sender = host.input_sender();
    // Not asked yet: nothing is sent.
    assert_eq!(sender.send(&key(30, true)), InputDelivery::NotWanted);
    game.want_input(true).unwrap();
    wait_for("WantInput", || sender.wanted());
    assert!(host.wants_input());
    let mut script = vec![ev(InputEvent::Focus { focused: true })];
    for i in 0..50u32 {
        script.push(key(103 + i % 6, true));
        script.push(motion(f64::from(i) + 0.5, 20.25));
        script.push(ev(InputEvent::PointerButton {
            button: if i % 2 == 0 { BTN_LEFT } else { BTN_RIGHT },
            pressed: true,
        }));
        script.push(ev(InputEvent::PointerButton {
            button: if i % 2 == 0 { BTN_LEFT } else { BTN_RIGHT },
            pressed: false,
        }));
        script.push(key(103 + i % 6, false));
    }
    script.push(ev(InputEvent::Focus { focused: false }));
    // From another thread, as the preview window does, in bursts of a few events as a window
    // gets them (a burst of hundreds in microseconds can outrun the game's reader and be
    // dropped: the next test is about that).
    let mut got = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let sender = sender.clone();
            for burst in script.chunks(10) {
                for i in burst {
                    assert_eq!(sender.send(i), InputDelivery::Sent);
                }
                let want = got.len() + burst.len();
                wait_for("the burst", || {
                    game.take_input(&mut got);
                    got.len() >= want
                });
            }
        });
    });
    assert_eq!(got, script, "every event, in order, unchanged");
    assert_eq!(game.input_dropped(), 0);
    let c = host.input_counters();
    assert_eq!(
        (c.sent, c.dropped, c.not_wanted),
        (script.len() as u64, 0, 1)
    );

    // An invalid event is refused before it reaches the socket.
    let bad = key(0x300, true);
    assert_eq!(sender.send(&bad), InputDelivery::Dropped);
    assert_eq!(host.input_counters().invalid, 1);

    // Asking to stop stops it; the session goes on.
    game.want_input(false).unwrap();
    wait_for("WantInput(false)", || !sender.wanted());
    assert_eq!(sender.send(&key(30, true)), InputDelivery::NotWanted);
    game.want_input(true).unwrap();
    game.want_input(true).unwrap();
    wait_for("WantInput again", || sender.wanted());
    assert_eq!(sender.send(&key(30, true)), InputDelivery::Sent);

    // After the session, sends are quiet no-ops.
    game.close();
    assert!(host.wait_closed(T));
    assert!(host.closed().unwrap().is_peer_end());
    assert_eq!(sender.send(&key(30, false)), InputDelivery::NotWanted);
    drop(host);
    assert_eq!(sender.send(&key(30, false)), InputDelivery::NotWanted);
}

#[test]
fn a_game_that_never_takes_its_input_drops_and_counts_and_keeps_streaming() {
    let (mut host, game) = connect();
    let mut consumer = host.consumer().unwrap();
    let sender = host.input_sender();
    game.want_input(true).unwrap();
    wait_for("WantInput", || sender.wanted());
    // A press first, then far more motion than the queue holds, then the release.
    let total = 3 * INPUT_QUEUE_LEN;
    let mut sent = 0u64;
    let mut send = |i: &Input| {
        // The game's I/O thread reads as fast as it can; if it is ever behind, wait a little
        // (a dropped event here would make the count below meaningless).
        loop {
            match sender.send(i) {
                InputDelivery::Sent => break,
                InputDelivery::Dropped => std::thread::sleep(Duration::from_millis(1)),
                InputDelivery::NotWanted => panic!("the game asked for input"),
            }
        }
        sent += 1;
    };
    send(&key(105, true));
    for n in 0..total {
        send(&motion((n % 64) as f64, 1.0));
    }
    send(&key(105, false));
    // Everything reached the game: the queue is full and the rest was counted.
    wait_for("the game's I/O thread to queue everything", || {
        game.input_dropped() == sent - INPUT_QUEUE_LEN as u64
    });
    // Frames still stream while the input queue is full.
    for seq in 1..=20u64 {
        let w = game.dequeue(T).unwrap().expect("a free slot");
        assert!(game.queue(w, seq, monotonic_ns()).unwrap());
        assert!(consumer.wait_frame(T), "frame {seq}");
        assert_eq!(consumer.acquire().unwrap().unwrap().seq, seq);
    }
    let mut got = Vec::new();
    game.take_input(&mut got);
    assert_eq!(got.len(), INPUT_QUEUE_LEN);
    // Motion made room: the press and the release both survived, in order.
    assert_eq!(got[0].event, key(105, true).event);
    assert_eq!(got.last().unwrap().event, key(105, false).event);
    assert!(host.closed().is_none() && game.closed().is_none());
    game.close();
}

/// Queues frames from a game that never reads its socket, alternating two slots so that every
/// frame after the first makes the host send a `SlotReleased`; returns how many releases the
/// session sent before it ended the session because the game's socket was full.
fn releases_until_cut_off(host: &HostSession, game: &Channel) -> u64 {
    for n in 0..100_000u64 {
        let frame = FrameQueued {
            config_id: 1,
            slot: (n % 2) as u8,
            seq: n + 1,
            pts_ns: monotonic_ns(),
            sent_ns: monotonic_ns(),
        };
        if game.send(&Message::FrameQueued(frame)).is_err() {
            break;
        }
        // In step with the host's I/O thread, so that each frame is handled before the next.
        let queued = n + 1;
        let until = Instant::now() + T;
        while host.counters().frames_queued < queued && host.closed().is_none() {
            assert!(Instant::now() < until, "frame {queued} was never handled");
            std::thread::yield_now();
        }
        if host.closed().is_some() {
            break;
        }
    }
    assert!(host.wait_closed(T), "a game that never reads is cut off");
    assert!(
        matches!(host.closed(), Some(IpcError::Protocol(ref m)) if m.contains("stopped reading")),
        "{:?}",
        host.closed()
    );
    // The release that did not fit was counted too.
    host.counters().frames_dropped - 1
}

#[test]
fn a_game_that_never_reads_gets_input_dropped_without_blocking_or_starving_its_releases() {
    // Before: how many slot releases a game that never reads is sent before the host gives up.
    let (host, game) = handshake(opts());
    let baseline = releases_until_cut_off(&host, &game);
    assert!(baseline > 20, "baseline {baseline}");
    drop((host, game));

    let (host, game) = handshake(opts());
    game.send(&Message::WantInput { enabled: true }).unwrap();
    let sender = host.input_sender();
    wait_for("WantInput", || sender.wanted());
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for n in 0..20_000u32 {
        let t = Instant::now();
        let d = sender.send(&key(n % 200, n % 2 == 0));
        slowest = slowest.max(t.elapsed());
        assert_ne!(d, InputDelivery::NotWanted);
    }
    let c = sender.counters();
    assert!(c.sent > 0 && c.dropped > 0, "{c:?}");
    assert_eq!(c.sent + c.dropped, 20_000);
    assert!(
        slowest < Duration::from_millis(200),
        "one send took {slowest:?}: it blocked"
    );
    eprintln!(
        "20000 sends in {:?} (slowest {slowest:?}): {} sent, {} dropped; {baseline} releases before",
        started.elapsed(),
        c.sent,
        c.dropped
    );
    assert!(host.closed().is_none(), "input alone never ends a session");
    // Input took at most its share of the game's socket: the releases still fit in the rest.
    let after = releases_until_cut_off(&host, &game);
    let share = crosscast_ipc::input::INPUT_SHARE_DIVISOR as u64;
    assert!(
        after + 2 >= baseline - baseline / share,
        "{after} releases after the input flood, {baseline} without"
    );
    assert_eq!(sender.send(&key(1, true)), InputDelivery::NotWanted);
}

#[test]
fn invalid_input_from_the_host_ends_the_game_session() {
    let (a, b) = SeqPacket::pair().unwrap();
    let (host, game) = (Channel::new(a), Channel::new(b));
    let game = GameSession::start(game, 1).unwrap();
    let mut bytes = Message::Input(key(30, true)).encode_to_vec();
    // The key code's high byte (after header 6, time 8, kind 1): 0x0300001e > KEY_MAX.
    bytes[6 + 8 + 1 + 3] = 3;
    host.send_raw(&bytes).unwrap();
    let until = Instant::now() + T;
    while game.closed().is_none() {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        matches!(
            game.closed(),
            Some(IpcError::Decode(DecodeError::Invalid {
                field: "key code",
                ..
            }))
        ),
        "{:?}",
        game.closed()
    );
    let mut out = Vec::new();
    game.take_input(&mut out);
    assert!(out.is_empty());
}

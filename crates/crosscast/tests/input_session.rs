//! The streamer's input reaching the real demo game: this test is the host (a real
//! `HostSession` with an `InputSender`), `crosscast game` is a real, sandboxed process, and what
//! the test checks is in the frames the game draws: the key marker while a key is held, the
//! player fish moving on the arrow keys, a food pellet where the click was.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use crosscast_demo::{KEY_MARKER_SIZE, KEY_RIGHT};
use crosscast_ipc::auth::authenticate_game;
use crosscast_ipc::connect::spawn_game;
use crosscast_ipc::{
    monotonic_ns, FrameConsumer, HostOptions, HostSession, InputDelivery, InputSender, SessionKey,
};
use crosscast_wire::input::BTN_LEFT;
use crosscast_wire::{Fixed, Input, InputEvent, UidPolicy};

const W: u32 = 640;
const H: u32 = 360;
const T: Duration = Duration::from_secs(10);

fn luma(f: &[u8], stride: usize, x: u32, y: u32) -> f32 {
    let at = y as usize * stride + x as usize * 4;
    0.2126 * f32::from(f[at]) + 0.7152 * f32::from(f[at + 1]) + 0.0722 * f32::from(f[at + 2])
}

/// (darkest, brightest) luma of the key marker's square.
fn corner(f: &[u8], stride: usize) -> (f32, f32) {
    let mut lo = f32::MAX;
    let mut hi = f32::MIN;
    for y in 0..KEY_MARKER_SIZE {
        for x in 0..KEY_MARKER_SIZE {
            let l = luma(f, stride, x, y);
            lo = lo.min(l);
            hi = hi.max(l);
        }
    }
    (lo, hi)
}

/// The mean x of the player fish's fin pixels, if it is in the frame.
fn player_x(f: &[u8], stride: usize) -> Option<f32> {
    let (mut sum, mut n) = (0f32, 0f32);
    for row in f.chunks(stride).take(H as usize) {
        for (x, p) in row[..W as usize * 4].chunks_exact(4).enumerate() {
            if p[..3] == [255, 40, 170] {
                sum += x as f32;
                n += 1.0;
            }
        }
    }
    (n > 20.0).then(|| sum / n)
}

/// Acquires frames until `check` holds for one (returns what it returned) or `T` passes.
fn first_frame<R>(
    consumer: &mut FrameConsumer,
    what: &str,
    mut check: impl FnMut(&[u8], usize) -> Option<R>,
) -> R {
    let until = Instant::now() + T;
    loop {
        assert!(
            Instant::now() < until,
            "no frame showed {what} within {T:?}"
        );
        if !consumer.wait_frame(Duration::from_millis(200)) {
            assert!(consumer.closed().is_none(), "{:?}", consumer.closed());
            continue;
        }
        if let Some(f) = consumer.acquire().unwrap() {
            if let Some(r) = check(f.data, f.stride) {
                return r;
            }
        }
    }
}

fn send(sender: &InputSender, event: InputEvent) {
    let input = Input {
        time_ns: monotonic_ns(),
        event,
    };
    assert_eq!(sender.send(&input), InputDelivery::Sent, "{event:?}");
}

#[test]
fn keys_and_clicks_from_the_host_show_in_the_real_games_frames() {
    let key = SessionKey::generate().unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.args(["game", "--fps", "30", "--no-audio", "--pattern", "aquarium"]);
    let (mut child, channel) = spawn_game(cmd, &key).unwrap();
    let uid = crosscast_ipc::os::process::current_uid();
    let (outcome, peer) = authenticate_game(&channel, &key, &UidPolicy::only(uid), T, 1).unwrap();
    let opts = HostOptions {
        width: W,
        height: H,
        ..HostOptions::default()
    };
    let mut host = HostSession::start(channel, opts, outcome.session_id, peer).unwrap();
    let mut consumer = host.consumer().unwrap();
    let sender = host.input_sender();

    // The demo asks for input, and until a key is held its corner is dark.
    let until = Instant::now() + T;
    while !sender.wanted() {
        assert!(Instant::now() < until, "the game never asked for input");
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..5 {
        let hi = first_frame(&mut consumer, "a frame", |f, s| Some(corner(f, s).1));
        assert!(hi <= 100.0, "corner luma {hi} with no key held");
    }

    // A key press lights the marker, the release puts it out; meanwhile the player fish (the
    // only magenta in the tank: its fins) swims right.
    let x0 = first_frame(&mut consumer, "the player fish", player_x);
    send(&sender, InputEvent::Focus { focused: true });
    send(
        &sender,
        InputEvent::Key {
            code: KEY_RIGHT,
            pressed: true,
        },
    );
    first_frame(&mut consumer, "the key marker", |f, s| {
        (corner(f, s).0 == 255.0).then_some(())
    });
    // Held for a while, then released: the marker goes.
    std::thread::sleep(Duration::from_millis(300));
    send(
        &sender,
        InputEvent::Key {
            code: KEY_RIGHT,
            pressed: false,
        },
    );
    first_frame(&mut consumer, "the marker gone", |f, s| {
        (corner(f, s).1 <= 100.0).then_some(())
    });
    let x1 = first_frame(&mut consumer, "the player fish", player_x);
    // 0.3 s at PLAYER_SPEED (0.3 widths a second) is about 58 px.
    assert!(x1 > x0 + 30.0, "the player fish went from x {x0} to {x1}");

    // A left click drops a pellet exactly there, in the first frame that has it.
    let (cx, cy) = (400u32, 220u32);
    send(
        &sender,
        InputEvent::PointerMotion {
            x: Fixed::from_f64(f64::from(cx) + 0.5),
            y: Fixed::from_f64(f64::from(cy) + 0.5),
        },
    );
    send(
        &sender,
        InputEvent::PointerButton {
            button: BTN_LEFT,
            pressed: true,
        },
    );
    first_frame(&mut consumer, "the food pellet", |f, s| {
        if luma(f, s, cx, cy) < 200.0 {
            return None;
        }
        for y in cy - 6..cy + 6 {
            for x in cx - 6..cx + 6 {
                assert!(luma(f, s, x, y) > 200.0, "({x}, {y}) is not bright");
            }
        }
        Some(())
    });
    send(
        &sender,
        InputEvent::PointerButton {
            button: BTN_LEFT,
            pressed: false,
        },
    );
    send(&sender, InputEvent::Focus { focused: false });

    let c = host.input_counters();
    assert_eq!((c.sent, c.dropped, c.invalid), (7, 0, 0), "{c:?}");
    let counters = host.close();
    assert!(counters.frames_acquired >= 8, "{counters:?}");
    let status = child.wait().unwrap();
    assert!(status.success(), "the game exited with {status}");
    // After the session, sending is a quiet no-op.
    assert_eq!(
        sender.send(&Input {
            time_ns: monotonic_ns(),
            event: InputEvent::Focus { focused: true }
        }),
        InputDelivery::NotWanted
    );
}

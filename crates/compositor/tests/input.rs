//! Input from the host reaches the streamed toplevel's client as wl_keyboard, wl_pointer,
//! wl_touch, relative-pointer and pointer-constraint events (a real wayland-client client).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::wl::{Got, Seated, TestClient};
use common::{start, try_start, RuntimeDir};
use crosscast_compositor::{monotonic_ns, Compositor, CompositorError, Keymap, PointerGrab};
use crosscast_wire::input::{BTN_LEFT, BTN_RIGHT};
use crosscast_wire::{Fixed, Input, InputEvent, ScrollAxis, TouchPhase};

const WAIT: Duration = Duration::from_secs(5);
const KEY_A: u32 = 30;
const KEY_LEFTSHIFT: u32 = 42;

fn send(comp: &Compositor, event: InputEvent) {
    assert!(
        comp.input().send(Input {
            time_ns: monotonic_ns(),
            event,
        }),
        "input queue refused {event:?}"
    );
}

fn px(v: f64) -> Fixed {
    Fixed::from_f64(v)
}

/// A client whose toplevel is mapped (so streamed) with its seat bound; the keyboard
/// entered it.
fn mapped(comp: &Compositor) -> (TestClient, Seated) {
    let (mut c, seat) = mapped_keep(comp);
    c.take_input();
    (c, seat)
}

/// [`mapped`], keeping what the client got so far.
fn mapped_keep(comp: &Compositor) -> (TestClient, Seated) {
    let mut c = TestClient::connect(comp.socket_path());
    let seat = c.seat();
    let (buf, _fd) = c.buffer(320, 240, 0);
    c.commit(Some(&buf), false);
    assert!(
        c.wait_input(WAIT, |g| g.contains(&Got::KbEnter)),
        "no wl_keyboard.enter after mapping; got {:?}; log {:?}",
        c.events.seat.got,
        comp.take_log()
    );
    (c, seat)
}

/// Waits until the client got `want` (in that order, as a subsequence of what it got).
fn expect_seq(c: &mut TestClient, want: &[Got]) {
    let ok = c.wait_input(WAIT, |got| {
        let mut it = got.iter();
        want.iter().all(|w| it.any(|g| g == w))
    });
    assert!(ok, "wanted {want:?} in order, got {:?}", c.events.seat.got);
}

#[test]
fn keymap_is_sealed_and_has_the_chosen_layout() {
    let dir = RuntimeDir::new();
    let keymap = Keymap {
        layout: "de".into(),
        variant: String::new(),
    };
    let comp = try_start(&dir, 4, keymap).expect("start with de");
    let mut c = TestClient::connect(comp.socket_path());
    let _seat = c.seat();
    let (fd, size) = c.events.seat.keymap.take().expect("wl_keyboard.keymap");
    let seals = rustix::fs::fcntl_get_seals(&fd).expect("F_GET_SEALS");
    use rustix::fs::SealFlags;
    for s in [SealFlags::WRITE, SealFlags::SHRINK, SealFlags::GROW] {
        assert!(seals.contains(s), "keymap fd seals {seals:?} lack {s:?}");
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .expect("read the keymap");
    assert_eq!(text.len(), size as usize, "the file is the keymap's size");
    assert!(text.ends_with('\0'), "NUL-terminated, as wl_keyboard says");
    assert!(
        text.contains("name[Group1]=\"German\"") || text.contains("name[group1]=\"German\""),
        "keymap is not the de layout: {}",
        &text[..text.len().min(400)]
    );
    assert!(
        c.events.seat.got.contains(&Got::RepeatInfo {
            rate: 25,
            delay: 600
        }),
        "repeat info: {:?}",
        c.events.seat.got
    );
}

#[test]
fn unknown_layout_fails_start_naming_it() {
    let dir = RuntimeDir::new();
    let bad = Keymap {
        layout: "xx-nosuch".into(),
        variant: String::new(),
    };
    match try_start(&dir, 4, bad.clone()) {
        Err(e @ CompositorError::Keymap { .. }) => {
            assert!(e.to_string().contains("xx-nosuch"), "{e}")
        }
        other => panic!("expected CompositorError::Keymap, got {other:?}"),
    }
    let err = crosscast_compositor::keymap_check(&bad).expect_err("keymap_check refuses it");
    assert!(err.to_string().contains("xx-nosuch"), "{err}");
}

#[test]
fn keys_arrive_with_evdev_codes_and_shift_modifier() {
    let (_dir, comp) = start();
    let (mut c, _seat) = mapped(&comp);
    for (code, pressed) in [
        (KEY_LEFTSHIFT, true),
        (KEY_A, true),
        (KEY_A, false),
        (KEY_LEFTSHIFT, false),
    ] {
        send(&comp, InputEvent::Key { code, pressed });
    }
    expect_seq(
        &mut c,
        &[
            Got::Key {
                key: KEY_LEFTSHIFT,
                pressed: true,
            },
            // Shift is the xkb modifier bit 0.
            Got::Modifiers { depressed: 1 },
            Got::Key {
                key: KEY_A,
                pressed: true,
            },
            Got::Key {
                key: KEY_A,
                pressed: false,
            },
            Got::Key {
                key: KEY_LEFTSHIFT,
                pressed: false,
            },
            Got::Modifiers { depressed: 0 },
        ],
    );
    let keys: Vec<_> = c
        .take_input()
        .into_iter()
        .filter(|g| matches!(g, Got::Key { .. }))
        .collect();
    assert_eq!(keys.len(), 4, "exactly the four keys: {keys:?}");
    assert_eq!(comp.counters().input_delivered, 4);
}

#[test]
fn pointer_enter_motion_buttons_and_scroll() {
    let (_dir, comp) = start();
    let (mut c, _seat) = mapped(&comp);
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(10.5),
            y: px(20.25),
        },
    );
    send(
        &comp,
        InputEvent::PointerMotion {
            x: px(100.0),
            y: px(50.5),
        },
    );
    for pressed in [true, false] {
        send(
            &comp,
            InputEvent::PointerButton {
                button: BTN_RIGHT,
                pressed,
            },
        );
    }
    send(
        &comp,
        InputEvent::Scroll {
            axis: ScrollAxis::Vertical,
            value: px(15.0),
            discrete: 1,
        },
    );
    send(
        &comp,
        InputEvent::Scroll {
            axis: ScrollAxis::Horizontal,
            value: px(-3.5),
            discrete: 0,
        },
    );
    expect_seq(
        &mut c,
        &[
            Got::PtrEnter { x: 10.5, y: 20.25 },
            Got::Frame,
            Got::Motion { x: 100.0, y: 50.5 },
            Got::Frame,
            Got::Button {
                button: BTN_RIGHT,
                pressed: true,
            },
            Got::Frame,
            Got::Button {
                button: BTN_RIGHT,
                pressed: false,
            },
            Got::Frame,
            Got::AxisSource { wheel: true },
            Got::AxisV120 {
                vertical: true,
                v: 120,
            },
            Got::Axis {
                vertical: true,
                value: 15.0,
            },
            Got::Frame,
            Got::AxisSource { wheel: false },
            Got::Axis {
                vertical: false,
                value: -3.5,
            },
            Got::Frame,
        ],
    );
}

#[test]
fn focus_loss_leaves_keyboard_and_pointer_and_input_stops() {
    let (_dir, comp) = start();
    let (mut c, _seat) = mapped(&comp);
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(1.0),
            y: px(2.0),
        },
    );
    expect_seq(&mut c, &[Got::PtrEnter { x: 1.0, y: 2.0 }]);
    c.take_input();
    send(&comp, InputEvent::Focus { focused: false });
    expect_seq(&mut c, &[Got::PtrLeave]);
    expect_seq(&mut c, &[Got::KbLeave]);
    // Nothing while unfocused.
    send(
        &comp,
        InputEvent::Key {
            code: KEY_A,
            pressed: true,
        },
    );
    send(
        &comp,
        InputEvent::PointerButton {
            button: BTN_LEFT,
            pressed: true,
        },
    );
    send(&comp, InputEvent::Focus { focused: true });
    expect_seq(&mut c, &[Got::KbEnter]);
    let got = c.take_input();
    assert!(
        !got.iter().any(|g| matches!(
            g,
            Got::Key { .. } | Got::Button { .. } | Got::PtrEnter { .. }
        )),
        "input delivered while unfocused: {got:?}"
    );
    assert_eq!(comp.counters().input_ignored, 2, "{:?}", comp.counters());
}

#[test]
fn touch_down_motion_up() {
    let (_dir, comp) = start();
    let (mut c, _seat) = mapped(&comp);
    let touch = |phase, x, y| InputEvent::Touch {
        id: 3,
        phase,
        x: px(x),
        y: px(y),
    };
    send(&comp, touch(TouchPhase::Down, 30.0, 40.0));
    send(&comp, touch(TouchPhase::Motion, 35.5, 41.0));
    send(&comp, touch(TouchPhase::Up, 0.0, 0.0));
    expect_seq(
        &mut c,
        &[
            Got::TouchDown {
                id: 3,
                x: 30.0,
                y: 40.0,
            },
            Got::TouchFrame,
            Got::TouchMotion {
                id: 3,
                x: 35.5,
                y: 41.0,
            },
            Got::TouchFrame,
            Got::TouchUp { id: 3 },
            Got::TouchFrame,
        ],
    );
}

#[test]
fn nothing_is_delivered_without_a_toplevel() {
    let (_dir, comp) = start();
    let mut c = TestClient::connect(comp.socket_path());
    let _seat = c.seat();
    send(
        &comp,
        InputEvent::Key {
            code: KEY_A,
            pressed: true,
        },
    );
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(1.0),
            y: px(1.0),
        },
    );
    let deadline = Instant::now() + WAIT;
    while comp.counters().input_ignored < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    c.roundtrip().expect("roundtrip");
    let got = c.take_input();
    assert!(
        got.iter().all(|g| matches!(g, Got::RepeatInfo { .. })),
        "input without a mapped toplevel: {got:?}"
    );
    assert_eq!(comp.counters().input_ignored, 2, "{:?}", comp.counters());
}

#[test]
fn locked_pointer_gets_relative_motion_only_and_is_reported() {
    let (_dir, comp) = start();
    let (mut c, seat) = mapped(&comp);
    let locked = c.lock_pointer(&seat);
    c.roundtrip().expect("roundtrip");
    // Not active until the pointer is on the surface.
    assert_eq!(comp.pointer_grab(), PointerGrab::None);
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(5.0),
            y: px(6.0),
        },
    );
    expect_seq(&mut c, &[Got::PtrEnter { x: 5.0, y: 6.0 }, Got::Locked]);
    assert_eq!(comp.pointer_grab(), PointerGrab::Locked);
    c.take_input();
    // Absolute motion must not move a locked pointer; relative motion arrives.
    send(
        &comp,
        InputEvent::PointerMotion {
            x: px(50.0),
            y: px(60.0),
        },
    );
    send(
        &comp,
        InputEvent::RelativeMotion {
            dx: px(2.5),
            dy: px(-1.0),
        },
    );
    expect_seq(&mut c, &[Got::Relative { dx: 2.5, dy: -1.0 }, Got::Frame]);
    let got = c.take_input();
    assert!(
        !got.iter().any(|g| matches!(g, Got::Motion { .. })),
        "absolute motion while locked: {got:?}"
    );
    // Focus lost: unlocked, reported free; back with the pointer: locked again (persistent).
    send(&comp, InputEvent::Focus { focused: false });
    expect_seq(&mut c, &[Got::PtrLeave, Got::Unlocked]);
    assert_eq!(comp.pointer_grab(), PointerGrab::None);
    send(&comp, InputEvent::Focus { focused: true });
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(7.0),
            y: px(8.0),
        },
    );
    expect_seq(&mut c, &[Got::PtrEnter { x: 7.0, y: 8.0 }, Got::Locked]);
    assert_eq!(comp.pointer_grab(), PointerGrab::Locked);
    // The client unlocks: free again.
    locked.destroy();
    c.conn.flush().expect("flush");
    c.roundtrip().expect("roundtrip");
    let deadline = Instant::now() + WAIT;
    while comp.pointer_grab() != PointerGrab::None && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(comp.pointer_grab(), PointerGrab::None);
    c.take_input();
    send(
        &comp,
        InputEvent::PointerMotion {
            x: px(9.0),
            y: px(10.0),
        },
    );
    expect_seq(&mut c, &[Got::Motion { x: 9.0, y: 10.0 }]);
}

/// A client that maps a toplevel and then never reads: the sender never blocks, drops are
/// counted, wayland-server's bounded output buffer for it fills and it is disconnected, and
/// the next client streams and gets input.
#[test]
fn flood_into_a_client_that_never_reads() {
    let (_dir, mut comp) = start();
    let (stalled, _seat) = mapped(&comp);
    let sender = comp.input();
    let start = Instant::now();
    let (mut sent, mut dropped, mut slowest) = (0u64, 0u64, Duration::ZERO);
    while start.elapsed() < Duration::from_secs(10) {
        for i in 0..10_000u32 {
            let t = Instant::now();
            let ok = sender.send(Input {
                time_ns: monotonic_ns(),
                event: InputEvent::Key {
                    code: KEY_A,
                    pressed: i % 2 == 0,
                },
            });
            slowest = slowest.max(t.elapsed());
            if ok {
                sent += 1;
            } else {
                dropped += 1;
            }
        }
        if comp.client_count() == 0 {
            break;
        }
    }
    assert!(
        slowest < Duration::from_millis(50),
        "a send took {slowest:?}"
    );
    assert_eq!(
        comp.client_count(),
        0,
        "the stalled client is still connected"
    );
    let log = comp.take_log();
    assert!(
        log.iter().any(|l| l.contains("stopped reading")),
        "no log line for the disconnect: {log:?}"
    );
    assert!(dropped > 0, "{sent} sent, none dropped");
    assert_eq!(comp.counters().input_dropped, dropped);
    drop(stalled);
    // The compositor goes on: a new client streams and gets input.
    let (mut c, _seat) = mapped(&comp);
    assert!(
        comp.wait_frame(WAIT),
        "no frame after the flood: {:?}",
        comp.take_log()
    );
    assert!(comp.acquire().expect("acquire").is_some());
    send(
        &comp,
        InputEvent::Key {
            code: KEY_A,
            pressed: true,
        },
    );
    expect_seq(
        &mut c,
        &[Got::Key {
            key: KEY_A,
            pressed: true,
        }],
    );
}

/// When another toplevel is mapped it is streamed, and keyboard and pointer follow it.
#[test]
fn focus_follows_the_streamed_toplevel() {
    let (_dir, comp) = start();
    let (mut a, _seat_a) = mapped(&comp);
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(4.0),
            y: px(4.0),
        },
    );
    expect_seq(&mut a, &[Got::PtrEnter { x: 4.0, y: 4.0 }]);
    a.take_input();
    let (mut b, _seat_b) = mapped_keep(&comp);
    expect_seq(&mut a, &[Got::KbLeave]);
    expect_seq(&mut a, &[Got::PtrLeave]);
    expect_seq(&mut b, &[Got::PtrEnter { x: 4.0, y: 4.0 }]);
    send(
        &comp,
        InputEvent::Key {
            code: KEY_A,
            pressed: true,
        },
    );
    expect_seq(
        &mut b,
        &[Got::Key {
            key: KEY_A,
            pressed: true,
        }],
    );
    a.roundtrip().expect("roundtrip");
    assert!(
        !a.take_input().iter().any(|g| matches!(g, Got::Key { .. })),
        "the key went to the toplevel no longer streamed"
    );
}

/// Sequences a buggy host could send (up without down, buttons without enter, releases of
/// keys never pressed) are ignored or passed on, never a panic; the compositor goes on.
#[test]
fn odd_sequences_do_not_break_the_compositor() {
    let (_dir, comp) = start();
    let (mut c, _seat) = mapped(&comp);
    let odd = [
        InputEvent::Touch {
            id: 9,
            phase: TouchPhase::Up,
            x: px(0.0),
            y: px(0.0),
        },
        InputEvent::Touch {
            id: 8,
            phase: TouchPhase::Motion,
            x: px(1.0),
            y: px(1.0),
        },
        InputEvent::Touch {
            id: 8,
            phase: TouchPhase::Cancel,
            x: px(1.0),
            y: px(1.0),
        },
        InputEvent::PointerButton {
            button: BTN_LEFT,
            pressed: false,
        },
        InputEvent::PointerLeave,
        InputEvent::RelativeMotion {
            dx: px(1.0),
            dy: px(1.0),
        },
        InputEvent::Key {
            code: 0x2ff,
            pressed: false,
        },
        InputEvent::Scroll {
            axis: ScrollAxis::Vertical,
            value: px(0.0),
            discrete: 0,
        },
        InputEvent::Focus { focused: true },
        InputEvent::Focus { focused: true },
    ];
    for e in odd {
        send(&comp, e);
    }
    send(
        &comp,
        InputEvent::Key {
            code: KEY_A,
            pressed: true,
        },
    );
    expect_seq(
        &mut c,
        &[Got::Key {
            key: KEY_A,
            pressed: true,
        }],
    );
    assert!(
        comp.closed().is_none(),
        "compositor stopped: {:?}",
        comp.closed()
    );
}

/// A oneshot confinement made while the pointer is on the surface is active at once, moves
/// still arrive, and it ends for good when the pointer leaves.
#[test]
fn confined_pointer_is_reported_and_oneshot_ends_on_leave() {
    let (_dir, comp) = start();
    let (mut c, seat) = mapped(&comp);
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(5.0),
            y: px(6.0),
        },
    );
    expect_seq(&mut c, &[Got::PtrEnter { x: 5.0, y: 6.0 }]);
    let _confined = c.confine_pointer(&seat);
    expect_seq(&mut c, &[Got::Confined]);
    assert_eq!(comp.pointer_grab(), PointerGrab::Confined);
    send(
        &comp,
        InputEvent::PointerMotion {
            x: px(50.0),
            y: px(60.0),
        },
    );
    expect_seq(&mut c, &[Got::Motion { x: 50.0, y: 60.0 }]);
    send(&comp, InputEvent::PointerLeave);
    expect_seq(&mut c, &[Got::PtrLeave, Got::Unconfined]);
    assert_eq!(comp.pointer_grab(), PointerGrab::None);
    c.take_input();
    send(
        &comp,
        InputEvent::PointerEnter {
            x: px(7.0),
            y: px(8.0),
        },
    );
    expect_seq(&mut c, &[Got::PtrEnter { x: 7.0, y: 8.0 }]);
    c.roundtrip().expect("roundtrip");
    assert!(
        !c.take_input().contains(&Got::Confined),
        "a oneshot confinement came back"
    );
    assert_eq!(comp.pointer_grab(), PointerGrab::None);
}

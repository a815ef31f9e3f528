//! The router's rules, on plain values.

use crosscast_input::{
    parse_line, CursorGrab, PointerGrab, Router, RouterLimits, WindowInput, KEY_ESC, KEY_LEFTCTRL,
    KEY_LEFTSHIFT,
};
use crosscast_wire::input::BTN_LEFT;
use crosscast_wire::{Fixed, Input, InputEvent, TouchPhase};
use proptest::prelude::*;

const MS: u64 = 1_000_000;

/// A 1280x720 game in a 640x640 window: the image is 640x360 at y 140, scale 2.
fn router() -> Router {
    let mut r = Router::new(true, RouterLimits::default());
    r.set_game_size(1280, 720);
    r.set_window_size(640, 640);
    r
}

fn run(r: &mut Router, evs: &[WindowInput]) -> Vec<InputEvent> {
    let mut out = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        r.handle(*ev, (i as u64 + 1) * MS, &mut out);
    }
    out.into_iter().map(|i: Input| i.event).collect()
}

fn px(v: f64) -> Fixed {
    Fixed::from_f64(v)
}

#[test]
fn pointer_maps_through_the_letterbox_with_enter_and_leave() {
    let mut r = router();
    let got = run(
        &mut r,
        &[
            WindowInput::Focus(true),
            WindowInput::CursorMoved { x: 10.0, y: 50.0 }, // top bar: nothing
            WindowInput::CursorMoved { x: 100.0, y: 150.0 },
            WindowInput::CursorMoved { x: 320.0, y: 320.0 },
            WindowInput::Button {
                button: BTN_LEFT,
                pressed: true,
            },
            WindowInput::Button {
                button: BTN_LEFT,
                pressed: false,
            },
            WindowInput::CursorMoved { x: 320.0, y: 600.0 }, // bottom bar
        ],
    );
    assert_eq!(
        got,
        vec![
            InputEvent::Focus { focused: true },
            InputEvent::PointerEnter {
                x: px(200.0),
                y: px(20.0)
            },
            InputEvent::PointerMotion {
                x: px(640.0),
                y: px(360.0)
            },
            InputEvent::PointerButton {
                button: BTN_LEFT,
                pressed: true
            },
            InputEvent::PointerButton {
                button: BTN_LEFT,
                pressed: false
            },
            InputEvent::PointerLeave,
        ]
    );
}

#[test]
fn clicks_on_the_bars_reach_nobody() {
    let mut r = router();
    let got = run(
        &mut r,
        &[
            WindowInput::Focus(true),
            WindowInput::CursorMoved { x: 320.0, y: 20.0 },
            WindowInput::Button {
                button: BTN_LEFT,
                pressed: true,
            },
            WindowInput::Button {
                button: BTN_LEFT,
                pressed: false,
            },
            WindowInput::Scroll {
                dx: 0.0,
                dy: 1.0,
                lines: true,
            },
        ],
    );
    assert_eq!(got, vec![InputEvent::Focus { focused: true }]);
}

#[test]
fn focus_loss_releases_everything_held_once() {
    let mut r = router();
    let got = run(
        &mut r,
        &[
            WindowInput::Focus(true),
            WindowInput::Key {
                code: 30,
                pressed: true,
            },
            WindowInput::Key {
                code: 30,
                pressed: true,
            }, // a repeat: not a second press
            WindowInput::CursorMoved { x: 100.0, y: 200.0 },
            WindowInput::Button {
                button: BTN_LEFT,
                pressed: true,
            },
            WindowInput::Focus(false),
            WindowInput::Key {
                code: 30,
                pressed: false,
            }, // released already
        ],
    );
    assert_eq!(
        got[got.len() - 4..],
        [
            InputEvent::Key {
                code: 30,
                pressed: false
            },
            InputEvent::PointerButton {
                button: BTN_LEFT,
                pressed: false
            },
            InputEvent::PointerLeave,
            InputEvent::Focus { focused: false },
        ]
    );
    assert_eq!(
        got.iter()
            .filter(|e| matches!(e, InputEvent::Key { pressed: true, .. }))
            .count(),
        1
    );
}

#[test]
fn a_drag_out_of_the_image_stays_on_its_edge() {
    let mut r = router();
    let got = run(
        &mut r,
        &[
            WindowInput::Focus(true),
            WindowInput::CursorMoved { x: 100.0, y: 200.0 },
            WindowInput::Button {
                button: BTN_LEFT,
                pressed: true,
            },
            WindowInput::CursorMoved { x: 100.0, y: 630.0 },
        ],
    );
    let InputEvent::PointerMotion { y, .. } = got[3] else {
        panic!("{got:?}")
    };
    assert!(y.to_f64() < 720.0 && y.to_f64() > 718.0, "{y:?}");
}

#[test]
fn locked_pointer_gets_relative_motion_until_the_chord() {
    let mut r = router();
    run(&mut r, &[WindowInput::Focus(true)]);
    assert_eq!(r.set_wanted_grab(PointerGrab::Locked), CursorGrab::Lock);
    let got = run(
        &mut r,
        &[
            WindowInput::CursorMoved { x: 100.0, y: 200.0 }, // ignored while locked
            WindowInput::RawMotion { dx: 3.0, dy: -1.0 },
            WindowInput::Key {
                code: KEY_LEFTCTRL,
                pressed: true,
            },
            WindowInput::Key {
                code: KEY_LEFTSHIFT,
                pressed: true,
            },
            WindowInput::Key {
                code: KEY_ESC,
                pressed: true,
            },
            WindowInput::Key {
                code: KEY_ESC,
                pressed: false,
            },
            WindowInput::RawMotion { dx: 3.0, dy: -1.0 }, // released: nothing
        ],
    );
    assert_eq!(
        got[0],
        InputEvent::RelativeMotion {
            dx: px(6.0),
            dy: px(-2.0)
        }
    );
    assert!(!got
        .iter()
        .any(|e| matches!(e, InputEvent::Key { code: KEY_ESC, .. })));
    assert_eq!(
        got.iter()
            .filter(|e| matches!(e, InputEvent::RelativeMotion { .. }))
            .count(),
        1
    );
    assert_eq!(r.cursor_grab(), CursorGrab::None);
}

#[test]
fn touch_points_get_small_ids_and_stay_inside() {
    let mut r = router();
    let got = run(
        &mut r,
        &[
            WindowInput::Focus(true),
            WindowInput::Touch {
                id: 9000,
                phase: TouchPhase::Down,
                x: 10.0,
                y: 150.0,
            },
            WindowInput::Touch {
                id: 9000,
                phase: TouchPhase::Motion,
                x: 10.0,
                y: 5.0,
            },
            WindowInput::Touch {
                id: 9000,
                phase: TouchPhase::Up,
                x: 0.0,
                y: 0.0,
            },
            WindowInput::Touch {
                id: 1,
                phase: TouchPhase::Down,
                x: 10.0,
                y: 5.0,
            }, // on the bar
        ],
    );
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(matches!(
        got[1],
        InputEvent::Touch {
            id: 0,
            phase: TouchPhase::Down,
            ..
        }
    ));
    let InputEvent::Touch { y, .. } = got[2] else {
        panic!()
    };
    assert_eq!(y, px(0.0));
}

#[test]
fn a_flood_is_rate_limited_but_releases_pass() {
    let mut r = Router::new(
        true,
        RouterLimits {
            max_per_second: 100,
            burst: 10,
        },
    );
    r.set_game_size(100, 100);
    r.set_window_size(100, 100);
    let mut out = Vec::new();
    r.handle(WindowInput::Focus(true), 0, &mut out);
    r.handle(
        WindowInput::Key {
            code: 30,
            pressed: true,
        },
        0,
        &mut out,
    );
    for i in 0..1000 {
        r.handle(
            WindowInput::CursorMoved {
                x: f64::from(i % 100),
                y: 5.0,
            },
            1000,
            &mut out,
        );
    }
    r.handle(
        WindowInput::Key {
            code: 30,
            pressed: false,
        },
        2000,
        &mut out,
    );
    assert!(out.len() < 15, "{} events passed", out.len());
    assert!(r.stats().rate_dropped > 900);
    assert_eq!(
        out.last().unwrap().event,
        InputEvent::Key {
            code: 30,
            pressed: false
        }
    );
}

#[test]
fn script_lines_parse_and_bad_ones_say_why() {
    let (d, evs) = parse_line(
        r#"{"type":"button","button":"left","state":"click","x":5,"y":6,"delay_ms":20}"#,
    )
    .unwrap();
    assert_eq!(d.as_millis(), 20);
    assert_eq!(evs.len(), 3);
    let (_, evs) = parse_line(r#"{"type":"key","key":"left","state":"tap"}"#).unwrap();
    assert_eq!(
        evs[0],
        WindowInput::Key {
            code: 105,
            pressed: true
        }
    );
    for (bad, why) in [
        (
            r#"{"type":"key","key":"nokey","state":"down"}"#,
            "unknown key",
        ),
        (r#"{"type":"key","code":9999,"state":"down"}"#, "KEY_MAX"),
        (r#"{"type":"motion","x":1}"#, "missing field"),
        (r#"{"type":"warp","x":1}"#, "unknown variant"),
        (
            r#"{"type":"motion","x":1,"y":2,"delay_ms":999999}"#,
            "delay",
        ),
        (r#"{"type":"motion","x":1,"y":2,"z":3}"#, "unknown field"),
        ("not json", "expected"),
    ] {
        let e = parse_line(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

fn window_input() -> impl Strategy<Value = WindowInput> {
    prop_oneof![
        any::<bool>().prop_map(WindowInput::Focus),
        (0u32..800, any::<bool>()).prop_map(|(code, pressed)| WindowInput::Key { code, pressed }),
        (-100.0..800.0f64, -100.0..800.0f64).prop_map(|(x, y)| WindowInput::CursorMoved { x, y }),
        Just(WindowInput::CursorLeft),
        (0x10eu32..0x11a, any::<bool>())
            .prop_map(|(button, pressed)| WindowInput::Button { button, pressed }),
        (-3.0..3.0f64, -3.0..3.0f64, any::<bool>())
            .prop_map(|(dx, dy, lines)| WindowInput::Scroll { dx, dy, lines }),
        (-50.0..50.0f64, -50.0..50.0f64).prop_map(|(dx, dy)| WindowInput::RawMotion { dx, dy }),
        (0u64..20, 0u8..4, -100.0..800.0f64, -100.0..800.0f64).prop_map(|(id, p, x, y)| {
            let phase = [
                TouchPhase::Down,
                TouchPhase::Motion,
                TouchPhase::Up,
                TouchPhase::Cancel,
            ][usize::from(p)];
            WindowInput::Touch { id, phase, x, y }
        }),
    ]
}

proptest! {
    /// Whatever the window does: every event validates, positions stay inside the game, and
    /// after release_all nothing is left held.
    #[test]
    fn anything_the_window_does_stays_consistent(
        evs in proptest::collection::vec(window_input(), 0..200),
        grab in 0u8..3,
    ) {
        let mut r = Router::new(true, RouterLimits::default());
        r.set_game_size(320, 180);
        r.set_window_size(700, 700);
        r.set_wanted_grab([PointerGrab::None, PointerGrab::Locked, PointerGrab::Confined][usize::from(grab)]);
        let mut out = Vec::new();
        for (i, ev) in evs.iter().enumerate() {
            r.handle(*ev, i as u64 * MS, &mut out);
        }
        r.release_all(evs.len() as u64 * MS, &mut out);
        let mut keys = std::collections::BTreeSet::new();
        let mut buttons = std::collections::BTreeSet::new();
        let mut inside = false;
        for i in &out {
            prop_assert!(i.validate().is_ok(), "{:?}", i);
            match i.event {
                InputEvent::Key { code, pressed } => {
                    prop_assert_eq!(keys.insert(code), pressed, "key {} twice {}", code, pressed);
                    if !pressed { keys.remove(&code); }
                }
                InputEvent::PointerButton { button, pressed } => {
                    prop_assert!(inside || !pressed);
                    prop_assert_eq!(buttons.insert(button), pressed);
                    if !pressed { buttons.remove(&button); }
                }
                InputEvent::PointerEnter { x, y } | InputEvent::PointerMotion { x, y } => {
                    prop_assert!(x.to_f64() < 320.0 && y.to_f64() < 180.0, "{:?}", i);
                    if matches!(i.event, InputEvent::PointerEnter { .. }) {
                        prop_assert!(!inside);
                    } else {
                        prop_assert!(inside);
                    }
                    inside = true;
                }
                InputEvent::PointerLeave => { prop_assert!(inside); inside = false; }
                InputEvent::Touch { x, y, .. } => prop_assert!(x.to_f64() < 320.0 && y.to_f64() < 180.0),
                _ => {}
            }
        }
        prop_assert!(keys.is_empty() && buttons.is_empty() && !inside);
    }
}

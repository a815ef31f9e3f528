//! The hub sends input to the one game that has focus, and a game that loses it gets its keys
//! back first.

use std::sync::{Arc, Mutex};

use crosscast_input::{
    CursorGrab, Delivery, InputHub, InputSink, PointerGrab, RouterLimits, WindowInput,
};
use crosscast_wire::{Input, InputEvent};

/// A game that records what it gets and answers with a fixed delivery.
struct Game {
    got: Mutex<Vec<InputEvent>>,
    answer: Delivery,
    grab: Mutex<PointerGrab>,
}

impl Game {
    fn new(answer: Delivery) -> Arc<Game> {
        Arc::new(Game {
            got: Mutex::new(Vec::new()),
            answer,
            grab: Mutex::new(PointerGrab::None),
        })
    }
    fn got(&self) -> Vec<InputEvent> {
        self.got.lock().unwrap().clone()
    }
}

impl InputSink for Game {
    fn send(&self, input: &Input) -> Delivery {
        self.got.lock().unwrap().push(input.event);
        self.answer
    }
    fn pointer_grab(&self) -> PointerGrab {
        *self.grab.lock().unwrap()
    }
}

fn key(code: u32, pressed: bool) -> WindowInput {
    WindowInput::Key { code, pressed }
}

#[test]
fn only_the_streaming_game_gets_input_and_the_one_before_gets_its_keys_back() {
    let hub = InputHub::new(RouterLimits::default());
    hub.set_game_size(640, 360);
    hub.set_window_size(640, 360);
    let (a, b) = (Game::new(Delivery::Sent), Game::new(Delivery::Sent));
    hub.window_event(WindowInput::Focus(true), 1);
    // Before any game: nowhere to go, counted.
    hub.window_event(key(30, true), 2);
    hub.window_event(key(30, false), 3);
    hub.set_target(Some((1, a.clone() as Arc<dyn InputSink>)), 4);
    hub.window_event(key(48, true), 5);
    // The stream moves to game 2 while b is held.
    hub.set_target(Some((2, b.clone() as Arc<dyn InputSink>)), 6);
    hub.window_event(key(48, false), 7); // b was released for a; game 2 never saw the press
    hub.window_event(key(46, true), 8);
    assert_eq!(
        a.got(),
        [
            InputEvent::Focus { focused: true },
            InputEvent::Key {
                code: 48,
                pressed: true
            },
            InputEvent::Key {
                code: 48,
                pressed: false
            },
        ]
    );
    assert_eq!(
        b.got(),
        [
            InputEvent::Focus { focused: true },
            InputEvent::Key {
                code: 46,
                pressed: true
            },
        ]
    );
    let s = hub.stats();
    assert_eq!((s.sent, s.unrouted, s.dropped), (5, 3, 0), "{s:?}");
    assert_eq!(hub.target_id(), Some(2));
}

#[test]
fn drops_and_unwanted_input_are_counted_and_grabs_are_said() {
    let hub = InputHub::new(RouterLimits::default());
    hub.set_game_size(100, 100);
    hub.set_window_size(100, 100);
    let full = Game::new(Delivery::Dropped);
    hub.set_target(Some((7, full.clone() as Arc<dyn InputSink>)), 0);
    hub.window_event(WindowInput::Focus(true), 1);
    hub.window_event(key(30, true), 2);
    assert_eq!(hub.stats().dropped, 2);
    *full.grab.lock().unwrap() = PointerGrab::Locked;
    assert_eq!(hub.cursor_grab(), CursorGrab::Lock);
    let notes = hub.take_notes();
    assert!(notes[0].contains("locked the pointer"), "{notes:?}");
    // Focus loss gives the cursor back.
    assert_eq!(
        hub.window_event(WindowInput::Focus(false), 3),
        CursorGrab::None
    );
    let deaf = Game::new(Delivery::NotWanted);
    hub.set_target(Some((8, deaf as Arc<dyn InputSink>)), 4);
    hub.window_event(WindowInput::Focus(true), 5);
    assert!(hub.stats().unrouted >= 1);
}

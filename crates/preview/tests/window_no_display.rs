//! Without any X display, asking for a window is an error the host can act on (fall back to
//! `--preview none`), never a panic or a hang.

use crosscast_preview::{Preview, PreviewError, PreviewTarget};

#[test]
fn window_without_display_is_an_error() {
    // Safe here: this test binary runs this one test, before any thread reads the environment.
    std::env::remove_var("DISPLAY");
    std::env::remove_var("WAYLAND_DISPLAY");
    assert_eq!(PreviewTarget::default_for_env(), PreviewTarget::None);
    match Preview::start(PreviewTarget::Window, "no display") {
        Err(PreviewError::Window(msg)) => assert!(!msg.is_empty()),
        Err(e) => panic!("expected a window error, got {e:?}"),
        Ok(p) => panic!("a window opened without a display: {p:?}"),
    }
}

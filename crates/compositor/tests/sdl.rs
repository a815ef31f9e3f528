//! An SDL2 program (SDL's own test programs, Debian package libsdl2-tests) streams through
//! the compositor with SDL's Wayland video driver.

mod common;

use std::time::Duration;

use common::{run_clock, spawn, start, wait_first_frame};

const TESTSPRITE2: &str = "/usr/libexec/installed-tests/SDL2/testsprite2";

/// testsprite2 with the software renderer draws moving sprites on a coloured background:
/// frames arrive and are not uniform.
#[test]
fn sdl2_testsprite2_streams() {
    let (dir, mut comp) = start();
    let client = spawn(
        &dir.0,
        TESTSPRITE2,
        &["--renderer", "software"],
        &[
            ("SDL_VIDEODRIVER", "wayland"),
            ("SDL_AUDIODRIVER", "dummy"),
            ("LIBGL_ALWAYS_SOFTWARE", "1"),
        ],
        "libsdl2-tests",
    );
    assert!(
        wait_first_frame(&comp, Duration::from_secs(8)),
        "no frame from testsprite2; log {:?}; {}",
        comp.take_log(),
        client.finish()
    );
    let st = run_clock(&mut comp, Duration::from_secs(2));
    assert!(
        st.read_errors.is_empty(),
        "read errors {:?}",
        st.read_errors
    );
    assert!(
        st.new_frames >= 30,
        "only {} frames in 2 s: {st:?}",
        st.new_frames
    );
    // SDL takes the fullscreen configure's size.
    assert_eq!(st.last_size, Some((320, 240)));
    assert!(
        st.non_uniform_frames >= st.new_frames * 9 / 10,
        "{} of {} frames non-uniform",
        st.non_uniform_frames,
        st.new_frames
    );
    drop(client);
}

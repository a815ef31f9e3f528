//! Real Wayland clients from Debian packages stream through the compositor.

mod common;

use std::time::Duration;

use common::{run_clock, spawn, start, wait_first_frame};

/// weston-simple-shm draws on each frame callback into two wl_shm buffers: frames arrive at
/// close to the output rate only if frame callbacks fire on every present and buffers are
/// released after the next one is acquired.
#[test]
fn weston_simple_shm_streams_at_output_rate() {
    let (dir, mut comp) = start();
    let client = spawn(&dir.0, "weston-simple-shm", &[], &[], "weston");
    assert!(
        wait_first_frame(&comp, Duration::from_secs(5)),
        "no frame from weston-simple-shm; log {:?}; {}",
        comp.take_log(),
        client.finish()
    );
    let st = run_clock(&mut comp, Duration::from_secs(2));
    let c = comp.counters();
    let log = comp.take_log();
    if st.new_frames < st.ticks * 9 / 10 {
        panic!(
            "{} new frames in {} ticks; counters {c:?}; log {log:?}; {}",
            st.new_frames,
            st.ticks,
            client.finish()
        );
    }
    assert!(
        st.read_errors.is_empty(),
        "read errors {:?}",
        st.read_errors
    );
    // 2 s at 60 fps is 120 ticks; the client draws one frame per callback.
    assert!(
        st.new_frames >= st.ticks * 9 / 10,
        "{} new frames in {} ticks; counters {c:?}; log {log:?}",
        st.new_frames,
        st.ticks
    );
    assert!(
        st.non_uniform_frames >= st.new_frames * 9 / 10,
        "{} of {} frames uniform",
        st.new_frames - st.non_uniform_frames,
        st.new_frames
    );
    assert_eq!(
        st.last_size,
        Some((250, 250)),
        "weston-simple-shm's own size"
    );
    assert!(log.iter().any(|l| l.contains("connected")), "log {log:?}");
    assert_eq!(comp.client_count(), 1);
    drop(client);
}

/// weston-simple-egl on Mesa's software rasteriser: with no dmabuf or wl_drm advertised,
/// Mesa's swrast Wayland platform draws into wl_shm.
#[test]
fn weston_simple_egl_on_llvmpipe_streams() {
    let (dir, mut comp) = start();
    let client = spawn(
        &dir.0,
        "weston-simple-egl",
        &[],
        &[("LIBGL_ALWAYS_SOFTWARE", "1"), ("EGL_PLATFORM", "wayland")],
        "weston",
    );
    assert!(
        wait_first_frame(&comp, Duration::from_secs(8)),
        "no frame from weston-simple-egl; log {:?}; {}",
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
        st.new_frames >= 20,
        "only {} frames in 2 s: {st:?}",
        st.new_frames
    );
    assert!(
        st.non_uniform_frames >= st.new_frames / 2,
        "{} of {} frames non-uniform",
        st.non_uniform_frames,
        st.new_frames
    );
    drop(client);
}

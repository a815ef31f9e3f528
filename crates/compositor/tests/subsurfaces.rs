//! A toplevel with subsurfaces is composed: the test client's subsurface shows at its place
//! over the toplevel, moves when its content changes, and goes when it is unmapped; weston's
//! subsurfaces demo (Debian package weston), whose animation lives in a subsurface, streams
//! frames that change.

mod common;

use std::time::Duration;

use common::wl::TestClient;
use common::{spawn, start, wait_first_frame};
use crosscast_compositor::{monotonic_ns, Compositor, ShmFrame};

fn pixel(f: &ShmFrame<'_>, x: usize, y: usize) -> [u8; 3] {
    let i = y * f.stride + x * 4;
    [f.data[i], f.data[i + 1], f.data[i + 2]]
}

/// Takes the frame the last commit made and returns pixels at `points`.
fn frame_pixels(comp: &mut Compositor, points: &[(usize, usize)]) -> Vec<[u8; 3]> {
    assert!(comp.wait_frame(Duration::from_secs(2)), "no frame");
    comp.acquire().expect("acquire").expect("a frame");
    comp.with_held(|f| points.iter().map(|&(x, y)| pixel(f, x, y)).collect())
        .expect("read")
        .expect("held")
}

#[test]
fn subsurface_is_composed_over_its_toplevel() {
    let (_dir, mut comp) = start();
    let mut client = TestClient::connect(comp.socket_path());
    let grey = [50, 50, 50, 255];
    let red = [0, 0, 200, 255];
    let blue = [200, 0, 0, 255];
    let (root_buf, _f1) = client.solid(32, 16, grey);
    client.commit(Some(&root_buf), false);
    client.roundtrip().expect("roundtrip");
    let inside = (10, 6);
    let outside = (2, 2);
    assert_eq!(
        frame_pixels(&mut comp, &[inside, outside]),
        vec![[50, 50, 50]; 2],
        "the toplevel alone"
    );

    let (sub, _role) = client.subsurface(8, 4);
    let (red_buf, _f2) = client.solid(4, 4, red);
    sub.attach(Some(&red_buf), 0, 0);
    sub.damage(0, 0, 4, 4);
    sub.commit();
    client.roundtrip().expect("roundtrip");
    assert_eq!(
        frame_pixels(&mut comp, &[inside, outside]),
        vec![[0, 0, 200], [50, 50, 50]],
        "the subsurface at (8, 4) over the toplevel"
    );

    // New subsurface content alone makes a new frame.
    let (blue_buf, _f3) = client.solid(4, 4, blue);
    sub.attach(Some(&blue_buf), 0, 0);
    sub.commit();
    client.roundtrip().expect("roundtrip");
    assert_eq!(frame_pixels(&mut comp, &[inside]), vec![[200, 0, 0]]);

    // Unmapped: the toplevel alone again.
    sub.attach(None, 0, 0);
    sub.commit();
    client.roundtrip().expect("roundtrip");
    assert_eq!(frame_pixels(&mut comp, &[inside]), vec![[50, 50, 50]]);
    assert_eq!(comp.counters().bad_buffers, 0);
}

/// A subsurface too large to copy is left out (logged), not allocated.
#[test]
fn huge_subsurface_is_not_copied() {
    let (_dir, mut comp) = start();
    let mut client = TestClient::connect(comp.socket_path());
    let (root_buf, _f1) = client.solid(32, 16, [50, 50, 50, 255]);
    client.commit(Some(&root_buf), false);
    let (sub, _role) = client.subsurface(0, 0);
    // 4097 x 4097 pixels: over the 4096 x 4096 cap.
    let (huge, _f2) = client.sparse(4097, 4097);
    sub.attach(Some(&huge), 0, 0);
    sub.commit();
    client.roundtrip().expect("still connected");
    common::wait_log(&comp, &["not composed"]);
    assert_eq!(
        frame_pixels(&mut comp, &[(0, 0)]),
        vec![[50, 50, 50]],
        "the toplevel without it"
    );
}

#[test]
fn weston_subsurfaces_demo_streams_changing_frames() {
    let (dir, mut comp) = start();
    let client = spawn(
        &dir.0,
        "weston-subsurfaces",
        &[],
        &[("LIBGL_ALWAYS_SOFTWARE", "1")],
        "weston",
    );
    assert!(
        wait_first_frame(&comp, Duration::from_secs(5)),
        "no frame; log {:?}; {}",
        comp.take_log(),
        client.finish()
    );
    // Play the clock for 1 s, hashing each new frame.
    let mut hashes = Vec::new();
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        comp.present(n, monotonic_ns());
        n += 1;
        if comp.acquire().expect("acquire").is_some() {
            let h = comp
                .with_held(|f| {
                    f.data
                        .iter()
                        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                })
                .expect("read")
                .expect("held");
            hashes.push(h);
        }
        std::thread::sleep(Duration::from_millis(16));
    }
    hashes.dedup();
    assert!(
        hashes.len() >= 20,
        "only {} different frames in 1 s; counters {:?}",
        hashes.len(),
        comp.counters()
    );
    drop(client);
}

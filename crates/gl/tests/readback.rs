//! The readback ring on a real GL (Mesa through surfaceless EGL): pixels, row order, tags,
//! the full-ring policy, resizing and the game's GL state.

mod common;

use common::Gl;
use crosscast_gl::{Readback, ReadbackError, Start, DEFAULT_DEPTH};

/// Background colour of frame `n`: different for every frame the tests use.
fn bg(n: u32) -> [u8; 4] {
    let n = n as u8;
    [n.wrapping_mul(23), 255 - n.wrapping_mul(17), 40 + n, 255]
}

/// Colour of frame `n`'s marker rectangle.
fn fg(n: u32) -> [u8; 4] {
    [250, (n as u8).wrapping_mul(9), 3, 128]
}

/// The marker: 15 pixels wide from x = 5, rows 4..10 counted from the TOP (GL coordinates are
/// from the bottom, so this checks the vertical flip).
fn marker_gl(height: i32) -> (i32, i32, i32, i32) {
    (5, height - 10, 15, 6)
}

/// Asserts that `dst` (top row first, `stride` bytes a row) holds frame `n` and that bytes
/// past each row's pixels were not written.
fn check_frame(dst: &[u8], stride: usize, width: usize, height: usize, n: u32) {
    for y in 0..height {
        for x in 0..width {
            let at = y * stride + x * 4;
            let inside = (5..20).contains(&x) && (4..10).contains(&y);
            let want = if inside { fg(n) } else { bg(n) };
            assert_eq!(
                &dst[at..at + 4],
                &want,
                "frame {n}: pixel ({x}, {y}) from the top-left"
            );
        }
        let padding = &dst[y * stride + width * 4..((y + 1) * stride).min(dst.len())];
        assert!(
            padding.iter().all(|&b| b == 0xEE),
            "frame {n}: padding of row {y} was written"
        );
    }
}

#[test]
fn frames_arrive_in_order_flipped_and_complete() {
    let g = Gl::new();
    eprintln!("GL: {}", g.renderer());
    // An odd width, so rows are not a power-of-two size, and a stride with padding.
    let (w, h) = (61, 47);
    let stride = w * 4 + 12;
    let fbo = g.framebuffer(w as i32, h as i32);
    let mut rb = Readback::new(&g.gl, w as u32, h as u32, DEFAULT_DEPTH).unwrap();
    let mut dst = vec![0xEE; stride * h];
    let mut got = Vec::new();
    for n in 0..12u32 {
        g.paint(bg(n), fg(n), marker_gl(h as i32));
        assert_eq!(rb.start(&g.gl, Some(fbo), n).unwrap(), Start::Queued);
        while let Some(tag) = rb.poll(&g.gl, &mut dst, stride).unwrap() {
            check_frame(&dst, stride, w, h, tag);
            dst.fill(0xEE);
            got.push(tag);
        }
    }
    while let Some(tag) = rb.finish(&g.gl, &mut dst, stride).unwrap() {
        check_frame(&dst, stride, w, h, tag);
        dst.fill(0xEE);
        got.push(tag);
    }
    assert_eq!(got, (0..12).collect::<Vec<_>>());
    let s = rb.stats();
    assert_eq!((s.started, s.delivered, s.dropped, s.lost), (12, 12, 0, 0));
    assert!(s.delay_max < DEFAULT_DEPTH as u64, "{s:?}");
    assert_eq!(rb.in_flight(), 0);
    assert!(rb.delete(&g.gl).is_empty());
}

#[test]
fn a_finished_copy_is_delivered_by_the_next_poll_with_no_delay() {
    let g = Gl::new();
    let (w, h) = (32, 24);
    let fbo = g.framebuffer(w, h);
    let mut rb = Readback::new(&g.gl, w as u32, h as u32, 2).unwrap();
    let mut dst = vec![0xEE; (w * h * 4) as usize];
    assert_eq!(rb.poll(&g.gl, &mut dst, w as usize * 4).unwrap(), None);
    g.paint(bg(3), fg(3), marker_gl(h));
    assert_eq!(rb.start(&g.gl, Some(fbo), "three").unwrap(), Start::Queued);
    // Only the test waits for the GPU here, so that the fence has certainly signalled.
    g.finish();
    assert_eq!(
        rb.poll(&g.gl, &mut dst, w as usize * 4).unwrap(),
        Some("three")
    );
    check_frame(&dst, w as usize * 4, w as usize, h as usize, 3);
    let s = rb.stats();
    assert_eq!(
        (s.delivered, s.delay_last, s.delay_mean()),
        (1, 0, Some(0.0))
    );
    assert_eq!(rb.poll(&g.gl, &mut dst, w as usize * 4).unwrap(), None);
}

#[test]
fn a_full_ring_drops_the_new_frames_and_keeps_the_queued_ones() {
    let g = Gl::new();
    let (w, h) = (40, 30);
    let fbo = g.framebuffer(w, h);
    let mut rb = Readback::new(&g.gl, w as u32, h as u32, 2).unwrap();
    let mut results = Vec::new();
    for n in 0..5u32 {
        g.paint(bg(n), fg(n), marker_gl(h));
        results.push(rb.start(&g.gl, Some(fbo), n).unwrap());
    }
    assert_eq!(
        results,
        [
            Start::Queued,
            Start::Queued,
            Start::Dropped(2),
            Start::Dropped(3),
            Start::Dropped(4)
        ]
    );
    let s = rb.stats();
    assert_eq!((s.started, s.dropped, s.delivered), (5, 3, 0));
    assert_eq!(rb.in_flight(), 2);
    // The dropped frames were painted over the FBO but must not have reached the buffers.
    let stride = w as usize * 4;
    let mut dst = vec![0xEE; stride * h as usize];
    for n in 0..2 {
        assert_eq!(rb.finish(&g.gl, &mut dst, stride).unwrap(), Some(n));
        check_frame(&dst, stride, w as usize, h as usize, n);
    }
    assert_eq!(rb.finish(&g.gl, &mut dst, stride).unwrap(), None);
    let s = rb.stats();
    // Frame 0 came back after frames 1..=4 were started, frame 1 after 2..=4.
    assert_eq!((s.delivered, s.delay_max, s.delay_total), (2, 4, 7));
    // Buffers are free again: the next frame is queued.
    g.paint(bg(5), fg(5), marker_gl(h));
    assert_eq!(rb.start(&g.gl, Some(fbo), 5).unwrap(), Start::Queued);
    assert_eq!(rb.finish(&g.gl, &mut dst, stride).unwrap(), Some(5));
    check_frame(&dst, stride, w as usize, h as usize, 5);
}

#[test]
fn resize_discards_frames_in_flight_and_reads_the_new_size() {
    // It grows, so that buffers left at the old size could not hold a frame.
    let g = Gl::new();
    let fbo = g.framebuffer(32, 32);
    let mut rb = Readback::new(&g.gl, 32, 32, 3).unwrap();
    g.paint(bg(1), fg(1), marker_gl(32));
    assert_eq!(rb.start(&g.gl, Some(fbo), 1).unwrap(), Start::Queued);
    assert_eq!(rb.resize(&g.gl, 48, 40).unwrap(), vec![1]);
    assert_eq!((rb.width(), rb.height(), rb.depth()), (48, 40, 3));
    assert_eq!(rb.stats().dropped, 1);
    let fbo2 = g.framebuffer(48, 40);
    g.paint(bg(2), fg(2), marker_gl(40));
    assert_eq!(rb.start(&g.gl, Some(fbo2), 2).unwrap(), Start::Queued);
    // A destination for the old row length, or one byte short, is refused without losing
    // the frame.
    let mut small = vec![0xEE; 48 * 40 * 4 - 1];
    assert!(matches!(
        rb.poll(&g.gl, &mut small, 32 * 4),
        Err(ReadbackError::Destination { .. })
    ));
    assert!(matches!(
        rb.finish(&g.gl, &mut small, 48 * 4),
        Err(ReadbackError::Destination { .. })
    ));
    assert_eq!(rb.in_flight(), 1);
    let mut dst = vec![0xEE; 48 * 40 * 4];
    assert_eq!(rb.finish(&g.gl, &mut dst, 48 * 4).unwrap(), Some(2));
    check_frame(&dst, 48 * 4, 48, 40, 2);
    assert!(matches!(
        rb.resize(&g.gl, 0, 40),
        Err(ReadbackError::Size { .. })
    ));
}

#[test]
fn the_games_read_and_pack_state_is_left_alone() {
    let g = Gl::new();
    let other = g.framebuffer(16, 16);
    let fbo = g.framebuffer(16, 16);
    g.paint(bg(4), fg(4), marker_gl(16));
    // The game reads from another framebuffer and packs with alignment 1 and a row length.
    g.bind_read(Some(other));
    g.pack(glow::PACK_ALIGNMENT, 1);
    g.pack(glow::PACK_ROW_LENGTH, 3);
    let before = [
        g.binding(glow::READ_FRAMEBUFFER_BINDING),
        g.binding(glow::PIXEL_PACK_BUFFER_BINDING),
        g.binding(glow::PACK_ALIGNMENT),
        g.binding(glow::PACK_ROW_LENGTH),
    ];
    let mut rb = Readback::new(&g.gl, 16, 16, 1).unwrap();
    assert_eq!(rb.start(&g.gl, Some(fbo), ()).unwrap(), Start::Queued);
    let mut dst = vec![0xEE; 16 * 16 * 4];
    assert_eq!(rb.finish(&g.gl, &mut dst, 64).unwrap(), Some(()));
    let after = [
        g.binding(glow::READ_FRAMEBUFFER_BINDING),
        g.binding(glow::PIXEL_PACK_BUFFER_BINDING),
        g.binding(glow::PACK_ALIGNMENT),
        g.binding(glow::PACK_ROW_LENGTH),
    ];
    assert_eq!(before, after);
    // The readback used tight rows regardless of the game's row length, and read `fbo`.
    check_frame(&dst, 64, 16, 16, 4);
}

#[test]
fn bad_arguments_are_errors() {
    let g = Gl::new();
    assert!(matches!(
        Readback::<()>::new(&g.gl, 16, 16, 0),
        Err(ReadbackError::Depth)
    ));
    assert!(matches!(
        Readback::<()>::new(&g.gl, 0, 16, 3),
        Err(ReadbackError::Size { .. })
    ));
    assert!(matches!(
        Readback::<()>::new(&g.gl, 40_000, 40_000, 3),
        Err(ReadbackError::Size { .. })
    ));
    let mut rb = Readback::<()>::new(&g.gl, 16, 16, 3).unwrap();
    let mut dst = vec![0; 16 * 16 * 4 - 1];
    assert!(matches!(
        rb.poll(&g.gl, &mut dst, 64),
        Err(ReadbackError::Destination { .. })
    ));
    let mut dst = vec![0; 16 * 16 * 4];
    assert!(matches!(
        rb.poll(&g.gl, &mut dst, 60),
        Err(ReadbackError::Destination { .. })
    ));
}

#[test]
fn polling_alone_delivers_a_frame() {
    // No glFinish, swap or further GL call from the "game": start must have submitted the
    // copy and its fence itself, or the fence never signals and this poll loop times out.
    let g = Gl::new();
    let (w, h) = (64, 64);
    let fbo = g.framebuffer(w, h);
    let mut rb = Readback::new(&g.gl, w as u32, h as u32, 3).unwrap();
    g.paint(bg(7), fg(7), marker_gl(h));
    assert_eq!(rb.start(&g.gl, Some(fbo), 7).unwrap(), Start::Queued);
    let mut dst = vec![0xEE; (w * h * 4) as usize];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let tag = loop {
        if let Some(tag) = rb.poll(&g.gl, &mut dst, w as usize * 4).unwrap() {
            break tag;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the copy never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert_eq!(tag, 7);
    check_frame(&dst, w as usize * 4, w as usize, h as usize, 7);
}

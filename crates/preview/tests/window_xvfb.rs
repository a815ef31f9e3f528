//! The preview window, for real: under Xvfb, show a known game frame with the comments
//! overlay, screenshot the X screen, and check the overlay is on screen; then close the
//! window the way a window manager does and check `closed()` reports it.
//!
//! Needs Debian's `xvfb` (Xvfb) and `x11-apps` (xwd). Missing tools fail the test with a
//! message; they never make it pass. Set `CROSSCAST_PREVIEW_SCREENSHOT=PATH` to also save the
//! screenshot as a PNG (that is how docs/preview-window.png is made).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crosscast_preview::{Comment, LiveStatus, Overlay, Preview, PreviewTarget};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt, EventMask,
};

const W: u32 = 1280;
const H: u32 = 720;
const TITLE: &str = "crosscast preview (xvfb test)";
/// Generous: a loaded 2-core machine can take seconds to start Xvfb or map a window.
const PATIENCE: Duration = Duration::from_secs(60);

/// Stops and reaps the Xvfb it started, by pid, however the test ends, and leaves no socket
/// or lock file behind.
struct Xvfb {
    child: Child,
    number: u32,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its socket and lock file; SIGKILL only if it will not go.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Ours: the number was free when this Xvfb took it.
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{}", self.number));
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.number));
    }
}

fn start_xvfb() -> Xvfb {
    // A display number nobody uses: no socket and no lock file.
    let n = (90..400)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("no free X display number in 90..400");
    let display = format!(":{n}");
    let child = Command::new("Xvfb")
        .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run Xvfb ({e}): install Debian package `xvfb` for the preview window test"
            )
        });
    let mut x = Xvfb {
        child,
        number: n,
        display,
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(status)) = x.child.try_wait() {
            panic!("Xvfb {} exited at start with {status}", x.display);
        }
        if x11rb::connect(Some(&x.display)).is_ok() {
            return x;
        }
        assert!(
            Instant::now() < deadline,
            "Xvfb {} did not accept connections within {PATIENCE:?}",
            x.display
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Eight vertical colour bars: easy to recognise, and flat so any overlay pixel stands out.
fn bars() -> Vec<u8> {
    const COLOURS: [[u8; 3]; 8] = [
        [235, 235, 235],
        [235, 235, 16],
        [16, 235, 235],
        [16, 235, 16],
        [235, 16, 235],
        [235, 16, 16],
        [16, 16, 235],
        [40, 40, 40],
    ];
    let mut f = Vec::with_capacity((W * H * 4) as usize);
    for _y in 0..H {
        for x in 0..W {
            let c = COLOURS[(x * 8 / W) as usize];
            f.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
    f
}

/// The root window as RGB rows, read with `xwd` (ZPixmap, 24/32 bpp TrueColor as Xvfb serves).
fn screenshot(display: &str) -> (u32, u32, Vec<u8>) {
    let out = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .unwrap_or_else(|e| panic!("cannot run xwd ({e}): install Debian package `x11-apps` for the preview window test"));
    assert!(
        out.status.success(),
        "xwd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_xwd(&out.stdout)
}

fn parse_xwd(d: &[u8]) -> (u32, u32, Vec<u8>) {
    let field = |i: usize| u32::from_be_bytes(d[i * 4..i * 4 + 4].try_into().unwrap());
    let (header_size, format, width, height) = (field(0) as usize, field(2), field(4), field(5));
    let (byte_order, bpp, bytes_per_line) = (field(7), field(11), field(12) as usize);
    let (red_mask, green_mask, blue_mask, ncolors) =
        (field(14), field(15), field(16), field(19) as usize);
    assert_eq!(
        (format, bpp),
        (2, 32),
        "unexpected xwd layout (format {format}, {bpp} bpp)"
    );
    let pixels = &d[header_size + ncolors * 12..];
    let shift = |m: u32| m.trailing_zeros();
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let b: [u8; 4] = pixels[y * bytes_per_line + x * 4..][..4]
                .try_into()
                .unwrap();
            let p = if byte_order == 0 {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            };
            rgb.extend_from_slice(&[
                ((p & red_mask) >> shift(red_mask)) as u8,
                ((p & green_mask) >> shift(green_mask)) as u8,
                ((p & blue_mask) >> shift(blue_mask)) as u8,
            ]);
        }
    }
    (width, height, rgb)
}

/// Share of the composed frame's pixels (sampled every 3rd row and column) found on screen at
/// the window's place, and share of overlay pixels (where composed differs from the game).
fn on_screen(shot: &(u32, u32, Vec<u8>), composed: &[u8], game: &[u8]) -> (f64, f64, usize) {
    let (sw, _, rgb) = shot;
    let (mut seen, mut total, mut ov_seen, mut ov_total) = (0usize, 0usize, 0usize, 0usize);
    for y in (0..H).step_by(3) {
        for x in (0..W).step_by(3) {
            let c = &composed[((y * W + x) * 4) as usize..][..3];
            let s = &rgb[((y * sw + x) * 3) as usize..][..3];
            let overlay = c != &game[((y * W + x) * 4) as usize..][..3];
            total += 1;
            seen += usize::from(c == s);
            if overlay {
                ov_total += 1;
                ov_seen += usize::from(c == s);
            }
        }
    }
    (
        seen as f64 / total as f64,
        ov_seen as f64 / ov_total.max(1) as f64,
        ov_total,
    )
}

fn save_png(path: &Path, (w, h, rgb): &(u32, u32, Vec<u8>)) {
    // Keep the committed screenshot small: half size if the full one is over 300 KB.
    let encode = |w: u32, h: u32, data: &[u8]| {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_compression(png::Compression::High);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    };
    let mut bytes = encode(*w, *h, rgb);
    if bytes.len() > 300 * 1024 {
        let (hw, hh) = (w / 2, h / 2);
        let mut half = Vec::with_capacity((hw * hh * 3) as usize);
        for y in 0..hh {
            for x in 0..hw {
                for c in 0..3 {
                    let at = |dx: u32, dy: u32| {
                        u32::from(rgb[(((2 * y + dy) * w + 2 * x + dx) * 3 + c) as usize])
                    };
                    half.push(((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8);
                }
            }
        }
        bytes = encode(hw, hh, &half);
    }
    std::fs::write(path, bytes).unwrap();
}

/// The preview window (found by its title) on `display`, and a connection to act on it.
fn find_window(display: &str) -> (x11rb::rust_connection::RustConnection, u32) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let net_name = atom(&conn, "_NET_WM_NAME");
    let utf8 = atom(&conn, "UTF8_STRING");
    let tree = conn.query_tree(root).unwrap().reply().unwrap();
    let mut found = Vec::new();
    for win in tree.children {
        let name = |prop, ty| {
            conn.get_property(false, win, prop, ty, 0, 1024)
                .ok()?
                .reply()
                .ok()
                .map(|r| r.value)
        };
        let titles = [
            name(AtomEnum::WM_NAME.into(), AtomEnum::STRING.into()),
            name(net_name, utf8),
        ];
        if titles
            .iter()
            .flatten()
            .any(|t| t.as_slice() == TITLE.as_bytes())
        {
            found.push(win);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "expected one window titled {TITLE:?} on {display}"
    );
    (conn, found[0])
}

fn atom(conn: &impl Connection, name: &str) -> u32 {
    conn.intern_atom(false, name.as_bytes())
        .unwrap()
        .reply()
        .unwrap()
        .atom
}

/// Resizes the window as a user dragging its border would (no window manager to ask).
fn resize_window(display: &str, w: u32, h: u32) {
    let (conn, win) = find_window(display);
    conn.configure_window(win, &ConfigureWindowAux::new().width(w).height(h))
        .unwrap();
    // A round trip, so the server has acted on the request before this connection closes.
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// The window's geometry as the X server has it, for failure messages.
fn geometry(display: &str) -> String {
    let (conn, win) = find_window(display);
    match conn.get_geometry(win).map(|c| c.reply()) {
        Ok(Ok(g)) => format!("{}x{} at {},{}", g.width, g.height, g.x, g.y),
        e => format!("unknown: {e:?}"),
    }
}

/// Asks the window to close as a window manager's close button does (WM_DELETE_WINDOW).
fn close_window(display: &str) {
    let (conn, win) = find_window(display);
    let (protocols, delete) = (atom(&conn, "WM_PROTOCOLS"), atom(&conn, "WM_DELETE_WINDOW"));
    let ev = ClientMessageEvent::new(32, win, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
    conn.send_event(false, win, EventMask::NO_EVENT, ev)
        .unwrap();
    // A round trip, so the server has acted on the request before this connection closes.
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// Share of the 640x480 window showing the 1280x720 frame halved and letterboxed: black bars
/// of 60 rows above and below, the frame (every other pixel) between them.
fn letterboxed_share(shot: &(u32, u32, Vec<u8>), composed: &[u8]) -> f64 {
    let (sw, _, rgb) = shot;
    let (mut ok, mut total) = (0usize, 0usize);
    for y in (0..480u32).step_by(2) {
        for x in (0..640u32).step_by(2) {
            let s = &rgb[((y * sw + x) * 3) as usize..][..3];
            let want: &[u8] = if !(60..420).contains(&y) {
                &[0, 0, 0]
            } else {
                &composed[(((y - 60) * 2 * W + x * 2) * 4) as usize..][..3]
            };
            total += 1;
            ok += usize::from(s == want);
        }
    }
    ok as f64 / total as f64
}

#[test]
fn window_shows_game_and_overlay_under_xvfb_and_close_ends_it() {
    let xvfb = start_xvfb();
    // Safe here: this test binary runs this one test, and no other thread reads the environment yet.
    std::env::set_var("DISPLAY", &xvfb.display);
    // 1:1 pixels whatever DPI the X server reports, so the screenshot can be compared exactly.
    std::env::set_var("WINIT_X11_SCALE_FACTOR", "1");
    std::env::remove_var("WAYLAND_DISPLAY");
    assert_eq!(PreviewTarget::default_for_env(), PreviewTarget::Window);

    let game = bars();
    let comments = vec![
        Comment::new("dave", "first time here, love the aquarium scene"),
        Comment::new("王五", "弹幕测试：中文换行应该在任何两个字之间都可以断开"),
        Comment::new("eve", "what bitrate is this?"),
        Comment::new("mallory", "can you try the hard level next?"),
        Comment::new("alice", "hello from the chat!"),
        Comment::new("小明", "主播好厉害！这局一定能赢，加油"),
        Comment::new(
            "bob",
            "the overlay is only in the streamer's preview, never in the stream",
        ),
        Comment::new("さくら", "こんにちは、初見です"),
        Comment::new("carol", "gg"),
    ];
    let status = LiveStatus {
        state: "LIVE".into(),
        elapsed: Duration::from_secs(754),
        bitrate_kbps: 2500.0,
        dropped_frames: 0,
    };
    let mut overlay = Overlay::new().unwrap();
    let composed = overlay
        .compose(
            &game,
            W,
            H,
            (W * 4) as usize,
            &comments,
            &status,
            Instant::now(),
        )
        .to_vec();

    let preview =
        Preview::start(PreviewTarget::Window, TITLE).expect("open the preview window on Xvfb");
    let deadline = Instant::now() + PATIENCE;
    let (shot, best) = loop {
        preview.submit(&composed, W, H);
        std::thread::sleep(Duration::from_millis(200));
        let shot = screenshot(&xvfb.display);
        let score = on_screen(&shot, &composed, &game);
        if score.0 > 0.99 || Instant::now() > deadline {
            break (shot, score);
        }
    };
    if let Some(path) = std::env::var_os("CROSSCAST_PREVIEW_SCREENSHOT") {
        // The window's part of the screen (it sits at the origin: Xvfb runs no window manager).
        let (sw, sh, rgb) = &shot;
        let (cw, ch) = (W.min(*sw), H.min(*sh));
        let crop: Vec<u8> = (0..ch)
            .flat_map(|y| rgb[(y * sw * 3) as usize..][..(cw * 3) as usize].to_vec())
            .collect();
        save_png(&PathBuf::from(path), &(cw, ch, crop));
    }
    let (all, overlay_share, overlay_px) = best;
    assert!(
        overlay_px > 1000,
        "the composed frame has too little overlay to check: {overlay_px}"
    );
    assert!(
        all > 0.99,
        "only {:.1}% of the composed frame is on screen",
        all * 100.0
    );
    assert!(
        overlay_share > 0.99,
        "only {:.1}% of the overlay pixels are on screen",
        overlay_share * 100.0
    );
    assert!(!preview.closed());

    // Resized to 4:3, the 16:9 frame is scaled down with its aspect kept: bars above and below.
    resize_window(&xvfb.display, 640, 480);
    let deadline = Instant::now() + PATIENCE;
    loop {
        preview.submit(&composed, W, H);
        std::thread::sleep(Duration::from_millis(200));
        let shot = screenshot(&xvfb.display);
        let share = letterboxed_share(&shot, &composed);
        if share > 0.99 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after resizing to 640x480 (window geometry now {}), only {:.1}% of the window is the letterboxed frame",
            geometry(&xvfb.display),
            share * 100.0
        );
    }

    close_window(&xvfb.display);
    let deadline = Instant::now() + PATIENCE;
    while !preview.closed() {
        assert!(
            Instant::now() < deadline,
            "closing the window did not set closed(); {}",
            geometry(&xvfb.display)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Submitting after the close is harmless, and stopping reports no error.
    preview.submit(&composed, W, H);
    preview.stop().expect("stop after close");
    // winit allows one event loop per process: a second window is an error, not a panic.
    assert!(Preview::start(PreviewTarget::Window, TITLE).is_err());
    drop(xvfb);
}

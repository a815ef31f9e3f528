//! `crosscast-input-probe`: its pixels (on plain bytes and on a real memfd) and the client
//! itself against weston: headless (Debian package `weston`), where it must come up at the
//! compositor's size and leave cleanly when it goes; and weston's X11 backend inside Xvfb
//! (packages `weston`, `xvfb`, `xdotool`, `x11-apps`), where xdotool's key and button presses
//! reach it through weston and xwd reads its square back from the X screen.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crosscast_bench::probe::{
    draw_frame, draw_marker, ShmFile, Size, BACKGROUND, BYTES_PER_PIXEL, MARKER, WHITE,
};

const PROBE: &str = env!("CARGO_BIN_EXE_crosscast-input-probe");

fn pixel(buf: &[u8], size: Size, x: u32, y: u32) -> [u8; 4] {
    let at = y as usize * size.stride() + x as usize * BYTES_PER_PIXEL;
    buf[at..at + 4].try_into().unwrap()
}

/// Every pixel is white inside the marker square when `held`, background everywhere else.
fn check_frame(buf: &[u8], size: Size, held: bool) {
    for y in 0..size.height {
        for x in 0..size.width {
            let marker = x < MARKER && y < MARKER;
            let want = if marker && held { WHITE } else { BACKGROUND };
            assert_eq!(
                pixel(buf, size, x, y),
                want,
                "pixel ({x}, {y}) of {size:?}, held {held}"
            );
        }
    }
}

#[test]
fn marker_is_white_only_while_held_and_the_rest_is_dark() {
    // Luma of the background (BT.601 on equal R, G, B): the detector's dark threshold.
    assert_eq!(&BACKGROUND[..3], &[40, 40, 40]);
    for size in [
        Size {
            width: 64,
            height: 48,
        },
        Size {
            width: 33,
            height: 40,
        },
        // Smaller than the marker: clipped, not out of bounds.
        Size {
            width: 20,
            height: 7,
        },
    ] {
        let mut buf = vec![0u8; size.frame_bytes()];
        draw_frame(&mut buf, size, false);
        check_frame(&buf, size, false);
        draw_frame(&mut buf, size, true);
        check_frame(&buf, size, true);

        // The marker-only redraw over an existing frame gives exactly the whole redraw.
        let mut partial = buf.clone();
        draw_marker(&mut partial, size, false);
        check_frame(&partial, size, false);
        draw_marker(&mut partial, size, true);
        assert_eq!(partial, buf, "{size:?}");
    }
}

#[test]
fn shm_file_buffers_are_written_in_place_and_apart() {
    let size = Size {
        width: 48,
        height: 40,
    };
    let shm = ShmFile::new(size, 3).unwrap();
    assert_eq!(shm.len(), 3 * size.frame_bytes());
    for i in 0..3 {
        shm.write_frame(i, false).unwrap();
    }
    shm.write_marker(1, true).unwrap();
    let read = |i: usize| {
        let mut buf = vec![0u8; size.frame_bytes()];
        let n = rustix::io::pread(shm.fd(), &mut buf, shm.offset(i) as u64).unwrap();
        assert_eq!(n, buf.len());
        buf
    };
    check_frame(&read(0), size, false);
    check_frame(&read(1), size, true);
    check_frame(&read(2), size, false);
    shm.write_marker(1, false).unwrap();
    check_frame(&read(1), size, false);
}

/// What one press or release costs the probe before it commits, at 1280x720: the bound is
/// loose (a dev build on a loaded CI machine); the figure is printed for the docs.
#[test]
fn marker_write_is_cheap_at_1280x720() {
    let size = Size {
        width: 1280,
        height: 720,
    };
    let shm = ShmFile::new(size, 3).unwrap();
    let started = Instant::now();
    shm.write_frame(0, false).unwrap();
    let whole = started.elapsed();
    let rounds = 2000u32;
    let mut max = Duration::ZERO;
    let started = Instant::now();
    for i in 0..rounds {
        let t = Instant::now();
        shm.write_marker(0, i % 2 == 0).unwrap();
        max = max.max(t.elapsed());
    }
    let avg = started.elapsed() / rounds;
    eprintln!("1280x720: whole frame {whole:?}; marker avg {avg:?}, max {max:?}");
    assert!(avg < Duration::from_millis(1), "marker write avg {avg:?}");
}

/// Kills and reaps a child on every path out of a test.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SIGTERM first, so that Xvfb removes its lock file and socket and weston its socket.
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tool`, which must be on PATH (else the test fails naming the Debian package).
fn tool(tool: &'static str, package: &str) -> &'static str {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} not found on PATH: install the Debian package `{package}`"
    );
    tool
}

fn weston() -> &'static str {
    tool("weston", "weston")
}

/// Starts weston headless (kiosk shell: the toplevel is made fullscreen at the output's
/// size) with its socket `name` in `runtime`.
fn start_weston(runtime: &Path, name: &str, width: u32, height: u32) -> Reaped {
    let log = runtime.join("weston.log");
    let mut weston = Reaped(
        Command::new(weston())
            .arg("--backend=headless-backend.so")
            .arg("--use-pixman")
            .arg("--shell=kiosk-shell.so")
            .arg("--no-config")
            .arg(format!("--width={width}"))
            .arg(format!("--height={height}"))
            .arg(format!("--socket={name}"))
            .arg(format!("--log={}", log.display()))
            .env("XDG_RUNTIME_DIR", runtime)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("WAYLAND_SOCKET")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start weston (Debian package `weston`)"),
    );
    wait_socket(&mut weston, runtime, name);
    weston
}

/// Waits for weston's socket `name` in `runtime`.
fn wait_socket(weston: &mut Reaped, runtime: &Path, name: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while !runtime.join(name).exists() {
        if let Some(status) = weston.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(runtime.join("weston.log")).unwrap_or_default();
            panic!("weston exited at start ({status}):\n{log}");
        }
        assert!(Instant::now() < until, "weston's socket did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Wayland clients and weston refuse a runtime dir others can read.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Starts the probe on weston's socket `name`; its stdout lines arrive on the channel.
fn start_probe(runtime: &Path, name: &str) -> (Reaped, mpsc::Receiver<String>) {
    let mut probe = Reaped(
        Command::new(PROBE)
            .env("XDG_RUNTIME_DIR", runtime)
            .env("WAYLAND_DISPLAY", name)
            .env_remove("WAYLAND_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = probe.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (probe, lines)
}

#[test]
fn probe_comes_up_at_the_compositors_size_and_exits_0_when_it_goes() {
    let runtime = runtime_dir();
    let name = "probe-0";
    let mut weston = start_weston(runtime.path(), name, 640, 400);

    let (mut probe, lines) = start_probe(runtime.path(), name);
    let first = lines.recv_timeout(Duration::from_secs(20));
    let mut stderr = String::new();
    if first.is_err() {
        let _ = probe.0.kill();
        probe
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
    }
    // Kiosk shell configures the toplevel to the output's size; the probe draws at it.
    assert_eq!(
        first.as_deref(),
        Ok("probe ready 640x400"),
        "probe stderr: {stderr}"
    );

    // The probe is idle now: nothing changes, so nothing more is printed.
    assert!(lines.recv_timeout(Duration::from_millis(300)).is_err());
    assert!(probe.0.try_wait().unwrap().is_none(), "probe exited early");

    // Weston shuts down on SIGTERM, closing the probe's connection.
    let pid = rustix::process::Pid::from_raw(weston.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    weston.0.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = probe.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "probe still running after weston left"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    probe
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "probe: {status}, stderr: {stderr}");
    assert!(
        stderr.contains("the compositor closed the connection"),
        "stderr: {stderr}"
    );
    // The one frame it drew: a whole frame, no marker write.
    assert!(stderr.contains("marker writes: none"), "stderr: {stderr}");
}

#[test]
fn probe_without_a_compositor_fails_with_a_clear_message() {
    let runtime = runtime_dir();
    let out = Command::new(PROBE)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("WAYLAND_DISPLAY", "no-such-socket")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot connect to the Wayland compositor"),
        "stderr: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn probe_help_names_its_output() {
    let out = Command::new(PROBE).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("probe ready WxH"), "{help}");
}

/// The X screen's pixel at (x, y) as (r, g, b), read with `xwd -root` (an XWD dump: a header
/// of big-endian 32-bit fields, a colormap, then the pixel rows).
fn screen_pixel(display: &str, x: usize, y: usize) -> (u8, u8, u8) {
    let out = Command::new(tool("xwd", "x11-apps"))
        .args(["-root", "-silent", "-display", display])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = out.stdout;
    let field = |i: usize| u32::from_be_bytes(d[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let (header, format, width, height) = (field(0), field(2), field(4), field(5));
    let (byte_order, bits_per_pixel, bytes_per_line) = (field(7), field(11), field(12));
    let (red_mask, green_mask, blue_mask, ncolors) = (field(14), field(15), field(16), field(19));
    assert_eq!(
        (format, bits_per_pixel),
        (2, 32),
        "xwd: want a 32-bit ZPixmap"
    );
    assert!(x < width && y < height);
    let at = header + ncolors * 12 + y * bytes_per_line + x * 4;
    let bytes: [u8; 4] = d[at..at + 4].try_into().unwrap();
    let px = if byte_order == 0 {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    } as usize;
    let channel = |mask: usize| ((px & mask) >> mask.trailing_zeros()) as u8;
    (channel(red_mask), channel(green_mask), channel(blue_mask))
}

/// Waits up to 10 s for the X screen's pixel at (x, y) to be `want`.
fn wait_pixel(display: &str, x: usize, y: usize, want: (u8, u8, u8)) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = screen_pixel(display, x, y);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < until,
            "pixel ({x}, {y}) is {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn xdotool(display: &str, args: &[&str]) {
    let out = Command::new(tool("xdotool", "xdotool"))
        .args(args)
        .env("DISPLAY", display)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn expect_line(lines: &mpsc::Receiver<String>, want: &str) {
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(10)).as_deref(),
        Ok(want)
    );
}

#[test]
fn keys_and_buttons_held_through_weston_show_the_white_square() {
    let runtime = runtime_dir();
    // Xvfb picks a free display itself and writes its number on stdout (`-displayfd 1`):
    // other X servers may run on the machine.
    let mut xvfb = Reaped(
        Command::new(tool("Xvfb", "xvfb"))
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut number = String::new();
    BufReader::new(xvfb.0.stdout.take().unwrap())
        .read_line(&mut number)
        .unwrap();
    let number: u32 = number.trim().parse().expect("Xvfb did not say its display");
    let display = format!(":{number}");
    // Weston's X11 backend: one X window at the screen's top-left, whose keyboard and pointer
    // are weston's seat; kiosk shell makes the probe fullscreen in it and gives it the focus.
    let name = "probe-x11";
    let mut weston = Reaped(
        Command::new(weston())
            .arg("--backend=x11-backend.so")
            .arg("--use-pixman")
            .arg("--shell=kiosk-shell.so")
            .arg("--no-config")
            .arg("--width=320")
            .arg("--height=240")
            .arg(format!("--socket={name}"))
            .arg(format!(
                "--log={}",
                runtime.path().join("weston.log").display()
            ))
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("DISPLAY", &display)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("WAYLAND_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start weston (Debian package `weston`)"),
    );
    wait_socket(&mut weston, runtime.path(), name);
    let (_probe, lines) = start_probe(runtime.path(), name);
    expect_line(&lines, "probe ready 320x240");

    const DARK: (u8, u8, u8) = (40, 40, 40);
    const LIGHT: (u8, u8, u8) = (255, 255, 255);
    wait_pixel(&display, 0, 0, DARK);
    xdotool(&display, &["mousemove", "100", "100"]);

    // KEY_A is evdev 30.
    xdotool(&display, &["keydown", "a"]);
    expect_line(&lines, "probe key 30 pressed");
    wait_pixel(&display, 0, 0, LIGHT);
    wait_pixel(&display, 31, 31, LIGHT);
    assert_eq!(screen_pixel(&display, 32, 0), DARK, "the square is 32 wide");
    assert_eq!(screen_pixel(&display, 0, 32), DARK, "the square is 32 high");
    xdotool(&display, &["keyup", "a"]);
    expect_line(&lines, "probe key 30 released");
    wait_pixel(&display, 0, 0, DARK);

    // BTN_LEFT is 272 (0x110).
    xdotool(&display, &["mousedown", "1"]);
    expect_line(&lines, "probe button 272 pressed");
    wait_pixel(&display, 10, 10, LIGHT);
    xdotool(&display, &["mouseup", "1"]);
    expect_line(&lines, "probe button 272 released");
    wait_pixel(&display, 10, 10, DARK);

    // Two keys: the square stays until the last one is up.
    xdotool(&display, &["keydown", "a"]);
    xdotool(&display, &["keydown", "b"]);
    xdotool(&display, &["keyup", "a"]);
    expect_line(&lines, "probe key 30 pressed");
    expect_line(&lines, "probe key 48 pressed");
    expect_line(&lines, "probe key 30 released");
    wait_pixel(&display, 0, 0, LIGHT);
    xdotool(&display, &["keyup", "b"]);
    expect_line(&lines, "probe key 48 released");
    wait_pixel(&display, 0, 0, DARK);
}

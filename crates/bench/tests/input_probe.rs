//! `crosscast-input-probe`: its pixels (on plain bytes and on a real memfd) and the client
//! itself against weston's headless backend (Debian package `weston`).
//!
//! Weston headless cannot inject keys, so the end-to-end input path (a key at the preview
//! window, the probe's square in the stream) is tested through crosscast's compositor instead;
//! here the probe must come up at the compositor's size and leave cleanly when it goes.

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
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weston() -> &'static str {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("weston").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "weston not found on PATH: install the Debian package `weston`"
    );
    "weston"
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
    let until = Instant::now() + Duration::from_secs(20);
    while !runtime.join(name).exists() {
        if let Some(status) = weston.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("weston exited at start ({status}):\n{log}");
        }
        assert!(Instant::now() < until, "weston's socket did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
    weston
}

fn runtime_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Wayland clients and weston refuse a runtime dir others can read.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn probe_comes_up_at_the_compositors_size_and_exits_0_when_it_goes() {
    let runtime = runtime_dir();
    let name = "probe-0";
    let mut weston = start_weston(runtime.path(), name, 640, 400);

    let mut probe = Reaped(
        Command::new(PROBE)
            .env("XDG_RUNTIME_DIR", runtime.path())
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

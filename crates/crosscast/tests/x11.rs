//! X11 programs through Xwayland: `crosscast live -- COMMAND` offers the game an X display
//! (`DISPLAY`) served by a rootful Xwayland, a client of the host's own compositor, started
//! when the first X client connects (or up front with `--x11`) in the game's sandbox. The
//! programs come from Debian packages (xwayland, x11-apps, weston); a missing one fails the
//! test with the package's name.

mod common;
#[path = "../../media/tests/common/mod.rs"]
mod media;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Streams `command` for 4 s at 320x240, 30 fps into `r.mp4`, with `extra` options first.
fn stream(dir: &TempDir, extra: &[&str], command: &[&str]) -> std::process::Output {
    stream_command(&dir.0, "30", "4", extra, command)
}

/// A decoded frame from the second half of the recording, which must show something: not
/// black, not one flat colour.
fn assert_drawn(dir: &TempDir, what: &str, err: &str) {
    let frames = media::gray_frames(&dir.path("r.mp4"), 64, 48);
    assert!(
        frames.len().abs_diff(120) <= 1,
        "{} frames decoded\n{err}",
        frames.len()
    );
    let (mean, sd) = luma_mean_sd(&frames[frames.len() * 3 / 4]);
    assert!(
        mean > 20.0 && sd > 30.0,
        "{what}: the decoded frame is blank (mean luma {mean:.1}, sd {sd:.1})\n{err}"
    );
}

/// xlogo filling the X screen, after printing the screen's size.
fn xlogo_script() -> String {
    let xlogo = find_program("xlogo", "x11-apps");
    let xdpyinfo = find_program("xdpyinfo", "x11-utils");
    format!("{xdpyinfo} | grep dimensions; exec {xlogo} -geometry 320x240+0+0")
}

#[test]
fn an_x11_program_streams_through_xwayland_started_when_it_connects() {
    find_program("Xwayland", "xwayland");
    let dir = TempDir::new("x11-lazy");
    let out = stream(&dir, &[], &["sh", "-c", &xlogo_script()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Xwayland started lazily: an X client connected to DISPLAY=:0"),
        "{err}"
    );
    assert!(!err.contains("started up front"), "{err}");
    // Rootful Xwayland's screen is the compositor's output: the stream's size.
    assert!(err.contains("dimensions:    320x240 pixels"), "{err}");
    // Its stderr reaches the log, prefixed.
    assert!(err.lines().any(|l| l.starts_with("Xwayland: ")), "{err}");
    assert_drawn(&dir, "xlogo", &err);
}

#[test]
fn an_x11_gl_game_streams_moving_frames_through_xwayland() {
    find_program("Xwayland", "xwayland");
    let gears = find_program("glxgears", "mesa-utils");
    let dir = TempDir::new("x11-gl");
    let out = stream(&dir, &[], &[&gears, "-geometry", "320x240+0+0"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Xwayland started lazily"), "{err}");
    // Xwayland commits its screen as the gears turn (on llvmpipe: at least ~8 fps even on a
    // loaded 2-core machine).
    let host = HostSummary::parse(&err);
    assert!(host.queued > 30, "{host:?}\n{err}");
    let frames = media::gray_frames(&dir.path("r.mp4"), 64, 48);
    let (a, b) = (&frames[60], &frames[66]);
    let (_, sd) = luma_mean_sd(a);
    assert!(sd > 20.0, "the decoded frame is flat (sd {sd:.1})\n{err}");
    let moved = a.iter().zip(b).filter(|(x, y)| x.abs_diff(**y) > 8).count();
    assert!(moved > a.len() / 50, "the gears do not turn\n{err}");
}

#[test]
fn with_x11_xwayland_starts_first_and_a_wayland_client_still_streams() {
    find_program("Xwayland", "xwayland");
    let shm = find_program("weston-simple-shm", "weston");
    let dir = TempDir::new("x11-eager");
    let out = stream(&dir, &["--x11"], &[&shm]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let started = err
        .find("Xwayland started up front (--x11) for DISPLAY=:0")
        .unwrap_or_else(|| panic!("no up-front start\n{err}"));
    let speaks = err
        .find("speaks Wayland")
        .expect("the Wayland client streams");
    assert!(
        started < speaks,
        "Xwayland must start before the game's frames\n{err}"
    );
    assert!(!err.contains("started lazily"), "{err}");
    // The game's toplevel, mapped after Xwayland's, is the one streamed.
    let host = HostSummary::parse(&err);
    assert!(
        host.frames_out >= 119 && host.repeated <= 10,
        "{host:?}\n{err}"
    );
    assert_drawn(&dir, "weston-simple-shm", &err);
}

#[test]
fn a_wayland_game_never_starts_xwayland() {
    let shm = find_program("weston-simple-shm", "weston");
    let dir = TempDir::new("x11-none");
    let out = stream(&dir, &[], &[&shm]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("Xwayland"), "{err}");
}

#[test]
fn sandbox_off_takes_a_free_display_number_and_removes_its_files() {
    find_program("Xwayland", "xwayland");
    let xlogo = find_program("xlogo", "x11-apps");
    let dir = TempDir::new("x11-off");
    let script = format!(
        "n=${{DISPLAY#:}}; echo \"display number $n\"; \
         [ -S /tmp/.X11-unix/X$n ] && grep -q \" $PPID\\$\" /tmp/.X$n-lock && echo files-ok; \
         exec {xlogo} -geometry 320x240+0+0"
    );
    let out = stream(&dir, &["--sandbox", "off"], &["sh", "-c", &script]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let n: u32 = err
        .lines()
        .find_map(|l| l.split("display number ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no display number\n{err}"));
    assert!(n >= 1, "{err}");
    assert!(
        err.contains(&format!(
            "Xwayland started lazily: an X client connected to DISPLAY=:{n}"
        )),
        "{err}"
    );
    // While the game ran, the socket existed and the lock held the host's pid.
    assert!(err.contains("files-ok"), "{err}");
    assert_drawn(&dir, "xlogo (sandbox off)", &err);
    let sock = format!("/tmp/.X11-unix/X{n}");
    let lock = format!("/tmp/.X{n}-lock");
    assert!(!Path::new(&sock).exists(), "{sock} left behind\n{err}");
    assert!(!Path::new(&lock).exists(), "{lock} left behind\n{err}");
}

/// `crosscast live --sandbox off ARGS` with a `PATH` that has no Xwayland.
fn without_xwayland(dir: &TempDir, args: &[&str]) -> std::process::Output {
    let child = Command::new(bin())
        .args([
            "live",
            "--sandbox",
            "off",
            "--no-encode",
            "--preview",
            "none",
            "--seconds",
            "10",
        ])
        .args(args)
        .current_dir(&dir.0)
        .env("PATH", dir.path("empty-bin"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crosscast");
    wait_with_watchdog(child, Duration::from_secs(60))
}

#[test]
fn a_missing_xwayland_names_its_package_up_front_or_when_a_client_connects() {
    let xlogo = find_program("xlogo", "x11-apps");
    let dir = TempDir::new("x11-missing");
    std::fs::create_dir(dir.path("empty-bin")).unwrap();

    let out = without_xwayland(&dir, &["--x11", "--", &xlogo]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("install the Debian package xwayland"), "{err}");

    // Lazily: the error comes when xlogo connects, and xlogo is refused rather than left
    // hanging (it exits with its own error, and the host with its status).
    let out = without_xwayland(&dir, &["--", &xlogo]);
    let err = stderr(&out);
    assert!(
        err.contains("an X client connected but Xwayland cannot start")
            && err.contains("install the Debian package xwayland"),
        "{err}"
    );
    assert!(err.contains("game exited"), "{err}");
    assert!(!out.status.success(), "{err}");
}

//! Issue 12 with real clients nobody here wrote: `crosscast live -- COMMAND` is the game's
//! Wayland compositor, streams what it draws into `wl_shm`, runs it in the sandbox, and exits
//! with its status. The clients come from Debian packages (weston, libsdl2-tests), installed
//! by `scripts/test.sh`; a missing one fails the test with the package's name.

mod common;
#[path = "../../media/tests/common/mod.rs"]
mod media;
use common::*;
use std::path::Path;
use std::time::Duration;

/// Streams `command` for `seconds` at 320x240 and `fps` into `r.mp4`; returns the output.
fn stream(dir: &TempDir, fps: &str, seconds: &str, command: &[&str]) -> std::process::Output {
    stream_command(&dir.0, fps, seconds, &[], command)
}

/// The decoded recording's frames at 64x48 luma, after checking the stream ran at `fps`.
fn decoded(dir: &TempDir, fps: u64, seconds: u64, err: &str) -> Vec<Vec<u8>> {
    let frames = media::gray_frames(&dir.path("r.mp4"), 64, 48);
    let want = fps * seconds;
    assert!(
        (frames.len() as u64).abs_diff(want) <= 1,
        "{} frames decoded, want {want}\n{err}",
        frames.len()
    );
    frames
}

/// The largest luma standard deviation among `frames`: a client that starts slowly on a loaded
/// machine may show a few flat frames first, but the latter half of the stream must show it.
fn most_varied(frames: &[Vec<u8>]) -> f64 {
    frames.iter().map(|f| luma_mean_sd(f).1).fold(0.0, f64::max)
}

/// A frame that shows something: not black, not one flat colour.
fn assert_drawn(frame: &[u8], what: &str, err: &str) {
    let (mean, sd) = luma_mean_sd(frame);
    assert!(
        mean > 20.0 && sd > 8.0,
        "{what}: the decoded frame is blank (mean luma {mean:.1}, sd {sd:.1})\n{err}"
    );
}

#[test]
fn weston_simple_shm_streams_its_pattern_at_the_full_output_rate() {
    let shm = find_program("weston-simple-shm", "weston");
    let dir = TempDir::new("wl-shm");
    let out = stream(&dir, "30", "4", &[&shm]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("speaks Wayland"), "{err}");
    let host = HostSummary::parse(&err);
    // The client draws once per frame callback, and the host sends one per output frame: it
    // runs at the output rate, so (after its first frame) every output frame is a new one.
    assert_eq!(host.frames_out, 120, "{host:?}\n{err}");
    assert!(
        host.repeated <= 6,
        "the client should keep up with the output rate: {host:?}\n{err}"
    );
    let frames = decoded(&dir, 30, 4, &err);
    let mid = &frames[frames.len() / 2];
    assert_drawn(mid, "weston-simple-shm", &err);
    // Its pattern moves: frames a few apart differ.
    let later = &frames[frames.len() / 2 + 5];
    let moved = mid
        .iter()
        .zip(later)
        .filter(|(a, b)| a.abs_diff(**b) > 8)
        .count();
    assert!(moved > mid.len() / 20, "the pattern does not move\n{err}");
    if let Some(d) = std::env::var_os("CROSSCAST_SNAPSHOT_DIR") {
        // For the README: one decoded frame of a real client, full size.
        let png = Path::new(&d).join("wayland-weston-simple-shm.png");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-ss", "2", "-i"])
            .arg(dir.path("r.mp4"))
            .args(["-frames:v", "1"])
            .arg(&png)
            .status()
            .expect("ffmpeg");
        assert!(status.success());
    }
}

#[test]
fn a_gl_client_on_llvmpipe_streams_what_it_renders() {
    let egl = find_program("weston-simple-egl", "weston");
    let dir = TempDir::new("wl-egl");
    let out = stream(&dir, "30", "4", &[&egl]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("speaks Wayland"), "{err}");
    let frames = decoded(&dir, 30, 4, &err);
    // The triangle spins on black: mostly dark, but not flat.
    let sd = most_varied(&frames[frames.len() / 2..]);
    assert!(sd > 8.0, "the decoded frame is flat (sd {sd:.1})\n{err}");
    let host = HostSummary::parse(&err);
    assert!(host.queued > 30, "{host:?}\n{err}");
}

#[test]
fn an_sdl2_program_streams_through_sdl_wayland() {
    // testsprite2: sprites moving on a coloured background, as fast as SDL presents (it does
    // not wait for frame callbacks). testdraw2 would do too, but SDL 2.26's crashes with
    // SIGSEGV after a few seconds here, under weston as well.
    let draw = find_program(
        "/usr/libexec/installed-tests/SDL2/testsprite2",
        "libsdl2-tests",
    );
    let dir = TempDir::new("wl-sdl");
    let out = stream(&dir, "30", "4", &[&draw]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("speaks Wayland"), "{err}");
    let frames = decoded(&dir, 30, 4, &err);
    let sd = most_varied(&frames[frames.len() / 2..]);
    assert!(sd > 8.0, "the decoded frame is flat (sd {sd:.1})\n{err}");
}

#[test]
fn a_crosscast_protocol_game_streams_through_the_same_command() {
    let dir = TempDir::new("wl-native");
    let out = run(
        &[
            "live",
            "--no-encode",
            "--verify",
            "--seconds",
            "3",
            "--size",
            "320x240",
            "--preview",
            "none",
            "--",
            bin(),
            "game",
            "--stamp",
            "--pattern",
            "bars",
        ],
        &dir.0,
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("speaks crosscast's protocol"), "{err}");
    let host = HostSummary::parse(&err);
    assert_eq!(host.stamps_bad, 0, "{host:?}\n{err}");
    assert!(host.stamps_ok > 100, "{host:?}\n{err}");
}

#[test]
fn the_host_exits_with_the_games_status_and_names_a_missing_program() {
    let dir = TempDir::new("wl-exit");
    let out = run(
        &[
            "live",
            "--no-encode",
            "--preview",
            "none",
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
        &dir.0,
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    let out = run(
        &[
            "live",
            "--no-encode",
            "--preview",
            "none",
            "--",
            "no-such-game-here",
        ],
        &dir.0,
        Duration::from_secs(30),
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no-such-game-here"), "{err}");
}

/// Each probe sets one bit of the game's exit status when it succeeds: a TCP connection to the
/// host's listener, a file written outside the data dir, the host's /tmp seen, the host
/// signalled.
fn sandbox_probes(level: &str) -> (i32, String) {
    let dir = TempDir::new(&format!("wl-sandbox-{level}"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let marker = dir.path("host-tmp-marker");
    std::fs::write(&marker, b"x").unwrap();
    let outside = dir.path("written-by-game");
    let script = format!(
        "s=0; \
         (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && s=$((s|1)); \
         (echo x > '{outside}') 2>/dev/null && s=$((s|2)); \
         test -e '{marker}' && s=$((s|4)); \
         kill -0 {host} 2>/dev/null && s=$((s|8)); \
         exit $s",
        outside = outside.display(),
        marker = marker.display(),
        host = std::process::id(),
    );
    let out = run(
        &[
            "live",
            "--no-encode",
            "--preview",
            "none",
            "--sandbox",
            level,
            "--",
            "bash",
            "-c",
            &script,
        ],
        &dir.0,
        Duration::from_secs(30),
    );
    drop(listener);
    (out.status.code().unwrap_or(-1), stderr(&out))
}

#[test]
fn the_sandbox_stops_network_files_host_tmp_and_signals_and_off_does_not() {
    let (off, err) = sandbox_probes("off");
    assert_eq!(
        off, 0b1111,
        "with --sandbox off every probe succeeds\n{err}"
    );
    let (strict, err) = sandbox_probes("strict");
    assert_eq!(strict, 0, "with --sandbox strict every probe fails\n{err}");
}

#[test]
fn a_game_that_exits_is_relaunched_with_restart_and_the_output_never_stops() {
    let shm = find_program("weston-simple-shm", "weston");
    let dir = TempDir::new("wl-restart");
    // The game lives one second at a time; the stream runs on for five.
    let out = stream_command(&dir.0, "30", "5", &["--restart"], &["timeout", "1", &shm]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let restarts = err.matches("restarting the game").count();
    assert!(restarts >= 2, "{restarts} restarts\n{err}");
    let host = HostSummary::parse(&err);
    assert_eq!(host.frames_out, 150, "{host:?}\n{err}");
    // Every launch drew: frames came from more than one of them.
    assert!(host.queued > 60, "{host:?}\n{err}");
    decoded(&dir, 30, 5, &err);
}

#[test]
fn ctrl_c_finishes_the_recording_and_stops_the_game() {
    let shm = find_program("weston-simple-shm", "weston");
    let dir = TempDir::new("wl-sigint");
    let child = spawn(
        &[
            "live",
            "--size",
            "320x240",
            "--fps",
            "30",
            "--preset",
            "ultrafast",
            "--preview",
            "none",
            "--out",
            "r.mp4",
            "--",
            &shm,
        ],
        &dir.0,
    );
    std::thread::sleep(Duration::from_secs(3));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = wait_with_watchdog(child, Duration::from_secs(30));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let frames = media::gray_frames(&dir.path("r.mp4"), 64, 48);
    assert!(frames.len() >= 30, "{} frames\n{err}", frames.len());
    assert_drawn(&frames[frames.len() / 2], "weston-simple-shm", &err);
}

#[test]
fn a_client_that_sends_garbage_is_dropped_and_the_game_streams_on() {
    let shm = find_program("weston-simple-shm", "weston");
    find_program("python3", "python3");
    let dir = TempDir::new("wl-garbage");
    // The game: a real client, and one second later a second one that writes random bytes on
    // the Wayland socket.
    let script = format!(
        "{shm} & sleep 1; python3 -c \"import os, socket; \
         s = socket.socket(socket.AF_UNIX); \
         s.connect(os.environ['XDG_RUNTIME_DIR'] + '/' + os.environ['WAYLAND_DISPLAY']); \
         s.sendall(os.urandom(65536))\" ; wait"
    );
    let out = stream(&dir, "30", "4", &["sh", "-c", &script]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.matches(" connected").count() >= 2, "{err}");
    // The garbage client's end is logged while the stream runs, before the summary.
    let before_summary = err.split("crosscast: done:").next().unwrap_or_default();
    assert!(
        before_summary.contains(" gone: ") || before_summary.contains("protocol error"),
        "{err}"
    );
    let host = HostSummary::parse(&err);
    assert_eq!(host.frames_out, 120, "{host:?}\n{err}");
    assert!(host.repeated <= 6, "{host:?}\n{err}");
    let frames = decoded(&dir, 30, 4, &err);
    assert_drawn(
        &frames[frames.len() - 10],
        "weston-simple-shm after the garbage",
        &err,
    );
}

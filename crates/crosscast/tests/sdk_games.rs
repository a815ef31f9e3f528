//! Issue 15: the SDK's example games stream. The C game (`examples/c/game.c`) is built by the
//! system C compiler against the header and library installed by `scripts/sdk.sh` and found
//! through pkg-config, shared and static, and streamed with `crosscast live -- ./game`: the
//! decoded recording shows its animation and its tone. In named mode its supervisor brings it
//! back to a restarted host. The Rust example (`crates/sdk/examples/bars.rs`) streams too, and
//! so does the GL game (`crates/gl/examples/gl_game.rs`: Mesa's llvmpipe through surfaceless
//! EGL, each slot queued when its asynchronous readback's fence has signalled).

mod common;
#[path = "../../media/tests/common/mod.rs"]
mod media;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs the SDK from the build the tests run from (`cargo test --workspace` built
/// libcrosscast beside the crosscast binary) into `prefix`, as a user would with
/// `scripts/sdk.sh`.
fn install_sdk(prefix: &Path) {
    let build = Path::new(bin()).parent().unwrap();
    let out = Command::new("bash")
        .arg(root().join("scripts/sdk.sh"))
        .arg(prefix)
        .env("CROSSCAST_SDK_BUILD_DIR", build)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/sdk.sh failed (is crosscast-sdk-c built? cargo build -p crosscast-sdk-c): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pkg-config ARGS crosscast` with the installed .pc file, split into arguments.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("crosscast")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config (Debian package pkg-config)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Compiles the example with `cc`, warnings as errors, linked as `link` says.
fn compile(exe: &Path, flags: &[String]) {
    let out = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(exe)
        .arg(root().join("examples/c/game.c"))
        .args(flags)
        .arg("-lm")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "examples/c/game.c does not build with {flags:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the white bar starts in a decoded 320x240 luma frame (its middle row).
fn bar_x(frame: &[u8]) -> Option<usize> {
    frame[120 * 320..121 * 320].iter().position(|&v| v > 200)
}

/// Checks the bar's motion over `frames`: the examples move it 8 pixels a frame (wrapping at
/// 320 - 32). Every step must be whole frames of it (0 where the output repeated a game frame,
/// 16 or more where the game skipped some: timing under load, not content), and at least
/// `min` steps exactly 8. A torn, garbled or missing bar fails.
fn check_bar(frames: &[Vec<u8>], min: usize) {
    let xs: Vec<Option<usize>> = frames.iter().map(|f| bar_x(f)).collect();
    let steps: Vec<Option<usize>> = xs
        .windows(2)
        .map(|w| Some((w[1]? + 288 - w[0]?) % 288))
        .collect();
    let exact = steps.iter().filter(|s| **s == Some(8)).count();
    let whole = steps.iter().all(|s| s.is_some_and(|s| s % 8 == 0));
    assert!(
        whole && exact >= min,
        "the bar moved 8 px in {exact} of {} steps (want {min}), steps {steps:?}, at {xs:?}",
        steps.len()
    );
}

#[test]
fn a_c_game_on_the_sdk_streams_its_animation_and_tone() {
    let dir = TempDir::new("c-sdk");
    let prefix = dir.path("prefix");
    install_sdk(&prefix);
    let mut flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    let libdir = prefix.join("lib");
    flags.push(format!("-Wl,-rpath,{}", libdir.display()));
    let game = dir.path("game");
    compile(&game, &flags);
    // The static library links too (what an engine that ships one binary uses).
    let mut static_flags = pkg_config(&prefix, &["--cflags"]);
    static_flags.push(libdir.join("libcrosscast.a").display().to_string());
    static_flags.extend(
        pkg_config(&prefix, &["--static", "--libs-only-l"])
            .into_iter()
            .filter(|f| f != "-lcrosscast"),
    );
    compile(&dir.path("game-static"), &static_flags);

    let game = game.display().to_string();
    let out = stream_command(&dir.0, "30", "4", &[], &[&game, "6"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the game speaks crosscast's protocol"),
        "{err}"
    );
    let host = HostSummary::parse(&err);
    assert_eq!(host.frames_out, 120, "{err}");
    assert!(host.queued >= 110, "{host:?}\n{err}");
    assert_eq!(stat(&err, "gaps"), 0, "audio blocks back to back: {err}");

    let path = dir.path("r.mp4");
    let frames = media::gray_frames(&path, 320, 240);
    assert_eq!(frames.len(), 120);
    check_bar(&frames, 60);

    // The tone: 440 Hz at 0.25 on the left channel, from the first second on.
    let raw = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args([
            "-map", "0:a:0", "-f", "f32le", "-ac", "2", "-ar", "48000", "-",
        ])
        .output()
        .unwrap()
        .stdout;
    let left: Vec<f32> = raw
        .chunks_exact(8)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let second = &left[48_000..96_000];
    let peak = second.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((peak - 0.25).abs() < 0.03, "tone peak {peak}");
    let crossings = second
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    assert!((439..=441).contains(&crossings), "{crossings} Hz");
}

#[test]
fn a_c_game_started_without_a_host_says_so() {
    let dir = TempDir::new("c-sdk-alone");
    let prefix = dir.path("prefix");
    install_sdk(&prefix);
    let mut flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    flags.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    let game = dir.path("game");
    compile(&game, &flags);
    let out = Command::new(&game).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("c-game: connect: not started by a crosscast host"),
        "{err}"
    );
}

#[test]
fn a_c_game_in_named_mode_reconnects_to_a_restarted_host() {
    use std::process::Stdio;
    use std::time::Duration;
    let dir = TempDir::new("c-sdk-named");
    let prefix = dir.path("prefix");
    install_sdk(&prefix);
    let mut flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    flags.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    let game = dir.path("game");
    compile(&game, &flags);
    let key = dir.path("key").display().to_string();
    assert!(run(&["keygen", &key], &dir.0, Duration::from_secs(10))
        .status
        .success());
    let host = |secs: &str| -> Vec<String> {
        let args = ["host", "--listen", "--key-file", &key, "--app-id", "c-sdk"];
        let rest = [
            "--user-id",
            "u",
            "--no-encode",
            "--size",
            "320x240",
            "--seconds",
            secs,
        ];
        args.iter().chain(&rest).map(|s| s.to_string()).collect()
    };
    let first = Command::new(bin())
        .args(host("60"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c_game = Command::new(&game)
        .args(["--connect", &key, "c-sdk", "u", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // The first host dies without a goodbye: the C game exits CC_EXIT_HOST_LOST and its
    // supervisor (cc_supervise) brings it back to the next host.
    let killed = Command::new("kill")
        .args(["-9", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = wait_with_watchdog(first, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let args = host("4");
    let second = run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &dir.0,
        Duration::from_secs(60),
    );
    let err = stderr(&second);
    // The second host said goodbye at its end: the game and its supervisor end cleanly.
    let out = wait_with_watchdog(c_game, Duration::from_secs(30));
    let gerr = stderr(&out);
    assert!(second.status.success(), "{err}\nthe game: {gerr}");
    assert!(
        stat(&err, "frames queued") >= 90,
        "the C game must have come back to the new host:\n{err}\nthe game: {gerr}"
    );
    assert!(out.status.success(), "{gerr}");
    assert!(gerr.contains("reconnecting to the host"), "{gerr}");
}

#[test]
fn the_rust_example_game_streams_too() {
    let dir = TempDir::new("sdk-bars");
    let example = Path::new(bin()).parent().unwrap().join("examples/bars");
    assert!(
        example.exists(),
        "{} is missing: cargo build -p crosscast-sdk --example bars",
        example.display()
    );
    let example = example.display().to_string();
    let out = stream_command(&dir.0, "30", "3", &[], &[&example]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let host = HostSummary::parse(&err);
    assert_eq!(host.frames_out, 90, "{err}");
    assert!(host.queued >= 85, "{host:?}\n{err}");
    assert_eq!(stat(&err, "gaps"), 0, "{err}");
    assert!(stat(&err, "audio blocks") >= 250, "{err}");
}

#[test]
fn a_gl_game_streams_through_the_asynchronous_readback() {
    let dir = TempDir::new("sdk-gl");
    let example = Path::new(bin()).parent().unwrap().join("examples/gl_game");
    assert!(
        example.exists(),
        "{} is missing: cargo build -p crosscast-gl --example gl_game",
        example.display()
    );
    let example = example.display().to_string();
    // The game stops itself after 3.5 s, so it prints its figures before the host ends.
    let out = stream_command(&dir.0, "30", "4", &[], &[&example, "3.5"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let host = HostSummary::parse(&err);
    assert_eq!(host.frames_out, 120, "{err}");
    assert!(host.queued >= 95, "{host:?}\n{err}");
    // The game's own count: what it queued is what the host received, and its readback ring
    // (which drops a frame rather than wait when every copy is still in flight) kept up.
    let line = err
        .lines()
        .find(|l| l.contains("gl-game: "))
        .unwrap_or_else(|| panic!("no figures from the GL game: {err}"));
    assert_eq!(stat(line, "queued"), host.queued, "{line}\n{err}");
    let dropped = stat(line, "dropped");
    assert!(
        dropped <= 5,
        "the readback ring dropped {dropped} frames: {line}"
    );
    let frames = media::gray_frames(&dir.path("r.mp4"), 320, 240);
    check_bar(&frames[..100], 50);
}

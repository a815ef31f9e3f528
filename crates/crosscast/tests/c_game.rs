//! A game written in C from `docs/protocol.md` alone (`docs/examples/minimal_game.c`) streams
//! through the real `crosscast host --listen`: the socket name, the handshake and its HMACs, the
//! memfd checks, the frame stamps and the audio blocks the document describes are the ones the
//! host accepts. A change to the protocol that the document does not follow fails here.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Builds the example game with the system C compiler (the one Rust links with).
fn build_c_game(dir: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/minimal_game.c");
    let exe = dir.join("minimal_game");
    let out = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&source)
        .arg("-lpthread")
        .output()
        .expect("run cc (the C compiler Rust links with)");
    assert!(
        out.status.success(),
        "{} does not compile:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The number after `label` in the C game's summary line.
fn game_stat(line: &str, label: &str) -> u64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("'{label}' not in {line:?}"));
    line[at + label.len()..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after '{label}' in {line:?}"))
}

#[test]
fn a_c_game_written_from_the_protocol_document_streams_through_the_host() {
    let dir = TempDir::new("c-game");
    let game = build_c_game(&dir.0);
    let key = dir.path("game.key");
    let out = run(
        &["keygen", key.to_str().unwrap()],
        &dir.0,
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "keygen: {}", stderr(&out));
    let (app, user) = ("c-game-test", "alice");

    let host = spawn(
        &[
            "host",
            "--listen",
            "--key-file",
            key.to_str().unwrap(),
            "--app-id",
            app,
            "--user-id",
            user,
            "--no-encode",
            "--verify",
            "--preview",
            "none",
            "--fps",
            "50",
            "--seconds",
            "6",
        ],
        &dir.0,
    );
    // The C game connects once, without retrying: give the host time to bind its socket.
    let mut game_out = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let child = Command::new(&game)
            .args([key.to_str().unwrap(), app, user, "3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the C game");
        let out = wait_with_watchdog(child, Duration::from_secs(20));
        let err = stderr(&out);
        if err.contains("Connection refused") {
            continue; // not listening yet
        }
        game_out = Some(out);
        break;
    }
    let game_out =
        game_out.expect("the C game never found the host: is the socket name still derived as docs/protocol.md says?");
    let host_out = wait_with_watchdog(host, Duration::from_secs(30));
    let host_err = stderr(&host_out);
    let game_line = String::from_utf8_lossy(&game_out.stdout).into_owned();
    assert_eq!(
        game_out.status.code(),
        Some(0),
        "the C game failed: {}\nhost: {host_err}",
        stderr(&game_out)
    );
    assert!(host_out.status.success(), "host failed: {host_err}");

    // Every frame the C game queued was accepted, and every one the output took carries the
    // stamp the document describes.
    let queued = game_stat(&game_line, "queued");
    assert!(
        queued >= 50,
        "the C game queued only {queued} frames: {game_line}"
    );
    assert_eq!(stat(&host_err, "frames queued"), queued, "{host_err}");
    assert_eq!(
        stat(&host_err, "bad"),
        0,
        "stamps failed to verify: {host_err}"
    );
    assert!(stat(&host_err, "stamps ok") > 0, "{host_err}");
    // Every audio block arrived, back to back by its timestamps.
    let blocks = game_stat(&game_line, "audio");
    assert_eq!(stat(&host_err, "audio blocks"), blocks, "{host_err}");
    assert_eq!(stat(&host_err, "gaps"), 0, "{host_err}");
    assert_eq!(stat(&host_err, "overlaps"), 0, "{host_err}");
    // The host gave slots back: the ownership rules agree on both sides.
    assert!(game_stat(&game_line, "released") > 0, "{game_line}");
    assert!(
        host_err.contains("peer closed the session: goodbye (Normal)"),
        "the C game's goodbye was not understood: {host_err}"
    );
}

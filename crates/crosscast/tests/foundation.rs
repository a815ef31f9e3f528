//! Issue 2 with real processes: `crosscast live` spawns the real game (sandboxed), frames and
//! audio cross the real socket and shared memory, and the host verifies every frame's stamp.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn thirty_seconds_of_verified_frames_and_gapless_audio() {
    let dir = TempDir::new("verify");
    let out = run(
        &[
            "live",
            "--no-encode",
            "--verify",
            "--policy",
            "fifo",
            "--seconds",
            "30",
            "--size",
            "320x240",
        ],
        &dir.0,
        Duration::from_secs(120),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(stat(&err, "stamps ok") >= 600, "{err}");
    assert_eq!(stat(&err, " bad"), 0, "{err}");
    // 30 s of 10 ms blocks, continuous: no gap, overlap or sequence skip on the host.
    assert!(stat(&err, "audio blocks") >= 2900, "{err}");
    assert_eq!(stat(&err, "(gaps"), 0, "{err}");
    assert_eq!(stat(&err, "overlaps"), 0, "{err}");
    assert!(
        err.contains("seccomp: enforced"),
        "the game reports its sandbox:\n{err}"
    );
}

#[test]
fn resize_mid_stream_keeps_frames_verified() {
    let dir = TempDir::new("resize");
    let out = run(
        &[
            "live",
            "--no-encode",
            "--verify",
            "--seconds",
            "4",
            "--size",
            "320x240",
            "--",
            "--resize-after",
            "60",
            "--resize-to",
            "640x360",
        ],
        &dir.0,
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stat(&err, "configs"), 2, "{err}");
    assert_eq!(stat(&err, " bad"), 0, "{err}");
    assert!(stat(&err, "stamps ok") >= 150, "{err}");
}

#[test]
fn mailbox_drops_are_counted_and_fifo_loses_nothing() {
    let dir = TempDir::new("policy");
    // The host takes 10 frames a second from a game drawing 60.
    let mailbox = run(
        &[
            "live",
            "--no-encode",
            "--verify",
            "--fps",
            "10",
            "--game-fps",
            "60",
            "--seconds",
            "3",
            "--size",
            "320x240",
        ],
        &dir.0,
        Duration::from_secs(60),
    );
    let err = stderr(&mailbox);
    assert!(mailbox.status.success(), "{err}");
    assert!(
        stat(&err, "dropped") >= 100,
        "mailbox must replace unacquired frames:\n{err}"
    );
    assert!(
        stat(&err, "game: rendered") >= 150,
        "the game must keep its own rate:\n{err}"
    );

    let fifo = run(
        &[
            "live",
            "--no-encode",
            "--verify",
            "--policy",
            "fifo",
            "--fps",
            "10",
            "--game-fps",
            "60",
            "--seconds",
            "3",
            "--size",
            "320x240",
        ],
        &dir.0,
        Duration::from_secs(60),
    );
    let err = stderr(&fifo);
    assert!(fifo.status.success(), "{err}");
    assert_eq!(stat(&err, "dropped"), 0, "{err}");
    assert_eq!(stat(&err, " bad"), 0, "{err}");
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("keygen");
    let key = dir.path("k");
    let first = run(
        &["keygen", key.to_str().unwrap()],
        &dir.0,
        Duration::from_secs(10),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));
    let again = run(
        &["keygen", key.to_str().unwrap()],
        &dir.0,
        Duration::from_secs(10),
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("cannot create"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn bad_arguments_get_clear_errors() {
    let dir = TempDir::new("args");
    for (args, needle) in [
        (vec!["live", "--size", "100"], "WIDTHxHEIGHT"),
        (vec!["live", "--fps", "0"], "frame rate"),
        (vec!["live", "--pattern", "nope"], "nope"),
        (vec!["game"], "not started by a crosscast host"),
    ] {
        let out = run(&args, &dir.0, Duration::from_secs(20));
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

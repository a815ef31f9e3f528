//! Issue 2 with real processes: `crosscast live` spawns the real game (sandboxed), frames and
//! audio cross the real socket and shared memory, and the host verifies every frame's stamp.

mod common;
#[path = "../../media/tests/common/mod.rs"]
mod media;
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
    let host = HostSummary::parse(&err);
    let game = GameSummary::parse(&err);
    let context = format!("{host:?}\n{game:?}\n{err}");
    // 30 s at 60 fps is 1800 output ticks. Each shows a new, verified game frame, except the
    // frame times the game itself skipped (descheduled for over a period on a loaded machine:
    // its own count, not the pipeline's loss) and at most 2 frames that came after their
    // tick (shown on the next one). Nothing else may repeat.
    assert_eq!(host.frames_out, 1800, "{context}");
    assert_eq!(host.stamps_ok + host.repeated, 1800, "{context}");
    assert!(host.repeated <= game.skipped + 2, "{context}");
    assert_eq!(host.stamps_bad, 0, "{context}");
    // fifo: every frame the game queued reached the host (but one it may have sent as the
    // host was closing), nothing was replaced, every sequence gap was the game's own skip,
    // and every frame taken was verified.
    assert!(
        host.queued <= game.rendered && game.rendered - host.queued <= 1,
        "{context}"
    );
    assert_eq!(host.dropped, 0, "{context}");
    assert!(host.skipped <= game.skipped, "{context}");
    assert_eq!(host.stamps_ok, host.acquired, "{context}");
    // 30 s of 10 ms blocks, continuous: no gap, overlap or sequence skip on the host.
    assert!(host.audio_blocks >= 2990, "{context}");
    assert_eq!((host.audio_gaps, host.audio_overlaps), (0, 0), "{context}");
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
fn mailbox_replaces_frames_the_host_has_not_taken_and_counts_them() {
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
    let host = HostSummary::parse(&err);
    assert!(
        host.dropped >= 100,
        "mailbox must replace unacquired frames:\n{err}"
    );
    assert!(
        GameSummary::parse(&err).rendered >= 150,
        "the game must keep its own rate:\n{err}"
    );
}

#[test]
fn fifo_shows_and_encodes_every_frame_the_game_queued() {
    let dir = TempDir::new("fifo");
    // The host takes 10 frames a second from a game that would draw 60: under fifo the game
    // waits for a free slot instead of having frames replaced. The game stops after 3 s and
    // the host records on to 4 s, so the game's last frames are in before the summary.
    let fifo = run(
        &[
            "live",
            "--verify",
            "--policy",
            "fifo",
            "--fps",
            "10",
            "--game-fps",
            "60",
            "--seconds",
            "4",
            "--size",
            "320x240",
            "--preset",
            "ultrafast",
            "--out",
            "fifo.flv",
            "--no-restart",
            "--",
            "--seconds",
            "3",
        ],
        &dir.0,
        Duration::from_secs(60),
    );
    let err = stderr(&fifo);
    assert!(fifo.status.success(), "{err}");
    let host = HostSummary::parse(&err);
    let game = GameSummary::parse(&err);
    let context = format!("{host:?}\n{game:?}\n{err}");
    // Every frame the game queued reached the host; fifo never replaces one.
    assert_eq!(host.queued, game.rendered, "{context}");
    assert_eq!((host.dropped, host.stale), (0, 0), "{context}");
    // ... and the output clock took them all, in order, including those still queued when the
    // game said goodbye (the session ends on the first tick that finds nothing new).
    assert_eq!(
        host.acquired, host.queued,
        "frames queued but never taken: {context}"
    );
    // A gap in the sequence the host took is a frame lost between game and output, unless
    // the game made the gap itself (it skips frame times while it waits for a free slot).
    assert!(host.skipped <= game.skipped, "{context}");
    // Every taken frame was verified, the first (taken when the stream starts) included.
    assert_eq!(
        (host.stamps_ok, host.stamps_bad),
        (host.acquired, 0),
        "{context}"
    );
    // The encoder got one frame per tick (4 s at 10 fps), each new game frame once, and lost
    // none (fifo makes it block rather than drop); the recording holds exactly those frames.
    assert_eq!(host.frames_out, 40, "{context}");
    assert_eq!(host.frames_out - host.repeated, host.acquired, "{context}");
    assert_eq!(
        (host.encoded, host.encoder_dropped),
        (Some(host.frames_out), Some(0)),
        "{context}"
    );
    let recorded = media::probe(&dir.path("fifo.flv")).video_frames;
    assert_eq!(recorded, host.frames_out, "{context}");
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

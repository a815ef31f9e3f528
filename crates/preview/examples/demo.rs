//! Try the preview without the rest of crosscast: an animated test frame with the overlay,
//! in a window (or `png:DIR`), comments from a file or stdin.
//!
//! ```sh
//! cargo run -p crosscast-preview --release --example demo -- chat.jsonl window
//! echo '{"user":"alice","text":"hello 你好"}' >> chat.jsonl
//! ```
//! Arguments: comments path (`-` for stdin, default `-`), preview target (default from the
//! environment), seconds to run (default until the window is closed).

use std::time::{Duration, Instant};

use crosscast_preview::{
    CommentFeed, CommentSource, FeedLimits, LiveStatus, Overlay, Preview, PreviewError,
    PreviewTarget,
};

fn main() -> Result<(), PreviewError> {
    let mut args = std::env::args().skip(1);
    let src = match args.next().as_deref() {
        None | Some("-") => CommentSource::Stdin,
        Some(p) => CommentSource::File(p.into()),
    };
    let target = match args.next() {
        Some(t) => t.parse()?,
        None => PreviewTarget::default_for_env(),
    };
    let run_for = args
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);

    let feed = CommentFeed::start(src, FeedLimits::default())?;
    let mut overlay = Overlay::new()?;
    let preview = Preview::start(target, "crosscast preview demo")?;
    let (w, h) = (1280u32, 720u32);
    let mut game = vec![0u8; (w * h * 4) as usize];
    let start = Instant::now();
    let frame_time = Duration::from_millis(33);
    let mut n = 0u64;
    while !preview.closed() && run_for.is_none_or(|d| start.elapsed() < d) {
        n += 1;
        // A moving diagonal gradient stands in for the game.
        for y in 0..h {
            for x in 0..w {
                let o = ((y * w + x) * 4) as usize;
                let v = (x + y + n as u32 * 4) % 512;
                let v = if v > 255 { 511 - v } else { v } as u8;
                game[o..o + 4].copy_from_slice(&[v / 3, v / 2, v, 255]);
            }
        }
        for warning in feed.drain_warnings() {
            eprintln!("{warning}");
        }
        let status = LiveStatus {
            state: "REC".into(),
            elapsed: start.elapsed(),
            bitrate_kbps: 0.0,
            dropped_frames: 0,
        };
        let out = overlay.compose(
            &game,
            w,
            h,
            (w * 4) as usize,
            &feed.snapshot(),
            &status,
            Instant::now(),
        );
        preview.submit(out, w, h);
        std::thread::sleep(frame_time);
    }
    let stats = feed.stats();
    eprintln!(
        "comments: {} accepted, {} dropped by the rate limit, {} malformed",
        stats.accepted, stats.rate_dropped, stats.malformed
    );
    preview.stop()
}

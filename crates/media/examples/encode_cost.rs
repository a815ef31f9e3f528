//! Prints the CPU cost per output frame of a live encode to a local FLV: the caller's share
//! (RGBA → I420) and the whole process (caller + encoder + x264 threads).
//!
//! `cargo run --release -p crosscast-media --example encode_cost -- 1280x720 60 10 ultrafast`

// A measuring tool: printing the figure is its whole job.
#![allow(clippy::print_stdout)]

use crosscast_media::{EncoderConfig, LiveEncoder, OutputSpec};
use rustix::time::{clock_gettime, ClockId};
use std::time::Instant;

fn cpu(clock: ClockId) -> f64 {
    let t = clock_gettime(clock);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let size = args.get(1).map_or("1280x720", String::as_str);
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .ok_or("size must be WxH")?;
    let fps: u32 = args.get(2).map_or(Ok(60), |s| s.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(10), |s| s.parse())?;
    let preset = args.get(4).map_or("ultrafast", String::as_str);

    // A few distinct frames, generated up front so their cost is not counted.
    let frames: Vec<Vec<u8>> = (0..8u32)
        .map(|k| {
            let mut f = vec![255u8; (w * h * 4) as usize];
            for (i, px) in f.chunks_exact_mut(4).enumerate() {
                let (x, y) = (i as u32 % w, i as u32 / w);
                px[0] = (x + k * 9) as u8;
                px[1] = (y + k * 5) as u8;
                px[2] = ((x ^ y) + k) as u8;
            }
            f
        })
        .collect();
    // For a like-for-like baseline: `CC_DUMP_FRAMES=f.raw` writes the 8 frames for
    // `ffmpeg -stream_loop N -f rawvideo -pix_fmt rgba -s WxH -i f.raw ...` and exits.
    if let Some(path) = std::env::var_os("CC_DUMP_FRAMES") {
        std::fs::write(path, frames.concat())?;
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut cfg = EncoderConfig::new(w, h, fps);
    cfg.preset = preset.into();
    cfg.block_when_full = true;
    let mut enc = LiveEncoder::start(cfg, &[OutputSpec::File(dir.path().join("cost.flv"))])?;
    let total = u64::from(fps) * seconds;
    let samples_per_frame = 48_000 / u64::from(fps);
    let silence = vec![0.0f32; samples_per_frame as usize * 2];
    let (p0, t0, wall) = (
        cpu(ClockId::ProcessCPUTime),
        cpu(ClockId::ThreadCPUTime),
        Instant::now(),
    );
    for i in 0..total {
        enc.push_video(&frames[(i % 8) as usize], (w * 4) as usize, i)?;
        enc.push_audio(&silence, i * samples_per_frame)?;
    }
    let caller = cpu(ClockId::ThreadCPUTime) - t0;
    let stats = enc.finish()?;
    let process = cpu(ClockId::ProcessCPUTime) - p0;
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "{w}x{h}@{fps} {preset}: {total} frames in {wall:.2} s ({:.0} fps): process CPU {:.2} ms/frame, \
         caller thread {:.3} ms/frame, {} bytes",
        total as f64 / wall,
        process * 1000.0 / total as f64,
        caller * 1000.0 / total as f64,
        stats.bytes_written
    );
    Ok(())
}

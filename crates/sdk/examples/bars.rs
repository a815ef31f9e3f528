//! The smallest Rust game on the SDK: a white bar moving over dark blue and a 440 Hz tone, as
//! `examples/c/game.c` draws in C. Run it with `crosscast live -- target/debug/examples/bars`.

use std::time::Duration;

use crosscast_sdk::{
    monotonic_ns, AudioConfig, ConnectOptions, Connection, FrameRate, Game, Pacer, SampleFormat,
    SdkError, EXIT_HOST_LOST,
};

fn draw(px: &mut [u8], width: usize, stride: usize, n: u64) {
    let bar = (n as usize * 8) % (width - 32);
    for row in px.chunks_exact_mut(stride) {
        for (x, p) in row[..width * 4].chunks_exact_mut(4).enumerate() {
            let white = (bar..bar + 32).contains(&x);
            p.copy_from_slice(if white {
                &[255, 255, 255, 255]
            } else {
                &[20, 30, 90, 255]
            });
        }
    }
}

fn run() -> Result<(), SdkError> {
    let game = Game::connect(Connection::Spawned, &ConnectOptions::default())?;
    let mut audio = game.audio(AudioConfig {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::F32,
    })?;
    game.want_input(true)?;
    let t0 = monotonic_ns();
    let mut pacer = Pacer::new(FrameRate::integer(30), t0);
    let (mut sent, mut events) = (0u64, Vec::new());
    let mut block = vec![0f32; audio.frames_per(10) * 2];
    loop {
        let tick = pacer.wait(); // frame n's time, from n; skips ahead when late
        game.take_input(&mut events); // the streamer's keys and pointer, oldest first
        events.clear();
        // Every 10 ms block due by now, stamped from its sample count.
        while audio.pts_of(t0, sent) <= tick.pts_ns {
            for (i, f) in block.chunks_exact_mut(2).enumerate() {
                let t = (sent + i as u64) as f64 / 48_000.0;
                let v = (0.25 * (std::f64::consts::TAU * 440.0 * t).sin()) as f32;
                f.fill(v);
            }
            audio.send(&block, audio.pts_of(t0, sent))?;
            sent += (block.len() / 2) as u64;
        }
        let Some(mut frame) = game.dequeue(Duration::from_millis(100))? else {
            continue; // the host is behind: keep the pace
        };
        let (width, stride) = (
            frame.config().width as usize,
            frame.config().stride as usize,
        );
        draw(frame.pixels(), width, stride, tick.n);
        game.queue(frame, tick.n + 1, tick.pts_ns)?;
    }
}

fn main() {
    match run() {
        Ok(()) | Err(SdkError::HostGone { goodbye: true }) => {}
        Err(e) if e.host_lost() => std::process::exit(EXIT_HOST_LOST),
        Err(e) => {
            eprintln!("bars: {e}");
            std::process::exit(1);
        }
    }
}

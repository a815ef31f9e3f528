//! A GL-rendered game streamed through crosscast with the asynchronous readback: it renders
//! each frame into its own FBO on the GPU (Mesa's llvmpipe through surfaceless EGL here),
//! `Readback::start`s the copy, and queues a slot only when the copy's fence has signalled,
//! so the render thread never waits for the GPU.
//!
//! ```text
//! crosscast live -- target/release/examples/gl_game [SECONDS]      streamed
//! target/release/examples/gl_game --no-stream [SECONDS]             the same frames, not streamed
//! ```
//!
//! At the end it prints the render thread's CPU time per frame (median and p99), the figure
//! `crosscast`'s README compares with and without streaming. The picture: a shader background
//! with a white bar moving 8 pixels a frame (the tests find it in the decoded stream).
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use crosscast_gl::{Readback, Start, DEFAULT_DEPTH};
use crosscast_sdk::{
    monotonic_ns, ConnectOptions, Connection, Frame, FrameRate, Game, Pacer, SandboxLevel,
    SdkError, EXIT_HOST_LOST,
};
use glow::HasContext;

const FPS: u32 = 30;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Draws frame `n`: a colour that changes with time, and the bar (GL's rows go bottom-up;
/// the bar spans the whole height, so the flip does not matter for it).
fn draw(g: &common::Gl, width: i32, height: i32, n: u64) {
    let t = n as f32 / FPS as f32;
    let bg = [
        (40.0 + 30.0 * t.sin()) as u8,
        (40.0 + 30.0 * (t * 1.3).cos()) as u8,
        110,
        255,
    ];
    let bar = ((n * 8) % (width as u64 - 32)) as i32;
    g.paint(bg, [255, 255, 255, 255], (bar, 0, 32, height));
}

struct Figures {
    cpu: Vec<Duration>,
    queued: u64,
    dropped: u64,
}

fn run(stream: bool, seconds: f64) -> Result<Figures, SdkError> {
    let game = if stream {
        // Mesa needs to read its drivers after the sandbox is up: reading stays allowed.
        let opts = ConnectOptions {
            sandbox: SandboxLevel::Strict,
            ..ConnectOptions::default()
        };
        Some(Game::connect(Connection::Spawned, &opts)?)
    } else {
        None
    };
    let (width, height) = game
        .as_ref()
        .map_or((1280, 720), |g| (g.surface().width, g.surface().height));
    let g = common::Gl::new();
    let fbo = g.framebuffer(width as i32, height as i32);
    let mut readback = Readback::new(&g.gl, width, height, DEFAULT_DEPTH)
        .map_err(|e| SdkError::Invalid(e.to_string()))?;
    let t0 = monotonic_ns();
    let mut pacer = Pacer::new(FrameRate::integer(FPS), t0);
    let end = t0 + (seconds * 1e9) as u64;
    let mut slot: Option<Frame> = None;
    let mut figures = Figures {
        cpu: Vec::new(),
        queued: 0,
        dropped: 0,
    };
    loop {
        let tick = pacer.wait();
        if tick.pts_ns >= end {
            break;
        }
        let cpu0 = thread_cpu();
        draw(&g, width as i32, height as i32, tick.n);
        if let Some(game) = &game {
            if let Start::Dropped(_) = readback
                .start(&g.gl, Some(fbo), (tick.n, tick.pts_ns))
                .map_err(|e| SdkError::Invalid(e.to_string()))?
            {
                figures.dropped += 1;
            }
            // Every copy that has finished goes into a slot and to the host; a slot taken
            // while none had finished waits for the next one.
            loop {
                if slot.is_none() {
                    slot = game.dequeue(Duration::ZERO)?;
                }
                let Some(frame) = slot.as_mut() else { break };
                let stride = frame.config().stride as usize;
                let done = readback
                    .poll(&g.gl, frame.pixels(), stride)
                    .map_err(|e| SdkError::Invalid(e.to_string()))?;
                let Some((n, pts)) = done else { break };
                if let Some(frame) = slot.take() {
                    game.queue(frame, n + 1, pts)?;
                    figures.queued += 1;
                }
            }
        } else {
            // SAFETY: the context is current on this thread (common::Gl::new).
            unsafe { g.gl.flush() };
        }
        figures.cpu.push(thread_cpu() - cpu0);
    }
    readback.delete(&g.gl);
    if let Some(game) = game {
        game.close();
    }
    Ok(figures)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stream = !args.iter().any(|a| a == "--no-stream");
    let seconds = args
        .iter()
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(10.0);
    match run(stream, seconds) {
        Ok(mut f) => {
            f.cpu.sort();
            let q = |p: f64| f.cpu[((f.cpu.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
            println!(
                "gl-game: {} frames, render thread cpu per frame median {:.3} ms p99 {:.3} ms, \
                 queued {}, dropped {} ({})",
                f.cpu.len(),
                q(0.5),
                q(0.99),
                f.queued,
                f.dropped,
                if stream { "streamed" } else { "not streamed" }
            );
        }
        Err(SdkError::HostGone { goodbye: true }) => {}
        Err(e) if e.host_lost() => std::process::exit(EXIT_HOST_LOST),
        Err(e) => {
            eprintln!("gl-game: {e}");
            std::process::exit(1);
        }
    }
}

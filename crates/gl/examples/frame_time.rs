//! The game's frame time with and without streaming, on the render thread.
//!
//! Renders a moderately heavy 1280x720 frame (a fullscreen fragment shader) into an FBO and
//! times, per frame, what the render thread spends in:
//!
//! * `render`: drawing the frame and `glFlush` (no streaming);
//! * `async`:  drawing + `Readback::start` + `poll` into a slot-sized buffer;
//! * `sync`:   drawing + a synchronous `glReadPixels` into memory + the flipped copy into the
//!   slot-sized buffer: the stall this crate avoids.
//!
//! Run (release, Mesa's llvmpipe or any GL ES 3 through surfaceless EGL):
//!
//! ```text
//! cargo run --release -p crosscast-gl --example frame_time -- [frames] [runs] [iterations]
//! ```
//!
//! `frames` per mode and run (default 300), `runs` (default 3), `iterations` of the shader's
//! loop (default 3, about 20 ms a frame on llvmpipe with 2 cores; the frame's weight). Prints median and p99 of wall time and thread CPU
//! time per frame, and the ratios to `render`.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use crosscast_gl::{Readback, Start, DEFAULT_DEPTH};
use glow::HasContext;

const WIDTH: i32 = 1280;
const HEIGHT: i32 = 720;

const VERTEX: &str = "#version 300 es
void main() {
    // One triangle that covers the viewport, from the vertex index alone.
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}";

const FRAGMENT: &str = "#version 300 es
precision highp float;
uniform float t;
uniform int iterations;
out vec4 colour;
void main() {
    vec2 uv = gl_FragCoord.xy / vec2(1280.0, 720.0);
    vec3 c = vec3(0.0);
    for (int i = 0; i < iterations; i++) {
        float f = float(i) * 0.37 + t;
        c += 0.5 + 0.5 * sin(vec3(uv.x * 9.0 + f, uv.y * 7.0 - f, uv.x * uv.y * 5.0 + f * 1.3));
    }
    colour = vec4(c / float(iterations), 1.0);
}";

/// One streaming mode of the benchmark.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Render,
    Async,
    Sync,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Render => "render",
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }
}

/// Per-frame samples of one mode over all runs.
#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The `q` quantile of `v` (sorted in place).
fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Compiles and links the shader program and returns it with its uniforms.
fn program(gl: &glow::Context) -> (glow::Program, Option<glow::UniformLocation>) {
    // SAFETY: the context is current on this thread (common::Gl::new); objects stay on it.
    unsafe {
        let program = gl.create_program().expect("program");
        for (kind, source) in [
            (glow::VERTEX_SHADER, VERTEX),
            (glow::FRAGMENT_SHADER, FRAGMENT),
        ] {
            let shader = gl.create_shader(kind).expect("shader");
            gl.shader_source(shader, source);
            gl.compile_shader(shader);
            assert!(
                gl.get_shader_compile_status(shader),
                "{}",
                gl.get_shader_info_log(shader)
            );
            gl.attach_shader(program, shader);
        }
        gl.link_program(program);
        assert!(
            gl.get_program_link_status(program),
            "{}",
            gl.get_program_info_log(program)
        );
        let t = gl.get_uniform_location(program, "t");
        (program, t)
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let frames = args.next().unwrap_or(300);
    let runs = args.next().unwrap_or(3);
    let iterations = args.next().unwrap_or(3);

    let g = common::Gl::new();
    let gl = &g.gl;
    println!("GL: {}", g.renderer());
    let fbo = g.framebuffer(WIDTH, HEIGHT);
    let (program, t) = program(gl);
    // SAFETY: the context is current on this thread; the program and VAO were made on it.
    unsafe {
        gl.use_program(Some(program));
        let iters = gl.get_uniform_location(program, "iterations");
        gl.uniform_1_i32(iters.as_ref(), iterations as i32);
        let vao = gl.create_vertex_array().expect("vertex array");
        gl.bind_vertex_array(Some(vao));
    }
    let draw = |n: usize| {
        // SAFETY: as above; draws into the bound FBO.
        unsafe {
            gl.uniform_1_f32(t.as_ref(), n as f32 * 0.01);
            gl.draw_arrays(glow::TRIANGLES, 0, 3);
        }
    };
    let row = WIDTH as usize * 4;
    let mut slot = vec![0u8; row * HEIGHT as usize];
    let mut scratch = vec![0u8; row * HEIGHT as usize];
    let mut readback = Readback::new(gl, WIDTH as u32, HEIGHT as u32, DEFAULT_DEPTH).unwrap();
    let modes = [Mode::Render, Mode::Async, Mode::Sync];
    let mut samples: Vec<Samples> = modes.iter().map(|_| Samples::default()).collect();
    let mut dropped = 0u64;
    let mut n = 0usize;

    for run in 0..runs {
        for (m, &mode) in modes.iter().enumerate() {
            // Warm-up frames settle the pipeline; they are not counted.
            for i in 0..frames + 30 {
                n += 1;
                let (wall0, cpu0) = (Instant::now(), thread_cpu());
                draw(n);
                match mode {
                    // SAFETY: the context is current on this thread.
                    Mode::Render => unsafe { gl.flush() },
                    Mode::Async => {
                        if let Start::Dropped(_) = readback.start(gl, Some(fbo), n).unwrap() {
                            dropped += 1;
                        }
                        while readback.poll(gl, &mut slot, row).unwrap().is_some() {}
                    }
                    Mode::Sync => {
                        // SAFETY: the context is current; the slice holds a whole frame with
                        // the default pack state (tight RGBA8 rows).
                        unsafe {
                            gl.read_pixels(
                                0,
                                0,
                                WIDTH,
                                HEIGHT,
                                glow::RGBA,
                                glow::UNSIGNED_BYTE,
                                glow::PixelPackData::Slice(Some(&mut scratch)),
                            );
                        }
                        for (y, src) in scratch.chunks_exact(row).enumerate() {
                            let at = (HEIGHT as usize - 1 - y) * row;
                            slot[at..at + row].copy_from_slice(src);
                        }
                    }
                }
                if i >= 30 {
                    samples[m].wall.push(wall0.elapsed());
                    samples[m].cpu.push(thread_cpu() - cpu0);
                }
            }
            // Drain between modes so one mode's queued work does not land in the next one.
            while readback.finish(gl, &mut slot, row).unwrap().is_some() {}
            g.finish();
        }
        println!("run {} of {runs} done", run + 1);
    }

    let stats = readback.stats();
    println!(
        "{frames} frames x {runs} runs per mode at {WIDTH}x{HEIGHT}, shader loop {iterations}"
    );
    println!(
        "async readback: started {}, delivered {}, dropped {} (ring full; {dropped} seen), \
         delay mean {:.2} max {} frames",
        stats.started,
        stats.delivered,
        stats.dropped,
        stats.delay_mean().unwrap_or(f64::NAN),
        stats.delay_max
    );
    println!(
        "{:<7} {:>9} {:>11} {:>9} {:>10} {:>8}   ratio to render (wall mean, median, p99)",
        "mode", "wall mean", "wall median", "wall p99", "cpu median", "cpu p99"
    );
    let mut base = (0.0, 0.0, 0.0);
    for (m, &mode) in modes.iter().enumerate() {
        let s = &mut samples[m];
        let mean = ms(s.wall.iter().sum::<Duration>()) / s.wall.len() as f64;
        let (wm, wp) = (quantile(&mut s.wall, 0.5), quantile(&mut s.wall, 0.99));
        let (cm, cp) = (quantile(&mut s.cpu, 0.5), quantile(&mut s.cpu, 0.99));
        if mode == Mode::Render {
            base = (mean, ms(wm), ms(wp));
        }
        println!(
            "{:<7} {:>6.2} ms {:>8.2} ms {:>6.2} ms {:>7.2} ms {:>5.2} ms   {:.2}x, {:.2}x, {:.2}x",
            mode.name(),
            mean,
            ms(wm),
            ms(wp),
            ms(cm),
            ms(cp),
            mean / base.0,
            ms(wm) / base.1,
            ms(wp) / base.2
        );
    }
    let _ = readback.delete(gl);
}

//! Renders N frames of a pattern back to back and mixes the matching audio, for profiling
//! (`perf stat`/`perf record`): `cargo run --release -p crosscast-demo --example frames -- aquarium 1280 720 600`.

use std::error::Error;
use std::hint::black_box;

use crosscast_demo::{Mixer, Pattern, Scene};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pattern, w, h, n] = args.as_slice() else {
        return Err("usage: frames PATTERN WIDTH HEIGHT FRAMES".into());
    };
    let pattern: Pattern = pattern.parse()?;
    let (w, h, n): (u32, u32, u64) = (w.parse()?, h.parse()?, n.parse()?);
    let mut scene = Scene::new(pattern, w, h)?;
    let mut mixer = Mixer::new(pattern, 48_000, 2)?;
    let mut rgba = vec![0u8; w as usize * h as usize * 4];
    let mut audio = vec![0f32; 800 * 2];
    for i in 0..n {
        scene.render(
            black_box(&mut rgba),
            w as usize * 4,
            i,
            i * 1_000_000_000 / 60,
        )?;
        mixer.fill(black_box(&mut audio), i * 800);
    }
    Ok(())
}

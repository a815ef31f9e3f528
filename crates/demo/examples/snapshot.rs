//! Renders one frame of a pattern to a binary PPM file, for looking at the scenes by eye:
//! `cargo run -p crosscast-demo --example snapshot -- aquarium 1280 720 12.5 out.ppm`.

use std::error::Error;
use std::io::Write;

use crosscast_demo::{Pattern, Scene};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pattern, w, h, secs, out] = args.as_slice() else {
        return Err("usage: snapshot PATTERN WIDTH HEIGHT SECONDS OUT.ppm".into());
    };
    let pattern: Pattern = pattern.parse()?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    let t_ns = (secs.parse::<f64>()? * 1e9) as u64;
    let mut scene = Scene::new(pattern, w, h)?;
    let mut rgba = vec![0u8; w as usize * h as usize * 4];
    scene.render(&mut rgba, w as usize * 4, t_ns * 60 / 1_000_000_000, t_ns)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    write!(file, "P6\n{w} {h}\n255\n")?;
    for px in rgba.chunks_exact(4) {
        file.write_all(&px[..3])?;
    }
    file.flush()?;
    Ok(())
}

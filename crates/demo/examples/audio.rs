//! Writes a pattern's audio to a 48 kHz stereo 16-bit WAV file, for listening to the mixer:
//! `cargo run -p crosscast-demo --example audio -- aquarium 20 out.wav`.

use std::error::Error;
use std::io::Write;

use crosscast_demo::{Mixer, Pattern};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pattern, secs, out] = args.as_slice() else {
        return Err("usage: audio PATTERN SECONDS OUT.wav".into());
    };
    let pattern: Pattern = pattern.parse()?;
    let rate = 48_000u32;
    let frames = (secs.parse::<f64>()? * f64::from(rate)) as usize;
    let mut mixer = Mixer::new(pattern, rate, 2)?;
    let mut pcm = vec![0i16; frames * 2];
    // 10 ms blocks, as the game sends them.
    for (i, block) in pcm.chunks_mut(960).enumerate() {
        mixer.fill_i16(block, i as u64 * 480);
    }
    let data_len = u32::try_from(pcm.len() * 2)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    file.write_all(b"RIFF")?;
    file.write_all(&(36 + data_len).to_le_bytes())?;
    file.write_all(b"WAVEfmt ")?;
    file.write_all(&16u32.to_le_bytes())?;
    file.write_all(&1u16.to_le_bytes())?; // PCM
    file.write_all(&2u16.to_le_bytes())?;
    file.write_all(&rate.to_le_bytes())?;
    file.write_all(&(rate * 4).to_le_bytes())?;
    file.write_all(&4u16.to_le_bytes())?;
    file.write_all(&16u16.to_le_bytes())?;
    file.write_all(b"data")?;
    file.write_all(&data_len.to_le_bytes())?;
    for s in pcm {
        file.write_all(&s.to_le_bytes())?;
    }
    file.flush()?;
    Ok(())
}

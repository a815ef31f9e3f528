//! Issue 14 end to end: the game's own sound through the PulseAudio server the host runs for
//! it. Real clients nobody here wrote (paplay, SDL2's loopwave, GStreamer, ALSA's aplay) play
//! inside `crosscast live -- COMMAND`, next to a Wayland client for the picture, and the
//! recording's decoded audio is checked: frequency, level, duration, mixing, A/V sync.

mod common;
#[path = "../../media/tests/common/mod.rs"]
mod media;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A dir with `data/` (the game's data dir: the only host files the sandbox shows it).
fn game_dir(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let data = dir.path("data");
    std::fs::create_dir_all(&data).unwrap();
    (dir, data)
}

/// Writes `data/<name>` with ffmpeg from a lavfi audio source (`aevalsrc=…`), 16-bit PCM.
fn wav(data: &Path, name: &str, source: &str) -> String {
    let path = data.join(name);
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-c:a",
            "pcm_s16le",
        ])
        .arg(&path)
        .output()
        .expect("ffmpeg (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.display().to_string()
}

/// A sine of `freq` Hz at `amp` (full scale 1) for `secs`, at `rate` Hz with `channels`.
fn tone(data: &Path, name: &str, freq: u32, amp: f64, secs: f64, rate: u32, ch: u32) -> String {
    let expr = vec![format!("{amp}*sin(2*PI*{freq}*t)"); ch as usize].join("|");
    wav(data, name, &format!("aevalsrc='{expr}':s={rate}:d={secs}"))
}

/// Streams `script` (run by `sh -c` in the sandbox, beside `weston-simple-shm` for the
/// picture) for `seconds` at 30 fps; returns the host's stderr after checking it succeeded.
fn stream_with_picture(dir: &TempDir, seconds: &str, script: &str) -> String {
    let shm = find_program("weston-simple-shm", "weston");
    let data = dir.path("data").display().to_string();
    let full = format!("{shm} & sleep 1; {script}; sleep 30");
    let out = stream_command(
        &dir.0,
        "30",
        seconds,
        &["--game-data", &data],
        &["sh", "-c", &full],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    err
}

/// The first audio stream of a file, decoded by ffmpeg: its left channel at 48 kHz.
fn left_channel(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-f", "f32le", "-ac", "2", "-ar", "48000", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(8)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Amplitude of the `freq` Hz component of `x` (Goertzel over the whole slice).
fn amplitude_at(x: &[f32], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power.sqrt() / x.len() as f64
}

/// First and last sample (index) of the stretch where the `freq` Hz tone is at least `min`
/// loud, judged in 10 ms windows.
fn tone_span(x: &[f32], freq: f64, min: f64) -> Option<(usize, usize)> {
    let win = 480;
    let loud: Vec<usize> = (0..x.len() / win)
        .filter(|&i| amplitude_at(&x[i * win..(i + 1) * win], freq) >= min)
        .collect();
    Some((*loud.first()? * win, (*loud.last()? + 1) * win))
}

/// [`tone_span`] that must exist, with its length in seconds; `err` explains a failure.
fn tone_secs(x: &[f32], freq: f64, min: f64, err: &str) -> (usize, usize, f64) {
    let (a, b) = tone_span(x, freq, min).unwrap_or_else(|| panic!("no {freq} Hz tone\n{err}"));
    (a, b, (b - a) as f64 / 48_000.0)
}

/// Frequency from zero crossings (rising) over `x`.
fn crossing_frequency(x: &[f32]) -> f64 {
    let rising: Vec<usize> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (rising[0], rising[rising.len() - 1]);
    (rising.len() - 1) as f64 * 48_000.0 / (last - first) as f64
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn paplay_tone_is_on_the_stream_at_its_frequency_level_and_length() {
    let (dir, data) = game_dir("pulse-paplay");
    let file = tone(&data, "tone.wav", 440, 0.5, 2.0, 44_100, 2);
    let paplay = find_program("paplay", "pulseaudio-utils");
    let err = stream_with_picture(&dir, "5", &format!("{paplay} {file}"));
    assert!(
        err.contains("pulse: client 1 (\"paplay\") connected"),
        "{err}"
    );
    let left = left_channel(&dir.path("r.mp4"));
    let (a, b, secs) = tone_secs(&left, 440.0, 0.25, &err);
    assert!((secs - 2.0).abs() <= 0.03, "tone lasts {secs:.3} s\n{err}");
    let middle = &left[a + 24_000..b - 24_000];
    let f = crossing_frequency(middle);
    assert!((f - 440.0).abs() < 1.0, "{f:.2} Hz");
    // A 0.5 sine has an RMS of 0.354; AAC at the default bitrate keeps it within a few %.
    let level = rms(middle);
    assert!((level - 0.354).abs() < 0.02, "rms {level:.3}");
    // Outside the tone: silence (the host mixes nothing else in).
    assert!(rms(&left[..a.saturating_sub(4_800)]) < 0.002);
}

#[test]
fn two_clients_at_different_rates_are_mixed() {
    let (dir, data) = game_dir("pulse-two");
    let low = tone(&data, "low.wav", 440, 0.25, 3.0, 22_050, 1);
    let high = tone(&data, "high.wav", 1000, 0.25, 3.0, 96_000, 2);
    let paplay = find_program("paplay", "pulseaudio-utils");
    let err = stream_with_picture(
        &dir,
        "6",
        &format!("{paplay} {low} & {paplay} {high}; wait"),
    );
    let left = left_channel(&dir.path("r.mp4"));
    let (a, b, low_secs) = tone_secs(&left, 440.0, 0.15, &err);
    let (c, d, high_secs) = tone_secs(&left, 1000.0, 0.15, &err);
    for (name, secs) in [("440 Hz", low_secs), ("1 kHz", high_secs)] {
        assert!(
            (secs - 3.0).abs() <= 0.05,
            "{name} lasts {secs:.3} s\n{err}"
        );
    }
    // Both at their level at once where they overlap (they start within a few ms).
    let both = &left[a.max(c) + 12_000..b.min(d) - 12_000];
    for f in [440.0, 1000.0] {
        let amp = amplitude_at(both, f);
        assert!((amp - 0.25).abs() < 0.02, "{f} Hz at {amp:.3}\n{err}");
    }
}

#[test]
fn a_client_killed_mid_stream_stops_and_the_next_one_plays() {
    let (dir, data) = game_dir("pulse-kill");
    let long = tone(&data, "long.wav", 440, 0.5, 10.0, 48_000, 2);
    let next = tone(&data, "next.wav", 1000, 0.5, 1.0, 48_000, 2);
    let paplay = find_program("paplay", "pulseaudio-utils");
    let err = stream_with_picture(
        &dir,
        "6",
        &format!("{paplay} {long} & p=$!; sleep 1.5; kill -9 $p; sleep 1; {paplay} {next}"),
    );
    assert!(err.contains("0 clients dropped for misbehaving"), "{err}");
    let host = HostSummary::parse(&err);
    assert_eq!(host.frames_out, 180, "{err}");
    let left = left_channel(&dir.path("r.mp4"));
    let (_, b, secs) = tone_secs(&left, 440.0, 0.25, &err);
    // Killed 1.5 s after it started (less its start-up): what it had buffered goes with it.
    assert!(
        (1.0..=1.6).contains(&secs),
        "the killed tone lasts {secs:.3} s\n{err}"
    );
    let (c, _, secs) = tone_secs(&left, 1000.0, 0.25, &err);
    assert!(
        c > b,
        "the second client plays after the first was killed\n{err}"
    );
    assert!(
        (secs - 1.0).abs() <= 0.03,
        "the next tone lasts {secs:.3} s\n{err}"
    );
}

/// Index and normalised correlation of `part`'s best match in `whole`, searching
/// `lags` (start indices into `whole`).
fn best_match(whole: &[f32], part: &[f32], lags: std::ops::Range<usize>) -> (usize, f64) {
    let pe = part.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
    lags.filter(|&l| l + part.len() <= whole.len())
        .map(|l| {
            let w = &whole[l..l + part.len()];
            let dot = w
                .iter()
                .zip(part)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum::<f64>();
            let we = w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
            (l, dot / (pe * we).sqrt().max(1e-12))
        })
        .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best })
}

/// Sums of `x` in blocks of `n` samples: a cheap envelope to find an offset coarsely.
fn envelope(x: &[f32], n: usize) -> Vec<f32> {
    x.chunks_exact(n)
        .map(|c| c.iter().map(|v| v.abs()).sum::<f32>())
        .collect()
}

#[test]
fn sdl2_loopwave_plays_its_sample_through_the_server() {
    let (dir, data) = game_dir("pulse-sdl");
    let loopwave = find_program(
        "/usr/libexec/installed-tests/SDL2/loopwave",
        "libsdl2-tests",
    );
    let sample = Path::new(&loopwave).with_file_name("sample.wav");
    std::fs::copy(&sample, data.join("sample.wav")).unwrap();
    let err = stream_with_picture(
        &dir,
        "6",
        &format!(
            "SDL_AUDIODRIVER=pulseaudio SDL_VIDEODRIVER=dummy {loopwave} {}/sample.wav",
            data.display()
        ),
    );
    assert!(err.contains("connected"), "{err}");
    let left = left_channel(&dir.path("r.mp4"));
    // The source, as the stream carries it: 48 kHz, left channel.
    let reference = left_channel(&sample);
    assert!(
        rms(&left[48_000 * 2..48_000 * 4]) > 0.01,
        "the stream is silent\n{err}"
    );
    // A second of the stream, 2.5 s in, is found in the source: coarsely by its envelope
    // (10 ms blocks), then to the sample.
    let part = &left[48_000 * 5 / 2..48_000 * 7 / 2];
    let (coarse, _) = best_match(&envelope(&reference, 480), &envelope(part, 480), 0..2_000);
    let from = (coarse * 480).saturating_sub(960);
    let (at, corr) = best_match(&reference, part, from..from + 1_920);
    assert!(
        corr > 0.95,
        "stream matches the source at {at} with correlation {corr:.3} only\n{err}"
    );
}

#[test]
fn gstreamer_flash_and_beep_stay_in_sync_through_wayland_and_pulse() {
    let (dir, data) = game_dir("pulse-gst");
    let gst = find_program("gst-launch-1.0", "gstreamer1.0-tools");
    // White for 0.1 s and a 1 kHz beep for 0.1 s, at every whole second of the file.
    let video = "color=black:s=320x240:r=30:d=6,drawbox=x=0:y=0:w=320:h=240:color=white:\
                 t=fill:enable='lt(mod(t\\,1)\\,0.1)'";
    let audio = "aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000:d=6";
    let file = data.join("av.mkv");
    let out = Command::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
        ])
        .args([
            "-c:v",
            "mjpeg",
            "-q:v",
            "3",
            "-pix_fmt",
            "yuvj420p",
            "-c:a",
            "pcm_s16le",
        ])
        .args(["-ac", "2"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pipeline = format!(
        "filesrc location={} ! matroskademux name=d d.video_0 ! queue ! jpegdec ! \
         videoconvert ! waylandsink d.audio_0 ! queue ! audioconvert ! audioresample ! \
         pulsesink",
        file.display()
    );
    let data_arg = data.display().to_string();
    let mut args = vec![gst.as_str()];
    args.extend(pipeline.split(' '));
    let run = stream_command(&dir.0, "30", "8", &["--game-data", &data_arg], &args);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    let path = dir.path("r.mp4");
    let flashes = media::flash_onsets_at(&path, 30.0).by_pts;
    let beeps = media::beep_onsets(&path).by_pts;
    let all = format!("flashes at {flashes:?}, beeps at {beeps:?}\n{err}");
    assert!(flashes.len() >= 5 && beeps.len() >= 5, "{all}");
    // Pair each flash with the beep nearest it; the first pair is left out: GStreamer's
    // start (prerolling, the first frame) is not the steady state a player sees.
    for f in &flashes[1..] {
        let b = beeps
            .iter()
            .min_by(|x, y| (*x - f).abs().total_cmp(&(*y - f).abs()))
            .unwrap();
        let offset_ms = (b - f) * 1000.0;
        assert!(
            offset_ms.abs() <= 20.0,
            "beep {offset_ms:+.1} ms from its flash: {all}"
        );
    }
}

#[test]
fn an_alsa_program_plays_through_the_pulseaudio_plugin() {
    let (dir, data) = game_dir("pulse-alsa");
    let aplay = find_program("aplay", "alsa-utils");
    // The plugin's PCM module, wherever the multiarch library dir is (its config file's name
    // differs between Debian releases: pulse.conf, 50-pulseaudio.conf).
    let plugin = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("alsa-lib/libasound_module_pcm_pulse.so"))
        .chain([PathBuf::from(
            "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so",
        )])
        .any(|p| p.exists());
    assert!(
        plugin,
        "the ALSA PulseAudio plugin is missing: install libasound2-plugins"
    );
    let file = tone(&data, "tone.wav", 440, 0.5, 1.0, 48_000, 2);
    // `-D pulse`: the plugin's device, there whether or not the system routes ALSA's default
    // to PulseAudio.
    let err = stream_with_picture(&dir, "4", &format!("{aplay} -q -D pulse {file}"));
    let left = left_channel(&dir.path("r.mp4"));
    let (_, _, secs) = tone_secs(&left, 440.0, 0.25, &err);
    assert!((secs - 1.0).abs() <= 0.05, "tone lasts {secs:.3} s\n{err}");
}

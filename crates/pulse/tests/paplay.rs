//! Real `paplay` (pulseaudio-utils) playing into the server, pulled at real-time pace.

use crosscast_pulse::{Limits, PulseServer, MIX_RATE};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str, package: &str) -> String {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` not found: install the Debian package `{package}`"
    );
    name.to_owned()
}

/// Writes a 440 Hz sine at 44.1 kHz, 16-bit stereo, amplitude 0.5.
fn make_tone(path: &Path, seconds: f32) {
    make_tone_as(path, seconds, &["-r", "44100", "-c", "2", "-b", "16"]);
}

/// Writes a 440 Hz sine, amplitude 0.5, in the sox output format given by `fmt`.
fn make_tone_as(path: &Path, seconds: f32, fmt: &[&str]) {
    make_sine(path, seconds, 440, fmt);
}

/// Writes a `hz` sine, amplitude 0.5, in the sox output format given by `fmt`.
fn make_sine(path: &Path, seconds: f32, hz: u32, fmt: &[&str]) {
    let st = Command::new(tool("sox", "sox"))
        .arg("-n")
        .args(fmt)
        .arg(path)
        .args([
            "synth",
            &seconds.to_string(),
            "sine",
            &hz.to_string(),
            "vol",
            "0.5",
        ])
        .status()
        .expect("run sox");
    assert!(st.success(), "sox failed: {st}");
}

fn paplay(socket: &Path, runtime: &Path, wav: &Path) -> Child {
    pulse_client("paplay", &[], socket, runtime, wav)
}

/// Runs a pulseaudio-utils player (`paplay`, `pacat`) with `args` on `file`.
fn pulse_client(name: &str, args: &[&str], socket: &Path, runtime: &Path, file: &Path) -> Child {
    Command::new(tool(name, "pulseaudio-utils"))
        .args(args)
        .env("PULSE_SERVER", format!("unix:{}", socket.display()))
        .env("XDG_RUNTIME_DIR", runtime)
        .env("HOME", runtime)
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn paplay")
}

/// Pulls from `mix` at real-time pace until `child` exits (then 200 ms more) or `limit`.
/// `during` runs once, `at` after the start.
fn pull_until_exit(
    server: &PulseServer,
    child: &mut Child,
    limit: Duration,
    at: Duration,
    mut during: impl FnMut(&PulseServer),
) -> Vec<f32> {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut pulled = 0usize;
    let mut chunk = Vec::new();
    let mut exited_at = None;
    let mut ran = false;
    loop {
        let el = start.elapsed();
        if !ran && el >= at {
            ran = true;
            during(server);
        }
        let due = (el.as_secs_f64() * f64::from(MIX_RATE)) as usize;
        if due > pulled {
            server.mix(due - pulled, &mut chunk);
            all.extend_from_slice(&chunk);
            pulled = due;
        }
        if exited_at.is_none() {
            if let Some(st) = child.try_wait().expect("wait paplay") {
                assert!(st.success(), "paplay failed: {st}");
                exited_at = Some(el);
            }
        }
        if exited_at.is_some_and(|t| el > t + Duration::from_millis(200)) {
            return all;
        }
        if el > limit {
            let _ = child.kill();
            panic!("paplay did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks a clean ~440 Hz tone at amplitude ~0.5 lasting `seconds`.
fn check_tone(all: &[f32], seconds: f64) {
    let left: Vec<f32> = all.chunks_exact(2).map(|f| f[0]).collect();
    let first = left
        .iter()
        .position(|s| s.abs() > 1e-3)
        .expect("no audio was mixed at all");
    let last = left.iter().rposition(|s| s.abs() > 1e-3).unwrap_or(first);
    let body = &left[first..=last];
    let dur = body.len() as f64 / f64::from(MIX_RATE);
    assert!(
        (dur - seconds).abs() < 0.05,
        "tone lasted {dur:.3} s, expected {seconds} s"
    );
    let crossings = body
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let freq = crossings as f64 / 2.0 / dur;
    assert!(
        (freq - 440.0).abs() < 3.0,
        "tone is {freq:.1} Hz, expected 440"
    );
    let rms = (body.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / body.len() as f64).sqrt();
    let want = 0.5 / 2f64.sqrt();
    assert!(
        (rms - want).abs() < 0.03,
        "rms {rms:.3}, expected {want:.3}"
    );
    // No dropouts: a 440 Hz sine never stays near zero for a millisecond.
    let mut run = 0;
    for s in body {
        run = if s.abs() < 1e-3 { run + 1 } else { 0 };
        assert!(run < 48, "dropout of {run}+ samples inside the tone");
    }
}

#[test]
fn paplay_tone_is_mixed_at_48k() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    make_tone(&wav, 1.5);
    let sock = dir.path().join("native");
    let server = PulseServer::start(&sock, Limits::default()).unwrap();
    let mut child = paplay(&sock, dir.path(), &wav);
    let all = pull_until_exit(
        &server,
        &mut child,
        Duration::from_secs(10),
        Duration::MAX,
        |_| {},
    );
    check_tone(&all, 1.5);
    // paplay deleted its stream and hung up.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.client_count() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.client_count(), 0);
    assert_eq!(server.stream_count(), 0);
}

/// True once the server has closed `s` (EOF or reset), polling up to 2 s.
fn closed_by_server(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn garbage_clients_are_dropped_while_paplay_plays() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    make_tone(&wav, 2.0);
    let sock = dir.path().join("native");
    let server = PulseServer::start(&sock, Limits::default()).unwrap();
    let mut child = paplay(&sock, dir.path(), &wav);
    let sock2 = sock.clone();
    let all = pull_until_exit(
        &server,
        &mut child,
        Duration::from_secs(10),
        Duration::from_millis(500),
        |server| {
            assert_eq!(
                server.client_count(),
                1,
                "paplay should be connected by now"
            );
            // Oversize frame: a header announcing ~4 GiB on the control channel.
            let mut big = UnixStream::connect(&sock2).unwrap();
            let mut hdr = [0u8; 20];
            hdr[..4].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
            hdr[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            big.write_all(&hdr).unwrap();
            assert!(
                closed_by_server(&mut big),
                "oversize frame did not disconnect"
            );
            // Random bytes: a small frame of noise, then more noise.
            let mut rnd = UnixStream::connect(&sock2).unwrap();
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut noise: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            noise[..4].copy_from_slice(&64u32.to_be_bytes());
            noise[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            // The server may hang up before it reads everything; that is the point.
            let _ = rnd.write_all(&noise);
            assert!(
                closed_by_server(&mut rnd),
                "garbage client was not disconnected"
            );
            assert_eq!(server.client_count(), 1, "only paplay should remain");
        },
    );
    check_tone(&all, 2.0);
}

#[test]
fn other_formats_rates_and_mono_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("native");
    let server = PulseServer::start(&sock, Limits::default()).unwrap();
    // paplay converts 8-bit WAVs to s16le itself, so u8 goes raw through pacat.
    let u8_args = ["--raw", "--format=u8", "--channels=1", "--rate=22050"];
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            "pacat",
            &u8_args,
            &[
                "-t", "raw", "-r", "22050", "-c", "1", "-e", "unsigned", "-b", "8",
            ],
        ),
        (
            "paplay",
            &[],
            &["-r", "96000", "-c", "2", "-e", "float", "-b", "32"],
        ),
        (
            "paplay",
            &[],
            &["-r", "8000", "-c", "1", "-e", "signed", "-b", "32"],
        ),
    ];
    for (i, (player, args, fmt)) in cases.iter().enumerate() {
        let file = dir.path().join(format!(
            "tone{i}.{}",
            if *player == "pacat" { "raw" } else { "wav" }
        ));
        make_tone_as(&file, 1.0, fmt);
        let mut child = pulse_client(player, args, &sock, dir.path(), &file);
        let all = pull_until_exit(
            &server,
            &mut child,
            Duration::from_secs(10),
            Duration::MAX,
            |_| {},
        );
        eprintln!("case {player} {fmt:?}");
        check_tone(&all, 1.0);
    }
}

#[test]
fn two_clients_are_summed() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    make_tone(&wav, 1.0);
    // A different pitch: two equal 440 Hz sines started at a random offset can cancel.
    let wav2 = dir.path().join("tone660.wav");
    make_sine(&wav2, 1.0, 660, &["-r", "44100", "-c", "2", "-b", "16"]);
    let sock = dir.path().join("native");
    let server = PulseServer::start(&sock, Limits::default()).unwrap();
    let mut a = paplay(&sock, dir.path(), &wav);
    let mut b = paplay(&sock, dir.path(), &wav2);
    let all = pull_until_exit(
        &server,
        &mut a,
        Duration::from_secs(10),
        Duration::MAX,
        |_| {},
    );
    let _ = b.wait();
    let peak = all.iter().fold(0f32, |m, s| m.max(s.abs()));
    // 0.5 sines at 440 and 660 Hz line up within a second, whatever their start offset.
    assert!(
        peak > 0.6,
        "peak {peak}: the second client was not mixed in"
    );
}

#[test]
fn sdl2_loopwave_plays_and_survives() {
    let exe = "/usr/libexec/installed-tests/SDL2/loopwave";
    assert!(
        Path::new(exe).is_file(),
        "{exe} missing: install the Debian package `libsdl2-tests`"
    );
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("native");
    let server = PulseServer::start(&sock, Limits::default()).unwrap();
    // loopwave finds sample.wav relative to its working directory.
    let mut child = Command::new(exe)
        .current_dir("/usr/libexec/installed-tests/SDL2")
        .env("SDL_AUDIODRIVER", "pulseaudio")
        .env("SDL_VIDEODRIVER", "dummy")
        .env("PULSE_SERVER", format!("unix:{}", sock.display()))
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn loopwave");
    let start = Instant::now();
    let mut pulled = 0usize;
    let mut chunk = Vec::new();
    let mut loud = 0usize;
    while start.elapsed() < Duration::from_secs(3) {
        let due = (start.elapsed().as_secs_f64() * f64::from(MIX_RATE)) as usize;
        server.mix(due - pulled, &mut chunk);
        pulled = due;
        loud += chunk.chunks_exact(2).filter(|f| f[0].abs() > 0.01).count();
        if let Some(st) = child.try_wait().unwrap() {
            panic!("loopwave exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    // Over the last ~2.5 s of looping, a good part of the frames must carry sound.
    assert!(loud > 48_000, "only {loud} audible frames from loopwave");
}

#[test]
fn paplay_volume_scales_the_stream() {
    // `--volume=32768` is half of PulseAudio's norm (65536); on its cubic curve that is a
    // linear gain of 0.5³ = 0.125.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    make_tone(&wav, 1.0);
    let sock = dir.path().join("native");
    let server = PulseServer::start(&sock, Limits::default()).unwrap();
    let mut child = pulse_client("paplay", &["--volume=32768"], &sock, dir.path(), &wav);
    let all = pull_until_exit(
        &server,
        &mut child,
        Duration::from_secs(10),
        Duration::MAX,
        |_| {},
    );
    let left: Vec<f32> = all.chunks_exact(2).map(|f| f[0]).collect();
    let peak = left.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!(
        (peak - 0.5 * 0.125).abs() < 0.01,
        "peak {peak:.4}, expected {:.4}",
        0.5 * 0.125
    );
}

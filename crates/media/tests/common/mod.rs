//! Helpers shared by the media integration tests: synthetic A/V, ffprobe/ffmpeg checks, a
//! throwaway nginx-rtmp server (optionally behind TLS, with a test CA made by `openssl`) and an
//! `ffmpeg` SRT listener. Reusable from other crates' tests with
//! `#[path = "../../media/tests/common/mod.rs"] mod common;`.

#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Synthetic input

/// A/V test pattern: one full-white frame run and a 1 kHz beep at the start of every second.
#[derive(Debug, Clone, Copy)]
pub struct SyncPattern {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub sample_rate: u32,
    /// Length of each flash and beep.
    pub pulse_ms: u32,
}

impl SyncPattern {
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        Self {
            width,
            height,
            fps,
            sample_rate: 48_000,
            pulse_ms: 100,
        }
    }

    /// RGBA frame `index`: white during the pulse after each whole second, black otherwise.
    pub fn frame(&self, index: u64) -> Vec<u8> {
        let in_second = index % u64::from(self.fps);
        let pulse_frames = (u64::from(self.fps) * u64::from(self.pulse_ms)).div_ceil(1000);
        let v = if in_second < pulse_frames { 255 } else { 0 };
        let mut f = vec![v; self.width as usize * self.height as usize * 4];
        for px in f.chunks_exact_mut(4) {
            px[3] = 255;
        }
        f
    }

    /// Interleaved stereo f32 for samples `[first, first + n)`: 1 kHz sine during each pulse.
    pub fn audio(&self, first: u64, n: usize) -> Vec<f32> {
        let rate = u64::from(self.sample_rate);
        let pulse = rate * u64::from(self.pulse_ms) / 1000;
        let mut out = Vec::with_capacity(n * 2);
        for s in first..first + n as u64 {
            let in_second = s % rate;
            let v = if in_second < pulse {
                let t = in_second as f64 / rate as f64;
                (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as f32
            } else {
                0.0
            };
            out.push(v);
            out.push(v);
        }
        out
    }

    /// Samples per video frame (exact when the rate divides; the remainder is spread over frames).
    pub fn audio_range_for_frame(&self, index: u64) -> (u64, usize) {
        let rate = u64::from(self.sample_rate);
        let fps = u64::from(self.fps);
        let start = index * rate / fps;
        let end = (index + 1) * rate / fps;
        (start, (end - start) as usize)
    }
}

/// A moving gradient, so the encoder has real work and frames differ.
pub fn gradient_frame(w: u32, h: u32, index: u64) -> Vec<u8> {
    let mut f = vec![0u8; w as usize * h as usize * 4];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let o = (y * w as usize + x) * 4;
            f[o] = (x as u64 + index * 3) as u8;
            f[o + 1] = (y as u64 + index) as u8;
            f[o + 2] = ((x + y) as u64 / 2) as u8;
            f[o + 3] = 255;
        }
    }
    f
}

// ---------------------------------------------------------------------------------------------
// ffprobe / ffmpeg

fn run_capture(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What ffprobe says about a recording.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub video_codec: String,
    pub width: u64,
    pub height: u64,
    pub video_frames: u64,
    pub audio_codec: String,
    pub sample_rate: u64,
    pub channels: u64,
    pub audio_frames: u64,
    pub duration: f64,
}

/// `ffprobe -v error -show_streams -show_format -count_frames -of json FILE`, summarised.
pub fn probe(path: &Path) -> Probe {
    let out = run_capture(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_streams",
                "-show_format",
                "-count_frames",
                "-of",
                "json",
            ])
            .arg(path),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).expect("ffprobe json");
    let mut p = Probe::default();
    let num = |x: &serde_json::Value| -> u64 {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    for s in v["streams"].as_array().cloned().unwrap_or_default() {
        match s["codec_type"].as_str() {
            Some("video") => {
                p.video_codec = s["codec_name"].as_str().unwrap_or("").to_owned();
                p.width = num(&s["width"]);
                p.height = num(&s["height"]);
                p.video_frames = num(&s["nb_read_frames"]);
            }
            Some("audio") => {
                p.audio_codec = s["codec_name"].as_str().unwrap_or("").to_owned();
                p.sample_rate = num(&s["sample_rate"]);
                p.channels = num(&s["channels"]);
                p.audio_frames = num(&s["nb_read_frames"]);
            }
            _ => {}
        }
    }
    p.duration = v["format"]["duration"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    p
}

/// Presentation times of every decoded frame of one stream (`v` or `a`), with sample counts.
fn frame_times(path: &Path, stream: &str) -> Vec<(f64, u64)> {
    let out = run_capture(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", stream, "-show_entries"])
            .arg("frame=best_effort_timestamp_time,nb_samples")
            .args(["-of", "json"])
            .arg(path),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).expect("ffprobe json");
    v["frames"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            let t = f["best_effort_timestamp_time"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("frame timestamp");
            let n = f["nb_samples"].as_u64().unwrap_or(0);
            (t, n)
        })
        .collect()
}

/// Onset times two ways: from the decoded frames' timestamps (what a player does), and from the
/// frame or sample index alone (what a decoder that ignores timestamps would assume).
#[derive(Debug, Clone, Default)]
pub struct Onsets {
    pub by_pts: Vec<f64>,
    pub by_index: Vec<f64>,
}

/// Every frame of an image or video (as decoded, none duplicated or dropped), decoded by ffmpeg
/// and scaled to `width × height` 8-bit luma.
pub fn gray_frames(path: &Path, width: usize, height: usize) -> Vec<Vec<u8>> {
    let raw = run_capture(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args([
                "-map",
                "0:v:0",
                "-fps_mode",
                "passthrough",
                "-vf",
                &format!("scale={width}:{height}"),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-",
            ]),
    );
    raw.chunks_exact(width * height)
        .map(|c| c.to_vec())
        .collect()
}

/// Flash onsets (seconds) from the decoded video; `fps` is used for the index-based times.
pub fn flash_onsets(path: &Path, fps: u32) -> Onsets {
    flash_onsets_at(path, f64::from(fps))
}

/// [`flash_onsets`] for any frame rate, fractional ones (60000/1001) included.
pub fn flash_onsets_at(path: &Path, fps: f64) -> Onsets {
    let times = frame_times(path, "v");
    let frames = gray_frames(path, 32, 18);
    assert_eq!(
        frames.len(),
        times.len(),
        "ffmpeg and ffprobe disagree on the number of video frames"
    );
    let mut onsets = Onsets::default();
    let mut was_bright = false;
    for (i, f) in frames.iter().enumerate() {
        let mean = f.iter().map(|&p| u32::from(p)).sum::<u32>() / f.len() as u32;
        let bright = mean > 128;
        if bright && !was_bright {
            onsets.by_pts.push(times[i].0);
            onsets.by_index.push(i as f64 / fps);
        }
        was_bright = bright;
    }
    onsets
}

/// Beep onsets (seconds) from the decoded audio (48 kHz).
pub fn beep_onsets(path: &Path) -> Onsets {
    let frames = frame_times(path, "a");
    let raw = run_capture(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args([
                "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "-",
            ]),
    );
    let samples: Vec<i16> = raw
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let total: u64 = frames.iter().map(|f| f.1).sum();
    assert_eq!(
        total,
        samples.len() as u64,
        "ffmpeg and ffprobe disagree on the number of audio samples"
    );
    // Map sample index -> time through the frame that holds it, so gaps or offsets in the
    // audio timestamps are accounted for rather than assumed away.
    let mut starts = Vec::with_capacity(frames.len());
    let mut acc = 0u64;
    for &(t, n) in &frames {
        starts.push((acc, t));
        acc += n;
    }
    let time_of = |idx: usize| {
        let i = starts
            .partition_point(|s| s.0 <= idx as u64)
            .saturating_sub(1);
        let (s0, t0) = starts[i];
        t0 + (idx as u64 - s0) as f64 / 48_000.0
    };
    // Beep amplitude is 0.5 full scale; 30 % of it is far above AAC pre-echo.
    let threshold = (0.15 * 32767.0) as i16;
    let min_silence = 48_000 / 5; // 200 ms of quiet before an onset counts
    let mut onsets = Onsets::default();
    let mut quiet = min_silence; // the stream start counts as after silence
    for (i, &s) in samples.iter().enumerate() {
        if s.unsigned_abs() > threshold.unsigned_abs() {
            if quiet >= min_silence {
                onsets.by_pts.push(time_of(i));
                onsets.by_index.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    onsets
}

// ---------------------------------------------------------------------------------------------
// nginx-rtmp

/// A free TCP port on 127.0.0.1 (bound and released; nginx binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// nginx with the RTMP module on 127.0.0.1, prefix and recordings in a temp dir.
/// Stopped by pid (SIGTERM to the master, which stops its workers) on `stop` or drop.
pub struct Nginx {
    dir: tempfile::TempDir,
    pub port: u16,
    /// The TLS port (nginx's stream module terminating TLS in front of RTMP), when started
    /// with [`Nginx::start_tls`].
    pub tls_port: Option<u16>,
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts nginx with RTMP on a free port and, on another, TLS (the server certificate and
    /// key given) proxied to it: an RTMPS ingest (Debian package libnginx-mod-stream).
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::start_with(Some((cert.to_owned(), key.to_owned())))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cc-nginx")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let tls_port = tls.as_ref().map(|_| loop {
            let p = free_port();
            if p != port {
                break p;
            }
        });
        let mut n = Self {
            dir,
            port,
            tls_port,
            tls,
            child: None,
        };
        n.write_config();
        n.restart();
        n
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let rec = d.join("rec");
        std::fs::create_dir_all(&rec).expect("record dir");
        // Workers may run as another user: let them reach and write the record folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let listen = format!("127.0.0.1:{}", self.port);
        let tls_listen = self.tls_port.map(|p| format!("127.0.0.1:{p}"));
        let conf = crosscast_bench::peers::NginxRtmp {
            dir: d,
            listen: &listen,
            record_path: &rec,
            user_root: is_root,
            tls: match (&self.tls, &tls_listen) {
                (Some((cert, key)), Some(l)) => Some((l.as_str(), cert.as_path(), key.as_path())),
                _ => None,
            },
        }
        .config();
        std::fs::write(d.join("nginx.conf"), conf).expect("write nginx.conf");
    }

    /// (Re)starts nginx on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nginx already running");
        let d = self.dir.path().to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let child = Command::new("nginx")
                .arg("-p")
                .arg(&d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(d.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nginx (Debian packages nginx + libnginx-mod-rtmp)");
            self.child = Some(child);
            let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
            if ports
                .iter()
                .all(|&p| self.wait_listening(p, Duration::from_secs(10)))
            {
                return;
            }
            // Port still held (e.g. a worker of the last instance not gone yet): retry.
            self.stop();
            assert!(
                Instant::now() < deadline,
                "nginx did not start; error.log:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_listening(&mut self, port: u16, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while Instant::now() < end {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops nginx (SIGTERM to the master by pid) and waits for it and its worker to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(15);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > end => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            // The master exits after its worker; make sure the port is free again.
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end
                && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// `rtmps://127.0.0.1:TLS_PORT/live/KEY` (nginx started with [`Nginx::start_tls`]).
    pub fn rtmps_url(&self, key: &str) -> String {
        let port = self.tls_port.expect("nginx started without TLS");
        format!("rtmps://127.0.0.1:{port}/live/{key}")
    }

    /// Recorded FLV files for a stream key, oldest first.
    pub fn recordings(&self, key: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with(&format!("{key}-")) || n == format!("{key}.flv")
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// nginx's error log, for assertion messages.
    pub fn error_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("error.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// A test PKI (openssl)

/// A CA and a server certificate it signed for 127.0.0.1 (IP SAN) and localhost (DNS SAN),
/// plus a second, unrelated CA; made with the `openssl` command in a temp dir.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the keys and certificates (EC P-256, valid two days).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cc-pki")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        // nginx's workers may run as another user.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl (Debian package openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=crosscast test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        Self { dir }
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing here (PEM).
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The server's certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

// ---------------------------------------------------------------------------------------------
// An SRT listener (ffmpeg)

/// A free UDP port on 127.0.0.1 (bound and released; the listener binds it right after).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free UDP port")
}

/// `ffmpeg` as an SRT listener on 127.0.0.1 that remuxes what it receives (`-c copy`) into an
/// MPEG-TS file; its log (`-v verbose`: the accepted stream id) goes to a file. Stopped by pid.
pub struct SrtListener {
    pub port: u16,
    pub out: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl SrtListener {
    /// Starts listening; `passphrase` makes it require that passphrase (and encrypt).
    pub fn start(dir: &Path, name: &str, passphrase: Option<&str>) -> Self {
        Self::start_on(free_udp_port(), dir, name, passphrase)
    }

    /// [`SrtListener::start`] on a given port (a listener coming back).
    pub fn start_on(port: u16, dir: &Path, name: &str, passphrase: Option<&str>) -> Self {
        let out = dir.join(format!("{name}.ts"));
        let log = dir.join(format!("{name}.log"));
        let mut url = format!("srt://127.0.0.1:{port}?mode=listener");
        if let Some(p) = passphrase {
            url.push_str(&format!("&passphrase={p}"));
        }
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "verbose", "-y", "-i"])
            .arg(&url)
            .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("listener log"))
            .spawn()
            .expect("spawn ffmpeg (Debian package ffmpeg, built with libsrt)");
        Self {
            port,
            out,
            log,
            child: Some(child),
        }
    }

    /// `srt://127.0.0.1:PORT` plus `query` (without the `?`) when not empty.
    pub fn url(&self, query: &str) -> String {
        match query {
            "" => format!("srt://127.0.0.1:{}", self.port),
            q => format!("srt://127.0.0.1:{}?{q}", self.port),
        }
    }

    /// ffmpeg's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the listener process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits up to `limit` for ffmpeg to end on its own (the caller hung up), then stops it by
    /// pid (SIGINT: it finishes the file); returns its log.
    pub fn finish(&mut self, limit: Duration) -> String {
        if let Some(mut c) = self.child.take() {
            let end = Instant::now() + limit;
            let mut signalled = false;
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > end + Duration::from_secs(10) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ if Instant::now() > end && !signalled => {
                        let _ = Command::new("kill")
                            .args(["-INT", &c.id().to_string()])
                            .status();
                        signalled = true;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.log()
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 20 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

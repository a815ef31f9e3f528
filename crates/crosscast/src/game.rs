//! `crosscast game`: the demo game process. It connects (inherited socket or named socket),
//! sandboxes itself, then renders straight into the host's slots at its own pace and mixes
//! audio into timestamped blocks. It never waits for the host's work: under `mailbox` a free
//! slot is always back within a message round trip.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use crosscast_demo::{Mixer, Pattern, Scene};
use crosscast_ipc::os::process::{resource_usage, UsageOf};
use crosscast_ipc::stamp;
use crosscast_sdk::{
    monotonic_ns, AudioConfig, AudioOut, ConnectOptions, Connection, Game, Pacer, SampleFormat,
    SdkError, SessionKey, EXIT_HOST_LOST,
};
use std::process::Command;

use crate::cli::{GameArgs, RawWriter};

const RATE: u32 = 48_000;
const BLOCK_FRAMES: usize = 480; // 10 ms

fn sleep_until_ns(t: u64) {
    let now = monotonic_ns();
    if t > now {
        std::thread::sleep(Duration::from_nanos(t - now));
    }
}

/// What the game did, printed at exit (the pipeline bench reads the fps from it).
struct GameSummary {
    rendered: u64,
    skipped: u64,
    seconds: f64,
    /// The host went away without a goodbye (killed, or closed mid-send): a supervised game
    /// reconnects.
    host_lost: bool,
}

impl std::fmt::Display for GameSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpu = resource_usage(UsageOf::Process)
            .map(|u| (u.user_ns + u.system_ns) as f64 / 1e9)
            .unwrap_or(f64::NAN);
        write!(
            f,
            "game: rendered {} frames in {:.2} s ({:.2} fps), skipped {}, cpu {:.3} s",
            self.rendered,
            self.seconds,
            self.rendered as f64 / self.seconds.max(1e-9),
            self.skipped,
            cpu
        )
    }
}

pub(crate) fn run(args: GameArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.raw_out {
        return run_raw(&args, path);
    }
    if args.connect && !args.no_reconnect {
        return supervise(&args);
    }
    let connection = if args.connect {
        let key_file = args
            .key_file
            .as_ref()
            .context("--connect needs --key-file")?;
        Connection::Named {
            key: SessionKey::read_file(key_file)?,
            app_id: args.app_id.clone().unwrap_or_default(),
            user_id: args.user_id.clone().unwrap_or_default(),
        }
    } else {
        Connection::Spawned
    };
    let opts = ConnectOptions {
        sandbox: args.sandbox,
        ..ConnectOptions::default()
    };
    let game = match Game::connect(connection, &opts) {
        Ok(g) => g,
        Err(e @ SdkError::NotSpawned(_)) => {
            return Err(anyhow::Error::new(e)
                .context("use --connect to reach a listening host, or --raw-out"))
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(report) = game.sandbox_report() {
        say!("game: {report}");
    }
    let game = Arc::new(game);
    let result = play(&args, &game);
    if let Ok(g) = Arc::try_unwrap(game) {
        g.close();
    }
    match result {
        Ok(summary) => {
            crate::say_line(&summary);
            if summary.host_lost {
                say!("game: the host went away");
                std::process::exit(EXIT_HOST_LOST);
            }
            Ok(())
        }
        Err(e)
            if e.downcast_ref::<SdkError>()
                .is_some_and(SdkError::host_lost) =>
        {
            say!("game: the host went away");
            std::process::exit(EXIT_HOST_LOST);
        }
        Err(e) => Err(e),
    }
}

/// Named mode with reconnection: the SDK's supervisor runs this same game, in spawn mode, as
/// its sandboxed child.
fn supervise(args: &GameArgs) -> anyhow::Result<()> {
    let key_file = args
        .key_file
        .as_ref()
        .context("--connect needs --key-file")?;
    let key = SessionKey::read_file(key_file)?;
    let deadline = args
        .seconds
        .map(|s| std::time::Instant::now() + Duration::from_secs_f64(s));
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    crosscast_sdk::supervise(
        &key,
        args.app_id.as_deref().unwrap_or(""),
        args.user_id.as_deref().unwrap_or(""),
        deadline,
        |remaining| {
            let mut cmd = Command::new(&exe);
            cmd.args(child_args(args, remaining));
            cmd
        },
        |line| say!("game: {line}"),
    )?;
    Ok(())
}

/// The child's command line: the same game, in spawn mode.
fn child_args(a: &GameArgs, remaining: Option<Duration>) -> Vec<String> {
    let mut v = vec![
        "game".to_string(),
        "--fps".into(),
        a.fps.to_string(),
        "--pattern".into(),
        a.pattern.to_string(),
    ];
    v.extend([
        "--sandbox".into(),
        a.sandbox.to_string(),
        "--audio-format".into(),
        a.audio_format.clone(),
    ]);
    if let Some(s) = a.size {
        v.extend(["--size".into(), s.to_string()]);
    }
    if let Some(r) = remaining {
        v.extend([
            "--seconds".into(),
            format!("{:.3}", r.as_secs_f64().max(0.001)),
        ]);
    }
    if a.stamp {
        v.push("--stamp".into());
    }
    if a.no_audio {
        v.push("--no-audio".into());
    }
    v
}

fn play(args: &GameArgs, game: &Arc<Game>) -> anyhow::Result<GameSummary> {
    let config = game.surface();
    if let Some(size) = args.size {
        if (size.width, size.height) != (config.width, config.height) {
            game.request_resize(size.width, size.height)?;
        }
    }
    let mut scene = Scene::new(args.pattern, config.width, config.height)?;
    // The demo plays: it asks for the streamer's input (a game that does not ask gets none)
    // and shows the key marker from its first frame, so a test or a latency bench can tell "no
    // key held" from "no input yet".
    game.want_input(true)?;
    scene.enable_input();
    let mut events = Vec::new();
    let mut input_events = 0u64;
    let t0 = monotonic_ns();
    let stop = Arc::new(AtomicBool::new(false));
    let audio = if args.no_audio {
        None
    } else {
        let format = if args.audio_format == "s16" {
            SampleFormat::S16
        } else {
            SampleFormat::F32
        };
        let out = game.audio(AudioConfig {
            sample_rate: RATE,
            channels: 2,
            format,
        })?;
        let (stop, pattern) = (stop.clone(), args.pattern);
        Some(
            std::thread::Builder::new()
                .name("game-audio".into())
                .spawn(move || audio_loop(out, pattern, t0, &stop))?,
        )
    };
    let rate = args.fps;
    scene.set_frame_period(rate.period_ns());
    let end = args.seconds.map(|s| t0 + (s * 1e9) as u64);
    let mut pacer = Pacer::new(rate, t0);
    let (mut rendered, mut skipped) = (0u64, 0u64);
    // Frames drawn early, on the streamer's input, between the frames of the grid: each shifts
    // the sequence numbers by one, so the host still sees the grid's skips as gaps.
    let mut early_frames = 0u64;
    let mut early_done = false;
    let mut lost = false;
    let result = loop {
        let target = pacer.next_due_ns();
        if end.is_some_and(|e| target >= e) {
            break Ok(());
        }
        // Input that arrives while the game waits for its next frame is drawn at once, in one
        // extra frame stamped now (at most one per period): waiting for the grid would add up
        // to a period to the streamer's key-to-stream latency (`crosscast bench input`).
        let now = monotonic_ns();
        let early = !early_done
            && now < target
            && game.wait_input(Duration::from_nanos(target - now))
            && monotonic_ns() + 1_000_000 < target;
        let (n, pts) = if early {
            // Drawn as the grid's coming frame, without taking it: it still comes on time.
            (pacer.next_frame(), monotonic_ns())
        } else {
            let tick = pacer.wait();
            skipped += tick.skipped;
            (tick.n, tick.pts_ns)
        };
        let mut frame = match game.dequeue(Duration::from_secs(2)) {
            Ok(Some(f)) => f,
            Ok(None) => {
                skipped += 1;
                early_done = false;
                continue;
            }
            Err(SdkError::HostGone { goodbye: true }) => break Ok(()),
            Err(e) if e.host_lost() => {
                lost = true;
                break Ok(());
            }
            Err(e) => break Err(e.into()),
        };
        let (w, h, stride) = (
            frame.config().width,
            frame.config().height,
            frame.config().stride as usize,
        );
        if (scene.width(), scene.height()) != (w, h) {
            scene.resize(w, h)?;
        }
        // Everything that arrived up to now shows in this frame.
        game.take_input(&mut events);
        input_events += events.len() as u64;
        for input in events.drain(..) {
            scene.input(&input.event, pts - t0);
        }
        scene.render(frame.pixels(), stride, n, pts - t0)?;
        let seq = n + 1 + early_frames;
        if args.stamp {
            stamp::write(frame.pixels(), seq);
        }
        match game.queue(frame, seq, pts) {
            Ok(()) => rendered += 1,
            Err(SdkError::HostGone { goodbye: true }) => break Ok(()),
            Err(e) if e.host_lost() => {
                lost = true;
                break Ok(());
            }
            Err(e) => break Err(e.into()),
        }
        if args.resize_after == Some(rendered) {
            if let Some(size) = args.resize_to {
                game.request_resize(size.width, size.height)?;
            }
        }
        if early {
            early_frames += 1;
            early_done = true;
        } else {
            early_done = false;
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(a) = audio {
        let _ = a.join();
    }
    // A line of its own: the summary line's format is read by the benches.
    crate::say_line(&format_args!(
        "game: input {input_events} events, {} dropped (queue full)",
        game.input_dropped()
    ));
    result.map(|()| GameSummary {
        rendered,
        skipped,
        seconds: (monotonic_ns() - t0) as f64 / 1e9,
        host_lost: lost,
    })
}

/// The demo's sound: 10 ms blocks from its mixer, each stamped with its first sample's time.
fn audio_loop(mut out: AudioOut, pattern: Pattern, t0: u64, stop: &AtomicBool) {
    let Ok(mut mixer) = Mixer::new(pattern, RATE, 2) else {
        return;
    };
    let frames = out.frames_per(10);
    let mut buf = vec![0f32; frames * 2];
    let mut first = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let pts = out.pts_of(t0, first);
        sleep_until_ns(pts);
        mixer.fill(&mut buf, first);
        if out.send(&buf, pts).is_err() {
            return;
        }
        first += frames as u64;
    }
}

/// Baseline mode for `bench pipeline`: the same game writing raw frames to a pipe, the way a
/// user would feed `ffmpeg -f rawvideo`. Audio goes to a second pipe as s16le.
///
/// `--raw-writer careful` is what a careful user would write for a live stream: the game renders
/// into one of three buffers and hands it to a writer thread through a bounded queue, and the
/// pipe buffer is enlarged to a whole frame. When every buffer is taken (the encoder is behind)
/// the game drops that frame and keeps its pace, as crosscast's mailbox does: a live game must
/// not stall on its encoder, and the drops are counted and printed so the loss stays visible.
/// `--raw-writer naive` writes each frame from the game's thread and blocks on a full pipe.
fn run_raw(args: &GameArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let size = args.size.unwrap_or(crate::cli::Size {
        width: 1280,
        height: 720,
    });
    let stride = size.width as usize * 4;
    let frame_bytes = stride * size.height as usize;
    let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        // A FIFO (the pipeline bench's) must not be truncated; a regular file must.
        use std::os::unix::fs::FileTypeExt;
        let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(!fifo)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if fifo && args.raw_writer == RawWriter::Careful {
            let got = enlarge_pipe(&file, frame_bytes);
            say!("game: raw writer careful: pipe buffer {got} bytes");
        }
        Box::new(file)
    };
    let mut scene = Scene::new(args.pattern, size.width, size.height)?;
    // The same picture (and cost) as the streamed game, which takes input; none comes here.
    scene.enable_input();
    let t0 = monotonic_ns();
    let stop = Arc::new(AtomicBool::new(false));
    let audio = match &args.raw_audio_out {
        Some(p) => {
            let (stop, pattern, p) = (stop.clone(), args.pattern, p.clone());
            // Opened on this thread: opening a FIFO waits for its reader, and ffmpeg opens its
            // audio input only after reading some video, so the video must flow meanwhile.
            Some(std::thread::spawn(move || -> anyhow::Result<()> {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .with_context(|| format!("cannot open {}", p.display()))?;
                let mut mixer = Mixer::new(pattern, RATE, 2)?;
                let mut buf = vec![0i16; BLOCK_FRAMES * 2];
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let first = seq * BLOCK_FRAMES as u64;
                    sleep_until_ns(t0 + first * 1_000_000_000 / u64::from(RATE));
                    mixer.fill_i16(&mut buf, first);
                    let bytes: Vec<u8> = buf.iter().flat_map(|s| s.to_le_bytes()).collect();
                    if f.write_all(&bytes).is_err() {
                        break;
                    }
                    seq += 1;
                }
                Ok(())
            }))
        }
        None => None,
    };
    let mut sink = match args.raw_writer {
        RawWriter::Careful => RawSink::queued(out, frame_bytes)?,
        RawWriter::Naive => RawSink::Direct {
            out,
            frame: vec![0u8; frame_bytes],
        },
    };
    let period = args.fps.period_ns();
    let end = args.seconds.map(|s| t0 + (s * 1e9) as u64);
    let (mut n, mut rendered, mut skipped) = (0u64, 0u64, 0u64);
    loop {
        let target = t0 + n * period;
        if end.is_some_and(|e| target >= e) {
            break;
        }
        sleep_until_ns(target);
        let now = monotonic_ns();
        if now > target + period {
            let behind = (now - target) / period;
            skipped += behind;
            n += behind;
            continue;
        }
        scene.render(sink.buffer(), stride, n, target - t0)?;
        rendered += 1;
        n += 1;
        if !sink.send() {
            break; // the reader went away
        }
    }
    let dropped = sink.finish();
    stop.store(true, Ordering::Relaxed);
    if let Some(a) = audio {
        let _ = a.join();
    }
    crate::say_line(&GameSummary {
        rendered,
        skipped,
        seconds: (monotonic_ns() - t0) as f64 / 1e9,
        host_lost: false,
    });
    crate::say_line(&format_args!(
        "game: raw writer {}: dropped {dropped} frames with the queue full",
        args.raw_writer
    ));
    if rendered == 0 {
        bail!("no frame was written");
    }
    Ok(())
}

/// Grows a pipe's buffer towards one whole frame (`F_SETPIPE_SZ`), within what the system
/// allows (`/proc/sys/fs/pipe-max-size` for an unprivileged user); returns the size it has.
fn enlarge_pipe(pipe: &std::fs::File, frame_bytes: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    let mut want = frame_bytes;
    loop {
        if let Ok(got) = rustix::pipe::fcntl_setpipe_size(pipe, want) {
            return got;
        }
        // Refused (over the limit without privileges): fall back to the limit, then give up.
        match limit {
            Some(l) if l < want => want = l,
            _ => return rustix::pipe::fcntl_getpipe_size(pipe).unwrap_or(0),
        }
    }
}

/// Frames in flight in the careful writer: two queued and one being written, as crosscast's
/// three slots.
const RAW_BUFFERS: usize = 3;

/// Where the baseline game's frames go.
enum RawSink {
    /// Written from the game's thread.
    Direct {
        out: Box<dyn Write + Send>,
        frame: Vec<u8>,
    },
    /// Handed to a writer thread; `current` is the buffer being rendered, `scratch` is where a
    /// frame goes when every buffer is taken (it is then dropped).
    Queued {
        current: Option<Vec<u8>>,
        scratch: Vec<u8>,
        full: std::sync::mpsc::SyncSender<Vec<u8>>,
        free: std::sync::mpsc::Receiver<Vec<u8>>,
        writer: Option<std::thread::JoinHandle<()>>,
        dropped: u64,
    },
}

impl RawSink {
    fn queued(mut out: Box<dyn Write + Send>, frame_bytes: usize) -> anyhow::Result<RawSink> {
        let (full, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(RAW_BUFFERS);
        let (free_tx, free) = std::sync::mpsc::sync_channel::<Vec<u8>>(RAW_BUFFERS);
        for _ in 1..RAW_BUFFERS {
            free_tx.send(vec![0u8; frame_bytes])?;
        }
        let writer = std::thread::Builder::new()
            .name("raw-writer".into())
            .spawn(move || {
                for frame in full_rx {
                    if out.write_all(&frame).is_err() {
                        return; // the reader went away; dropping full_rx tells the game
                    }
                    if free_tx.send(frame).is_err() {
                        return;
                    }
                }
                let _ = out.flush();
            })?;
        Ok(RawSink::Queued {
            current: Some(vec![0u8; frame_bytes]),
            scratch: vec![0u8; frame_bytes],
            full,
            free,
            writer: Some(writer),
            dropped: 0,
        })
    }

    /// The buffer to render the next frame into.
    fn buffer(&mut self) -> &mut [u8] {
        match self {
            RawSink::Direct { frame, .. } => frame,
            RawSink::Queued {
                current,
                scratch,
                free,
                ..
            } => {
                if current.is_none() {
                    *current = free.try_recv().ok();
                }
                current.as_mut().unwrap_or(scratch)
            }
        }
    }

    /// Sends the frame just rendered; false once the reader has gone away.
    fn send(&mut self) -> bool {
        match self {
            RawSink::Direct { out, frame } => out.write_all(frame).is_ok(),
            RawSink::Queued {
                current,
                full,
                dropped,
                ..
            } => match current.take() {
                // Every buffer was taken: this frame went to the scratch buffer and is lost.
                None => {
                    *dropped += 1;
                    true
                }
                Some(frame) => match full.try_send(frame) {
                    Ok(()) => true,
                    Err(std::sync::mpsc::TrySendError::Full(frame)) => {
                        *current = Some(frame);
                        *dropped += 1;
                        true
                    }
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => false,
                },
            },
        }
    }

    /// Flushes what is queued, closes the pipe and returns the frames dropped.
    fn finish(self) -> u64 {
        match self {
            RawSink::Direct { .. } => 0,
            RawSink::Queued {
                full,
                writer,
                dropped,
                ..
            } => {
                drop(full);
                if let Some(w) = writer {
                    let _ = w.join();
                }
                dropped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A pipe reader that is behind: every write takes `delay`; what it took is recorded.
    struct SlowReader {
        delay: Duration,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for SlowReader {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.delay);
            self.got.lock().unwrap().push(buf[0]);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Sends 20 frames, numbered in their first byte, into `sink`, as fast as it takes them.
    fn send_frames(sink: &mut RawSink) {
        for n in 0..20u8 {
            sink.buffer().fill(n);
            assert!(sink.send(), "the reader is still there");
        }
    }

    fn slow_reader() -> (SlowReader, Arc<Mutex<Vec<u8>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let reader = SlowReader {
            delay: Duration::from_millis(30),
            got: got.clone(),
        };
        (reader, got)
    }

    #[test]
    fn careful_raw_writer_drops_frames_instead_of_waiting_for_a_slow_reader() {
        let (reader, got) = slow_reader();
        let mut sink = RawSink::queued(Box::new(reader), 16).unwrap();
        send_frames(&mut sink);
        let dropped = sink.finish();
        let got = got.lock().unwrap().clone();
        // 20 frames sent back to back against a reader that takes 30 ms each: a writer that
        // waited for the reader would drop none; this one keeps three in flight and drops the
        // frames that find every buffer taken.
        assert!(
            dropped >= 10,
            "only {dropped} dropped: the sends waited for the reader"
        );
        assert_eq!(
            got.len() as u64 + dropped,
            20,
            "written {got:?}, dropped {dropped}"
        );
        // What was written is in order, each frame once.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    }

    #[test]
    fn naive_raw_writer_waits_for_a_slow_reader_and_loses_nothing() {
        let (reader, got) = slow_reader();
        let mut sink = RawSink::Direct {
            out: Box::new(reader),
            frame: vec![0u8; 16],
        };
        send_frames(&mut sink);
        assert_eq!(sink.finish(), 0);
        assert_eq!(*got.lock().unwrap(), (0..20u8).collect::<Vec<_>>());
    }
}

//! Command-line interface.

use crosscast_media::VideoBackend;
use crosscast_wire::FrameRate;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use crosscast_demo::Pattern;
use crosscast_ipc::os::sandbox::SandboxLevel;

/// Live-stream a sandboxed game process: the host owns the surface, the encoder and the network.
#[derive(Debug, Parser)]
#[command(name = "crosscast", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Stream a sandboxed game: the built-in demo, or any program after `--` (a Wayland client of
    /// the host's compositor); records to a file when no --out or --push is given.
    Live(LiveArgs),
    /// Named mode: listen for a separately launched game and stream it.
    Host(HostArgs),
    /// Run the demo game (spawned by the host, or --connect to a listening host).
    Game(GameArgs),
    /// Write a new random 32-byte session key (mode 0600); refuses to overwrite.
    Keygen {
        /// Where to write the key.
        file: PathBuf,
    },
    /// Measurements the design rests on.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// A frame size `WIDTHxHEIGHT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT (e.g. 1280x720)"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{v}' is not a number"))
        };
        let size = Size {
            width: parse(w)?,
            height: parse(h)?,
        };
        let ok = |v: u32| (16..=4096).contains(&v) && v % 2 == 0;
        if !ok(size.width) || !ok(size.height) {
            return Err(format!(
                "{s}: width and height must be even and between 16 and 4096"
            ));
        }
        Ok(size)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Parses a frame rate (`30`, `59.94`, `60000/1001`).
pub(crate) fn parse_fps(s: &str) -> Result<FrameRate, String> {
    s.parse::<FrameRate>().map_err(|e| e.to_string())
}

/// Parses a positive number of seconds.
pub(crate) fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

/// Frame queue policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Policy {
    /// The game never waits; frames the host has not taken yet are replaced (live default).
    Mailbox,
    /// Lossless: the game waits for a free slot.
    Fifo,
}

/// Output, encoder and pipeline options shared by `live` and `host`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StreamArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_seconds)]
    pub(crate) seconds: Option<f64>,
    /// Output size.
    #[arg(long, default_value = "1280x720")]
    pub(crate) size: Size,
    /// Output frame rate (constant): 30, 60, 59.94 or 60000/1001 (exact fractions).
    #[arg(long, default_value = "60", value_parser = parse_fps)]
    pub(crate) fps: FrameRate,
    /// Video bitrate in kb/s (default 4500 at 1280x720, 6000 at 1920x1080).
    #[arg(long)]
    pub(crate) bitrate: Option<u32>,
    /// H.264 encoder: auto (the first of vaapi, nvenc, qsv that opens here, else x264; one log
    /// line says which and why), x264, vaapi, nvenc or qsv (an explicit one that cannot open is
    /// an error before anything starts).
    #[arg(long, default_value = "auto", value_parser = parse_encoder)]
    pub(crate) encoder: VideoBackend,
    /// x264 preset: auto (starts at veryfast, steps to superfast or ultrafast while the encoder
    /// cannot keep up, and back after 10 s of headroom; each step is logged) or a fixed one
    /// (ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow).
    #[arg(long, default_value = "auto")]
    pub(crate) preset: String,
    /// Seconds between keyframes.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub(crate) keyint: f64,
    /// Record to FILE (.flv or .mp4, fragmented); repeatable.
    #[arg(long = "out", value_name = "FILE")]
    pub(crate) outs: Vec<PathBuf>,
    /// Publish to URL; repeatable; the scheme picks the protocol: rtmp://host[:port]/app/key,
    /// rtmps://host[:port]/app/key (TLS, the server's certificate verified against the system's
    /// CAs and --ca-file), or srt://host:port[?streamid=ID&passphrase=10..79
    /// chars&pbkeylen=16|24|32&latency=MICROSECONDS] (MPEG-TS, caller mode; latency is in
    /// microseconds, as FFmpeg's libsrt option: 200000 = 200 ms). --rtmp is an alias.
    #[arg(long = "push", visible_alias = "rtmp", value_name = "URL")]
    pub(crate) pushes: Vec<String>,
    /// A PEM file of CA certificates to trust for rtmps:// besides the system's store (for a
    /// server with a private CA).
    #[arg(long, value_name = "PATH")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Do not verify the rtmps:// server's certificate (anyone on the path could read the stream
    /// key); prints a warning naming the outputs it affects.
    #[arg(long)]
    pub(crate) insecure_tls: bool,
    /// Lowest video bitrate (kb/s) adaptive bitrate may step network outputs down to when
    /// their link backs up (default: a quarter of the bitrate, at least 300).
    #[arg(long, value_name = "KBPS", conflicts_with = "no_adaptive_bitrate")]
    pub(crate) min_bitrate: Option<u32>,
    /// Keep the network outputs' bitrate fixed, whatever their link does.
    #[arg(long)]
    pub(crate) no_adaptive_bitrate: bool,
    /// One encode for recordings and network outputs: while a link is squeezed, recordings
    /// follow the lowered bitrate instead of a second encode keeping them at full rate
    /// (saves that encode's CPU).
    #[arg(long)]
    pub(crate) shared_encode: bool,
    /// Nice value for the encoder threads (negative = higher priority; needs privileges).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) encoder_nice: Option<i32>,
    /// Frame slots shared with the game.
    #[arg(long, default_value_t = 3)]
    pub(crate) slots: u8,
    /// Frame queue policy.
    #[arg(long, value_enum, default_value_t = Policy::Mailbox)]
    pub(crate) policy: Policy,
    /// Most shared frame memory one game may hold, in MiB (slots × frame size).
    #[arg(long, default_value_t = 512)]
    pub(crate) max_slot_memory_mb: u64,
    /// Most game audio buffered for the encoder, in ms; older blocks are dropped and counted.
    #[arg(long, default_value_t = 2000)]
    pub(crate) audio_backlog_ms: u64,
    /// Longest the host polls for a frame without sleeping either side of when it is due, in
    /// µs (a faster handoff for up to 2 × this much CPU per frame); 0 always sleeps.
    #[arg(long, default_value_t = crosscast_ipc::host::DEFAULT_BUSY_POLL.as_micros() as u64)]
    pub(crate) busy_poll_us: u64,
    /// Do not encode: acquire and verify frames only (for tests and measurements).
    #[arg(long)]
    pub(crate) no_encode: bool,
    /// Check every frame's stamp (the game draws one with --stamp).
    #[arg(long)]
    pub(crate) verify: bool,
    /// The streamer's preview: window, png:DIR or none (default: window when a display is
    /// available, otherwise none).
    #[arg(long)]
    pub(crate) preview: Option<crosscast_preview::PreviewTarget>,
    /// Comments to overlay on the preview only: a JSON-lines file that is followed as it grows,
    /// or - for stdin. Each line: {"user": "...", "text": "..."}.
    #[arg(long, value_name = "PATH")]
    pub(crate) comments: Option<PathBuf>,
    /// Most comments accepted per second (the rest are counted and dropped).
    #[arg(long, default_value_t = 20)]
    pub(crate) comments_rate: u32,
    /// Write when each video frame left the encoder to FILE: one line per frame, `<frame index>
    /// <CLOCK_MONOTONIC ns>` (for latency measurements; `bench input` uses it).
    #[arg(long, value_name = "FILE")]
    pub(crate) frame_times: Option<PathBuf>,
    /// Input for the game from a script instead of (or beside) the preview window: a JSON-lines
    /// file followed as it grows, or - for stdin; game pixels. Each line, e.g.
    /// {"type":"key","key":"left","state":"tap"} or
    /// {"type":"button","button":"left","state":"click","x":100,"y":200} (see README, "Input").
    #[arg(long, value_name = "PATH")]
    pub(crate) input: Option<PathBuf>,
    /// Most input events per second the game receives (key and button releases always pass).
    #[arg(long, default_value_t = 2000)]
    pub(crate) input_rate: u32,
    /// Seconds to wait for the game's first frame.
    #[arg(long, default_value_t = 15.0, value_parser = parse_seconds)]
    pub(crate) first_frame_timeout: f64,
}

/// `LAYOUT[,VARIANT]`, checked against this machine's xkb data so that a typo fails at once.
fn parse_keymap(s: &str) -> Result<crosscast_compositor::Keymap, String> {
    let (layout, variant) = s.split_once(',').unwrap_or((s, ""));
    let ok = |v: &str| {
        v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    };
    if layout.is_empty() || !ok(layout) || !ok(variant) {
        return Err(format!(
            "{s:?} is not LAYOUT[,VARIANT] (xkb names such as us, de or fr,bepo)"
        ));
    }
    let keymap = crosscast_compositor::Keymap {
        layout: layout.into(),
        variant: variant.into(),
    };
    crosscast_compositor::keymap_check(&keymap).map_err(|e| e.to_string())?;
    Ok(keymap)
}

#[derive(Debug, Clone, Args)]
pub(crate) struct LiveArgs {
    #[command(flatten)]
    pub(crate) stream: StreamArgs,
    /// What the game shows.
    #[arg(long, default_value = "aquarium")]
    pub(crate) pattern: Pattern,
    /// Sandbox for the game process.
    #[arg(long, default_value = "strict")]
    pub(crate) sandbox: SandboxLevel,
    /// The game's own frame rate (default: the output rate).
    #[arg(long, value_parser = parse_fps)]
    pub(crate) game_fps: Option<FrameRate>,
    /// Do not restart the built-in demo game when it exits or dies.
    #[arg(long)]
    pub(crate) no_restart: bool,
    /// Relaunch a game COMMAND when it exits (by default the host exits with its status).
    #[arg(long)]
    pub(crate) restart: bool,
    /// The game COMMAND's writable data directory (default: a fresh one, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub(crate) game_data: Option<PathBuf>,
    /// The keyboard layout a game COMMAND gets, as xkb names it: LAYOUT[,VARIANT], e.g. `de`
    /// or `fr,bepo` (keys go from the preview window as evdev codes; the layout gives them
    /// their meaning).
    #[arg(long, default_value = "us", value_parser = parse_keymap)]
    pub(crate) keymap: crosscast_compositor::Keymap,
    /// Start Xwayland (the game's X server) before the game COMMAND, instead of when its first
    /// X client connects.
    #[arg(long)]
    pub(crate) x11: bool,
    /// The game: `-- COMMAND [ARGS…]` runs any program (a Wayland client of the host's
    /// compositor, or a game on crosscast's protocol) in the sandbox; `-- --option…` passes
    /// options to the built-in demo game; nothing runs the demo game.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) game_args: Vec<String>,
}

impl LiveArgs {
    /// The game COMMAND after `--`, when one is given (options after `--` are the demo's).
    pub(crate) fn game_command(&self) -> Option<(&str, &[String])> {
        match self.game_args.split_first() {
            Some((program, args)) if !program.starts_with('-') => Some((program, args)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct HostArgs {
    /// Listen on the named abstract socket (the only mode of `host`).
    #[arg(long, required = true)]
    pub(crate) listen: bool,
    /// Session key file (see `crosscast keygen`).
    #[arg(long)]
    pub(crate) key_file: PathBuf,
    /// App id the socket name is derived from.
    #[arg(long)]
    pub(crate) app_id: String,
    /// User id the socket name is derived from.
    #[arg(long)]
    pub(crate) user_id: String,
    /// Also accept games running as this uid (default: only the host's own uid).
    #[arg(long)]
    pub(crate) allow_uid: Vec<u32>,
    /// Seconds a connection has to finish the handshake.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub(crate) handshake_timeout: f64,
    /// Connections allowed in the handshake at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) max_pending: usize,
    /// Games connected at once: one streams, the rest wait on standby and take over in order
    /// when it leaves; more are refused.
    #[arg(long, default_value_t = 1)]
    pub(crate) max_sessions: usize,
    #[command(flatten)]
    pub(crate) stream: StreamArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GameArgs {
    /// Connect to a host listening in named mode (default: the host spawned us).
    #[arg(long, requires_all = ["key_file", "app_id", "user_id"])]
    pub(crate) connect: bool,
    /// With --connect: exit when the host goes away instead of reconnecting.
    #[arg(long)]
    pub(crate) no_reconnect: bool,
    /// Session key file.
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
    /// App id.
    #[arg(long)]
    pub(crate) app_id: Option<String>,
    /// User id.
    #[arg(long)]
    pub(crate) user_id: Option<String>,
    /// Frame size to ask for (the host decides; a different size triggers a resize).
    #[arg(long)]
    pub(crate) size: Option<Size>,
    /// Frame rate: 30, 60, 59.94 or 60000/1001 (exact fractions).
    #[arg(long, default_value = "60", value_parser = parse_fps)]
    pub(crate) fps: FrameRate,
    /// What to show and play.
    #[arg(long, default_value = "aquarium")]
    pub(crate) pattern: Pattern,
    /// Stop after this many seconds.
    #[arg(long, value_parser = parse_seconds)]
    pub(crate) seconds: Option<f64>,
    /// Write a sequence number and checksum into each frame for the host to verify.
    #[arg(long)]
    pub(crate) stamp: bool,
    /// Sandbox to apply to ourselves once connected.
    #[arg(long, default_value = "strict")]
    pub(crate) sandbox: SandboxLevel,
    /// Audio sample format.
    #[arg(long, default_value = "f32", value_parser = ["s16", "f32"])]
    pub(crate) audio_format: String,
    /// Send no audio.
    #[arg(long)]
    pub(crate) no_audio: bool,
    /// Ask for a resize to --resize-to after this many frames (testing).
    #[arg(long, requires = "resize_to")]
    pub(crate) resize_after: Option<u64>,
    /// The size to resize to.
    #[arg(long)]
    pub(crate) resize_to: Option<Size>,
    /// Baseline mode: write raw RGBA frames here ('-' = stdout) instead of connecting.
    #[arg(long)]
    pub(crate) raw_out: Option<PathBuf>,
    /// Baseline mode: write raw s16le stereo 48 kHz audio here (e.g. a FIFO).
    #[arg(long, requires = "raw_out")]
    pub(crate) raw_audio_out: Option<PathBuf>,
    /// Baseline mode: how frames reach the pipe.
    #[arg(long, value_enum, default_value_t = RawWriter::Careful, requires = "raw_out")]
    pub(crate) raw_writer: RawWriter,
}

/// How the baseline game feeds its raw-frame pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RawWriter {
    /// A writer thread behind a bounded queue (3 frame buffers, as crosscast's 3 slots) and an
    /// enlarged pipe buffer; when the queue is full the game drops the frame and goes on.
    Careful,
    /// The game's own thread writes each frame and blocks until the pipe takes it.
    Naive,
}

impl std::fmt::Display for RawWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RawWriter::Careful => "careful",
            RawWriter::Naive => "naive",
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Game queue → a consuming thread holds the mapped frame (and the host's I/O thread before
    /// it), with two real processes, beside the platform's floor: a payload-free SEQPACKET ping
    /// between two processes; with and without busy-poll.
    Handoff {
        /// Seconds per case.
        #[arg(long, default_value_t = 8.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Busy-poll window of the polling cases, in µs (the other cases run with 0, as
        /// `--busy-poll-us 0` does in `live`).
        #[arg(long, default_value_t = crosscast_ipc::host::DEFAULT_BUSY_POLL.as_micros() as u64,
              value_parser = clap::value_parser!(u64).range(1..=100_000))]
        busy_poll_us: u64,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The transport comparison: delay and stall rate per transport and payload size (needs a
    /// build with `--features bench`).
    Ipc(crosscast_bench::ipc::IpcArgs),
    /// crosscast's pipeline vs raw frames piped into ffmpeg (careful and naive writers) vs the
    /// encode alone: CPU per output frame, game fps loss and frames lost.
    Pipeline {
        /// Seconds per run.
        #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Rounds of alternating runs (each round runs every variant once); figures are the
        /// median and range over the rounds.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Write the report as JSON here (one row per variant, median and range per figure).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A flood of comments on the preview with the encoder running, against none: the rate the
    /// host accepted, the game's frame rate and the host's CPU per frame.
    Preview {
        /// Seconds per run.
        #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Write the report as JSON here (one row per variant, median and range per figure).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A real Wayland game (glmark2, llvmpipe) streamed by `crosscast live` against the same
    /// under weston's headless backend (nothing streamed), alternating: the game's fps and their
    /// ratio, each compositor's CPU per frame, and crosscast's commit → output-clock delay.
    Wayland {
        /// Seconds glmark2 runs its scene, per run.
        #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Rounds of alternating runs (crosscast then weston); figures are the median and
        /// range over the rounds.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// glmark2's window size, and the stream's.
        #[arg(long, default_value = "1280x720")]
        size: Size,
        /// Write the report as JSON here (one row per compositor, median and range per figure).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Input-to-stream latency: a key injected at the preview window (XTEST on Xvfb) to the
    /// first encoded frame showing the game's reaction, through the demo game (crosscast's
    /// protocol) and a Wayland client (`crosscast-input-probe`), alternating.
    Input {
        /// Rounds (each runs both paths once); figures are the median and range over them.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Key presses per run.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
        presses: u32,
        /// The stream's size.
        #[arg(long, default_value = "1280x720")]
        size: Size,
        /// The stream's frame rate.
        #[arg(long, default_value = "60", value_parser = parse_fps)]
        fps: FrameRate,
        /// The Wayland probe client (default: `crosscast-input-probe` beside this executable,
        /// else on PATH).
        #[arg(long)]
        probe: Option<PathBuf>,
        /// Write the JSON report here (one row per path, median and range per figure).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Adaptive bitrate on a real squeezed link: two network namespaces joined by a veth pair,
    /// nginx-rtmp in one, `crosscast live` (streaming and recording) in the other; tc limits
    /// the link for a while, then lifts it. Reports how fast the bitrate stepped down and came
    /// back, the send queue, reconnects, and frames lost in the recording and at the ingest.
    /// Needs root, iproute2, nginx with libnginx-mod-rtmp, and ffprobe.
    Squeeze(crate::bench_squeeze::Squeeze),
    /// The game's own audio through the host's PulseAudio server: write → host-timeline delay
    /// (p50/p99/max) and host CPU per second of audio for paplay, `pacat --latency-msec=20`
    /// and SDL2's loopwave, beside the idle server and a pulseaudio daemon with a null sink.
    /// Needs pulseaudio-utils and libsdl2-tests (and pulseaudio for the reference).
    Pulse {
        /// Seconds of audio each client plays, per run.
        #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Rounds (each runs every client on each server once); figures are the median and
        /// range over them.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Skip the pulseaudio-daemon reference (its rows then carry a note and no figures).
        #[arg(long)]
        no_reference: bool,
        /// Write the JSON report here (one row per client and server, median and range per
        /// figure).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The encoder under overload: the demo game at 1920x1080 and 60 fps streamed with x264 at
    /// a fixed `veryfast` and with `--preset auto`, alternating: frames encoded and dropped,
    /// preset steps and host CPU per run.
    Encoder {
        /// Seconds per run.
        #[arg(long, default_value_t = 12.0, value_parser = parse_seconds)]
        seconds: f64,
        /// Rounds (each runs both presets once); figures are the median and range over them.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// The stream's size.
        #[arg(long, default_value = "1920x1080")]
        size: Size,
        /// The stream's frame rate.
        #[arg(long, default_value = "60")]
        fps: String,
        /// Write the JSON report here (one row per preset, median and range per figure).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// (internal) the second process of `bench ipc`.
    #[command(hide = true)]
    IpcPeer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn parse_encoder(s: &str) -> Result<VideoBackend, String> {
    s.parse()
        .map_err(|e: crosscast_media::MediaError| e.to_string())
}

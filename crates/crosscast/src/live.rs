//! `crosscast live` and `crosscast host`: wire the CLI options into the host pipeline, print a
//! status line once a second, finish every output cleanly on Ctrl-C/SIGTERM.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crosscast_host::{run_live, CommandLaunch, GameLaunch, LiveOptions, LiveReport, SessionSource};
use crosscast_ipc::auth::SessionKey;
use crosscast_ipc::connect::AcceptorOptions;
use crosscast_ipc::HostOptions;
use crosscast_media::{
    EncoderConfig, OutputSpec, OutputState, PushScheme, PushUrl, TlsOptions, VideoBackend,
    VideoEncoder,
};
use crosscast_preview::{CommentSource, FeedLimits, PreviewTarget};
use crosscast_wire::{QueuePolicy, UidPolicy};

use crate::cli::{HostArgs, LiveArgs, Policy, StreamArgs};

/// Stop flag raised by SIGINT/SIGTERM: the pipeline finishes its files and exits 0.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    Ok(stop)
}

fn default_recording() -> PathBuf {
    PathBuf::from(
        chrono::Local::now()
            .format("crosscast-%Y%m%d-%H%M%S.flv")
            .to_string(),
    )
}

fn host_options(s: &StreamArgs) -> HostOptions {
    HostOptions {
        width: s.size.width,
        height: s.size.height,
        slots: s.slots,
        policy: match s.policy {
            Policy::Mailbox => QueuePolicy::Mailbox,
            Policy::Fifo => QueuePolicy::Fifo,
        },
        max_slot_memory: s.max_slot_memory_mb << 20,
        audio_backlog: Duration::from_millis(s.audio_backlog_ms),
        busy_poll: Duration::from_micros(s.busy_poll_us),
        ..HostOptions::default()
    }
}

fn live_options(s: &StreamArgs, stop: Arc<AtomicBool>) -> anyhow::Result<LiveOptions> {
    // A script that is not there is said before anything starts (it may grow later, but it
    // must exist: `touch` it first to feed it as you go).
    if let Some(p) = s.input.as_ref().filter(|p| p.as_os_str() != "-") {
        std::fs::metadata(p)
            .with_context(|| format!("cannot read the input script {}", p.display()))?;
    }
    let encoder = if s.no_encode {
        None
    } else {
        let tls = check_push(s)?;
        let mut outputs: Vec<OutputSpec> = s.outs.iter().cloned().map(OutputSpec::File).collect();
        outputs.extend(s.pushes.iter().cloned().map(OutputSpec::Push));
        if outputs.is_empty() {
            let path = default_recording();
            say!(
                "crosscast: no --out or --push given; recording to {}",
                path.display()
            );
            outputs.push(OutputSpec::File(path));
        }
        let mut cfg = EncoderConfig::new(s.size.width, s.size.height, s.fps);
        if let Some(b) = s.bitrate {
            cfg.video_bitrate_kbps = b;
        }
        cfg.preset = s.preset.clone();
        cfg.encoder = s.encoder;
        cfg.keyint_frames = s.fps.frames_in(s.keyint);
        cfg.encoder_nice = s.encoder_nice;
        cfg.frame_times = s.frame_times.clone();
        cfg.tls = tls;
        cfg.adaptive_min_kbps = if s.no_adaptive_bitrate {
            None
        } else {
            Some(
                s.min_bitrate
                    .unwrap_or_else(|| (cfg.video_bitrate_kbps / 4).max(300)),
            )
        };
        cfg.shared_encode = s.shared_encode;
        if s.policy == Policy::Fifo {
            cfg.block_when_full = true;
        }
        if !matches!(cfg.encoder, VideoBackend::Auto | VideoBackend::X264) {
            // A GPU encoder asked for by name is opened once now, so a machine without it
            // says why before any game or output starts (auto falls back instead).
            VideoEncoder::probe(&cfg)
                .with_context(|| format!("--encoder {} cannot be used here", cfg.encoder))?;
        }
        Some((cfg, outputs))
    };
    Ok(LiveOptions {
        fps: s.fps,
        duration: s.seconds.map(Duration::from_secs_f64),
        encoder,
        verify_stamps: s.verify,
        preview: s
            .preview
            .clone()
            .unwrap_or_else(PreviewTarget::default_for_env),
        comments: s.comments.as_ref().map(|p| {
            if p.as_os_str() == "-" {
                CommentSource::Stdin
            } else {
                CommentSource::File(p.clone())
            }
        }),
        comment_limits: FeedLimits {
            max_per_second: s.comments_rate,
            ..FeedLimits::default()
        },
        first_frame_timeout: Duration::from_secs_f64(s.first_frame_timeout),
        input: s
            .input
            .as_ref()
            .map(|p| crosscast_input::ScriptSource::parse(&p.to_string_lossy())),
        input_limits: crosscast_input::RouterLimits {
            max_per_second: s.input_rate.max(1),
            burst: (s.input_rate / 4).max(1),
        },
        stop,
    })
}

/// Checks every --push URL and --ca-file before anything starts (a typo must not cost a
/// recording), and says which outputs --insecure-tls leaves unverified.
fn check_push(s: &StreamArgs) -> anyhow::Result<TlsOptions> {
    let mut rtmps = Vec::new();
    for u in &s.pushes {
        let url = PushUrl::parse(u)?;
        if url.scheme() == PushScheme::Rtmps {
            rtmps.push(url.display().to_owned());
        }
    }
    let tls = TlsOptions {
        insecure: s.insecure_tls,
        ca_file: s.ca_file.clone(),
    };
    tls.check()?;
    if tls.insecure {
        let which = if rtmps.is_empty() {
            "no output (there is no rtmps:// output)".to_owned()
        } else {
            rtmps.join(", ")
        };
        say!(
            "crosscast: warning: --insecure-tls: the server's certificate is not verified for {which}; anyone on the path can read the stream key"
        );
    }
    Ok(tls)
}

/// Prints a push output's error each time it changes (the status line has room only for the
/// state word): why a connection failed is what the streamer needs to fix it.
fn report_output_errors(seen: &mut Vec<String>, status: &crosscast_host::LiveStatus) {
    let Some(e) = &status.encoder else {
        return;
    };
    seen.resize(e.outputs.len(), String::new());
    for (o, last) in e.outputs.iter().zip(seen.iter_mut()) {
        match &o.state {
            OutputState::Reconnecting { last_error, .. } if last_error != last => {
                say!("crosscast: {}: {last_error}; retrying", o.name);
                last.clone_from(last_error);
            }
            OutputState::Live => last.clear(),
            _ => {}
        }
    }
}

fn run(source: &SessionSource, opts: &LiveOptions) -> anyhow::Result<ExitCode> {
    let mut seen = Vec::new();
    let report = run_live(
        source,
        opts,
        &mut |status| {
            report_output_errors(&mut seen, status);
            crate::say_line(status)
        },
        &mut |note| say!("crosscast: {note}"),
    )?;
    print_summary(&report);
    if report.clock.stamp_errors > 0 {
        anyhow::bail!("{} frames failed verification", report.clock.stamp_errors);
    }
    // A game that ended the run gives the host its status, as a shell would; a run with its
    // own duration ran it out, whatever became of the game.
    if opts.duration.is_some() {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match &report.game_exit {
        Some(Ok(status)) => {
            let code = status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Some(Err(why)) => anyhow::bail!("the game could not run: {why}"),
        None => ExitCode::SUCCESS,
    })
}

fn print_summary(report: &LiveReport) {
    let r = &report.clock;
    let c = &r.counters;
    crate::say_line(&format_args!(
        "crosscast: done: {:.2} s, {} frames out ({} repeated, {} skipped), game sessions {}, frames queued {} acquired {} dropped {} stale {}, configs {}, audio blocks {} (gaps {}, overlaps {}, dropped {}), silence {} samples, stamps ok {} bad {}",
        report.duration.as_secs_f64(),
        r.frames_out,
        r.repeated,
        r.skipped,
        r.sessions,
        c.frames_queued,
        c.frames_acquired,
        c.frames_dropped,
        c.frames_stale,
        c.configs_sent,
        c.audio_blocks,
        c.audio_gaps,
        c.audio_overlaps,
        c.audio_dropped,
        r.silence_samples,
        r.stamps_verified,
        r.stamp_errors,
    ));
    if let Some(line) = &r.audio_source {
        say!("crosscast: {line}");
    }
    if let Some(m) = &r.mix {
        say!(
            "crosscast: audio mix: {} samples of game audio placed, {} late, {} too early",
            m.added,
            m.late,
            m.too_early
        );
    }
    if c.handoff.count() > 0 {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        // The percentiles are upper bounds of the histogram's power-of-two buckets; the mean
        // and max are exact (`bench wayland` reports all four).
        say!(
            "crosscast: frame handoff (game -> host): {} frames, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, avg {:.3} ms",
            c.handoff.count(),
            ms(c.handoff.quantile_upper(0.5)),
            ms(c.handoff.quantile_upper(0.99)),
            ms(c.handoff.max()),
            ms(c.handoff.mean()),
        );
    }
    if let Ok(u) =
        crosscast_ipc::os::process::resource_usage(crosscast_ipc::os::process::UsageOf::Process)
    {
        say!("crosscast: host peak rss {} MiB", u.max_rss_bytes >> 20);
        // The host's own CPU (every thread: compositor, output clock, encoder), without the
        // game's: `bench wayland` divides it by the frames out.
        say!(
            "crosscast: host cpu {:.3} s (user {:.3} s, sys {:.3} s)",
            (u.user_ns + u.system_ns) as f64 / 1e9,
            u.user_ns as f64 / 1e9,
            u.system_ns as f64 / 1e9,
        );
    }
    if let Some(s) = &report.comments {
        crate::say_line(&format_args!(
            "crosscast: comments: {} lines, {} accepted, {} over the rate limit, {} malformed",
            s.lines, s.accepted, s.rate_dropped, s.malformed
        ));
    }
    if let Some(i) = &report.input {
        let (w, sc) = (&i.window, &i.script);
        crate::say_line(&format_args!(
            "crosscast: input: {} events to the game, {} dropped by its full queue, {} with no game to take them, {} over the rate limit, {} ignored (outside the game, without focus)",
            i.sent,
            i.dropped,
            i.unrouted,
            w.rate_dropped + sc.rate_dropped,
            w.ignored + sc.ignored,
        ));
    }
    if let Some(s) = &report.input_script {
        crate::say_line(&format_args!(
            "crosscast: input script: {} lines, {} applied, {} malformed",
            s.lines, s.applied, s.malformed
        ));
    }
    if let Some(e) = &report.encoder {
        crate::say_line(&format_args!(
            "crosscast: encoded {} video frames ({} dropped), {} audio frames, {} bytes",
            e.video_frames_encoded, e.video_frames_dropped, e.audio_frames_encoded, e.bytes_written
        ));
        for o in &e.outputs {
            say!(
                "crosscast: output {}: {:?}, {} bytes, {} packets dropped, {} reconnects",
                o.name,
                o.state,
                o.bytes,
                o.packets_dropped,
                o.reconnects
            );
        }
    }
}

pub(crate) fn live(args: LiveArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals()?;
    let opts = live_options(&args.stream, stop)?;
    if let Some((program, game_args)) = args.game_command() {
        let s = &args.stream;
        let source = SessionSource::start(
            GameLaunch::Command(CommandLaunch {
                program: program.into(),
                args: game_args.iter().map(Into::into).collect(),
                restart: args.restart,
                sandbox: args.sandbox,
                data_dir: args.game_data.clone(),
                size: (s.size.width, s.size.height),
                fps: s.fps,
                x11: args.x11,
                keymap: args.keymap.clone(),
            }),
            host_options(s),
        )?;
        return run(&source, &opts);
    }
    let exe =
        std::env::current_exe().context("cannot find our own executable to start the game")?;
    let s = &args.stream;
    let mut game_args = vec![
        "game".to_string(),
        "--fps".into(),
        args.game_fps.unwrap_or(s.fps).to_string(),
        "--pattern".into(),
        args.pattern.to_string(),
        "--sandbox".into(),
        args.sandbox.to_string(),
    ];
    if s.verify {
        game_args.push("--stamp".into());
    }
    game_args.extend(args.game_args.iter().cloned());
    let source = SessionSource::start(
        GameLaunch::Spawn {
            program: exe,
            args: game_args,
            restart: !args.no_restart,
        },
        host_options(s),
    )?;
    run(&source, &opts)
}

pub(crate) fn host(args: HostArgs) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals()?;
    let opts = live_options(&args.stream, stop)?;
    let key = SessionKey::read_file(&args.key_file)?;
    let mut policy = UidPolicy::only(crosscast_ipc::os::process::current_uid());
    for uid in &args.allow_uid {
        policy = policy.allow(*uid);
    }
    let source = SessionSource::start(
        GameLaunch::Named {
            acceptor: AcceptorOptions {
                key,
                uid_policy: policy,
                handshake_timeout: Duration::from_secs_f64(args.handshake_timeout),
                max_pending: args.max_pending,
            },
            app_id: args.app_id.clone(),
            user_id: args.user_id.clone(),
            max_sessions: args.max_sessions,
        },
        host_options(&args.stream),
    )?;
    say!(
        "crosscast: listening for app '{}' user '{}'",
        args.app_id,
        args.user_id
    );
    run(&source, &opts)
}

//! The session layer over real kernel sockets and memfds: a game endpoint and a host endpoint
//! on two threads of this process (the binary's tests repeat the important cases with two real
//! processes).

use std::time::Duration;

use crosscast_ipc::auth::{authenticate_game, authenticate_host, random_bytes};
use crosscast_ipc::os::socket::SeqPacket;
use crosscast_ipc::{
    stamp, Channel, FrameConsumer, FrameView, GameSession, HostOptions, HostSession, IpcError,
    SessionKey,
};
use crosscast_wire::{AudioBlock, AudioConfig, QueuePolicy, SampleFormat, UidPolicy};

const T: Duration = Duration::from_secs(5);

fn uid() -> u32 {
    crosscast_ipc::os::process::current_uid()
}

fn connect(opts: HostOptions) -> (HostSession, GameSession) {
    let key = SessionKey::generate().unwrap();
    let (a, b) = SeqPacket::pair().unwrap();
    let (host_ch, game_ch) = (Channel::new(a), Channel::new(b));
    let game_key = key.clone();
    let game = std::thread::spawn(move || {
        let o = authenticate_host(&game_ch, &game_key, T).unwrap();
        GameSession::start(game_ch, o.session_id).unwrap()
    });
    let (outcome, peer) = authenticate_game(&host_ch, &key, &UidPolicy::only(uid()), T, 7).unwrap();
    let host = HostSession::start(host_ch, opts, outcome.session_id, peer).unwrap();
    let game = game.join().unwrap();
    assert_eq!(game.session_id(), 7);
    (host, game)
}

fn small(policy: QueuePolicy) -> HostOptions {
    HostOptions {
        width: 64,
        height: 32,
        policy,
        ..HostOptions::default()
    }
}

fn draw_and_queue(game: &GameSession, seq: u64) -> bool {
    let mut w = game.dequeue(T).unwrap().expect("a free slot");
    let px = w.pixels();
    for (i, b) in px.iter_mut().enumerate() {
        *b = (i as u64 * 31 + seq * 7) as u8;
    }
    stamp::write(px, seq);
    game.queue(w, seq, crosscast_ipc::monotonic_ns()).unwrap()
}

/// A game paced on absolute deadlines, one `period` apart from one period from now.
struct Pacing {
    start: std::time::Instant,
    t0: u64,
    period: Duration,
}

impl Pacing {
    fn new(period: Duration) -> Pacing {
        Pacing {
            start: std::time::Instant::now() + period,
            t0: crosscast_ipc::monotonic_ns() + period.as_nanos() as u64,
            period,
        }
    }

    /// Waits for frame `n`'s deadline, then queues it as frame `n + 1`, stamped with that
    /// deadline as its pts.
    fn queue(&self, game: &GameSession, n: u64) {
        let deadline = self.start + self.period * n as u32;
        std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
        let mut w = game.dequeue(T).unwrap().expect("a free slot");
        stamp::write(w.pixels(), n + 1);
        let pts = self.t0 + n * self.period.as_nanos() as u64;
        assert!(game.queue(w, n + 1, pts).unwrap());
    }
}

/// Waits for the next frame and checks it is frame `seq`, intact.
fn next_verified(consumer: &mut FrameConsumer, seq: u64) -> FrameView<'_> {
    assert!(consumer.wait_frame(T), "frame {seq} never arrived");
    let f = consumer.acquire().unwrap().unwrap();
    assert_eq!(stamp::verify(f.data), Ok(seq));
    f
}

#[test]
fn fifo_hands_over_600_verified_frames_without_loss() {
    let (mut host, game) = connect(small(QueuePolicy::Fifo));
    let mut consumer = host.consumer().unwrap();
    let producer = std::thread::spawn(move || {
        game.wait_config(T).unwrap();
        for seq in 1..=600 {
            assert!(draw_and_queue(&game, seq));
        }
        game
    });
    let mut expected = 1;
    while expected <= 600 {
        let f = next_verified(&mut consumer, expected);
        assert_eq!(f.seq, expected);
        expected += 1;
    }
    let game = producer.join().unwrap();
    let c = host.counters();
    assert_eq!(
        (c.frames_queued, c.frames_acquired, c.frames_dropped),
        (600, 600, 0)
    );
    game.close();
    assert!(host.wait_closed(T));
}

#[test]
fn mailbox_drops_frames_for_a_slow_consumer_and_never_blocks_the_game() {
    let (mut host, game) = connect(small(QueuePolicy::Mailbox));
    let mut consumer = host.consumer().unwrap();
    game.wait_config(T).unwrap();
    // The consumer takes one frame, then sleeps while the game queues 50 more.
    assert!(draw_and_queue(&game, 1));
    assert!(consumer.wait_frame(T));
    consumer.acquire().unwrap().unwrap();
    for seq in 2..=51 {
        assert!(draw_and_queue(&game, seq));
    }
    // Every replaced frame is released straight back: wait until the host has seen them all.
    for _ in 0..500 {
        if host.counters().frames_queued == 51 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let f = consumer.acquire().unwrap().unwrap();
    assert_eq!(f.seq, 51, "mailbox hands over the newest frame");
    assert_eq!(stamp::verify(f.data), Ok(51));
    let c = host.counters();
    assert_eq!(c.frames_dropped, 49);
    assert_eq!(c.frames_acquired, 2);
}

#[test]
fn resize_mid_stream_delivers_frames_of_the_new_size() {
    let (mut host, game) = connect(small(QueuePolicy::Fifo));
    let mut consumer = host.consumer().unwrap();
    let first = game.wait_config(T).unwrap();
    assert_eq!((first.width, first.height), (64, 32));
    assert!(draw_and_queue(&game, 1));
    assert!(consumer.wait_frame(T));
    assert_eq!(consumer.acquire().unwrap().unwrap().width, 64);
    game.request_resize(128, 96).unwrap();
    let mut cfg = first.clone();
    for _ in 0..500 {
        cfg = game.config().unwrap();
        if cfg.config_id != first.config_id {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!((cfg.width, cfg.height, cfg.config_id), (128, 96, 2));
    assert!(draw_and_queue(&game, 2));
    assert!(consumer.wait_frame(T));
    let f = consumer.acquire().unwrap().unwrap();
    assert_eq!((f.width, f.height, f.seq), (128, 96, 2));
    assert_eq!(stamp::verify(f.data), Ok(2));
    assert_eq!(host.counters().configs_sent, 2);
}

#[test]
fn audio_blocks_arrive_sample_exact() {
    let (host, game) = connect(small(QueuePolicy::Mailbox));
    let config = AudioConfig {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    game.send_audio_config(config).unwrap();
    let t0 = crosscast_ipc::monotonic_ns();
    // 30 s of audio in 10 ms blocks, sent as fast as the socket takes them.
    let mut received = Vec::new();
    let mut next_sample: u64 = 0;
    for seq in 0..3000u64 {
        let data: Vec<u8> = (0..480u64)
            .flat_map(|i| {
                let v = ((next_sample + i) % 32768) as i16;
                [v.to_le_bytes(), v.to_le_bytes()].concat()
            })
            .collect();
        game.send_audio(AudioBlock {
            seq,
            pts_ns: t0 + next_sample * 1_000_000_000 / 48_000,
            sent_ns: 0,
            config,
            data,
        })
        .unwrap();
        next_sample += 480;
        if seq % 50 == 0 {
            host.drain_audio(&mut received);
        }
    }
    for _ in 0..500 {
        if host.counters().audio_blocks == 3000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    host.drain_audio(&mut received);
    let c = host.counters();
    assert_eq!(
        (
            c.audio_blocks,
            c.audio_gaps,
            c.audio_overlaps,
            c.audio_seq_gaps,
            c.audio_dropped
        ),
        (3000, 0, 0, 0, 0)
    );
    let samples: Vec<i16> = received
        .iter()
        .flat_map(|b| {
            b.data
                .chunks_exact(4)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(samples.len(), 3000 * 480);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(*s, (i as u64 % 32768) as i16, "sample {i}");
    }
}

#[test]
fn audio_gaps_are_counted() {
    let (host, game) = connect(small(QueuePolicy::Mailbox));
    let config = AudioConfig {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::F32,
    };
    game.send_audio_config(config).unwrap();
    let t0 = crosscast_ipc::monotonic_ns();
    for (seq, start_ms) in [(0u64, 0u64), (1, 10), (2, 30), (3, 35)] {
        game.send_audio(AudioBlock {
            seq,
            pts_ns: t0 + start_ms * 1_000_000,
            sent_ns: 0,
            config,
            data: vec![0; 480 * 8],
        })
        .unwrap();
    }
    for _ in 0..500 {
        if host.counters().audio_blocks == 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = host.counters();
    assert_eq!((c.audio_gaps, c.audio_overlaps), (1, 1));
}

#[test]
fn releasing_a_slot_twice_is_caught_on_the_game_side() {
    // A game that queues a slot it no longer owns is cut off by the host.
    let (host, game) = connect(small(QueuePolicy::Fifo));
    game.wait_config(T).unwrap();
    assert!(draw_and_queue(&game, 1));
    let forged = crosscast_wire::Message::FrameQueued(crosscast_wire::FrameQueued {
        config_id: 1,
        slot: 0,
        seq: 2,
        pts_ns: crosscast_ipc::monotonic_ns(),
        sent_ns: 0,
    });
    // Slot 0 was dequeued first and is now the host's.
    game.channel().send(&forged).unwrap();
    assert!(host.wait_closed(T));
    assert!(
        matches!(host.closed(), Some(IpcError::Slot(_))),
        "{:?}",
        host.closed()
    );
}

#[test]
fn the_game_cannot_fake_the_host_key() {
    let (a, b) = SeqPacket::pair().unwrap();
    let (host_ch, game_ch) = (Channel::new(a), Channel::new(b));
    let game = std::thread::spawn(move || {
        authenticate_host(
            &game_ch,
            &SessionKey::from_bytes(random_bytes().unwrap()),
            T,
        )
    });
    let host = authenticate_game(
        &host_ch,
        &SessionKey::generate().unwrap(),
        &UidPolicy::only(uid()),
        T,
        1,
    );
    assert!(matches!(host, Err(IpcError::Handshake(_))));
    let game = game.join().unwrap();
    assert!(game.is_err(), "the game must learn it was refused");
}

#[test]
fn slot_memory_limit_refuses_an_oversized_resize() {
    let opts = HostOptions {
        max_slot_memory: 1 << 20,
        ..small(QueuePolicy::Mailbox)
    };
    let (host, game) = connect(opts);
    game.wait_config(T).unwrap();
    // 1024x1024 RGBA x 3 slots = 12 MiB, over the 1 MiB limit.
    game.request_resize(1024, 1024).unwrap();
    assert!(host.wait_closed(T));
    assert!(
        matches!(host.closed(), Some(IpcError::Limit(m)) if m.contains("limit 1048576")),
        "{:?}",
        host.closed()
    );
}

#[test]
fn audio_backlog_is_bounded_when_the_consumer_falls_behind() {
    let opts = HostOptions {
        audio_backlog: Duration::from_millis(100),
        ..small(QueuePolicy::Mailbox)
    };
    let (host, game) = connect(opts);
    let config = AudioConfig {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    game.send_audio_config(config).unwrap();
    let t0 = crosscast_ipc::monotonic_ns();
    for seq in 0..100u64 {
        game.send_audio(AudioBlock {
            seq,
            pts_ns: t0 + seq * 10_000_000,
            sent_ns: 0,
            config,
            data: vec![0; 480 * 4],
        })
        .unwrap();
    }
    for _ in 0..500 {
        if host.counters().audio_blocks == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut kept = Vec::new();
    host.drain_audio(&mut kept);
    assert_eq!(kept.len(), 10, "100 ms of 10 ms blocks are kept");
    assert_eq!(host.counters().audio_dropped, 90);
    assert_eq!(kept.last().unwrap().seq, 99, "the newest audio is kept");
}

#[test]
fn audio_with_an_absurd_timestamp_is_refused() {
    let (host, game) = connect(small(QueuePolicy::Mailbox));
    let config = AudioConfig {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::S16,
    };
    game.send_audio_config(config).unwrap();
    game.send_audio(AudioBlock {
        seq: 0,
        pts_ns: u64::MAX / 2,
        sent_ns: 0,
        config,
        data: vec![0; 480 * 4],
    })
    .unwrap();
    assert!(host.wait_closed(T));
    assert!(
        matches!(host.closed(), Some(IpcError::Protocol(m)) if m.contains("away from the host clock")),
        "{:?}",
        host.closed()
    );
}

#[test]
fn polling_for_paced_frames_costs_a_bounded_share_of_a_core() {
    let busy_poll = Duration::from_micros(500);
    let (mut host, game) = connect(HostOptions {
        busy_poll,
        ..small(QueuePolicy::Mailbox)
    });
    let mut consumer = host.consumer().unwrap();
    game.wait_config(T).unwrap();
    // A game paced at 60 fps on absolute deadlines, each frame stamped with its deadline.
    let period = Duration::from_nanos(16_666_667);
    let frames = 90u64;
    let pacing = Pacing::new(period);
    for n in 0..frames {
        pacing.queue(&game, n);
        next_verified(&mut consumer, n + 1);
    }
    // Then the game stops drawing for a while: the I/O thread goes back to sleeping.
    std::thread::sleep(Duration::from_secs(1));
    game.close();
    assert!(host.wait_closed(T));
    drop(consumer);
    let c = host.close();
    assert_eq!(c.frames_queued, frames);
    // At most 2 × busy_poll per frame plus the plain cost of receiving (far below 1 ms a
    // frame); a thread that kept polling would have burnt the whole 2.5 s.
    let budget = frames * (2 * busy_poll.as_nanos() as u64 + 1_000_000);
    assert!(
        c.io_cpu_ns < budget,
        "the I/O thread used {} ms of CPU for {frames} frames (budget {} ms)",
        c.io_cpu_ns / 1_000_000,
        budget / 1_000_000
    );
    assert!(
        c.io_cpu_ns > 0,
        "the I/O thread's CPU time was not reported"
    );
    // And the polling catches the frames: only the predictor's first frames, and the odd one
    // a descheduled vCPU delays, wake the thread.
    assert!(
        (frames / 2..=frames - 8).contains(&c.frames_polled),
        "{} of {frames} frames came while the I/O thread polled",
        c.frames_polled
    );
}

#[test]
fn a_game_that_renders_on_at_once_does_not_hold_its_frame_back_on_a_shared_cpu() {
    // Every thread of both sessions on one CPU, as the host's I/O thread and the game's render
    // thread often are on a small machine. The game queues each frame, then at once spends a
    // millisecond rendering the next one. The host polls for the frame; unless the game lets
    // it in, it sees the frame only when the game's scheduler slice ends, after that work.
    let mut one = rustix::thread::CpuSet::new();
    one.set(rustix::thread::sched_getcpu());
    rustix::thread::sched_setaffinity(None, &one).unwrap();
    let (mut host, game) = connect(small(QueuePolicy::Mailbox));
    let mut consumer = host.consumer().unwrap();
    game.wait_config(T).unwrap();
    let period = Duration::from_nanos(16_666_667);
    let work = Duration::from_millis(1);
    let frames = 60u64;
    let warmup = 20;
    let pacing = Pacing::new(period);
    let mut before_work_ended = 0;
    for n in 0..frames {
        pacing.queue(&game, n);
        let busy = std::time::Instant::now();
        while busy.elapsed() < work {
            std::hint::spin_loop();
        }
        let work_ended_ns = crosscast_ipc::monotonic_ns();
        let f = next_verified(&mut consumer, n + 1);
        if n >= warmup && f.received_ns < work_ended_ns {
            before_work_ended += 1;
        }
    }
    game.close();
    assert!(host.wait_closed(T));
    drop(consumer);
    let c = host.close();
    // With the game yielding after each queue, all 40 here (36 to 40 with two CPU hogs
    // beside it); without, about half (the frames that woke a blocked I/O thread, which may
    // preempt the game; a polling thread cannot).
    assert!(
        before_work_ended >= (frames - warmup) * 3 / 4,
        "{before_work_ended} of {} frames reached the host before the game's next millisecond \
         of work was done ({} polled)",
        frames - warmup,
        c.frames_polled
    );
}

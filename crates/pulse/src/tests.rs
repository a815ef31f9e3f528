//! Server-level tests that need the injected clock.

use super::*;
use pulseaudio::protocol::{self as pa, Command};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

const VERSION: u16 = 35;

type Conn = (UnixStream, BufReader<UnixStream>);

fn connect(server: &PulseServer) -> Conn {
    let s = UnixStream::connect(server.socket_path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let auth = pa::AuthParams {
        version: VERSION,
        supports_shm: false,
        supports_memfd: false,
        cookie: vec![0; 256],
    };
    pa::write_command_message(&mut w, 0, &Command::Auth(auth), VERSION).unwrap();
    let _: (u32, pa::AuthReply) = pa::read_reply_message(&mut r, VERSION).unwrap();
    (w, r)
}

/// Creates a 48 kHz stereo f32 stream that starts on its first write; returns its channel.
fn create_f32(c: &mut Conn) -> u32 {
    let p = pa::PlaybackStreamParams {
        sample_spec: pa::SampleSpec {
            format: pa::SampleFormat::Float32Le,
            channels: 2,
            sample_rate: 48_000,
        },
        channel_map: pa::ChannelMap::stereo(),
        buffer_attr: pa::stream::BufferAttr {
            max_length: u32::MAX,
            target_length: u32::MAX,
            pre_buffering: 0,
            minimum_request_length: u32::MAX,
            fragment_size: u32::MAX,
        },
        ..Default::default()
    };
    pa::write_command_message(&mut c.0, 1, &Command::CreatePlaybackStream(p), VERSION).unwrap();
    let (_, r): (u32, pa::CreatePlaybackStreamReply) =
        pa::read_reply_message(&mut c.1, VERSION).unwrap();
    r.channel
}

fn latency(c: &mut Conn, seq: u32, channel: u32) -> pa::PlaybackLatency {
    let q = pa::LatencyParams {
        channel,
        now: std::time::SystemTime::now(),
    };
    pa::write_command_message(&mut c.0, seq, &Command::GetPlaybackLatency(q), VERSION).unwrap();
    pa::read_reply_message(&mut c.1, VERSION).unwrap().1
}

/// Sends `frames` stereo f32 frames of audio on `channel`.
fn write_audio(c: &mut Conn, channel: u32, frames: usize) {
    let payload = vec![0u8; frames * 8];
    let mut msg = Vec::new();
    for w in [payload.len() as u32, channel, 0, 0, 0] {
        msg.extend_from_slice(&w.to_be_bytes());
    }
    msg.extend_from_slice(&payload);
    c.0.write_all(&msg).unwrap();
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const MS: u64 = 1_000_000;

#[test]
fn latency_is_time_until_next_play_at_reply_time() {
    static NOW: AtomicU64 = AtomicU64::new(0);
    fn now() -> u64 {
        NOW.load(Ordering::SeqCst)
    }
    let dir = tempfile::tempdir().unwrap();
    let server =
        PulseServer::start_with_clock(&dir.path().join("native"), Limits::default(), now).unwrap();
    let mut c = connect(&server);
    let ch = create_f32(&mut c);
    NOW.store(1_000 * MS, Ordering::SeqCst);
    // Before the host says when audio is heard there is nothing truthful but 0.
    assert_eq!(latency(&mut c, 2, ch).sink_usec, 0);
    server.set_next_play(1_010 * MS);
    assert_eq!(latency(&mut c, 3, ch).sink_usec, 10_000);
    // Same next_play, later reply: less latency left.
    NOW.store(1_003 * MS + 500, Ordering::SeqCst);
    assert_eq!(latency(&mut c, 4, ch).sink_usec, 6_999);
    // A late host (next_play already past) reports 0, not a wrapped huge value.
    NOW.store(1_020 * MS, Ordering::SeqCst);
    assert_eq!(latency(&mut c, 5, ch).sink_usec, 0);
}

#[test]
fn write_delays_follow_the_host_timeline() {
    static NOW: AtomicU64 = AtomicU64::new(0);
    fn now() -> u64 {
        NOW.load(Ordering::SeqCst)
    }
    let dir = tempfile::tempdir().unwrap();
    let server =
        PulseServer::start_with_clock(&dir.path().join("native"), Limits::default(), now).unwrap();
    let mut c = connect(&server);
    let ch = create_f32(&mut c);
    NOW.store(5 * MS, Ordering::SeqCst);
    write_audio(&mut c, ch, 480);
    wait_for("the write arrives", || {
        server.stats().bytes_received >= 20 + 480 * 8
    });
    NOW.store(7 * MS, Ordering::SeqCst);
    write_audio(&mut c, ch, 480);
    wait_for("the second write arrives", || {
        server.stats().bytes_received >= 2 * (20 + 480 * 8)
    });
    let mut out = Vec::new();
    server.set_next_play(25 * MS);
    server.mix(480, &mut out);
    server.set_next_play(35 * MS);
    server.mix(480, &mut out);
    let mut d = Vec::new();
    server.take_write_delays(&mut d);
    assert_eq!(d, vec![20 * MS, 28 * MS]);
    // Taken means gone.
    server.take_write_delays(&mut d);
    assert_eq!(d.len(), 2);
    let st = server.stats();
    assert_eq!((st.clients, st.streams, st.frames_mixed), (1, 1, 960));
    assert_eq!(st.write_delays_dropped, 0);
}

#[test]
fn notes_are_bounded_and_say_how_many_were_dropped() {
    let mut n = Notes::default();
    for i in 0..MAX_NOTES + 5 {
        n.push(format!("line {i}"));
    }
    let mut out = Vec::new();
    n.take(&mut out);
    assert_eq!(out.len(), MAX_NOTES + 1);
    assert_eq!(out[0], "line 0");
    assert_eq!(out[MAX_NOTES], "5 more notes dropped");
    out.clear();
    n.take(&mut out);
    assert!(out.is_empty(), "{out:?}");
}

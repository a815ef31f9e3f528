//! Per-client limits, driven by a minimal protocol client built from the `pulseaudio` crate.

use crosscast_pulse::{Limits, PulseServer};
use pulseaudio::protocol::{self as pa, Command};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const VERSION: u16 = 35;

fn connect(server: &PulseServer) -> (UnixStream, BufReader<UnixStream>) {
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
    let (_, a): (u32, pa::AuthReply) = pa::read_reply_message(&mut r, VERSION).unwrap();
    assert!(
        !a.use_shm && !a.use_memfd,
        "server must decline shared memory"
    );
    (w, r)
}

fn create(
    w: &mut UnixStream,
    r: &mut BufReader<UnixStream>,
    seq: u32,
    spec: pa::SampleSpec,
) -> Result<pa::CreatePlaybackStreamReply, pa::ProtocolError> {
    let p = pa::PlaybackStreamParams {
        sample_spec: spec,
        channel_map: pa::ChannelMap::stereo(),
        buffer_attr: pa::stream::BufferAttr {
            max_length: u32::MAX,
            target_length: u32::MAX,
            pre_buffering: u32::MAX,
            minimum_request_length: u32::MAX,
            fragment_size: u32::MAX,
        },
        ..Default::default()
    };
    pa::write_command_message(w, seq, &Command::CreatePlaybackStream(p), VERSION).unwrap();
    pa::read_reply_message(r, VERSION).map(|(_, rep)| rep)
}

fn s16(channels: u8, rate: u32) -> pa::SampleSpec {
    pa::SampleSpec {
        format: pa::SampleFormat::S16Le,
        channels,
        sample_rate: rate,
    }
}

#[test]
fn stream_limit_and_unsupported_specs_are_refused_without_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_streams: 2,
        ..Limits::default()
    };
    let server = PulseServer::start(&dir.path().join("native"), limits).unwrap();
    let (mut w, mut r) = connect(&server);
    // Unsupported: 6 channels, 4 kHz, big-endian.
    for (seq, spec) in [
        (1, s16(6, 48_000)),
        (2, s16(2, 4_000)),
        (
            3,
            pa::SampleSpec {
                format: pa::SampleFormat::S16Be,
                channels: 2,
                sample_rate: 48_000,
            },
        ),
    ] {
        let e = create(&mut w, &mut r, seq, spec).unwrap_err();
        assert!(
            matches!(
                e,
                pa::ProtocolError::ServerError(pa::PulseError::NotSupported)
            ),
            "{e:?}"
        );
    }
    let a = create(&mut w, &mut r, 4, s16(2, 44_100)).unwrap();
    // The -1s were filled in: frame-aligned, ordered, bounded by the limit.
    let b = a.buffer_attr;
    assert!(
        b.max_length <= limits.max_stream_bytes && b.max_length % 4 == 0,
        "{b:?}"
    );
    assert!(b.minimum_request_length <= b.target_length && b.target_length <= b.max_length);
    assert!(
        b.pre_buffering <= b.target_length && b.pre_buffering > 0,
        "{b:?}"
    );
    create(&mut w, &mut r, 5, s16(1, 8_000)).unwrap();
    let e = create(&mut w, &mut r, 6, s16(2, 48_000)).unwrap_err();
    assert!(
        matches!(e, pa::ProtocolError::ServerError(pa::PulseError::TooLarge)),
        "{e:?}"
    );
    assert_eq!(server.stream_count(), 2);
    assert_eq!(server.client_count(), 1);
    // Hanging up drops the client's streams.
    drop((w, r));
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while server.stream_count() != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.stream_count(), 0);
}

#[test]
fn client_limit_refuses_extra_connections() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_clients: 1,
        ..Limits::default()
    };
    let server = PulseServer::start(&dir.path().join("native"), limits).unwrap();
    let _first = connect(&server);
    let mut s = UnixStream::connect(server.socket_path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 1];
    // The refused connection is closed before anything is read from it.
    match std::io::Read::read(&mut s, &mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("extra client was not refused: {other:?}"),
    }
    assert_eq!(server.client_count(), 1);
    let mut notes = Vec::new();
    server.take_notes(&mut notes);
    assert!(
        has(
            &notes,
            "client 2 refused: the limit of 1 connected clients is reached"
        ),
        "{notes:?}"
    );
    assert_eq!(server.stats().clients_refused, 1);
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a raw frame header announcing `len` bytes on the control channel.
fn raw_header(s: &mut UnixStream, len: u32) {
    let mut h = Vec::new();
    for w in [len, u32::MAX, 0, 0, 0] {
        h.extend_from_slice(&w.to_be_bytes());
    }
    std::io::Write::write_all(s, &h).unwrap();
}

fn has(notes: &[String], needle: &str) -> bool {
    notes.iter().any(|n| n.contains(needle))
}

#[test]
fn notes_name_clients_and_say_why_they_were_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = PulseServer::start(&dir.path().join("native"), Limits::default()).unwrap();
    let (mut w, mut r) = connect(&server);
    let mut props = pa::Props::new();
    props.set(
        pa::Prop::ApplicationName,
        std::ffi::CString::new("notes-test").unwrap(),
    );
    pa::write_command_message(&mut w, 1, &Command::SetClientName(props), VERSION).unwrap();
    let _: (u32, pa::SetClientNameReply) = pa::read_reply_message(&mut r, VERSION).unwrap();
    create(&mut w, &mut r, 2, s16(6, 48_000)).unwrap_err();

    // A garbage client announcing a 4 GiB frame, and one that skips auth.
    let mut big = UnixStream::connect(server.socket_path()).unwrap();
    raw_header(&mut big, u32::MAX);
    let (mut noauth, _) = {
        let s = UnixStream::connect(server.socket_path()).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    };
    pa::write_command_message(&mut noauth, 0, &Command::GetServerInfo, VERSION).unwrap();
    wait_for("both garbage clients are dropped", || {
        server.stats().clients_dropped == 2
    });

    let mut notes = Vec::new();
    server.take_notes(&mut notes);
    assert!(
        has(&notes, r#"client 1 ("notes-test") connected"#),
        "{notes:?}"
    );
    assert!(
        has(
            &notes,
            r#"client 1 ("notes-test"): stream refused: unsupported"#
        ),
        "{notes:?}"
    );
    assert!(
        has(&notes, "dropped: frame of 4294967295 bytes exceeds"),
        "{notes:?}"
    );
    assert!(
        has(
            &notes,
            "dropped: client protocol violation: first command is not auth"
        ),
        "{notes:?}"
    );
    // Taking empties the queue; a hang-up is noted too.
    drop((w, r));
    wait_for("client 1 leaves", || server.client_count() == 0);
    notes.clear();
    server.take_notes(&mut notes);
    assert_eq!(
        notes,
        vec![r#"client 1 ("notes-test") disconnected"#.to_owned()]
    );
    let st = server.stats();
    assert_eq!((st.clients_dropped, st.streams_refused), (2, 1), "{st:?}");
}

#[test]
fn a_client_that_does_not_read_its_replies_is_dropped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let server = PulseServer::start(&dir.path().join("native"), Limits::default()).unwrap();
    let (mut w, _r) = connect(&server);
    // Far more replies than the socket buffer and the outbox hold, never read.
    let mut msgs = Vec::new();
    for seq in 1..40_000 {
        pa::write_command_message(&mut msgs, seq, &Command::GetServerInfo, VERSION).unwrap();
    }
    // The server may hang up before it has read everything.
    let _ = std::io::Write::write_all(&mut w, &msgs);
    wait_for("the stuck client is dropped", || server.client_count() == 0);
    let mut notes = Vec::new();
    server.take_notes(&mut notes);
    assert!(
        has(&notes, "dropped: it does not read its socket"),
        "{notes:?}"
    );
    assert_eq!(server.stats().clients_dropped, 1);
}

#[test]
fn total_stream_limit_refuses_without_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_streams: 2,
        max_streams_total: 3,
        ..Limits::default()
    };
    let server = PulseServer::start(&dir.path().join("native"), limits).unwrap();
    let (mut aw, mut ar) = connect(&server);
    let (mut bw, mut br) = connect(&server);
    create(&mut aw, &mut ar, 1, s16(2, 48_000)).unwrap();
    create(&mut aw, &mut ar, 2, s16(2, 48_000)).unwrap();
    create(&mut bw, &mut br, 1, s16(2, 48_000)).unwrap();
    // B is within its own limit, but the server is full.
    let e = create(&mut bw, &mut br, 2, s16(2, 48_000)).unwrap_err();
    assert!(
        matches!(e, pa::ProtocolError::ServerError(pa::PulseError::TooLarge)),
        "{e:?}"
    );
    assert_eq!((server.stream_count(), server.client_count()), (3, 2));
    let mut notes = Vec::new();
    server.take_notes(&mut notes);
    assert!(has(&notes, "the limit of 3 streams in all"), "{notes:?}");
    // A stream going away makes room again.
    drop((aw, ar));
    wait_for("A's streams go", || server.stream_count() == 1);
    create(&mut bw, &mut br, 3, s16(2, 48_000)).unwrap();
}

#[test]
fn a_stream_flood_disconnects_only_the_flooder() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_streams: 2,
        ..Limits::default()
    };
    let server = PulseServer::start(&dir.path().join("native"), limits).unwrap();
    let (mut vw, mut vr) = connect(&server);
    let victim = create(&mut vw, &mut vr, 1, s16(2, 48_000)).unwrap();
    let (mut fw, mut fr) = connect(&server);
    let mut refused = 0;
    let mut seq = 1;
    let end = loop {
        match create(&mut fw, &mut fr, seq, s16(1, 8_000)) {
            Ok(_) => {}
            Err(pa::ProtocolError::ServerError(pa::PulseError::TooLarge)) => refused += 1,
            Err(e) => break e,
        }
        seq += 1;
        assert!(seq < 100, "the flooder was never disconnected");
    };
    // Two streams, then max_streams refusals, then the hang-up.
    assert_eq!((seq, refused), (2 + 2 + 1, 2), "ended with {end:?}");
    wait_for("the flooder is gone", || server.client_count() == 1);
    assert_eq!(server.stream_count(), 1);
    let mut notes = Vec::new();
    server.take_notes(&mut notes);
    assert!(
        has(
            &notes,
            "client 2 dropped: client protocol violation: stream flood"
        ),
        "{notes:?}"
    );
    assert_eq!(server.stats().clients_dropped, 1);
    // The victim still answers and keeps its stream.
    let q = pa::LatencyParams {
        channel: victim.channel,
        now: std::time::SystemTime::now(),
    };
    pa::write_command_message(&mut vw, 9, &Command::GetPlaybackLatency(q), VERSION).unwrap();
    let (_, lat): (u32, pa::PlaybackLatency) = pa::read_reply_message(&mut vr, VERSION).unwrap();
    assert_eq!(lat.write_offset, 0);
}

//! Hostile clients: one that truncates its pool under a held frame, one that writes garbage
//! on the socket, and more clients than allowed. Each time a well-behaved client (weston's
//! simple-shm) must still stream afterwards.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::wl::TestClient;
use common::{run_clock, spawn, start, start_with, wait_first_frame, wait_log};
use crosscast_compositor::CompositorError;

/// A client that shrinks its pool to nothing under the frame the host holds: reading it is
/// caught (no crash), `with_held` says so, the client is disconnected with a protocol error,
/// the log says so, and another client streams afterwards.
#[test]
fn truncated_pool_disconnects_only_that_client() {
    let (dir, mut comp) = start();
    let mut client = TestClient::connect(comp.socket_path());
    let (buffer, memfd) = client.buffer(64, 64, 0);
    client.commit(Some(&buffer), false);
    assert!(
        comp.wait_frame(Duration::from_secs(3)),
        "no frame from the hostile client"
    );
    let info = comp.acquire().expect("acquire").expect("a frame");
    assert_eq!((info.width, info.height), (64, 64));
    let read = comp
        .with_held(common::non_uniform)
        .expect("read before truncation");
    assert_eq!(read, Some(true), "the gradient is readable in place");

    rustix::fs::ftruncate(&memfd, 0).expect("ftruncate");
    client.commit(None, false);

    // Read every byte: the pages are gone, so this faults, and must be caught.
    let res = comp.with_held(|f| f.data.iter().map(|&b| u64::from(b)).sum::<u64>());
    assert!(
        matches!(res, Err(CompositorError::ClientMemory { .. })),
        "with_held after truncation gave {res:?}"
    );
    assert!(
        matches!(comp.with_held(|_| ()), Ok(None)),
        "the frame is dropped"
    );

    // The client sees the protocol error.
    let deadline = Instant::now() + Duration::from_secs(3);
    let client_err = loop {
        match client.roundtrip() {
            Err(e) => break e,
            Ok(_) if Instant::now() > deadline => panic!("hostile client was not disconnected"),
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    assert!(
        client_err.contains("wl_shm") || client_err.contains("rotocol"),
        "client error {client_err}"
    );
    let c = comp.counters();
    assert_eq!(c.bad_buffers, 1, "{c:?}");
    wait_log(&comp, &["truncated", "protocol error"]);

    let good = spawn(&dir.0, "weston-simple-shm", &[], &[], "weston");
    assert!(
        wait_first_frame(&comp, Duration::from_secs(5)),
        "no frame after the hostile one"
    );
    let stats = run_clock(&mut comp, Duration::from_secs(1));
    assert!(stats.new_frames >= 40, "{stats:?}");
    assert!(stats.read_errors.is_empty(), "{stats:?}");
    drop(good);
}

/// Random bytes on the socket: wayland-server drops that connection, the log says so, and a
/// well-behaved client still streams.
#[test]
fn garbage_on_the_socket_is_dropped() {
    let (dir, mut comp) = start();
    let mut s = UnixStream::connect(comp.socket_path()).expect("connect");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = s.write_all(&junk);
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    // The server closes the connection: reading ends (EOF or reset), it does not time out.
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "garbage client still connected after 3 s; log {:?}",
                    comp.take_log()
                )
            }
            Err(_) => break,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while comp.client_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = comp.take_log();
    assert!(
        log.iter()
            .any(|l| l.contains("gone") || l.contains("disconnected")),
        "log {log:?}"
    );
    assert_eq!(comp.client_count(), 0);

    let good = spawn(&dir.0, "weston-simple-shm", &[], &[], "weston");
    assert!(
        wait_first_frame(&comp, Duration::from_secs(5)),
        "no frame after the garbage"
    );
    let stats = run_clock(&mut comp, Duration::from_secs(1));
    assert!(stats.new_frames >= 40, "{stats:?}");
    drop(good);
}

/// With `max_clients` connected, more connections are refused at accept.
#[test]
fn clients_beyond_the_limit_are_refused() {
    let (_dir, comp) = start_with(1);
    let _first = UnixStream::connect(comp.socket_path()).expect("connect first");
    let deadline = Instant::now() + Duration::from_secs(2);
    while comp.client_count() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(comp.client_count(), 1);
    let mut second = UnixStream::connect(comp.socket_path()).expect("connect second");
    second
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut b = [0u8; 16];
    // Closed by the server: EOF (or a reset), not a read timeout of a connection it kept.
    let r = second.read(&mut b);
    assert!(
        matches!(&r, Ok(0))
            || matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the second connection was kept: {r:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while comp.counters().clients_refused < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(comp.counters().clients_refused, 1);
    assert_eq!(comp.client_count(), 1);
    assert!(comp.take_log().iter().any(|l| l.contains("refused")));
}

/// A client hoarding shm pools and buffers (each live pool is a file descriptor and a mapping
/// in the host) is disconnected past the limit; the compositor goes on.
#[test]
fn hoarding_shm_pools_disconnects_the_client() {
    let (_dir, mut comp) = start();
    let mut client = TestClient::connect(comp.socket_path());
    let mut kept = Vec::new();
    for _ in 0..200 {
        kept.push(client.buffer(1, 1, 0));
    }
    let _ = client.conn.flush();
    let err = client.roundtrip().expect_err("hoarder still connected");
    assert!(
        err.contains("too many shm") || err.contains("rotocol"),
        "{err}"
    );
    // The client may read the error before the compositor thread has logged the disconnect.
    wait_log(&comp, &["too many shm pools"]);
    assert_eq!(comp.counters().protocol_errors, 1);
    // Still serving: a fresh client maps and streams a frame.
    let mut next = TestClient::connect(comp.socket_path());
    let (b, _fd) = next.buffer(8, 8, 0);
    next.commit(Some(&b), false);
    assert!(comp.wait_frame(Duration::from_secs(2)));
    assert!(comp.acquire().expect("acquire").is_some());
}

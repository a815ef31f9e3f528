//! Kernel-level tests of the SEQPACKET layer: fd passing, truncation, EOF, credentials and
//! abstract-namespace connections.
#![cfg(target_os = "linux")]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crosscast_ipc::os::memfd::SealedMemfd;
use crosscast_ipc::os::process::current_uid;
use crosscast_ipc::os::socket::{Listener, Recv, SeqPacket, MAX_FDS};
use crosscast_ipc::os::OsError;

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn recv_one(sock: &SeqPacket, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Recv {
    assert!(sock.wait_readable(WAIT).unwrap(), "no message within 30 s");
    sock.recv(buf, fds).unwrap()
}

fn unique_name(tag: &str) -> String {
    format!(
        "crosscast-test-{tag}-{}-{}",
        std::process::id(),
        crosscast_ipc::os::process::monotonic_ns()
    )
}

#[test]
fn three_memfds_cross_a_pair_and_stay_mapped() {
    let (host, game) = SeqPacket::pair().unwrap();
    let mut slots: Vec<SealedMemfd> = (0..3)
        .map(|i| SealedMemfd::create(&format!("slot-{i}"), 64 * 1024).unwrap())
        .collect();
    for (i, slot) in slots.iter_mut().enumerate() {
        slot.as_mut_slice().fill(i as u8 + 1);
    }
    let fds: Vec<BorrowedFd<'_>> = slots.iter().map(|s| s.as_fd()).collect();
    host.send(b"surface", &fds).unwrap();

    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    let r = recv_one(&game, &mut buf, &mut got);
    assert_eq!(
        r,
        Recv::Message {
            len: 7,
            truncated: false,
            fds_truncated: false
        }
    );
    assert_eq!(&buf[..7], b"surface");
    assert_eq!(got.len(), 3);
    for (i, fd) in got.into_iter().enumerate() {
        let flags = rustix::io::fcntl_getfd(&fd).unwrap();
        assert!(
            flags.contains(rustix::io::FdFlags::CLOEXEC),
            "received fd must be close-on-exec"
        );
        let mut mapped = SealedMemfd::from_received(fd, 64 * 1024).unwrap();
        assert!(mapped.as_slice().iter().all(|b| *b == i as u8 + 1));
        // The game's writes are the host's pixels.
        mapped.as_mut_slice()[100] = 0xEE;
        assert_eq!(slots[i].as_slice()[100], 0xEE);
    }
}

#[test]
fn oversize_message_is_reported_truncated() {
    let (a, b) = SeqPacket::pair().unwrap();
    a.send(&[7u8; 100], &[]).unwrap();
    a.send(b"next", &[]).unwrap();
    let mut small = [0u8; 10];
    let mut fds = Vec::new();
    assert_eq!(
        recv_one(&b, &mut small, &mut fds),
        Recv::Message {
            len: 10,
            truncated: true,
            fds_truncated: false
        }
    );
    // The rest of the oversize message is gone; the next message is intact.
    assert_eq!(
        recv_one(&b, &mut small, &mut fds),
        Recv::Message {
            len: 4,
            truncated: false,
            fds_truncated: false
        }
    );
    assert_eq!(&small[..4], b"next");
}

#[test]
fn extra_fds_are_truncated_and_closed() {
    let (a, b) = SeqPacket::pair().unwrap();
    let (x, _y) = SeqPacket::pair().unwrap();
    // Bypass our own send (which refuses more than MAX_FDS) as a hostile peer would.
    let many: Vec<BorrowedFd<'_>> = (0..MAX_FDS + 4).map(|_| x.as_fd()).collect();
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS + 4))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&many)));
    rustix::net::sendmsg(
        &a,
        &[IoSlice::new(b"hostile")],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )
    .unwrap();
    let mut buf = [0u8; 16];
    let mut fds = Vec::new();
    let r = recv_one(&b, &mut buf, &mut fds);
    assert_eq!(
        r,
        Recv::Message {
            len: 7,
            truncated: false,
            fds_truncated: true
        }
    );
    assert!(fds.len() <= MAX_FDS);
}

#[test]
fn eof_and_would_block_are_told_apart() {
    let (a, b) = SeqPacket::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    let mut fds = Vec::new();
    assert_eq!(b.recv(&mut buf, &mut fds).unwrap(), Recv::WouldBlock);
    a.send(b"last", &[]).unwrap();
    drop(a);
    // Queued data is still delivered before EOF.
    assert!(matches!(
        b.recv(&mut buf, &mut fds).unwrap(),
        Recv::Message { len: 4, .. }
    ));
    assert_eq!(b.recv(&mut buf, &mut fds).unwrap(), Recv::Eof);
    assert_eq!(b.recv(&mut buf, &mut fds).unwrap(), Recv::Eof);
    // Readiness reports the hang-up so a poll loop wakes for it.
    assert!(b.wait_readable(Some(Duration::from_secs(1))).unwrap());
}

#[test]
fn shutdown_gives_peer_eof_while_a_clone_is_open() {
    let (a, b) = SeqPacket::pair().unwrap();
    let a2 = a.try_clone().unwrap();
    a.shutdown().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(recv_one(&b, &mut buf, &mut Vec::new()), Recv::Eof);
    assert_eq!(
        a2.send(b"x", &[]),
        Err(OsError::Disconnected { op: "sendmsg" })
    );
}

#[test]
fn peer_cred_is_our_own_process() {
    let (a, b) = SeqPacket::pair().unwrap();
    let cred = a.peer_cred().unwrap();
    assert_eq!(cred.pid, std::process::id() as i32);
    assert_eq!(cred.uid, current_uid());
    assert_eq!(cred, b.peer_cred().unwrap());
}

#[test]
fn abstract_listen_connect_roundtrip() {
    let name = unique_name("roundtrip");
    let listener = Listener::bind_abstract(&name).unwrap();
    assert!(listener.try_accept().unwrap().is_none());
    assert_eq!(
        Listener::bind_abstract(&name).unwrap_err(),
        OsError::AddressInUse
    );

    let client = SeqPacket::connect_abstract(&name).unwrap();
    assert!(listener.wait_readable(WAIT).unwrap());
    let server = listener.accept().unwrap();
    let cred = server.peer_cred().unwrap();
    assert_eq!(cred.pid, std::process::id() as i32);
    assert_eq!(cred.uid, current_uid());

    client.send(b"hello", &[]).unwrap();
    let mut buf = [0u8; 16];
    let mut fds = Vec::new();
    assert!(matches!(
        recv_one(&server, &mut buf, &mut fds),
        Recv::Message { len: 5, .. }
    ));
    server.send(b"welcome", &[]).unwrap();
    assert!(matches!(
        recv_one(&client, &mut buf, &mut fds),
        Recv::Message { len: 7, .. }
    ));
    assert_eq!(&buf[..7], b"welcome");

    drop(listener);
    assert_eq!(
        SeqPacket::connect_abstract(&name).unwrap_err(),
        OsError::NoListener
    );
}

#[test]
fn connect_to_unknown_name_is_no_listener() {
    assert_eq!(
        SeqPacket::connect_abstract(&unique_name("nobody")).unwrap_err(),
        OsError::NoListener
    );
}

/// A peer whose pid namespace we cannot see is reported with pid 0 (and must not crash us).
/// The listener runs in a new pid namespace, we connect from outside it; from inside, our pid
/// is invisible. Needs root and `unshare(1)`; CI runs as root, so a missing precondition is a
/// failure here, never a silent pass.
#[test]
fn peer_from_an_invisible_pid_namespace_has_pid_zero() {
    const NAME: &str = "peer_from_an_invisible_pid_namespace_has_pid_zero";
    const CHILD_ENV: &str = "CROSSCAST_OS_TEST_CHILD";
    if let Ok(name) = std::env::var(CHILD_ENV) {
        if let Some(listen_name) = name.strip_prefix("pidns:") {
            let listener = Listener::bind_abstract(listen_name).unwrap();
            let conn = listener.accept().unwrap();
            let cred = conn.peer_cred().unwrap();
            conn.send(format!("{} {}", cred.pid, cred.uid).as_bytes(), &[])
                .unwrap();
            return;
        }
    }
    let unshare = std::path::Path::new("/usr/bin/unshare");
    assert_eq!(
        current_uid(),
        0,
        "this test needs root (to create a pid namespace); run it as root, as CI does"
    );
    assert!(
        unshare.exists(),
        "this test needs {} (Debian package util-linux)",
        unshare.display()
    );
    let listen_name = unique_name("pidns");
    let mut child = std::process::Command::new(unshare)
        .args(["--pid", "--fork"])
        .arg(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--test-threads=1"])
        .env(CHILD_ENV, format!("pidns:{listen_name}"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Connect once the listener is up (generous bound for a loaded machine).
    let mut conn = None;
    for _ in 0..600 {
        match SeqPacket::connect_abstract(&listen_name) {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(OsError::NoListener) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    }
    let conn = conn.expect("listener in the new pid namespace never came up");
    let mut buf = [0u8; 64];
    let n = match recv_one(&conn, &mut buf, &mut Vec::new()) {
        Recv::Message { len, .. } => len,
        other => panic!("unexpected {other:?}"),
    };
    assert!(child.wait().unwrap().success());
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "0 0");
}

//! Spawning with fds on fixed numbers, the key pipe, inherited fds and dropping privileges,
//! with real child processes (this test binary re-run as the child).
#![cfg(target_os = "linux")]

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crosscast_ipc::os::process::{
    current_uid, drop_privileges_to, key_pipe, read_key_from_fd, spawn_with_fds, take_inherited_fd,
    GAME_KEY_FD, GAME_SOCKET_FD, KEY_LEN,
};
use crosscast_ipc::os::socket::{Listener, Recv, SeqPacket};
use crosscast_ipc::os::OsError;

const CHILD_ENV: &str = "CROSSCAST_OS_TEST_CHILD";
const WAIT: Option<Duration> = Some(Duration::from_secs(60));

fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

fn child_command(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdout(Stdio::piped());
    cmd
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn recv_text(sock: &SeqPacket) -> String {
    assert!(sock.wait_readable(WAIT).unwrap(), "peer silent for 60 s");
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf, &mut Vec::new()).unwrap() {
        Recv::Message { len, .. } => String::from_utf8_lossy(&buf[..len]).into_owned(),
        other => panic!("unexpected {other:?}"),
    }
}

fn pipe_with(bytes: &[u8]) -> OwnedFd {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    std::fs::File::from(w).write_all(bytes).unwrap();
    r
}

#[test]
fn key_pipe_roundtrip() {
    let key: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8 * 7);
    assert_eq!(read_key_from_fd(key_pipe(&key).unwrap()).unwrap(), key);
    assert_eq!(read_key_from_fd(pipe_with(&[9u8; 32])).unwrap(), [9u8; 32]);
}

#[test]
fn key_of_wrong_length_is_refused() {
    assert_eq!(
        read_key_from_fd(pipe_with(&[1u8; 31])).unwrap_err(),
        OsError::KeyLength {
            got: 31,
            more: false
        }
    );
    assert_eq!(
        read_key_from_fd(pipe_with(&[1u8; 33])).unwrap_err(),
        OsError::KeyLength {
            got: 33,
            more: true
        }
    );
    assert_eq!(
        read_key_from_fd(pipe_with(&[])).unwrap_err(),
        OsError::KeyLength {
            got: 0,
            more: false
        }
    );
}

#[test]
fn spawned_child_sees_socket_on_3_and_key_on_4_and_nothing_else() {
    const NAME: &str = "spawned_child_sees_socket_on_3_and_key_on_4_and_nothing_else";
    if is_child(NAME) {
        let sock = SeqPacket::from_checked(take_inherited_fd(GAME_SOCKET_FD).unwrap()).unwrap();
        let key = read_key_from_fd(take_inherited_fd(GAME_KEY_FD).unwrap()).unwrap();
        // Adopting is once only, and adopted fds no longer leak into our own children.
        let again = take_inherited_fd(GAME_SOCKET_FD).unwrap_err();
        assert!(matches!(again, OsError::NotInherited { fd: 3, .. }));
        let cloexec = rustix::io::fcntl_getfd(&sock)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC);
        let mut msg = key.to_vec();
        msg.extend_from_slice(format!(" cloexec={cloexec}").as_bytes());
        sock.send(&msg, &[]).unwrap();
        // Stay alive until the parent has checked that its extra pipe did not leak to us.
        let mut buf = [0u8; 8];
        assert!(sock.wait_readable(WAIT).unwrap());
        assert!(matches!(
            sock.recv(&mut buf, &mut Vec::new()).unwrap(),
            Recv::Message { .. } | Recv::Eof
        ));
        return;
    }

    let key: [u8; KEY_LEN] = std::array::from_fn(|i| 255 - i as u8);
    let (host, game) = SeqPacket::pair().unwrap();
    // A parent fd that is not handed over: the child must not get it.
    let (leak_r, leak_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let child = spawn_with_fds(
        child_command(NAME),
        vec![
            (OwnedFd::from(game), GAME_SOCKET_FD),
            (key_pipe(&key).unwrap(), GAME_KEY_FD),
        ],
    )
    .unwrap();
    let reply = {
        assert!(host.wait_readable(WAIT).unwrap(), "child silent for 60 s");
        let mut buf = [0u8; 128];
        match host.recv(&mut buf, &mut Vec::new()).unwrap() {
            Recv::Message { len, .. } => buf[..len].to_vec(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&reply[..KEY_LEN], &key);
    assert_eq!(&reply[KEY_LEN..], b" cloexec=true");

    // With our write end closed, the read end sees EOF at once unless the (still running)
    // child holds a copy.
    drop(leak_w);
    let mut pfd = [rustix::event::PollFd::new(
        &leak_r,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::time::Timespec {
        tv_sec: 60,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut pfd, Some(&timeout)).unwrap();
    assert_eq!(ready, 1, "the child kept a copy of a pipe it was not given");
    assert!(pfd[0].revents().contains(rustix::event::PollFlags::HUP));

    host.send(b"bye", &[]).unwrap();
    finish(child);
}

#[test]
fn spawn_places_fds_even_when_sources_sit_on_the_targets() {
    const NAME: &str = "spawn_places_fds_even_when_sources_sit_on_the_targets";
    if is_child(NAME) {
        let targets = std::env::var("CROSSCAST_OS_TARGETS").unwrap();
        let (sock_fd, key_fd) = targets.split_once(',').unwrap();
        let sock = take_inherited_fd(sock_fd.parse().unwrap()).unwrap();
        let sock = SeqPacket::from_checked(sock).unwrap();
        let key = read_key_from_fd(take_inherited_fd(key_fd.parse().unwrap()).unwrap()).unwrap();
        sock.send(&key, &[]).unwrap();
        return;
    }
    let key = [0x5Au8; KEY_LEN];
    let (host, game) = SeqPacket::pair().unwrap();
    let key_fd = key_pipe(&key).unwrap();
    // Cross the numbers: the socket goes to the key pipe's number and the other way round,
    // so a naive dup2 sequence would overwrite the second source with the first.
    let sock_target = key_fd.as_raw_fd();
    let key_target = game.as_fd().as_raw_fd();
    let mut cmd = child_command(NAME);
    cmd.env(
        "CROSSCAST_OS_TARGETS",
        format!("{sock_target},{key_target}"),
    );
    let child = spawn_with_fds(
        cmd,
        vec![(OwnedFd::from(game), sock_target), (key_fd, key_target)],
    )
    .unwrap();
    let reply = recv_text(&host);
    assert_eq!(reply.as_bytes(), &key);
    finish(child);
}

#[test]
fn drop_privileges_to_nobody() {
    const NAME: &str = "drop_privileges_to_nobody";
    let name = format!("crosscast-test-drop-{}", std::process::id());
    if is_child(NAME) {
        let listener_name = std::env::var("CROSSCAST_OS_LISTENER").unwrap();
        drop_privileges_to(65534, 65534).unwrap();
        assert_eq!(current_uid(), 65534);
        let sock = SeqPacket::connect_abstract(&listener_name).unwrap();
        sock.send(b"nobody here", &[]).unwrap();
        return;
    }
    if current_uid() != 0 {
        // Without root the drop must fail loudly, never half-succeed.
        assert!(matches!(
            drop_privileges_to(65534, 65534),
            Err(OsError::PrivilegeDrop { .. })
        ));
        return;
    }
    let listener = Listener::bind_abstract(&name).unwrap();
    let mut cmd = child_command(NAME);
    cmd.env("CROSSCAST_OS_LISTENER", &name);
    let child = cmd.spawn().unwrap();
    assert!(
        listener.wait_readable(WAIT).unwrap(),
        "child never connected"
    );
    let conn = listener.accept().unwrap();
    let cred = conn.peer_cred().unwrap();
    assert_eq!(cred.uid, 65534);
    assert_eq!(cred.gid, 65534);
    assert_eq!(recv_text(&conn), "nobody here");
    finish(child);
}

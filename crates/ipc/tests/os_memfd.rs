//! Sealed memfds across a real child process, and the fds `from_received` must refuse.
//!
//! Tests that need a second process re-run this test binary filtered to the same test, with
//! an environment variable telling it to play the child.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crosscast_ipc::os::memfd::SealedMemfd;
use crosscast_ipc::os::process::{spawn_with_fds, take_inherited_fd, GAME_SOCKET_FD};
use crosscast_ipc::os::socket::{Recv, SeqPacket};
use crosscast_ipc::os::{Errno, OsError};

const CHILD_ENV: &str = "CROSSCAST_OS_TEST_CHILD";
const WAIT: Option<Duration> = Some(Duration::from_secs(60));
const LEN: usize = 1280 * 720 * 4;

fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

fn spawn_child(test: &str, socket: SeqPacket) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdout(Stdio::piped());
    spawn_with_fds(cmd, vec![(OwnedFd::from(socket), GAME_SOCKET_FD)]).unwrap()
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

fn recv_msg(sock: &SeqPacket, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> usize {
    assert!(sock.wait_readable(WAIT).unwrap(), "peer silent for 60 s");
    match sock.recv(buf, fds).unwrap() {
        Recv::Message {
            len,
            truncated: false,
            fds_truncated: false,
        } => len,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn writes_are_visible_across_processes_and_seals_hold() {
    const NAME: &str = "writes_are_visible_across_processes_and_seals_hold";
    if is_child(NAME) {
        let sock = SeqPacket::from_checked(take_inherited_fd(GAME_SOCKET_FD).unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        recv_msg(&sock, &mut buf, &mut fds);
        let fd = fds.pop().expect("a memfd");
        let raw = fd.as_fd().try_clone_to_owned().unwrap();
        let mut slot = SealedMemfd::from_received(fd, LEN).unwrap();
        // The host's pattern is visible here...
        assert!(slot.as_slice().iter().step_by(4096).all(|b| *b == 0x11));
        // ...and ours will be visible there.
        for (i, b) in slot.as_mut_slice().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        // The seals hold against this (untrusted) side.
        let grow = rustix::fs::ftruncate(&raw, LEN as u64 * 2);
        let shrink = rustix::fs::ftruncate(&raw, 0);
        let unseal = rustix::fs::fcntl_add_seals(&raw, rustix::fs::SealFlags::WRITE);
        let report = format!("{grow:?} {shrink:?} {unseal:?}");
        sock.send(report.as_bytes(), &[]).unwrap();
        return;
    }

    let (host, game) = SeqPacket::pair().unwrap();
    let mut slot = SealedMemfd::create("slot", LEN).unwrap();
    slot.as_mut_slice().fill(0x11);
    let child = spawn_child(NAME, game);
    host.send(b"slot", &[slot.as_fd()]).unwrap();
    let mut buf = [0u8; 256];
    let n = recv_msg(&host, &mut buf, &mut Vec::new());
    let report = String::from_utf8_lossy(&buf[..n]).into_owned();
    finish(child);
    assert_eq!(
        report,
        format!(
            "Err({:?}) Err({:?}) Err({:?})",
            Errno::PERM,
            Errno::PERM,
            Errno::PERM
        ),
        "grow, shrink and adding a seal must all fail with EPERM"
    );
    let pixels = slot.as_slice();
    assert!(pixels
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
    // Still exactly the size we allocated.
    assert_eq!(rustix::fs::fstat(&slot).unwrap().st_size, LEN as i64);
}

#[test]
fn pipe_is_not_a_sealed_memfd() {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    assert_eq!(
        SealedMemfd::from_received(r, 4096).unwrap_err(),
        OsError::NotSealedMemfd { reason: "a pipe" }
    );
    assert_eq!(
        SealedMemfd::from_received(w, 4096).unwrap_err(),
        OsError::NotSealedMemfd { reason: "a pipe" }
    );
}

#[test]
fn socket_is_not_a_sealed_memfd() {
    let (a, _b) = SeqPacket::pair().unwrap();
    assert_eq!(
        SealedMemfd::from_received(OwnedFd::from(a), 4096).unwrap_err(),
        OsError::NotSealedMemfd { reason: "a socket" }
    );
}

#[test]
fn regular_file_is_not_a_sealed_memfd() {
    let dir = std::env::temp_dir().join(format!("crosscast-os-memfd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("frame.raw");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&[0u8; 4096]).unwrap();
    let result = SealedMemfd::from_received(OwnedFd::from(file), 4096);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(result, Err(OsError::NotSealedMemfd { .. })),
        "{result:?}"
    );
}

#[test]
fn tmpfs_file_is_not_a_sealed_memfd() {
    // A file on tmpfs is shmem like a memfd but can never carry shrink/grow seals.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("crosscast-os-memfd-{}.raw", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(4096).unwrap();
    let result = SealedMemfd::from_received(OwnedFd::from(file), 4096);
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(result, Err(OsError::NotSealedMemfd { .. })),
        "{result:?}"
    );
}

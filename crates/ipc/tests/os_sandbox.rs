//! The game sandbox in a real child process: after `apply_sandbox(Strict)` it cannot open a
//! TCP connection, create a file or directory, run a program or signal its parent, yet it
//! can still read files, map a memfd it receives and talk over its inherited socket. The same
//! probes succeed with `Off`, which shows they would catch a sandbox that does nothing.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crosscast_ipc::os::memfd::SealedMemfd;
use crosscast_ipc::os::process::{spawn_with_fds, take_inherited_fd, GAME_SOCKET_FD};
use crosscast_ipc::os::sandbox::{apply_sandbox, SandboxLevel};
use crosscast_ipc::os::socket::{Recv, SeqPacket};
use crosscast_ipc::os::Errno;

const CHILD_ENV: &str = "CROSSCAST_OS_TEST_CHILD";
const WAIT: Option<Duration> = Some(Duration::from_secs(60));
const SLOT_LEN: usize = 640 * 360 * 4;

fn recv_text(sock: &SeqPacket, fds: &mut Vec<OwnedFd>) -> String {
    assert!(sock.wait_readable(WAIT).unwrap(), "peer silent for 60 s");
    let mut buf = [0u8; 2048];
    match sock.recv(&mut buf, fds).unwrap() {
        Recv::Message { len, .. } => String::from_utf8_lossy(&buf[..len]).into_owned(),
        other => panic!("unexpected {other:?}"),
    }
}

/// 0 for success, else the errno of the failure.
fn outcome<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// The child: sandbox itself, then probe.
fn child_main(level: SandboxLevel) {
    let sock = SeqPacket::from_checked(take_inherited_fd(GAME_SOCKET_FD).unwrap()).unwrap();
    let port: u16 = std::env::var("CROSSCAST_OS_PORT").unwrap().parse().unwrap();
    let dir = PathBuf::from(std::env::var("CROSSCAST_OS_DIR").unwrap());
    let parent: i32 = std::env::var("CROSSCAST_OS_PARENT")
        .unwrap()
        .parse()
        .unwrap();

    let report = apply_sandbox(level).unwrap();
    sock.send(report.to_string().as_bytes(), &[]).unwrap();

    // Streaming still works: receive a slot, map it, render into it.
    let mut fds = Vec::new();
    assert_eq!(recv_text(&sock, &mut fds), "slot");
    let mut slot = SealedMemfd::from_received(fds.pop().unwrap(), SLOT_LEN).unwrap();
    // Render from a thread started inside the sandbox, as the game's render thread would be.
    std::thread::spawn(move || slot.as_mut_slice().fill(0xA5))
        .join()
        .unwrap();

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let connect = outcome(TcpStream::connect_timeout(&addr, Duration::from_secs(20)));
    let create = outcome(std::fs::File::create(dir.join("escaped.txt")));
    let mkdir = outcome(std::fs::create_dir(dir.join("escaped-dir")));
    let exec = outcome(
        Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status(),
    );
    let pid = rustix::process::Pid::from_raw(parent).unwrap();
    let signal = match rustix::process::test_kill_process(pid) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    };
    let read = outcome(
        std::fs::File::open(std::env::current_exe().unwrap())
            .and_then(|mut f| f.read_exact(&mut [0u8; 4])),
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let results = format!(
        "connect={connect} create={create} mkdir={mkdir} exec={exec} signal={signal} \
         read={read} nnp={} seccomp={}",
        field("NoNewPrivs:"),
        field("Seccomp:")
    );
    sock.send(results.as_bytes(), &[]).unwrap();
}

struct Outcome {
    report: String,
    results: String,
    dir: PathBuf,
    tcp_accepted: bool,
}

/// The parent: provide a TCP listener and a directory to escape to, run the child, collect.
fn run_parent(test: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!(
        "crosscast-os-sandbox-{}-{}",
        std::process::id(),
        crosscast_ipc::os::process::monotonic_ns()
    ));
    std::fs::create_dir_all(&dir).unwrap();

    let (host, game) = SeqPacket::pair().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env("CROSSCAST_OS_PORT", port.to_string())
        .env("CROSSCAST_OS_DIR", &dir)
        .env("CROSSCAST_OS_PARENT", std::process::id().to_string())
        .stdout(Stdio::piped());
    let child = spawn_with_fds(cmd, vec![(OwnedFd::from(game), GAME_SOCKET_FD)]).unwrap();

    let report = recv_text(&host, &mut Vec::new());
    let slot = SealedMemfd::create("sandbox-slot", SLOT_LEN).unwrap();
    host.send(b"slot", &[slot.as_fd()]).unwrap();
    let results = recv_text(&host, &mut Vec::new());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        slot.as_slice().iter().all(|b| *b == 0xA5),
        "the child's rendering must reach the host"
    );
    let tcp_accepted = listener.accept().is_ok();
    Outcome {
        report,
        results,
        dir,
        tcp_accepted,
    }
}

fn errnos(list: &[Errno]) -> Vec<String> {
    list.iter().map(|e| e.raw_os_error().to_string()).collect()
}

fn field<'a>(results: &'a str, key: &str) -> &'a str {
    results
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} missing in {results}"))
}

#[test]
fn strict_sandbox_blocks_network_files_exec_and_signals_but_streams() {
    const NAME: &str = "strict_sandbox_blocks_network_files_exec_and_signals_but_streams";
    if std::env::var(CHILD_ENV).as_deref() == Ok(NAME) {
        child_main(SandboxLevel::Strict);
        return;
    }
    let o = run_parent(NAME);
    // Shown with --nocapture: what the kernel here enforces.
    eprintln!("{}\n{}", o.report, o.results);
    let created = o.dir.join("escaped.txt").exists() || o.dir.join("escaped-dir").exists();
    std::fs::remove_dir_all(&o.dir).unwrap();

    let denied = errnos(&[Errno::PERM, Errno::ACCESS]);
    for probe in ["connect", "create", "mkdir", "exec", "signal"] {
        let got = field(&o.results, probe);
        assert!(
            denied.iter().any(|d| d == got),
            "{probe} must fail with EPERM/EACCES, got {got}: {}",
            o.results
        );
    }
    assert_eq!(field(&o.results, "read"), "0", "{}", o.results);
    assert_eq!(field(&o.results, "nnp"), "1", "{}", o.results);
    assert_eq!(field(&o.results, "seccomp"), "2", "{}", o.results);
    assert!(!created, "the sandboxed child created a file");
    assert!(
        !o.tcp_accepted,
        "the sandboxed child reached the TCP listener"
    );
    assert!(o.report.starts_with("sandbox strict:"), "{}", o.report);
    assert!(o.report.contains("seccomp: enforced"), "{}", o.report);
    assert!(
        o.report.contains("landlock: enforced") || o.report.contains("landlock: not supported"),
        "{}",
        o.report
    );
}

#[test]
fn sandbox_off_lets_the_same_probes_through() {
    const NAME: &str = "sandbox_off_lets_the_same_probes_through";
    if std::env::var(CHILD_ENV).as_deref() == Ok(NAME) {
        child_main(SandboxLevel::Off);
        return;
    }
    let o = run_parent(NAME);
    let created = o.dir.join("escaped.txt").exists() && o.dir.join("escaped-dir").is_dir();
    std::fs::remove_dir_all(&o.dir).unwrap();
    for probe in ["connect", "create", "mkdir", "exec", "signal", "read"] {
        assert_eq!(field(&o.results, probe), "0", "{probe}: {}", o.results);
    }
    assert_eq!(field(&o.results, "seccomp"), "0", "{}", o.results);
    assert!(created);
    assert!(o.tcp_accepted);
    assert_eq!(o.report, "sandbox off: nothing enforced");
}

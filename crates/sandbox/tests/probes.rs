//! Real processes under the real sandbox: each probe is a `bash -c` script run as the game,
//! once with `--sandbox off` (where it must succeed, proving the probe works) and once with
//! `strict` (where it must fail).
//!
//! Needs the Debian packages `bubblewrap` (bwrap), `bash`, `util-linux` (unshare) and
//! `weston` and `glmark2-es2-wayland` (the ordinary-programs test), `perl-base` (threads).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crosscast_sandbox::{command, preflight, GameCommand, RuntimeDir, SandboxLevel};

const LEVELS: [SandboxLevel; 2] = [SandboxLevel::Off, SandboxLevel::Strict];

/// A fresh directory under Cargo's per-target tmp (not under /tmp, which the sandbox hides
/// anyway: the write probes must meet the read-only system, not an empty tmpfs).
fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sandbox-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn require(tool: &str, package: &str) {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join(tool).is_file());
    assert!(
        found,
        "`{tool}` not found on PATH: install the Debian package `{package}`"
    );
}

fn game(level: SandboxLevel, rt: &RuntimeDir, data: &Path, script: &str) -> GameCommand {
    require("bwrap", "bubblewrap");
    require("bash", "bash");
    GameCommand {
        program: "bash".into(),
        args: vec!["-c".into(), script.into()],
        env: Vec::new(),
        env_remove: Vec::new(),
        runtime_dir: rt.path().to_owned(),
        data_dir: data.to_owned(),
        level,
        binds: Vec::new(),
    }
}

fn run(level: SandboxLevel, script: &str) -> Output {
    let rt = RuntimeDir::create("crosscast-probe").unwrap();
    let data = scratch("data");
    let out = command(&game(level, &rt, &data, script))
        .unwrap()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    out
}

fn describe(out: &Output) -> String {
    format!(
        "{} stdout={:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The probe succeeds unsandboxed and fails in the strict sandbox; returns the strict output.
fn off_ok_strict_fails(script: &str) -> Output {
    let off = run(SandboxLevel::Off, script);
    assert!(off.status.success(), "off: {script}: {}", describe(&off));
    let strict = run(SandboxLevel::Strict, script);
    assert!(
        !strict.status.success(),
        "strict let it through: {script}: {}",
        describe(&strict)
    );
    strict
}

#[test]
fn preflight_passes_here_and_says_what_it_enforces() {
    require("bwrap", "bubblewrap");
    let info = preflight(SandboxLevel::Strict).unwrap();
    let line = info.to_string();
    assert!(line.starts_with("sandbox strict: bubblewrap "), "{line}");
    assert!(info.denied_syscalls > 30, "{line}");
    let off = preflight(SandboxLevel::Off).unwrap();
    assert!(off.to_string().starts_with("sandbox OFF"));
}

#[test]
fn no_tcp_to_the_hosts_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    off_ok_strict_fails(&format!("exec 5<>/dev/tcp/127.0.0.1/{port}"));
}

#[test]
fn writes_only_inside_the_data_dir() {
    let outside = scratch("outside");
    let target = outside.join("escaped");
    let script = format!("echo x > '{}'", target.display());
    let strict = off_ok_strict_fails(&script);
    // Read-only where the directory is visible in the sandbox; absent where it lies under a
    // directory the sandbox hides (a checkout under /tmp, as in a clean-clone CI run).
    let why = String::from_utf8_lossy(&strict.stderr).into_owned();
    assert!(
        why.contains("Read-only file system") || why.contains("No such file or directory"),
        "{}",
        describe(&strict)
    );
    std::fs::remove_file(&target).unwrap(); // written by the off run
    let strict_again = run(SandboxLevel::Strict, &script);
    assert!(!strict_again.status.success());
    assert!(!target.exists(), "strict wrote outside its data dir");
    std::fs::remove_dir_all(&outside).unwrap();

    // Inside the data dir, both levels write, and the file lands in the host's directory.
    for level in LEVELS {
        let rt = RuntimeDir::create("crosscast-probe").unwrap();
        let data = scratch("data");
        let out = command(&game(
            level,
            &rt,
            &data,
            "echo saved > \"$0/save.txt\" && : > \"$XDG_RUNTIME_DIR/wayland-9\"",
        ))
        .unwrap()
        .arg(&data)
        .output()
        .unwrap();
        assert!(out.status.success(), "{level}: {}", describe(&out));
        assert_eq!(std::fs::read(data.join("save.txt")).unwrap(), b"saved\n");
        assert!(rt.path().join("wayland-9").exists(), "{level}: runtime dir");
        std::fs::remove_dir_all(&data).unwrap();
    }
}

#[test]
fn hosts_tmp_is_invisible() {
    let marker = std::env::temp_dir().join(format!("crosscast-marker-{}", std::process::id()));
    std::fs::write(&marker, b"host").unwrap();
    let result = std::panic::catch_unwind(|| {
        off_ok_strict_fails(&format!("test -e '{}'", marker.display()));
    });
    std::fs::remove_file(&marker).unwrap();
    result.unwrap();
}

#[test]
fn home_is_private_empty_and_writable() {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let name = format!("crosscast-home-probe-{}", std::process::id());
    // Strict: an empty HOME the game can write to, and the write does not reach the host.
    let script = format!("test -z \"$(ls -A \"$HOME\")\" && echo x > \"$HOME/{name}\"");
    let strict = run(SandboxLevel::Strict, &script);
    assert!(strict.status.success(), "{}", describe(&strict));
    assert!(
        !home.join(&name).exists(),
        "strict wrote into the host's HOME"
    );
    // Off sees the real HOME: if it is not empty the same probe fails there.
    if std::fs::read_dir(&home).unwrap().next().is_some() {
        assert!(!run(SandboxLevel::Off, &script).status.success());
    }
}

#[test]
fn cannot_signal_the_host() {
    off_ok_strict_fails(&format!("kill -0 {}", std::process::id()));
}

#[test]
fn seccomp_denies_namespaces_with_eperm() {
    require("unshare", "util-linux");
    // Off succeeds here only where this user may create user namespaces; the test needs that
    // anyway for bwrap.
    let strict = off_ok_strict_fails("unshare -U true");
    assert!(
        String::from_utf8_lossy(&strict.stderr).contains("Operation not permitted"),
        "expected EPERM from seccomp: {}",
        describe(&strict)
    );
}

#[test]
fn missing_program_is_named_before_spawning() {
    let rt = RuntimeDir::create("crosscast-probe").unwrap();
    let data = scratch("data");
    for level in LEVELS {
        let mut g = game(level, &rt, &data, "");
        g.program = "crosscast-no-such-game".into();
        let err = command(&g).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no such program: crosscast-no-such-game (searched PATH)"
        );
    }
    std::fs::remove_dir_all(&data).unwrap();
}

/// fds 3 and 4 placed the way `spawn_game` places them reach the game; in strict nothing else
/// does: neither the seccomp fd nor an fd the host holds without close-on-exec.
#[test]
fn inherited_fds_3_and_4_reach_the_game_and_nothing_else_does() {
    // What a host that inherited a stray fd from its own parent would hold.
    let (stray, _stray_peer) = UnixStream::pair().unwrap();
    let stray = rustix::io::fcntl_dupfd_cloexec(&stray, 20).unwrap();
    rustix::io::fcntl_setfd(&stray, rustix::io::FdFlags::empty()).unwrap();
    let stray_number = stray.as_raw_fd().to_string();
    for level in LEVELS {
        let rt = RuntimeDir::create("crosscast-probe").unwrap();
        let data = scratch("data");
        let (mut host_sock, game_sock) = UnixStream::pair().unwrap();
        let (mut key_w, key_r) = UnixStream::pair().unwrap();
        key_w.write_all(b"key-1234\n").unwrap();
        key_w.shutdown(std::net::Shutdown::Write).unwrap();
        // Echoes the key from fd 4 into fd 3, then becomes `ls`, which lists the fds the
        // game holds (those bash keeps for itself are close-on-exec) plus its own directory.
        let script = "read -r key <&4; echo \"key=$key\" >&3; exec ls /proc/self/fd >&3";
        let cmd = command(&game(level, &rt, &data, script)).unwrap();
        let seccomp_fd: Option<String> = {
            let args: Vec<&std::ffi::OsStr> = cmd.get_args().collect();
            args.iter()
                .position(|a| *a == "--seccomp")
                .map(|i| args[i + 1].to_string_lossy().into_owned())
        };
        assert_eq!(seccomp_fd.is_some(), level == SandboxLevel::Strict);
        let mut child = crosscast_ipc::os::process::spawn_with_fds(
            cmd,
            vec![(OwnedFd::from(game_sock), 3), (OwnedFd::from(key_r), 4)],
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{level}: {status}");
        let mut got = String::new();
        host_sock.read_to_string(&mut got).unwrap();
        let mut lines = got.lines();
        assert_eq!(lines.next(), Some("key=key-1234"), "{level}: {got:?}");
        let fds: Vec<&str> = lines.collect();
        assert!(fds.contains(&"3") && fds.contains(&"4"), "{level}: {fds:?}");
        match level {
            // Unsandboxed, the stray fd goes along: the probe can see it.
            SandboxLevel::Off => assert!(fds.contains(&stray_number.as_str()), "{fds:?}"),
            SandboxLevel::Strict => {
                let n = seccomp_fd.unwrap();
                assert!(n.parse::<i32>().unwrap() >= 10);
                // 0-2, 3, 4, and 5: `ls`'s own directory.
                assert_eq!(fds, ["0", "1", "2", "3", "4", "5"], "seccomp fd {n}");
            }
        }
        std::fs::remove_dir_all(&data).unwrap();
    }
}

/// The same Command spawned twice still hands bwrap a whole filter (the memfd is re-read from
/// its start) and the game still runs.
#[test]
fn one_command_spawns_twice() {
    let rt = RuntimeDir::create("crosscast-probe").unwrap();
    let data = scratch("data");
    let mut cmd = command(&game(SandboxLevel::Strict, &rt, &data, "unshare -U true")).unwrap();
    for _ in 0..2 {
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{}",
            describe(&out)
        );
    }
    std::fs::remove_dir_all(&data).unwrap();
}

const PARENT_ENV: &str = "CROSSCAST_SANDBOX_PARENT";

/// Pids of processes whose command line holds `marker` as one argument: bash ones only (the
/// game), or every one (bwrap too).
fn with_marker(marker: &str, bash_only: bool) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A zombie has an empty command line, so it counts as gone.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_bash = args.first().is_some_and(|a| a.ends_with(b"bash"));
        if (is_bash || !bash_only) && args.contains(&marker.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

fn bash_with(marker: &str) -> Vec<u32> {
    with_marker(marker, true)
}

/// Kills what a failed run left behind, so it cannot hold the test's output pipes open.
fn kill_all_with(marker: &str) {
    for pid in with_marker(marker, false) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The intermediate process: spawns the game and waits for it (until the test kills us).
fn act_as_parent(spec: &str) -> ! {
    let (level, rest) = spec.split_once(':').unwrap();
    let (marker, dirs) = rest.split_once(':').unwrap();
    let (rt, data) = dirs.split_once(':').unwrap();
    let g = GameCommand {
        program: "bash".into(),
        args: vec![
            "-c".into(),
            "while :; do sleep 0.05; done".into(),
            OsString::from(marker),
        ],
        env: Vec::new(),
        env_remove: Vec::new(),
        runtime_dir: rt.into(),
        data_dir: data.into(),
        level: level.parse().unwrap(),
        binds: Vec::new(),
    };
    let mut child = command(&g).unwrap().stdin(Stdio::null()).spawn().unwrap();
    eprintln!("parent: spawned");
    // The game loops forever: this waits until the test kills this process.
    let status = child.wait();
    panic!("the game ended on its own: {status:?}");
}

#[test]
fn game_dies_with_its_parent_in_strict_only() {
    if let Ok(spec) = std::env::var(PARENT_ENV) {
        act_as_parent(&spec);
    }
    require("bwrap", "bubblewrap");
    for level in LEVELS {
        let rt = RuntimeDir::create("crosscast-probe").unwrap();
        let data = scratch("data");
        let marker = format!("crosscast-orphan-{}-{level}", std::process::id());
        let mut parent: Child = Command::new(std::env::current_exe().unwrap())
            .args([
                "game_dies_with_its_parent_in_strict_only",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(
                PARENT_ENV,
                format!(
                    "{level}:{marker}:{}:{}",
                    rt.path().display(),
                    data.display()
                ),
            )
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || !bash_with(&marker).is_empty()),
            "{level}: the game never started"
        );
        let pids = bash_with(&marker);
        parent.kill().unwrap();
        parent.wait().unwrap();
        // Strict's game goes within milliseconds; off's is given a second to show it stays.
        let limit = Duration::from_secs(if level == SandboxLevel::Strict { 5 } else { 1 });
        let gone = wait_until(limit, || bash_with(&marker).is_empty());
        let left = bash_with(&marker);
        kill_all_with(&marker);
        match level {
            SandboxLevel::Strict => assert!(gone, "strict: the game outlived its parent: {left:?}"),
            SandboxLevel::Off => {
                assert!(!gone, "off: something killed the game");
                assert_eq!(left, pids, "off: the game lives on");
                assert!(wait_until(Duration::from_secs(5), || bash_with(&marker).is_empty()));
            }
        }
        std::fs::remove_dir_all(&data).unwrap();
    }
}

/// A compositor that must not outlive its test, failed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An ordinary Wayland program with Mesa (llvmpipe, threads, shm) runs in the strict sandbox
/// against a compositor serving the game's runtime dir: the filter and the mounts leave it
/// everything it needs.
#[test]
fn mesa_wayland_client_runs_in_strict() {
    require("weston", "weston");
    require("weston-simple-egl", "weston");
    require("weston-simple-shm", "weston");
    require("glmark2-es2-wayland", "glmark2-es2-wayland");
    let rt = RuntimeDir::create("crosscast-probe").unwrap();
    let data = scratch("data");
    let _weston = KillOnDrop(
        Command::new("weston")
            .args([
                "--backend=headless-backend.so",
                "--socket=wayland-game",
                "--idle-time=0",
            ])
            .env("XDG_RUNTIME_DIR", rt.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let socket = rt.path().join("wayland-game");
    assert!(
        wait_until(Duration::from_secs(10), || socket.exists()),
        "weston did not create {}",
        socket.display()
    );
    for client in ["weston-simple-shm", "weston-simple-egl"] {
        let g = GameCommand {
            program: client.into(),
            args: Vec::new(),
            env: vec![("WAYLAND_DISPLAY".into(), "wayland-game".into())],
            env_remove: Vec::new(),
            runtime_dir: rt.path().to_owned(),
            data_dir: data.clone(),
            level: SandboxLevel::Strict,
            binds: Vec::new(),
        };
        let mut child = command(&g)
            .unwrap()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // These clients draw until closed; still drawing after two seconds means they
        // connected, set up their buffers (and EGL) and are rendering frames.
        std::thread::sleep(Duration::from_secs(2));
        let early = child.try_wait().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            early.is_none(),
            "{client} exited early ({early:?}): {stderr}"
        );
    }
    // A GLES program that renders frames (Mesa's llvmpipe, its worker threads, shaders
    // compiled by LLVM into executable memory) and ends by itself with a score.
    let g = GameCommand {
        program: "glmark2-es2-wayland".into(),
        args: ["-b", "build:duration=1", "--size", "320x240"]
            .map(OsString::from)
            .to_vec(),
        env: vec![("WAYLAND_DISPLAY".into(), "wayland-game".into())],
        env_remove: Vec::new(),
        runtime_dir: rt.path().to_owned(),
        data_dir: data.clone(),
        level: SandboxLevel::Strict,
        binds: Vec::new(),
    };
    let out = command(&g).unwrap().stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("glmark2 Score:"),
        "glmark2 in strict: {}",
        describe(&out)
    );
    std::fs::remove_dir_all(&data).unwrap();
}

/// Threads work in strict: glibc 2.34+ creates them with `clone3`, which the filter answers
/// with `ENOSYS` so glibc falls back to `clone` (an `EPERM` there would fail every thread).
#[test]
fn threads_start_in_strict() {
    require("perl", "perl-base");
    let out = run(
        SandboxLevel::Strict,
        "perl -Mthreads -e 'threads->create(sub { 42 })->join == 42 or die'",
    );
    assert!(out.status.success(), "{}", describe(&out));
}

/// No capabilities inside, even when the host (as here, in CI) runs as root.
#[test]
fn no_capabilities_in_strict() {
    let out = run(
        SandboxLevel::Strict,
        "grep -E '^Cap(Prm|Eff|Bnd|Amb):' /proc/self/status | grep -v '0000000000000000$' \
         && exit 1 || exit 0",
    );
    assert!(out.status.success(), "{}", describe(&out));
}

const NO_BWRAP_ENV: &str = "CROSSCAST_SANDBOX_NO_BWRAP";

/// Without bwrap on PATH, both the preflight and `command` say which Debian package to
/// install. Run in a child process with an empty PATH (the environment is process-wide).
#[test]
fn missing_bwrap_names_the_package() {
    if std::env::var_os(NO_BWRAP_ENV).is_some() {
        let err = preflight(SandboxLevel::Strict).unwrap_err();
        assert!(
            matches!(err, crosscast_sandbox::SandboxError::BwrapMissing),
            "{err}"
        );
        let rt = RuntimeDir::create("crosscast-probe").unwrap();
        let mut g = GameCommand {
            program: "/bin/sh".into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            runtime_dir: rt.path().to_owned(),
            data_dir: std::env::temp_dir(),
            level: SandboxLevel::Strict,
            binds: Vec::new(),
        };
        let err2 = command(&g).unwrap_err();
        assert_eq!(err2.to_string(), err.to_string());
        eprintln!("no-bwrap-child: {err}");
        // Off needs no bwrap.
        g.level = SandboxLevel::Off;
        command(&g).unwrap();
        preflight(SandboxLevel::Off).unwrap();
    } else {
        parent_of_no_bwrap_child();
    }
}

fn parent_of_no_bwrap_child() {
    require("bwrap", "bubblewrap");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "missing_bwrap_names_the_package",
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(NO_BWRAP_ENV, "1")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stderr.contains("no-bwrap-child: ")
            && stderr.contains("install the Debian package `bubblewrap`")
            && stderr.contains("--sandbox off"),
        "{stderr}"
    );
}

//! Shared by the compositor's tests: a private runtime dir, a compositor in it, real client
//! processes, and a loop that plays the host's output clock.

#![allow(dead_code, unreachable_pub)]

pub mod wl;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crosscast_compositor::{monotonic_ns, Compositor, CompositorOptions, ShmFormat, ShmFrame};
use crosscast_wire::FrameRate;

/// A 0700 directory removed on drop.
pub struct RuntimeDir(pub PathBuf);

impl RuntimeDir {
    pub fn new() -> RuntimeDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "crosscast-comp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create runtime dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod 0700");
        RuntimeDir(p)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const FPS: u32 = 60;

/// A compositor for a 320x240 stream at 60 fps in a fresh runtime dir.
pub fn start() -> (RuntimeDir, Compositor) {
    start_with(4)
}

pub fn start_with(max_clients: usize) -> (RuntimeDir, Compositor) {
    let dir = RuntimeDir::new();
    let comp = try_start(&dir, max_clients, Default::default()).expect("start compositor");
    (dir, comp)
}

/// A compositor for a 320x240 stream at 60 fps in `dir` with that keymap.
pub fn try_start(
    dir: &RuntimeDir,
    max_clients: usize,
    keymap: crosscast_compositor::Keymap,
) -> Result<Compositor, crosscast_compositor::CompositorError> {
    Compositor::start(CompositorOptions {
        width: 320,
        height: 240,
        fps: FrameRate::integer(FPS),
        runtime_dir: dir.0.clone(),
        socket_name: "wayland-test".into(),
        max_clients,
        keymap,
    })
}

/// A client process, killed on drop.
pub struct ClientProc {
    pub child: Child,
    pub name: String,
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ClientProc {
    /// Its stderr so far, after killing it (for failure messages).
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let out = std::mem::replace(
            &mut self.child,
            Command::new("true").spawn().expect("spawn true"),
        )
        .wait_with_output()
        .expect("wait client");
        format!(
            "{} exited {:?}; stderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Spawns `program` as a Wayland client of the compositor in `dir`; a missing program fails
/// the test naming the Debian package that has it.
pub fn spawn(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    package: &str,
) -> ClientProc {
    spawn_with_stdout(dir, program, args, env, package, Stdio::null())
}

/// [`spawn`] with the client's stdout going to `stdout`.
pub fn spawn_with_stdout(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    package: &str,
    stdout: Stdio,
) -> ClientProc {
    assert!(
        Path::new(program).exists() || which(program),
        "{program} is missing: install the Debian package {package}"
    );
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("XDG_RUNTIME_DIR", dir)
        .env("WAYLAND_DISPLAY", "wayland-test")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (Debian package {package}): {e}"));
    ClientProc {
        child,
        name: program.to_string(),
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// What the clock loop saw.
#[derive(Debug, Default)]
pub struct ClockStats {
    pub ticks: u64,
    pub new_frames: u64,
    pub non_uniform_frames: u64,
    pub read_errors: Vec<String>,
    pub last_size: Option<(u32, u32)>,
}

/// True if not all pixels have the same colour (alpha ignored for XRGB).
pub fn non_uniform(f: &ShmFrame<'_>) -> bool {
    let mask: u32 = match f.format {
        ShmFormat::Argb8888 => 0xffff_ffff,
        ShmFormat::Xrgb8888 => 0x00ff_ffff,
    };
    let px = |row: usize, col: usize| {
        let i = row * f.stride + col * 4;
        u32::from_le_bytes([f.data[i], f.data[i + 1], f.data[i + 2], f.data[i + 3]]) & mask
    };
    let first = px(0, 0);
    (0..f.height as usize).any(|r| (0..f.width as usize).any(|c| px(r, c) != first))
}

/// Plays the host's output clock at 60 fps for `dur`: present, acquire, read in place.
pub fn run_clock(comp: &mut Compositor, dur: Duration) -> ClockStats {
    let mut st = ClockStats::default();
    let period = Duration::from_nanos(FrameRate::integer(FPS).period_ns());
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        comp.present(n, monotonic_ns());
        st.ticks += 1;
        if let Some(info) = comp.acquire().expect("acquire") {
            st.new_frames += 1;
            st.last_size = Some((info.width, info.height));
            match comp.with_held(non_uniform) {
                Ok(Some(true)) => st.non_uniform_frames += 1,
                Ok(_) => {}
                Err(e) => st.read_errors.push(e.to_string()),
            }
        }
        n += 1;
        let next = start + period * n as u32;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    eprintln!("clock: {st:?}");
    st
}

/// Waits up to `timeout` for the first frame, presenting meanwhile (clients that wait for a
/// frame callback before drawing again need vblanks to get going).
pub fn wait_first_frame(comp: &Compositor, timeout: Duration) -> bool {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < timeout {
        comp.present(n, monotonic_ns());
        n += 1;
        if comp.wait_frame(Duration::from_millis(16)) {
            return true;
        }
    }
    false
}

/// Collects the compositor's log until a line contains every one of `needles` (each may be on
/// a different line), for up to 2 s; panics with the log otherwise.
pub fn wait_log(comp: &Compositor, needles: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut log = Vec::new();
    loop {
        log.extend(comp.take_log());
        if needles.iter().all(|n| log.iter().any(|l| l.contains(n))) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needles:?} in log {log:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

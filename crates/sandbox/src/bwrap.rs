//! bwrap's command line, and finding programs on `PATH`.
//!
//! Pure functions of [`HostFacts`] (what this machine has) and [`Layout`] (one game's paths),
//! so that the argv is unit-tested without running anything.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::SandboxError;

/// Directories that get an empty tmpfs in the sandbox when they exist on the host: shared
/// scratch space (other programs' files and sockets), the host's runtime dirs (`/run/user/…`:
/// D-Bus, PulseAudio, the streamer's own Wayland or X11 sockets) and where people keep their
/// files. The user's `$HOME` and `$XDG_RUNTIME_DIR` are added wherever they are.
pub(crate) const HIDDEN_DIRS: &[&str] = &[
    "/tmp", "/var/tmp", "/run", "/home", "/root", "/mnt", "/media", "/srv",
];

/// Environment variables removed for a strict game: they point at things the sandbox hides
/// (sockets, the host's X server, per-user directories outside the private `$HOME`), and a
/// program that finds them set tries them first (SDL2 prefers X11 when `DISPLAY` is set).
pub(crate) const STRICT_ENV_REMOVE: &[&str] = &[
    "DISPLAY",
    "XAUTHORITY",
    "WAYLAND_SOCKET",
    "DBUS_SESSION_BUS_ADDRESS",
    "SSH_AUTH_SOCK",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
];

/// What the machine has that changes the argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostFacts {
    /// Existing directories to cover with a tmpfs, parents before children.
    pub(crate) hidden: Vec<PathBuf>,
    /// The user's home (also hidden); the game's `HOME` is this path, now an empty tmpfs.
    pub(crate) home: Option<PathBuf>,
    /// `/dev/dri` exists: GPU render nodes are bound so a capable machine renders on its GPU.
    pub(crate) dri: bool,
    /// This bwrap knows `--disable-userns` (0.8.0 and later; Ubuntu 22.04 has 0.6).
    pub(crate) disable_userns: bool,
}

impl HostFacts {
    /// Looks at this machine, this process's environment and the `bwrap` at `bwrap_path`.
    pub(crate) fn gather(bwrap_path: &Path) -> HostFacts {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.parent().is_some() && p.is_dir());
        let xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.parent().is_some());
        let mut hidden: Vec<PathBuf> = Vec::new();
        for p in HIDDEN_DIRS
            .iter()
            .map(PathBuf::from)
            .chain(home.clone())
            .chain(xdg)
        {
            if p.is_dir() && !hidden.contains(&p) {
                hidden.push(p);
            }
        }
        // A tmpfs mounted on a parent after its child would cover the child's.
        hidden.sort_by_key(|p| p.components().count());
        HostFacts {
            hidden,
            home,
            dri: Path::new("/dev/dri").is_dir(),
            disable_userns: knows_disable_userns(bwrap_path),
        }
    }

    /// The game's `HOME`: the user's home path (an empty tmpfs inside), else the private `/tmp`.
    pub(crate) fn game_home(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| PathBuf::from("/tmp"))
    }
}

/// One game's paths, all absolute.
#[derive(Debug, Clone)]
pub(crate) struct Layout<'a> {
    /// The private runtime directory (bound read-write).
    pub(crate) runtime_dir: &'a Path,
    /// The writable data directory (bound read-write).
    pub(crate) data_dir: &'a Path,
    /// The program, resolved outside the sandbox.
    pub(crate) program: &'a Path,
    /// Its arguments.
    pub(crate) args: &'a [OsString],
    /// Extra read-write binds (host path, path inside), after the runtime and data dirs.
    pub(crate) binds: &'a [(PathBuf, PathBuf)],
}

/// Namespaces, process lifetime and the base file system: what the game and the preflight
/// run share.
pub(crate) fn base_args(facts: &HostFacts, seccomp_fd: i32) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        // bwrap run by root would otherwise keep capabilities inside the sandbox.
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    if facts.disable_userns {
        // Kernel-side backstop to the seccomp rules: no user namespace can be made inside.
        a.push("--disable-userns".into());
    }
    for dir in &facts.hidden {
        a.push("--tmpfs".into());
        a.push(dir.into());
    }
    a.extend(["--tmpfs", "/dev/shm"].map(OsString::from));
    if facts.dri {
        a.extend(["--dev-bind", "/dev/dri", "/dev/dri"].map(OsString::from));
    }
    a.push("--seccomp".into());
    a.push(seccomp_fd.to_string().into());
    a
}

/// The whole argv after `bwrap`, ending in `-- program args…`.
pub(crate) fn game_args(facts: &HostFacts, layout: &Layout<'_>, seccomp_fd: i32) -> Vec<OsString> {
    let mut a = base_args(facts, seccomp_fd);
    // Binds come after every tmpfs, so a runtime or data dir under /tmp or $HOME shows
    // through (bwrap creates its mount point inside the fresh tmpfs).
    for dir in [layout.runtime_dir, layout.data_dir] {
        a.push("--bind".into());
        a.push(dir.into());
        a.push(dir.into());
    }
    for (src, dest) in layout.binds {
        a.push("--bind".into());
        a.push(src.into());
        a.push(dest.into());
    }
    // A program that lives in a hidden directory (a game in ~/Games) needs its own directory.
    if let Some(dir) = layout.program.parent() {
        let hidden = facts.hidden.iter().any(|h| dir.starts_with(h));
        let bound = dir.starts_with(layout.runtime_dir) || dir.starts_with(layout.data_dir);
        if hidden && !bound {
            a.push("--ro-bind".into());
            a.push(dir.into());
            a.push(dir.into());
        }
    }
    a.push("--".into());
    a.push(layout.program.into());
    a.extend(layout.args.iter().cloned());
    a
}

/// Finds `program` the way `execvp` would, but outside the sandbox and only in absolute `PATH`
/// entries: a name with a `/` is taken as a path (relative to `cwd`), any other name is looked
/// up on `path_var`. Returns an absolute path to an executable file.
pub(crate) fn resolve_program(
    program: &OsStr,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, SandboxError> {
    let given = Path::new(program);
    let has_slash = program.as_encoded_bytes().contains(&b'/');
    let not_found = || SandboxError::NoSuchProgram {
        program: program.to_owned(),
        searched_path: !has_slash,
    };
    if program.is_empty() {
        return Err(not_found());
    }
    if has_slash {
        let p = cwd.join(given);
        return if is_executable_file(&p) {
            Ok(p)
        } else {
            Err(not_found())
        };
    }
    for dir in std::env::split_paths(path_var.unwrap_or_default()) {
        // A relative PATH entry would depend on the current directory; execvp's habit of
        // searching "" as "." is not copied either.
        if !dir.is_absolute() {
            continue;
        }
        let p = dir.join(given);
        if is_executable_file(&p) {
            return Ok(p);
        }
    }
    Err(not_found())
}

/// Whether `bwrap --help` lists `--disable-userns`; asked once per bwrap path and process.
fn knows_disable_userns(bwrap_path: &Path) -> bool {
    static ANSWERS: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());
    let mut answers = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, known)) = answers.iter().find(|(p, _)| p == bwrap_path) {
        return *known;
    }
    let known = Command::new(bwrap_path)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--disable-userns"));
    answers.push((bwrap_path.to_owned(), known));
    known
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            hidden: ["/tmp", "/run", "/home", "/home/alice", "/run/user/1000"]
                .map(PathBuf::from)
                .to_vec(),
            home: Some("/home/alice".into()),
            dri: true,
            disable_userns: true,
        }
    }

    /// The position of `seq` as a contiguous run in `argv`.
    fn find(argv: &[OsString], seq: &[&str]) -> Option<usize> {
        argv.windows(seq.len())
            .position(|w| w.iter().zip(seq).all(|(a, b)| a == b))
    }

    #[test]
    fn argv_holds_every_rule() {
        let args = [OsString::from("--level"), OsString::from("3")];
        let layout = Layout {
            runtime_dir: Path::new("/run/user/1000/crosscast-1"),
            data_dir: Path::new("/home/alice/.local/share/crosscast/game"),
            program: Path::new("/home/alice/Games/tux/tux"),
            args: &args,
            binds: &[],
        };
        let argv = game_args(&facts(), &layout, 11);
        let at = |seq: &[&str]| find(&argv, seq).unwrap_or_else(|| panic!("{seq:?} in {argv:?}"));
        for flag in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--disable-userns",
        ] {
            at(&[flag]);
        }
        at(&["--cap-drop", "ALL"]);
        let root = at(&["--ro-bind", "/", "/"]);
        at(&["--proc", "/proc"]);
        let dev = at(&["--dev", "/dev"]);
        let shm = at(&["--tmpfs", "/dev/shm"]);
        assert!(dev < shm, "/dev/shm must be mounted inside the new /dev");
        at(&["--dev-bind", "/dev/dri", "/dev/dri"]);
        at(&["--seccomp", "11"]);
        let tmpfs: Vec<usize> = ["/tmp", "/run", "/home", "/home/alice", "/run/user/1000"]
            .iter()
            .map(|d| at(&["--tmpfs", d]))
            .collect();
        assert!(tmpfs.iter().all(|&t| t > root));
        let rt = at(&[
            "--bind",
            "/run/user/1000/crosscast-1",
            "/run/user/1000/crosscast-1",
        ]);
        let data = at(&[
            "--bind",
            "/home/alice/.local/share/crosscast/game",
            "/home/alice/.local/share/crosscast/game",
        ]);
        let prog_dir = at(&[
            "--ro-bind",
            "/home/alice/Games/tux",
            "/home/alice/Games/tux",
        ]);
        for bind in [rt, data, prog_dir] {
            assert!(
                tmpfs.iter().all(|&t| t < bind),
                "binds must follow the tmpfs"
            );
        }
        let end = at(&["--", "/home/alice/Games/tux/tux", "--level", "3"]);
        assert_eq!(end + 4, argv.len());
        // Nothing else is bound writable and no network or host sharing is requested.
        let rw_binds = argv.iter().filter(|a| *a == "--bind").count();
        assert_eq!(rw_binds, 2);
        for forbidden in ["--share-net", "--bind-try", "--cap-add", "--as-pid-1"] {
            assert!(find(&argv, &[forbidden]).is_none(), "{forbidden}");
        }
    }

    #[test]
    fn no_dri_no_bind_and_system_programs_need_no_extra_bind() {
        let f = HostFacts {
            dri: false,
            disable_userns: false,
            ..facts()
        };
        let layout = Layout {
            runtime_dir: Path::new("/tmp/rt"),
            data_dir: Path::new("/tmp/data"),
            program: Path::new("/usr/bin/bash"),
            args: &[],
            binds: &[],
        };
        let argv = game_args(&f, &layout, 10);
        assert!(find(&argv, &["--dev-bind", "/dev/dri", "/dev/dri"]).is_none());
        // An older bwrap (Ubuntu 22.04's 0.6) would refuse the option; seccomp still denies.
        assert!(find(&argv, &["--disable-userns"]).is_none());
        assert!(find(&argv, &["--ro-bind", "/usr/bin", "/usr/bin"]).is_none());
        assert_eq!(argv.last().unwrap(), "/usr/bin/bash");
    }

    #[test]
    fn extra_binds_follow_every_tmpfs() {
        let binds = [(
            PathBuf::from("/run/user/1000/crosscast-1/.X11-unix"),
            PathBuf::from("/tmp/.X11-unix"),
        )];
        let layout = Layout {
            runtime_dir: Path::new("/run/user/1000/crosscast-1"),
            data_dir: Path::new("/run/user/1000/crosscast-1/data"),
            program: Path::new("/usr/bin/xlogo"),
            args: &[],
            binds: &binds,
        };
        let argv = game_args(&facts(), &layout, 10);
        let bind = find(
            &argv,
            &[
                "--bind",
                "/run/user/1000/crosscast-1/.X11-unix",
                "/tmp/.X11-unix",
            ],
        )
        .expect("the extra bind");
        let last_tmpfs = argv.iter().rposition(|a| a == "--tmpfs").unwrap();
        assert!(bind > last_tmpfs, "{argv:?}");
        assert!(bind < find(&argv, &["--"]).unwrap());
    }

    #[test]
    fn gathered_facts_hide_tmp_and_home_parents_first() {
        let f = HostFacts::gather(Path::new("/usr/bin/bwrap"));
        // Debian 12's bwrap is 0.8.0.
        assert!(f.disable_userns);
        assert!(f.hidden.contains(&PathBuf::from("/tmp")));
        assert!(!f.hidden.contains(&PathBuf::from("/")));
        let depths: Vec<usize> = f.hidden.iter().map(|p| p.components().count()).collect();
        assert!(depths.windows(2).all(|w| w[0] <= w[1]), "{:?}", f.hidden);
        if let Some(home) = &f.home {
            assert!(f.hidden.contains(home));
        }
    }

    #[test]
    fn programs_resolve_against_path_outside() {
        let path = OsString::from("relative/bin:/nonexistent:/usr/bin:/bin");
        let sh = resolve_program(OsStr::new("sh"), Some(&path), Path::new("/")).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        let err = resolve_program(OsStr::new("no-such-game-xyz"), Some(&path), Path::new("/"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no such program: no-such-game-xyz (searched PATH)"
        );
        let rel = resolve_program(OsStr::new("./bin/sh"), None, Path::new("/usr")).unwrap();
        assert_eq!(rel, Path::new("/usr/./bin/sh"));
        // Not executable: /etc/passwd.
        let err = resolve_program(OsStr::new("/etc/passwd"), None, Path::new("/")).unwrap_err();
        assert_eq!(err.to_string(), "no such program: /etc/passwd");
        assert!(resolve_program(OsStr::new(""), Some(&path), Path::new("/")).is_err());
    }
}

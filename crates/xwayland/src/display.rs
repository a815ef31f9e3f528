//! The X display the game is offered: a listening Unix socket the host owns, where the game
//! looks for it, and the environment and binds that point the game at it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crosscast_sandbox::SandboxLevel;

use crate::XwaylandError;

/// Where X clients look for display sockets (libxcb: `/tmp/.X11-unix/X<N>` for `:N`).
pub const X11_UNIX_DIR: &str = "/tmp/.X11-unix";

/// The display numbers tried with `--sandbox off` (0 is usually the desktop's own).
const OFF_RANGE: (u32, u32) = (1, 999);

/// One X display offered to one game: the listening socket (owned by the host, handed to
/// Xwayland when a client connects), and what the game needs to find it.
///
/// Strict sandbox: the socket is `<runtime_dir>/.X11-unix/X0`, bound onto `/tmp/.X11-unix`
/// inside the sandbox (libxcb takes no socket path in `DISPLAY`), and the game's display is
/// `:0`. Off: a free number `N` is taken in `/tmp` the way X servers take one (an `O_EXCL`
/// lock file `/tmp/.X<N>-lock` holding the pid), the socket is `/tmp/.X11-unix/X<N>` and the
/// display `:N`. The socket (and lock) are removed on drop.
#[derive(Debug)]
pub struct X11Display {
    display: String,
    listener: UnixListener,
    socket_path: PathBuf,
    lock_path: Option<PathBuf>,
    binds: Vec<(PathBuf, PathBuf)>,
}

impl X11Display {
    /// Makes the display for a game whose private runtime directory is `runtime_dir`, run at
    /// sandbox `level`.
    pub fn open(runtime_dir: &Path, level: SandboxLevel) -> Result<Self, XwaylandError> {
        match level {
            SandboxLevel::Strict => {
                let dir = runtime_dir.join(".X11-unix");
                make_dir(&dir, 0o700)?;
                let socket_path = dir.join("X0");
                let listener = listen(&socket_path)?;
                Ok(X11Display {
                    display: ":0".into(),
                    listener,
                    socket_path,
                    lock_path: None,
                    binds: vec![(dir, PathBuf::from(X11_UNIX_DIR))],
                })
            }
            SandboxLevel::Off => Self::open_in(Path::new("/tmp"), OFF_RANGE),
        }
    }

    /// The unsandboxed case with its `/tmp` and number range given (unit tests use their own).
    fn open_in(tmp: &Path, (first, last): (u32, u32)) -> Result<Self, XwaylandError> {
        let dir = tmp.join(".X11-unix");
        if !dir.is_dir() {
            // As an X server makes it: world-writable and sticky, shared by every user.
            make_dir(&dir, 0o1777)?;
        }
        let (number, lock_path) = take_free_number(tmp, first, last)?;
        let socket_path = dir.join(format!("X{number}"));
        // A socket without a lock is a stale one (its server died without cleaning up): the
        // lock is what says the number is ours now, as it does for X servers.
        let _ = std::fs::remove_file(&socket_path);
        let listener = match listen(&socket_path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_file(&lock_path);
                return Err(e);
            }
        };
        Ok(X11Display {
            display: format!(":{number}"),
            listener,
            socket_path,
            lock_path: Some(lock_path),
            binds: Vec::new(),
        })
    }

    /// The game's `DISPLAY` (`:0` in the strict sandbox, `:N` unsandboxed).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Read-write binds (host path, path in the sandbox) the game's sandbox needs so that the
    /// display's socket is where libxcb looks; empty without a sandbox.
    pub fn binds(&self) -> Vec<(PathBuf, PathBuf)> {
        self.binds.clone()
    }

    /// The socket's path on the host.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The lock file's path, when a display number was taken in `/tmp` (`--sandbox off`).
    pub fn lock_path(&self) -> Option<&Path> {
        self.lock_path.as_deref()
    }

    /// A new fd for the listening socket (close-on-exec), for the watcher and Xwayland.
    pub(crate) fn listener_fd(&self) -> Result<OwnedFd, XwaylandError> {
        self.listener
            .try_clone()
            .map(OwnedFd::from)
            .map_err(|source| XwaylandError::Io {
                what: "duplicate the listening socket",
                path: self.socket_path.clone(),
                source,
            })
    }
}

impl Drop for X11Display {
    fn drop(&mut self) {
        // Socket before lock: once the lock is gone the number may be someone else's.
        let _ = std::fs::remove_file(&self.socket_path);
        if let Some(lock) = &self.lock_path {
            let _ = std::fs::remove_file(lock);
        }
    }
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), XwaylandError> {
    let io = |what| {
        move |source| XwaylandError::Io {
            what,
            path: dir.to_path_buf(),
            source,
        }
    };
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(io("create the directory")(e)),
    }
    // The umask may have cleared bits (the sticky, world-writable /tmp/.X11-unix).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(io("set the mode of"))
}

/// Binds and listens; only this user may connect (the game runs as this user, and an X
/// server without authorization must not be reachable by other users of the machine).
fn listen(path: &Path) -> Result<UnixListener, XwaylandError> {
    let io = |what| {
        move |source| XwaylandError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let listener = UnixListener::bind(path).map_err(io("listen on"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("set the mode of"))?;
    Ok(listener)
}

/// Takes the first number in `first..=last` whose lock file `<tmp>/.X<N>-lock` this call
/// creates (`O_EXCL`, so two hosts never take the same one) and writes the pid in it the
/// way X servers do (ten columns and a newline). Existing locks are left alone, stale or not.
fn take_free_number(tmp: &Path, first: u32, last: u32) -> Result<(u32, PathBuf), XwaylandError> {
    for n in first..=last {
        let lock = tmp.join(format!(".X{n}-lock"));
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut f) => {
                let written = writeln!(f, "{:>10}", std::process::id())
                    .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(0o444)));
                if let Err(source) = written {
                    let _ = std::fs::remove_file(&lock);
                    return Err(XwaylandError::Io {
                        what: "write the lock file",
                        path: lock,
                        source,
                    });
                }
                return Ok((n, lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(XwaylandError::Io {
                    what: "create the lock file",
                    path: lock,
                    source,
                })
            }
        }
    }
    Err(XwaylandError::NoFreeDisplay { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway directory standing in for `/tmp`.
    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!("cc-xw-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn off_takes_the_first_number_without_a_lock_and_cleans_up() {
        let tmp = Tmp::new("free");
        for n in [3, 4, 6] {
            std::fs::write(tmp.0.join(format!(".X{n}-lock")), "     99999\n").unwrap();
        }
        let d = X11Display::open_in(&tmp.0, (3, 10)).unwrap();
        assert_eq!(d.display(), ":5");
        assert!(d.binds().is_empty());
        let lock = tmp.0.join(".X5-lock");
        assert_eq!(d.lock_path(), Some(lock.as_path()));
        let pid = std::fs::read_to_string(&lock).unwrap();
        assert_eq!(pid, format!("{:>10}\n", std::process::id()));
        let sock = tmp.0.join(".X11-unix/X5");
        assert_eq!(d.socket_path(), sock);
        assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
        // A second display skips the number the first one holds.
        let d2 = X11Display::open_in(&tmp.0, (3, 10)).unwrap();
        assert_eq!(d2.display(), ":7");
        drop(d);
        assert!(!lock.exists() && !sock.exists());
        // Others' locks are never touched.
        assert!(tmp.0.join(".X3-lock").exists());
        drop(d2);
        assert!(!tmp.0.join(".X7-lock").exists());
    }

    #[test]
    fn off_fails_when_every_number_is_locked() {
        let tmp = Tmp::new("full");
        for n in 1..=2 {
            std::fs::write(tmp.0.join(format!(".X{n}-lock")), "1\n").unwrap();
        }
        let err = X11Display::open_in(&tmp.0, (1, 2)).unwrap_err();
        assert!(matches!(
            err,
            XwaylandError::NoFreeDisplay { first: 1, last: 2 }
        ));
    }

    #[test]
    fn strict_socket_lives_in_the_runtime_dir_and_is_bound_onto_tmp() {
        let rt = Tmp::new("strict");
        let d = X11Display::open(&rt.0, SandboxLevel::Strict).unwrap();
        assert_eq!(d.display(), ":0");
        assert_eq!(d.lock_path(), None);
        let dir = rt.0.join(".X11-unix");
        assert_eq!(
            d.binds(),
            vec![(dir.clone(), PathBuf::from("/tmp/.X11-unix"))]
        );
        assert_eq!(d.socket_path(), dir.join("X0"));
        let mode = std::fs::metadata(d.socket_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(d);
        assert!(!dir.join("X0").exists());
    }
}

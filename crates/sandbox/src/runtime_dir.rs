//! A private runtime directory for one game (its `XDG_RUNTIME_DIR`).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::SandboxError;

/// A fresh directory, mode 0700, owned by this user, for one game's sockets (the Wayland
/// socket the host serves); removed with its contents when dropped.
///
/// It is created under `$XDG_RUNTIME_DIR` when that is set, absolute and writable (a tmpfs
/// that only this user can enter), else under [`std::env::temp_dir`].
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
}

/// Distinguishes directories created by one process in the same nanosecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl RuntimeDir {
    /// Creates `<base>/<prefix>-<pid>-<unique>`; `prefix` is a plain name such as `crosscast`.
    pub fn create(prefix: &str) -> Result<RuntimeDir, SandboxError> {
        if prefix.is_empty() || prefix.contains('/') || prefix.contains('\0') {
            return Err(SandboxError::InvalidPrefix(prefix.to_owned()));
        }
        let xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        if let Some(base) = xdg {
            // An unusable XDG_RUNTIME_DIR (stale, another user's) falls back to temp_dir.
            if let Ok(dir) = Self::create_in(&base, prefix) {
                return Ok(dir);
            }
        }
        Self::create_in(&std::env::temp_dir(), prefix)
    }

    fn create_in(base: &Path, prefix: &str) -> Result<RuntimeDir, SandboxError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        let mut attempts = 0;
        let path = loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{prefix}-{}-{n}-{nanos:x}", std::process::id()));
            match builder.create(&path) {
                Ok(()) => break path,
                // Someone else's directory of that name (in a shared /tmp): pick another name,
                // never reuse it.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(e) => {
                    return Err(SandboxError::io(format!("creating {}", path.display()))(e));
                }
            }
        };
        let dir = RuntimeDir { path };
        // The umask may have taken bits away, never added any; set exactly 0700 anyway so the
        // mode does not depend on it.
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700)).map_err(
            SandboxError::io(format!("chmod 0700 {}", dir.path.display())),
        )?;
        let meta = std::fs::symlink_metadata(&dir.path)
            .map_err(SandboxError::io(format!("checking {}", dir.path.display())))?;
        if !meta.is_dir() || meta.uid() != rustix::process::getuid().as_raw() {
            return Err(SandboxError::NotADirectory {
                what: "runtime directory (of this user)",
                path: dir.path.clone(),
            });
        }
        Ok(dir)
    }

    /// The directory's absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        // Best effort: a socket a game left behind goes with it; nothing to do on failure.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_directory_is_created_and_removed() {
        let dir = RuntimeDir::create("crosscast-test").unwrap();
        let path = dir.path().to_owned();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o777, 0o700);
        std::fs::write(path.join("wayland-0"), b"x").unwrap();
        let other = RuntimeDir::create("crosscast-test").unwrap();
        assert_ne!(other.path(), path);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn prefix_must_be_a_plain_name() {
        assert!(matches!(
            RuntimeDir::create("a/b"),
            Err(SandboxError::InvalidPrefix(_))
        ));
        assert!(matches!(
            RuntimeDir::create(""),
            Err(SandboxError::InvalidPrefix(_))
        ));
    }
}

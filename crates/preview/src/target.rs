//! Where the preview goes: `--preview window | png:DIR | none`.

use std::path::PathBuf;
use std::str::FromStr;

use crate::PreviewError;

/// Where the composed preview is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewTarget {
    /// A real window on the X11 display named by `DISPLAY`.
    Window,
    /// One PNG a second written to this directory (headless use), named `preview-000001.png`, ...
    Png(PathBuf),
    /// No preview at all.
    None,
}

impl PreviewTarget {
    /// `Window` when an X11 display is reachable by name (`DISPLAY` set), otherwise `None`.
    ///
    /// Only `DISPLAY` counts, not `WAYLAND_DISPLAY`: the window is built for X11 only, and
    /// Wayland desktops set `DISPLAY` for XWayland. A Wayland session without XWayland gets
    /// `None` rather than a window that would fail to open.
    pub fn default_for_env() -> PreviewTarget {
        Self::default_for(std::env::var_os("DISPLAY").as_deref())
    }

    fn default_for(display: Option<&std::ffi::OsStr>) -> PreviewTarget {
        match display {
            Some(d) if !d.is_empty() => PreviewTarget::Window,
            _ => PreviewTarget::None,
        }
    }
}

impl FromStr for PreviewTarget {
    type Err = PreviewError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "window" => Ok(PreviewTarget::Window),
            "none" => Ok(PreviewTarget::None),
            _ => match s.strip_prefix("png:") {
                Some(dir) if !dir.is_empty() => Ok(PreviewTarget::Png(PathBuf::from(dir))),
                _ => Err(PreviewError::BadTarget(s.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            "window".parse::<PreviewTarget>().ok(),
            Some(PreviewTarget::Window)
        );
        assert_eq!(
            "none".parse::<PreviewTarget>().ok(),
            Some(PreviewTarget::None)
        );
        assert_eq!(
            "png:/tmp/x y".parse::<PreviewTarget>().ok(),
            Some(PreviewTarget::Png(PathBuf::from("/tmp/x y")))
        );
        for bad in ["", "png:", "Window", "png", "file:/x"] {
            assert!(
                matches!(
                    bad.parse::<PreviewTarget>(),
                    Err(PreviewError::BadTarget(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn default_depends_on_display() {
        assert_eq!(
            PreviewTarget::default_for(Some(OsStr::new(":0"))),
            PreviewTarget::Window
        );
        assert_eq!(
            PreviewTarget::default_for(Some(OsStr::new(""))),
            PreviewTarget::None
        );
        assert_eq!(PreviewTarget::default_for(None), PreviewTarget::None);
    }
}

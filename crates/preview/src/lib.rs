//! The streamer's preview: what only the streamer sees.
//!
//! This crate owns everything the host draws *next to* the stream but never *into* it:
//!
//! - [`CommentFeed`] follows a JSON-lines comments source (a growing file or stdin) on a
//!   background thread, rate-limited and bounded in memory, so a flood cannot slow the host.
//! - [`Overlay`] composites an acquired game frame, a comments panel and a live indicator into
//!   its *own* buffer. It never writes to the game frame, which is what the encoder reads: the
//!   audience sees the game only (the reason for the whole cross-process design, see
//!   docs/design.md, "Preview and overlay").
//! - [`Preview`] shows composed frames in a real window (winit + softbuffer, X11) or writes one
//!   PNG a second; [`Preview::submit`] copies into a latest-wins slot and never blocks the
//!   caller, so the encoder path is never delayed by the preview.
//!
//! It is not the compositor of the stream, and it does not encode anything.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use crosscast_preview::{CommentFeed, CommentSource, FeedLimits, LiveStatus, Overlay, Preview, PreviewTarget};
//!
//! # fn main() -> Result<(), crosscast_preview::PreviewError> {
//! let feed = CommentFeed::start(CommentSource::File("comments.jsonl".into()), FeedLimits::default())?;
//! let mut overlay = Overlay::new()?;
//! let preview = Preview::start(PreviewTarget::default_for_env(), "crosscast preview")?;
//! let (w, h) = (1280u32, 720u32);
//! let game = vec![0u8; (w * h * 4) as usize];
//! let status = LiveStatus { state: "LIVE".into(), elapsed: Duration::from_secs(5), bitrate_kbps: 2500.0, dropped_frames: 0 };
//! let composed = overlay.compose(&game, w, h, w as usize * 4, &feed.snapshot(), &status, Instant::now());
//! preview.submit(composed, w, h);
//! preview.stop()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod comments;
mod error;
mod overlay;
mod preview;
mod target;
mod text;
mod window;

pub use comments::{Comment, CommentFeed, CommentSource, FeedLimits, FeedStats};
pub use error::PreviewError;
pub use overlay::{LiveStatus, Overlay, Rect};
pub use preview::Preview;
pub use target::PreviewTarget;

#[cfg(test)]
mod tests {
    /// The host moves these to its own threads (preview on a compositor thread, feed shared).
    #[test]
    fn public_types_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<crate::Preview>();
        send_sync::<crate::CommentFeed>();
        send_sync::<crate::Overlay>();
        send_sync::<crate::PreviewError>();
    }
}

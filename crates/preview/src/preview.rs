//! The preview sink: a latest-wins frame slot read by a window thread or a PNG writer thread.
//!
//! [`Preview::submit`] copies the frame into the slot and returns; it never waits for the
//! window or the PNG encoder. If the consumer holds the slot at that instant (only for a
//! pointer swap), the frame is skipped: a newer one follows within a frame time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::window::{self, WindowHandle};
use crate::{PreviewError, PreviewTarget};

/// One PNG per this interval in `png:DIR` mode.
const PNG_INTERVAL: Duration = Duration::from_secs(1);

/// The newest submitted frame (tightly packed RGBA8).
#[derive(Debug, Default)]
pub(crate) struct Frame {
    pub(crate) data: Vec<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Bumped by every accepted submit; consumers compare it to what they showed last.
    pub(crate) seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    frame: Mutex<Frame>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Frame> {
        self.frame.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Swaps the newest frame into `out` if it is newer than `seen`; the lock is held only
    /// for the swap.
    pub(crate) fn take_newer(&self, seen: u64, out: &mut Frame) -> bool {
        let mut f = self.lock();
        if f.seq == seen {
            return false;
        }
        std::mem::swap(&mut f.data, &mut out.data);
        (out.width, out.height, out.seq) = (f.width, f.height, f.seq);
        true
    }
}

enum Worker {
    None,
    Png {
        thread: JoinHandle<Result<(), PreviewError>>,
    },
    Window(WindowHandle),
}

/// A running preview; see [`PreviewTarget`] for where it goes.
pub struct Preview {
    slot: Arc<Slot>,
    worker: Worker,
    closed: Arc<AtomicBool>,
    skipped: AtomicU64,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview")
            .field("closed", &self.closed())
            .finish_non_exhaustive()
    }
}

impl Preview {
    /// Starts the preview on its own thread. For a window, returns once the window is open
    /// (or failed to open: no display, or a window was already opened in this process, which
    /// winit allows only once); for `png:DIR`, once `DIR` exists.
    pub fn start(target: PreviewTarget, title: &str) -> Result<Preview, PreviewError> {
        Preview::start_with_input(target, title, None)
    }

    /// [`Preview::start`], with the window's keyboard, pointer and touch going to `input` (the
    /// game that has focus); the window also grabs the cursor when that game locks it.
    pub fn start_with_input(
        target: PreviewTarget,
        title: &str,
        input: Option<std::sync::Arc<crosscast_input::InputHub>>,
    ) -> Result<Preview, PreviewError> {
        let slot = Arc::new(Slot::default());
        let closed = Arc::new(AtomicBool::new(false));
        let worker = match target {
            PreviewTarget::None => Worker::None,
            PreviewTarget::Png(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| PreviewError::PngWrite {
                    path: dir.clone(),
                    source,
                })?;
                let slot2 = Arc::clone(&slot);
                let thread = std::thread::Builder::new()
                    .name("preview-png".into())
                    .spawn(move || png_loop(&slot2, &dir))
                    .map_err(|source| PreviewError::Spawn {
                        what: "preview",
                        source,
                    })?;
                Worker::Png { thread }
            }
            PreviewTarget::Window => Worker::Window(window::start(
                Arc::clone(&slot),
                Arc::clone(&closed),
                title,
                input,
            )?),
        };
        Ok(Preview {
            slot,
            worker,
            closed,
            skipped: AtomicU64::new(0),
        })
    }

    /// Offers a composed frame (tightly packed RGBA8, `width * height * 4` bytes). Copies it
    /// into the latest-wins slot and returns at once; a frame of the wrong size is ignored.
    pub fn submit(&self, rgba: &[u8], width: u32, height: u32) {
        if matches!(self.worker, Worker::None) {
            return;
        }
        let len = width as usize * height as usize * 4;
        if len == 0 || rgba.len() < len {
            return;
        }
        let mut f = match self.slot.frame.try_lock() {
            Ok(f) => f,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        f.data.clear();
        f.data.extend_from_slice(&rgba[..len]);
        (f.width, f.height) = (width, height);
        f.seq += 1;
        drop(f);
        if let Worker::Window(w) = &self.worker {
            w.wake();
        }
    }

    /// Whether the preview window is gone: the user closed it (the host then ends the stream
    /// cleanly), or it broke, in which case [`Preview::stop`] returns why.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Frames not taken because the preview thread held the slot at that instant.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Stops the preview thread and closes the window; reports a failure the thread hit
    /// (a PNG that could not be written, a window that broke).
    pub fn stop(mut self) -> Result<(), PreviewError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), PreviewError> {
        self.slot.stop.store(true, Ordering::Relaxed);
        self.slot.cv.notify_all();
        match std::mem::replace(&mut self.worker, Worker::None) {
            Worker::None => Ok(()),
            Worker::Png { thread } => thread
                .join()
                .map_err(|p| PreviewError::ThreadPanicked(panic_text(&p)))?,
            Worker::Window(w) => w.stop(),
        }
    }
}

impl Drop for Preview {
    fn drop(&mut self) {
        // Errors were the caller's to collect with `stop`; dropping means they chose not to.
        let _ = self.shutdown();
    }
}

pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Writes the first frame as soon as it arrives, then at most one per [`PNG_INTERVAL`].
fn png_loop(slot: &Slot, dir: &Path) -> Result<(), PreviewError> {
    let mut frame = Frame::default();
    let mut next_due = Instant::now();
    let mut n: u64 = 0;
    loop {
        {
            let mut f = slot.lock();
            loop {
                if slot.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let now = Instant::now();
                if f.seq != frame.seq && now >= next_due {
                    break;
                }
                // Submitters do not notify (that would make them contend for the lock at frame
                // rate); an idle writer looks for a first or resumed frame every 50 ms.
                let wait = if f.seq != frame.seq {
                    next_due - now
                } else {
                    Duration::from_millis(50)
                };
                f = slot
                    .cv
                    .wait_timeout(f, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        if !slot.take_newer(frame.seq, &mut frame) {
            continue;
        }
        n += 1;
        next_due = Instant::now() + PNG_INTERVAL;
        write_png(&dir.join(format!("preview-{n:06}.png")), &frame)?;
    }
}

/// Writes RGB (the preview's alpha means nothing on screen) to a temporary name and renames
/// it, so a reader never sees half a PNG.
pub(crate) fn write_png(path: &Path, frame: &Frame) -> Result<(), PreviewError> {
    let io_err = |source| PreviewError::PngWrite {
        path: path.to_path_buf(),
        source,
    };
    let tmp: PathBuf = path.with_extension("png.tmp");
    let file = std::fs::File::create(&tmp).map_err(io_err)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut w = enc
        .write_header()
        .map_err(|e| PreviewError::PngEncode(e.to_string()))?;
    let rgb: Vec<u8> = frame
        .data
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    w.write_image_data(&rgb)
        .map_err(|e| PreviewError::PngEncode(e.to_string()))?;
    w.finish()
        .map_err(|e| PreviewError::PngEncode(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn pngs(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn png_target_writes_the_submitted_frame_then_one_per_second() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/dir");
        let p = Preview::start(PreviewTarget::Png(out.clone()), "t").unwrap();
        let (w, h) = (32u32, 16u32);
        let frame: Vec<u8> = (0..w * h)
            .flat_map(|i| [i as u8, (i >> 8) as u8, 7, 255])
            .collect();
        p.submit(&frame, w, h);
        let deadline = Instant::now() + Duration::from_secs(60);
        while pngs(&out).is_empty() {
            assert!(Instant::now() < deadline, "no PNG written");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Many submits within the interval: latest wins, no burst of files.
        for k in 0..50u8 {
            let f: Vec<u8> = frame.iter().map(|&b| b.wrapping_add(k)).collect();
            // A submit that met the writer holding the slot is skipped by design; offer again.
            loop {
                let skipped = p.skipped_frames();
                p.submit(&f, w, h);
                if p.skipped_frames() == skipped {
                    break;
                }
            }
        }
        let files = pngs(&out);
        assert_eq!(files[0].file_name().unwrap(), "preview-000001.png");
        let (pw, ph, rgb) = read_png(&files[0]);
        assert_eq!((pw, ph), (w, h));
        let expect: Vec<u8> = frame
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        assert_eq!(rgb, expect);
        while pngs(&out).len() < 2 {
            assert!(Instant::now() < deadline, "no second PNG");
            std::thread::sleep(Duration::from_millis(20));
        }
        p.stop().unwrap();
        let files = pngs(&out);
        assert!(files.len() <= 3, "{files:?}");
        let (_, _, last) = read_png(&files[1]);
        let newest: Vec<u8> = frame
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]].map(|b| b.wrapping_add(49)))
            .collect();
        assert_eq!(last, newest, "the second PNG holds the latest frame");
        assert!(std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with(".tmp")));
    }

    #[test]
    fn none_target_accepts_frames_and_stops() {
        let p = Preview::start(PreviewTarget::None, "t").unwrap();
        p.submit(&[0; 16], 2, 2);
        p.submit(&[0; 3], 2, 2); // short: ignored
        assert!(!p.closed());
        p.stop().unwrap();
    }

    #[test]
    fn unwritable_png_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let r = Preview::start(PreviewTarget::Png(file.join("sub")), "t");
        assert!(matches!(r, Err(PreviewError::PngWrite { .. })));
    }
}

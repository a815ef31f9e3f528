//! The comments feed: JSON lines from a growing file (followed like `tail -f`) or stdin.
//!
//! One background thread reads the source; the host only ever takes a short lock to clone the
//! newest comments. The feed is bounded three ways so that a flood costs the host nothing:
//! at most [`FeedLimits::max_per_second`] comments are accepted (the rest are counted and dropped
//! *before* they are parsed), at most [`FeedLimits::keep_newest`] are kept, and a line longer than
//! [`FeedLimits::max_line_bytes`] is skipped without being buffered whole.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PreviewError;

/// How often a followed file is checked for new data once its end is reached.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Longest user name kept; longer names are cut with an ellipsis.
const MAX_USER_CHARS: usize = 32;

/// One viewer comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// Who wrote it.
    pub user: String,
    /// What they wrote (control characters replaced by spaces, length capped).
    pub text: String,
    /// The source's own timestamp, if the line carried one (any epoch; shown nowhere, kept for the host).
    pub ts: Option<f64>,
    /// When the feed accepted it; the overlay fades comments by this age.
    pub received: Instant,
}

impl Comment {
    /// A comment received now, without a source timestamp.
    pub fn new(user: impl Into<String>, text: impl Into<String>) -> Comment {
        Comment {
            user: user.into(),
            text: text.into(),
            ts: None,
            received: Instant::now(),
        }
    }
}

/// Where comments come from (`--comments PATH` or `--comments -`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentSource {
    /// A file, read from its last [`FeedLimits::backlog_bytes`] and then followed as it grows
    /// (truncation and replacement are noticed, as with `tail -F`). A named pipe is read as a
    /// stream until its writers close it.
    File(PathBuf),
    /// Standard input, read until it closes.
    Stdin,
}

/// Bounds that keep a flood of comments from costing the host memory or time.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedLimits {
    /// Comments accepted per second on average (token bucket, bursts up to one second's worth);
    /// the excess is counted in [`FeedStats::rate_dropped`] and never parsed.
    pub max_per_second: u32,
    /// How many of the newest comments are kept; older ones are forgotten.
    pub keep_newest: usize,
    /// Lines longer than this many bytes are skipped with a warning.
    pub max_line_bytes: usize,
    /// Comment text is cut to this many characters (with an ellipsis).
    pub max_text_chars: usize,
    /// Undrained warnings kept; more are counted in [`FeedStats::warnings_dropped`].
    pub max_warnings: usize,
    /// A file is read from about this many bytes before its end at start (like `tail -f`
    /// shows the last lines, not the whole history). These lines are history, not a flood:
    /// they skip the rate limit, bounded by this size and by `keep_newest`.
    pub backlog_bytes: u64,
}

impl Default for FeedLimits {
    fn default() -> Self {
        FeedLimits {
            max_per_second: 20,
            keep_newest: 64,
            max_line_bytes: 4096,
            max_text_chars: 280,
            max_warnings: 64,
            backlog_bytes: 16 * 1024,
        }
    }
}

/// Counters of what the feed did with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Comments accepted into the feed.
    pub accepted: u64,
    /// Lines dropped because the rate limit was exceeded.
    pub rate_dropped: u64,
    /// Lines skipped because they were not valid comments (each produced one warning).
    pub malformed: u64,
    /// Accepted comments later forgotten because newer ones filled [`FeedLimits::keep_newest`].
    pub evicted: u64,
    /// Warnings lost because nobody drained them in time.
    pub warnings_dropped: u64,
    /// The source has ended (stdin closed, or the file became unreadable); no more comments will come.
    pub ended: bool,
}

#[derive(Debug, Default)]
struct Shared {
    comments: VecDeque<Comment>,
    warnings: VecDeque<String>,
    stats: FeedStats,
}

/// A running comments feed; dropping it stops the reader thread.
#[derive(Debug)]
pub struct CommentFeed {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// A stdin reader blocks in `read` and cannot be woken, so it is detached rather than joined.
    join_on_drop: bool,
}

impl CommentFeed {
    /// Starts reading `src` on a background thread. Fails only if a file cannot be opened.
    pub fn start(src: CommentSource, limits: FeedLimits) -> Result<CommentFeed, PreviewError> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut ingest = Ingest::new(limits, Arc::clone(&shared));
        let stop2 = Arc::clone(&stop);
        let (thread, join_on_drop) = match src {
            CommentSource::File(path) => {
                let open_err = |source| PreviewError::CommentsOpen {
                    path: path.clone(),
                    source,
                };
                let meta = std::fs::metadata(&path).map_err(open_err)?;
                if !meta.is_file() {
                    // A named pipe (or device) is a stream: opening a FIFO blocks until a
                    // writer comes, so it is opened on the reader thread, which cannot be woken
                    // from a blocking read and is detached like the stdin reader.
                    let t = std::thread::Builder::new()
                        .name("comments-pipe".into())
                        .spawn(move || match File::open(&path) {
                            Ok(f) => read_stream(f, &mut ingest, &stop2),
                            Err(e) => {
                                ingest.ended(Some(format!("cannot open {} ({e})", path.display())))
                            }
                        })
                        .map_err(|source| PreviewError::Spawn {
                            what: "comments",
                            source,
                        })?;
                    return Ok(CommentFeed {
                        shared,
                        stop,
                        thread: Some(t),
                        join_on_drop: false,
                    });
                }
                let mut file = File::open(&path).map_err(open_err)?;
                let pos = ingest.start_at_tail(&mut file);
                let t = std::thread::Builder::new()
                    .name("comments-file".into())
                    .spawn(move || follow_file(path, file, pos, &mut ingest, &stop2))
                    .map_err(|source| PreviewError::Spawn {
                        what: "comments",
                        source,
                    })?;
                (t, true)
            }
            CommentSource::Stdin => {
                let t = std::thread::Builder::new()
                    .name("comments-stdin".into())
                    .spawn(move || read_stream(std::io::stdin().lock(), &mut ingest, &stop2))
                    .map_err(|source| PreviewError::Spawn {
                        what: "comments",
                        source,
                    })?;
                (t, false)
            }
        };
        Ok(CommentFeed {
            shared,
            stop,
            thread: Some(thread),
            join_on_drop,
        })
    }

    /// The kept comments, newest last.
    pub fn snapshot(&self) -> Vec<Comment> {
        lock(&self.shared).comments.iter().cloned().collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> FeedStats {
        lock(&self.shared).stats.clone()
    }

    /// Takes the pending warnings (one per skipped line), oldest first, for the host to log.
    pub fn drain_warnings(&self) -> Vec<String> {
        lock(&self.shared).warnings.drain(..).collect()
    }
}

impl Drop for CommentFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if self.join_on_drop {
                // The reader only exits by itself; a panic there has nothing left to report.
                let _ = t.join();
            }
        }
    }
}

/// A poisoned lock only means a reader panicked mid-update; the counters are still usable.
fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Splits bytes into lines, applies the limits and stores the comments.
struct Ingest {
    limits: FeedLimits,
    shared: Arc<Mutex<Shared>>,
    pending: Vec<u8>,
    /// Inside an over-long line: drop bytes until the next newline.
    discarding: bool,
    line_no: u64,
    tokens: f64,
    last_refill: Instant,
    /// Bytes still to come of the history read at start; lines ending there skip the rate limit.
    backlog_left: u64,
}

impl Ingest {
    fn new(limits: FeedLimits, shared: Arc<Mutex<Shared>>) -> Ingest {
        let tokens = f64::from(limits.max_per_second.max(1));
        Ingest {
            limits,
            shared,
            pending: Vec::new(),
            discarding: false,
            line_no: 0,
            tokens,
            last_refill: Instant::now(),
            backlog_left: 0,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (segment, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let consumed = segment.len() + usize::from(newline);
            bytes = &bytes[consumed..];
            let in_backlog = self.backlog_left > 0;
            self.backlog_left = self.backlog_left.saturating_sub(consumed as u64);
            if !self.discarding {
                if self.pending.len() + segment.len() > self.limits.max_line_bytes {
                    self.line_no += 1;
                    let msg = format!(
                        "line {}: longer than {} bytes, skipped",
                        self.line_no, self.limits.max_line_bytes
                    );
                    self.malformed(msg);
                    self.pending.clear();
                    self.discarding = true;
                } else {
                    self.pending.extend_from_slice(segment);
                }
            }
            if newline {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let line = std::mem::take(&mut self.pending);
                    self.line(&line, in_backlog);
                    self.pending = line;
                    self.pending.clear();
                }
            }
        }
    }

    /// Positions a just-opened file `backlog_bytes` before its end and returns that offset.
    /// Done before `CommentFeed::start` returns, so whatever is appended after it counts as live.
    fn start_at_tail(&mut self, file: &mut File) -> u64 {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut pos = 0;
        let backlog = self.limits.backlog_bytes;
        if len > backlog && file.seek(SeekFrom::Start(len - backlog)).is_ok() {
            pos = len - backlog;
            // Mid-line: the rest of that line is not a whole comment.
            self.discarding = true;
        }
        self.backlog_left = len - pos;
        pos
    }

    /// The source ended: a last line without a newline still counts.
    fn finish(&mut self) {
        if !self.discarding && !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, false);
        }
        self.pending.clear();
        self.discarding = false;
    }

    /// The followed file was truncated or replaced: a half-read line is gone.
    fn reset_partial(&mut self) {
        self.pending.clear();
        self.discarding = false;
    }

    fn line(&mut self, raw: &[u8], in_backlog: bool) {
        self.line_no += 1;
        if raw.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let now = Instant::now();
        let rate = f64::from(self.limits.max_per_second.max(1));
        self.tokens =
            (self.tokens + now.duration_since(self.last_refill).as_secs_f64() * rate).min(rate);
        self.last_refill = now;
        // History read at start is bounded by `backlog_bytes`, so it is no flood.
        if !in_backlog {
            if self.tokens < 1.0 {
                let mut s = lock(&self.shared);
                s.stats.lines += 1;
                s.stats.rate_dropped += 1;
                return;
            }
            self.tokens -= 1.0;
        }
        match parse_comment_line(raw, self.limits.max_text_chars) {
            Ok(mut c) => {
                c.received = now;
                let mut s = lock(&self.shared);
                s.stats.lines += 1;
                s.stats.accepted += 1;
                s.comments.push_back(c);
                while s.comments.len() > self.limits.keep_newest {
                    s.comments.pop_front();
                    s.stats.evicted += 1;
                }
            }
            Err(why) => {
                let msg = format!("line {}: {why}, skipped", self.line_no);
                self.malformed(msg);
            }
        }
    }

    fn malformed(&mut self, msg: String) {
        let mut s = lock(&self.shared);
        s.stats.lines += 1;
        s.stats.malformed += 1;
        if s.warnings.len() < self.limits.max_warnings {
            s.warnings.push_back(format!("comments {msg}"));
        } else {
            s.stats.warnings_dropped += 1;
        }
    }

    fn ended(&mut self, why: Option<String>) {
        self.finish();
        if let Some(msg) = why {
            self.malformed_free_warning(msg);
        }
        lock(&self.shared).stats.ended = true;
    }

    fn malformed_free_warning(&mut self, msg: String) {
        let mut s = lock(&self.shared);
        if s.warnings.len() < self.limits.max_warnings {
            s.warnings.push_back(format!("comments {msg}"));
        } else {
            s.stats.warnings_dropped += 1;
        }
    }
}

#[derive(serde::Deserialize)]
struct RawComment {
    user: String,
    text: String,
    #[serde(default)]
    ts: Option<f64>,
}

/// Parses one JSON line `{"user": "...", "text": "...", "ts": optional number}`.
///
/// Unknown fields are ignored. The error is a short reason fit for a warning.
pub(crate) fn parse_comment_line(line: &[u8], max_text_chars: usize) -> Result<Comment, String> {
    let raw: RawComment =
        serde_json::from_slice(line).map_err(|e| format!("not a comment ({e})"))?;
    let text = clean(&raw.text, max_text_chars);
    if text.is_empty() {
        return Err("empty \"text\"".into());
    }
    let user = clean(&raw.user, MAX_USER_CHARS);
    let user = if user.is_empty() {
        "anonymous".to_string()
    } else {
        user
    };
    let ts = raw.ts.filter(|t| t.is_finite());
    Ok(Comment {
        user,
        text,
        ts,
        received: Instant::now(),
    })
}

/// Replaces control characters (newlines included: one comment is one paragraph) with spaces,
/// trims, and cuts to `max` characters with an ellipsis.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (n, c) in s.trim().chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim_end().to_string()
}

fn read_stream(mut r: impl Read, ingest: &mut Ingest, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match r.read(&mut buf) {
            Ok(0) => return ingest.ended(None),
            Ok(n) => ingest.feed(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return ingest.ended(Some(format!("source unreadable ({e}), no more comments")))
            }
        }
    }
}

/// Reads `file` to its end, then keeps polling for appended data like `tail -F`: a truncated
/// file is read again from its start, a replaced one (new inode at `path`) is reopened.
fn follow_file(
    path: PathBuf,
    mut file: File,
    mut pos: u64,
    ingest: &mut Ingest,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match file.read(&mut buf) {
            Ok(0) => {
                std::thread::sleep(POLL_INTERVAL);
                match check_rotation(&path, &file, pos) {
                    Rotation::Same => {}
                    Rotation::Truncated => {
                        if file.seek(SeekFrom::Start(0)).is_ok() {
                            pos = 0;
                            ingest.reset_partial();
                        }
                    }
                    Rotation::Replaced(f) => {
                        // Whatever the old file still held was read above, before it was replaced.
                        ingest.finish();
                        file = f;
                        pos = 0;
                    }
                }
            }
            Ok(n) => {
                pos += n as u64;
                ingest.feed(&buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return ingest.ended(Some(format!(
                    "file {} unreadable ({e}), no more comments",
                    path.display()
                )))
            }
        }
    }
}

enum Rotation {
    Same,
    Truncated,
    Replaced(File),
}

fn check_rotation(path: &Path, file: &File, pos: u64) -> Rotation {
    let Ok(open_meta) = file.metadata() else {
        return Rotation::Same;
    };
    if open_meta.len() < pos {
        return Rotation::Truncated;
    }
    // A missing path (between a rename and the new file's creation) keeps the old file.
    if let Ok(path_meta) = std::fs::metadata(path) {
        if (path_meta.dev(), path_meta.ino()) != (open_meta.dev(), open_meta.ino()) {
            if let Ok(f) = File::open(path) {
                return Rotation::Replaced(f);
            }
        }
    }
    Rotation::Same
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wait_for(feed: &CommentFeed, what: &str, cond: impl Fn(&FeedStats) -> bool) -> FeedStats {
        // Generous: the machine is small and shared; the condition normally holds within ms.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = feed.stats();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stats {s:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn parses_valid_lines_including_cjk_and_ts() {
        let c =
            parse_comment_line(br#"{"user":"alice","text":"hello world","ts":12.5}"#, 280).unwrap();
        assert_eq!(
            (c.user.as_str(), c.text.as_str(), c.ts),
            ("alice", "hello world", Some(12.5))
        );
        let c = parse_comment_line(
            r#"{"user":"小明","text":"主播好厉害！加油","extra":[1,2]}"#.as_bytes(),
            280,
        )
        .unwrap();
        assert_eq!(
            (c.user.as_str(), c.text.as_str(), c.ts),
            ("小明", "主播好厉害！加油", None)
        );
        let c = parse_comment_line(br#"{"user":"","text":"a\nb\u0007c  "}"#, 280).unwrap();
        assert_eq!((c.user.as_str(), c.text.as_str()), ("anonymous", "a b c"));
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            &br#"{"user":"a"}"#[..],
            br#"{"text":"a"}"#,
            br#"{"user":1,"text":"a"}"#,
            br#"{"user":"a","text":"   "}"#,
            br#"{"user":"a","text":"b","ts":"yesterday"}"#,
            b"not json",
            b"[1,2,3]",
            b"\xff\xfe{}",
            br#"{"user":"a","text":"b""#,
        ] {
            assert!(
                parse_comment_line(bad, 280).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn long_text_is_cut_with_ellipsis() {
        let line = format!(r#"{{"user":"u","text":"{}"}}"#, "字".repeat(500));
        let c = parse_comment_line(line.as_bytes(), 10).unwrap();
        assert_eq!(c.text, format!("{}…", "字".repeat(10)));
    }

    #[test]
    fn ingest_handles_split_lines_and_overlong_lines() {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let limits = FeedLimits {
            max_line_bytes: 64,
            ..FeedLimits::default()
        };
        let mut ing = Ingest::new(limits, Arc::clone(&shared));
        ing.feed(br#"{"user":"a","te"#);
        ing.feed(b"xt\":\"one\"}\n\n");
        ing.feed(&[b'x'; 50]);
        ing.feed(&[b'y'; 50]); // over 64 bytes: skipped without buffering more
        ing.feed(&[b'z'; 5000]);
        ing.feed(b"\n{\"user\":\"b\",\"text\":\"two\"}");
        assert_eq!(lock(&shared).comments.len(), 1);
        ing.finish(); // last line without newline
        let s = lock(&shared);
        assert!(
            ing.pending.capacity() <= 4096,
            "over-long line was buffered"
        );
        let texts: Vec<_> = s.comments.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(
            (s.stats.accepted, s.stats.malformed, s.stats.lines),
            (2, 1, 3)
        );
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("line 3"), "{:?}", s.warnings);
    }

    #[test]
    fn feed_reads_file_skips_malformed_with_one_warning_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(
            &path,
            "{\"user\":\"alice\",\"text\":\"hi\"}\n garbage\n{\"user\":\"bob\"}\n{\"user\":\"李\",\"text\":\"你好，世界\",\"ts\":1.0}\n",
        )
        .unwrap();
        let feed = CommentFeed::start(CommentSource::File(path), FeedLimits::default()).unwrap();
        let s = wait_for(&feed, "4 lines", |s| s.lines == 4);
        assert_eq!((s.accepted, s.malformed, s.rate_dropped), (2, 2, 0));
        let snap = feed.snapshot();
        assert_eq!(
            snap.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            ["hi", "你好，世界"]
        );
        let w = feed.drain_warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("line 2") && w[1].contains("line 3"), "{w:?}");
        assert!(feed.drain_warnings().is_empty());
    }

    #[test]
    fn feed_follows_a_growing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let mut f = File::create(&path).unwrap();
        writeln!(f, r#"{{"user":"a","text":"first"}}"#).unwrap();
        let feed =
            CommentFeed::start(CommentSource::File(path.clone()), FeedLimits::default()).unwrap();
        wait_for(&feed, "first", |s| s.accepted == 1);
        // Half a line, then the rest: only whole lines become comments.
        write!(f, r#"{{"user":"b","text":"#).unwrap();
        f.flush().unwrap();
        std::thread::sleep(POLL_INTERVAL * 3);
        assert_eq!(feed.stats().lines, 1);
        writeln!(f, r#""second 第二"}}"#).unwrap();
        writeln!(f, r#"{{"user":"c","text":"third"}}"#).unwrap();
        wait_for(&feed, "appended lines", |s| s.accepted == 3);
        let texts: Vec<_> = feed.snapshot().into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["first", "second 第二", "third"]);
        // Truncated and rewritten (log rotation by copytruncate): read again from the start.
        drop(f);
        std::fs::write(&path, "{\"user\":\"d\",\"text\":\"after truncate\"}\n").unwrap();
        wait_for(&feed, "line after truncation", |s| s.accepted == 4);
        // Replaced by a new file (rename rotation).
        let tmp = dir.path().join("new.jsonl");
        std::fs::write(&tmp, "{\"user\":\"e\",\"text\":\"new file\"}\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        wait_for(&feed, "line in the replacing file", |s| s.accepted == 5);
        assert_eq!(
            feed.snapshot().last().map(|c| c.text.clone()).as_deref(),
            Some("new file")
        );
        assert!(!feed.stats().ended);
    }

    #[test]
    fn flood_is_rate_limited_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flood.jsonl");
        let mut f = File::create(&path).unwrap();
        let limits = FeedLimits {
            max_per_second: 20,
            keep_newest: 8,
            ..FeedLimits::default()
        };
        let t0 = Instant::now();
        let feed = CommentFeed::start(CommentSource::File(path), limits).unwrap();
        let mut body = String::new();
        for i in 0..10_000 {
            body.push_str(&format!(
                "{{\"user\":\"u{i}\",\"text\":\"flood {i} 洪水\"}}\n"
            ));
        }
        f.write_all(body.as_bytes()).unwrap();
        let s = wait_for(&feed, "all 10k lines", |s| s.lines == 10_000);
        let elapsed = t0.elapsed().as_secs_f64();
        // A token bucket of 20/s holding at most 20 tokens cannot admit more than this.
        let bound = 20.0 * (elapsed + 1.0);
        assert!(
            s.accepted >= 1 && (s.accepted as f64) <= bound,
            "accepted {} > {bound}",
            s.accepted
        );
        assert_eq!(s.accepted + s.rate_dropped, 10_000);
        assert!(s.rate_dropped >= 10_000 - bound as u64);
        assert_eq!(s.malformed, 0);
        let snap = feed.snapshot();
        assert_eq!(snap.len() as u64, s.accepted.min(8));
        assert_eq!(s.evicted, s.accepted.saturating_sub(8));
    }

    #[test]
    fn existing_file_starts_from_its_tail_without_rate_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let mut body = String::new();
        for i in 0..10_000 {
            body.push_str(&format!("{{\"user\":\"u\",\"text\":\"old {i}\"}}\n"));
        }
        std::fs::write(&path, &body).unwrap();
        let limits = FeedLimits {
            backlog_bytes: 2048,
            keep_newest: 16,
            ..FeedLimits::default()
        };
        let feed = CommentFeed::start(CommentSource::File(path.clone()), limits).unwrap();
        let lines_in_tail = body[body.len() - 2048..].matches('\n').count() as u64 - 1;
        let s = wait_for(&feed, "the tail of the file", |s| s.lines == lines_in_tail);
        assert_eq!(
            (s.accepted, s.rate_dropped, s.malformed),
            (lines_in_tail, 0, 0),
            "{s:?}"
        );
        let snap = feed.snapshot();
        assert_eq!(snap.len(), 16);
        assert_eq!(snap.last().unwrap().text, "old 9999");
        // What is appended afterwards is live again.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, r#"{{"user":"n","text":"new"}}"#).unwrap();
        wait_for(&feed, "the appended line", |s| {
            s.accepted == lines_in_tail + 1
        });
        assert_eq!(feed.snapshot().last().unwrap().text, "new");
    }

    #[test]
    fn stream_source_reads_to_its_end() {
        // The stdin path, fed from memory: the last line needs no newline, then the feed ends.
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut ing = Ingest::new(FeedLimits::default(), Arc::clone(&shared));
        let input = "{\"user\":\"a\",\"text\":\"one\"}\r\n{oops}\n{\"user\":\"b\",\"text\":\"二\"}";
        read_stream(
            std::io::Cursor::new(input),
            &mut ing,
            &AtomicBool::new(false),
        );
        let s = lock(&shared);
        let texts: Vec<_> = s.comments.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["one", "二"]);
        assert_eq!((s.stats.malformed, s.stats.ended), (1, true));
    }

    #[test]
    fn named_pipe_is_read_as_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("chat.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo (coreutils)");
        assert!(made.success());
        // Starting must not wait for a writer.
        let feed =
            CommentFeed::start(CommentSource::File(fifo.clone()), FeedLimits::default()).unwrap();
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        writeln!(w, r#"{{"user":"p","text":"through a pipe 管道"}}"#).unwrap();
        drop(w);
        let s = wait_for(&feed, "the pipe to end", |s| s.ended);
        assert_eq!(s.accepted, 1);
        assert_eq!(feed.snapshot()[0].text, "through a pipe 管道");
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = CommentFeed::start(
            CommentSource::File("/nonexistent/c.jsonl".into()),
            FeedLimits::default(),
        );
        assert!(matches!(err, Err(PreviewError::CommentsOpen { .. })));
    }

    #[test]
    fn warnings_are_bounded() {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let limits = FeedLimits {
            max_warnings: 3,
            max_per_second: 1000,
            ..FeedLimits::default()
        };
        let mut ing = Ingest::new(limits, Arc::clone(&shared));
        ing.feed(b"a\nb\nc\nd\ne\n");
        let s = lock(&shared);
        assert_eq!(
            (
                s.warnings.len(),
                s.stats.warnings_dropped,
                s.stats.malformed
            ),
            (3, 2, 5)
        );
    }
}

//! Scripted input for headless hosts, tests and automation: `--input FILE|-`, one JSON object
//! per line, in game pixels.
//!
//! ```text
//! {"type":"key","key":"left","state":"down"}        press (names or evdev codes: "code":105)
//! {"type":"key","key":"a","state":"tap"}            press and release
//! {"type":"motion","x":640,"y":360}
//! {"type":"button","button":"left","state":"click","x":100,"y":200}
//! {"type":"scroll","dy":1}                         wheel clicks ("smooth":true: pixels)
//! {"type":"touch","id":0,"phase":"down","x":10,"y":20}
//! {"type":"focus","focused":false}
//! ```
//!
//! Any line may carry `"delay_ms"` (at most 60000): wait that long before applying it. A file
//! is read from its start and then followed as it grows; `-` reads standard input to its end.
//! Malformed lines are skipped with a warning and counted; the router's rate limit applies.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crosscast_wire::TouchPhase;
use serde::Deserialize;

use crate::hub::InputHub;
use crate::keys::{button_code, key_code};
use crate::router::WindowInput;
use crate::InputError;

/// Longest accepted line in bytes.
pub const MAX_LINE_BYTES: usize = 4096;
/// Longest `delay_ms`.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Warnings kept for the log; the rest are only counted.
const MAX_WARNINGS: usize = 32;

/// Where a script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// A file, read from its start and followed.
    File(PathBuf),
    /// Standard input, to its end.
    Stdin,
}

impl ScriptSource {
    /// `-` is standard input, anything else a path.
    pub fn parse(arg: &str) -> ScriptSource {
        if arg == "-" {
            ScriptSource::Stdin
        } else {
            ScriptSource::File(arg.into())
        }
    }
}

/// What the script reader did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptStats {
    /// Lines read.
    pub lines: u64,
    /// Lines applied.
    pub applied: u64,
    /// Lines skipped as malformed.
    pub malformed: u64,
    /// The source ended (stdin closed).
    pub ended: bool,
}

#[derive(Default)]
struct Shared {
    stats: ScriptStats,
    warnings: Vec<String>,
}

/// A running script reader; stops (for a file) when dropped.
pub struct InputScript {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Down,
    Up,
    Tap,
    Click,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Named {
    Code(u32),
    Name(String),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Key {
        key: Option<Named>,
        code: Option<u32>,
        state: State,
        #[serde(default)]
        delay_ms: u64,
    },
    Motion {
        x: f64,
        y: f64,
        #[serde(default)]
        delay_ms: u64,
    },
    Button {
        #[serde(default = "left")]
        button: Named,
        state: State,
        x: Option<f64>,
        y: Option<f64>,
        #[serde(default)]
        delay_ms: u64,
    },
    Scroll {
        #[serde(default)]
        dx: f64,
        #[serde(default)]
        dy: f64,
        #[serde(default)]
        smooth: bool,
        #[serde(default)]
        delay_ms: u64,
    },
    Touch {
        id: u64,
        phase: String,
        #[serde(default)]
        x: f64,
        #[serde(default)]
        y: f64,
        #[serde(default)]
        delay_ms: u64,
    },
    Focus {
        focused: bool,
        #[serde(default)]
        delay_ms: u64,
    },
}

fn left() -> Named {
    Named::Name("left".into())
}

fn finite(v: f64, what: &str) -> Result<f64, String> {
    if v.is_finite() && (0.0..=1e6).contains(&v.abs()) {
        Ok(v)
    } else {
        Err(format!("{what} {v} is not a usable number"))
    }
}

/// Parses one script line into the events it stands for and the delay before them.
pub fn parse_line(line: &str) -> Result<(Duration, Vec<WindowInput>), String> {
    let parsed: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mut evs = Vec::new();
    let delay = match parsed {
        Line::Key {
            key,
            code,
            state,
            delay_ms,
        } => {
            let code = match (key, code) {
                (Some(Named::Code(c)), None) | (None, Some(c)) => c,
                (Some(Named::Name(n)), None) => {
                    key_code(&n).ok_or_else(|| format!("unknown key name {n:?}"))?
                }
                (None, None) => return Err("a key needs \"key\" or \"code\"".into()),
                (Some(_), Some(_)) => return Err("give \"key\" or \"code\", not both".into()),
            };
            if code > crosscast_wire::input::KEY_MAX {
                return Err(format!("key code {code} is above KEY_MAX"));
            }
            match state {
                State::Down => evs.push(WindowInput::Key {
                    code,
                    pressed: true,
                }),
                State::Up => evs.push(WindowInput::Key {
                    code,
                    pressed: false,
                }),
                State::Tap | State::Click => {
                    for pressed in [true, false] {
                        evs.push(WindowInput::Key { code, pressed });
                    }
                }
            }
            delay_ms
        }
        Line::Motion { x, y, delay_ms } => {
            evs.push(WindowInput::CursorMoved {
                x: finite(x, "x")?,
                y: finite(y, "y")?,
            });
            delay_ms
        }
        Line::Button {
            button,
            state,
            x,
            y,
            delay_ms,
        } => {
            let button = match button {
                Named::Code(c) => c,
                Named::Name(n) => button_code(&n).ok_or_else(|| format!("unknown button {n:?}"))?,
            };
            match (x, y) {
                (Some(x), Some(y)) => evs.push(WindowInput::CursorMoved {
                    x: finite(x, "x")?,
                    y: finite(y, "y")?,
                }),
                (None, None) => {}
                _ => return Err("give both x and y, or neither".into()),
            }
            match state {
                State::Down => evs.push(WindowInput::Button {
                    button,
                    pressed: true,
                }),
                State::Up => evs.push(WindowInput::Button {
                    button,
                    pressed: false,
                }),
                State::Tap | State::Click => {
                    for pressed in [true, false] {
                        evs.push(WindowInput::Button { button, pressed });
                    }
                }
            }
            delay_ms
        }
        Line::Scroll {
            dx,
            dy,
            smooth,
            delay_ms,
        } => {
            evs.push(WindowInput::Scroll {
                dx: finite(dx, "dx")?,
                dy: finite(dy, "dy")?,
                lines: !smooth,
            });
            delay_ms
        }
        Line::Touch {
            id,
            phase,
            x,
            y,
            delay_ms,
        } => {
            let phase = match phase.as_str() {
                "down" => TouchPhase::Down,
                "motion" => TouchPhase::Motion,
                "up" => TouchPhase::Up,
                "cancel" => TouchPhase::Cancel,
                other => return Err(format!("unknown touch phase {other:?}")),
            };
            evs.push(WindowInput::Touch {
                id,
                phase,
                x: finite(x, "x")?,
                y: finite(y, "y")?,
            });
            delay_ms
        }
        Line::Focus { focused, delay_ms } => {
            evs.push(WindowInput::Focus(focused));
            delay_ms
        }
    };
    if delay > MAX_DELAY_MS {
        return Err(format!("delay_ms {delay} is above {MAX_DELAY_MS}"));
    }
    Ok((Duration::from_millis(delay), evs))
}

impl InputScript {
    /// Starts reading `source` on a thread of its own, feeding `hub`.
    pub fn start(source: ScriptSource, hub: Arc<InputHub>) -> Result<InputScript, InputError> {
        let reader: Box<dyn Read + Send> = match &source {
            ScriptSource::Stdin => Box::new(std::io::stdin()),
            ScriptSource::File(path) => {
                Box::new(File::open(path).map_err(|source| InputError::Open {
                    path: path.clone(),
                    source,
                })?)
            }
        };
        hub.set_scripted();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let follow = matches!(source, ScriptSource::File(_));
        let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("input-script".into())
            .spawn(move || read_lines(reader, follow, &hub, &sh, &st))
            .map_err(InputError::Spawn)?;
        Ok(InputScript { shared, stop })
    }

    /// Counters so far.
    pub fn stats(&self) -> ScriptStats {
        self.shared.lock().map(|s| s.stats).unwrap_or_default()
    }

    /// Warnings since the last call (malformed lines), for the log.
    pub fn drain_warnings(&self) -> Vec<String> {
        self.shared
            .lock()
            .map(|mut s| std::mem::take(&mut s.warnings))
            .unwrap_or_default()
    }
}

impl Drop for InputScript {
    fn drop(&mut self) {
        // A file reader stops at its next poll; a stdin reader ends with stdin.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_lines(
    reader: Box<dyn Read + Send>,
    follow: bool,
    hub: &InputHub,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(reader.take(u64::MAX));
    let mut buf = Vec::new();
    let mut lineno = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Bounded read: a line longer than the limit is consumed and rejected, never buffered.
        let limit = (MAX_LINE_BYTES + 1 - buf.len()) as u64;
        let n = match reader.by_ref().take(limit).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                warn(shared, format!("reading input: {e}"));
                break;
            }
        };
        let complete = buf.last() == Some(&b'\n');
        if n == 0 || !complete {
            if buf.len() > MAX_LINE_BYTES {
                lineno += 1;
                warn(
                    shared,
                    format!("line {lineno}: longer than {MAX_LINE_BYTES} bytes, skipped"),
                );
                skip_rest_of_line(&mut reader);
                buf.clear();
                continue;
            }
            if n == 0 && !follow {
                if !buf.is_empty() {
                    lineno += 1;
                    apply(&buf, lineno, hub, shared, stop);
                }
                break;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        lineno += 1;
        apply(&buf, lineno, hub, shared, stop);
        buf.clear();
    }
    if let Ok(mut s) = shared.lock() {
        s.stats.ended = true;
    }
}

fn skip_rest_of_line(reader: &mut impl BufRead) {
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(b) => match b.iter().position(|&c| c == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, b.len()),
            },
        };
        reader.consume(used);
        if done {
            return;
        }
    }
}

fn apply(raw: &[u8], lineno: u64, hub: &InputHub, shared: &Mutex<Shared>, stop: &AtomicBool) {
    if let Ok(mut s) = shared.lock() {
        s.stats.lines += 1;
    }
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    match parse_line(text) {
        Ok((delay, evs)) => {
            sleep_unless_stopped(delay, stop);
            for ev in evs {
                hub.script_event(ev, crate::monotonic_ns());
            }
            if let Ok(mut s) = shared.lock() {
                s.stats.applied += 1;
            }
        }
        Err(e) => {
            if let Ok(mut s) = shared.lock() {
                s.stats.malformed += 1;
            }
            warn(shared, format!("line {lineno}: {e}"));
        }
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn warn(shared: &Mutex<Shared>, msg: String) {
    if let Ok(mut s) = shared.lock() {
        if s.warnings.len() < MAX_WARNINGS {
            s.warnings.push(msg);
        }
    }
}

//! What a sandboxed program prints reaches the host's log, one prefixed line at a time.

use std::io::{BufRead, BufReader, Read};

/// Longest line passed on; the rest of a longer line comes as further lines, so a program
/// that prints without newlines cannot make the host buffer without bound.
pub const MAX_LOG_LINE: u64 = 4096;

/// Copies `stream` (a child's stdout or stderr) to the host's stderr on a small thread named
/// `thread`, each line prefixed with `prefix` and `": "`; the thread ends when the child closes
/// the stream.
pub fn forward_lines(stream: impl Read + Send + 'static, prefix: String, thread: &str) {
    let _ = std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader
                    .by_ref()
                    .take(MAX_LOG_LINE)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => return,
                    Ok(_) => eprintln!("{prefix}: {}", String::from_utf8_lossy(&line).trim_end()),
                }
            }
        });
}

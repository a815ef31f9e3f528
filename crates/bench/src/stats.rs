//! Statistics and reports shared by every `crosscast bench` subcommand.
//!
//! All benches measure per-message delays in nanoseconds, summarise them with
//! [`Summary::from_delays_ns`] and collect one [`Row`] per case into a [`Report`], which
//! serialises to the report JSON schema (docs/design.md):
//!
//! ```json
//! {"bench": "ipc", "rows": [{"case": "uds-stream/3072", "transport": "uds-stream",
//!   "size_bytes": 3072, "messages": 300, "avg_us": 41.2, "p50_us": 39.0, "p99_us": 80.5,
//!   "max_us": 120.3, "stall_rate": 0.0}]}
//! ```
//!
//! Extra fields of a row (bench-specific figures, or the reason a case could not run) are
//! flattened into the same JSON object.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The delay fields of a row's JSON, all numbers or all `null` (a row that measured no delays).
pub const DELAY_FIELDS: [&str; 6] = [
    "messages",
    "avg_us",
    "p50_us",
    "p99_us",
    "max_us",
    "stall_rate",
];

/// Delay above which a message can count as a stall, whatever the average (docs/design.md).
pub const STALL_FLOOR_NS: u64 = 10_000_000;

/// Summary of one case's delays, in microseconds, as docs/design.md defines them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Number of delays summarised (warm-up excluded by the caller).
    pub messages: usize,
    /// Mean delay.
    pub avg_us: f64,
    /// Median delay (nearest-rank).
    pub p50_us: f64,
    /// 99th-percentile delay (nearest-rank).
    pub p99_us: f64,
    /// Largest delay.
    pub max_us: f64,
    /// Share of messages whose delay is more than twice the average and more than 10 ms.
    pub stall_rate: f64,
}

impl Summary {
    /// Summarises delays given in nanoseconds; an empty slice gives an all-zero summary.
    pub fn from_delays_ns(delays_ns: &[u64]) -> Summary {
        if delays_ns.is_empty() {
            return Summary::default();
        }
        let mut sorted = delays_ns.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        // u128 so that even absurd delays cannot overflow the sum.
        let sum: u128 = sorted.iter().map(|&d| u128::from(d)).sum();
        let avg_ns = sum as f64 / n as f64;
        let stall_above = (2.0 * avg_ns).max(STALL_FLOOR_NS as f64);
        let stalls = sorted.iter().filter(|&&d| d as f64 > stall_above).count();
        Summary {
            messages: n,
            avg_us: avg_ns / 1000.0,
            p50_us: percentile_sorted(&sorted, 50.0) as f64 / 1000.0,
            p99_us: percentile_sorted(&sorted, 99.0) as f64 / 1000.0,
            max_us: sorted[n - 1] as f64 / 1000.0,
            stall_rate: stalls as f64 / n as f64,
        }
    }
}

/// Nearest-rank percentile of an ascending slice: the smallest value with at least `p`% of
/// the values at or below it. Nearest-rank never interpolates, so every reported figure is a
/// delay that was actually measured. Returns 0 for an empty slice.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// One row of a bench report: a case, what it ran on, and its summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Row {
    /// Case name, unique within the report (e.g. `uds-stream/3072` or `video-1280x720`).
    pub case: String,
    /// Transport the case ran on, where the bench compares transports.
    pub transport: Option<String>,
    /// Payload size in bytes, where the bench varies it.
    pub size_bytes: Option<u64>,
    /// The delay figures; `None` for a row that measured no delays (a cost-only case or one
    /// that could not run), whose delay fields then serialise as `null`, never as 0.
    #[serde(flatten, with = "nullable_summary")]
    pub summary: Option<Summary>,
    /// Bench-specific fields, flattened into the row's JSON object.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Row {
    /// A row for `case` with the given summary and no transport, size or extra fields.
    pub fn new(case: impl Into<String>, summary: Summary) -> Row {
        Row {
            case: case.into(),
            summary: Some(summary),
            ..Row::default()
        }
    }

    /// A row for `case` that measured no delays: its delay fields are `null` in the JSON and
    /// `-` in tables; its figures go in extra fields.
    pub fn without_delays(case: impl Into<String>) -> Row {
        Row {
            case: case.into(),
            ..Row::default()
        }
    }

    /// Sets the transport.
    pub fn with_transport(mut self, transport: impl Into<String>) -> Row {
        self.transport = Some(transport.into());
        self
    }

    /// Sets the payload size.
    pub fn with_size(mut self, size_bytes: u64) -> Row {
        self.size_bytes = Some(size_bytes);
        self
    }

    /// Adds (or replaces) an extra field.
    pub fn with_extra(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Row {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// A whole bench run: its name and one row per case.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Bench name (`ipc`, `handoff`, `pipeline`).
    pub bench: String,
    /// One row per case, in the order they ran.
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report for the bench `bench`.
    pub fn new(bench: impl Into<String>) -> Report {
        Report {
            bench: bench.into(),
            rows: Vec::new(),
        }
    }

    /// The report as the report JSON of docs/design.md, pretty-printed.
    pub fn to_json(&self) -> Result<String, BenchError> {
        serde_json::to_string_pretty(self).map_err(BenchError::Json)
    }

    /// Writes the report as the report JSON of docs/design.md to `path`, replacing the file.
    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        let mut text = self.to_json()?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| BenchError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The report as an aligned text table, one line per row, for a terminal.
    ///
    /// Columns: case, transport, size, messages, avg, p50, p99, max (all µs), stall rate;
    /// the `note` extra field, where a row has one, is appended (e.g. why a case could not run).
    pub fn table(&self) -> String {
        let header = [
            "case",
            "transport",
            "size",
            "msgs",
            "avg_us",
            "p50_us",
            "p99_us",
            "max_us",
            "stall",
        ];
        let mut cells: Vec<Vec<String>> = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let mut line = vec![
                row.case.clone(),
                row.transport.clone().unwrap_or_else(|| "-".into()),
                row.size_bytes.map(human_size).unwrap_or_else(|| "-".into()),
            ];
            line.extend(delay_cells(row.summary.as_ref()));
            cells.push(line);
        }
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for line in &cells {
            for (w, c) in widths.iter_mut().zip(line) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let write_line = |out: &mut String, line: &[String], note: Option<&str>| {
            for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
                // Text columns (case, transport) align left, figures align right.
                if i < 2 {
                    let _ = write!(out, "{c:<w$}  ");
                } else {
                    let _ = write!(out, "{c:>w$}  ");
                }
            }
            if let Some(note) = note {
                out.push_str(note);
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('\n');
        };
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        write_line(&mut out, &header, None);
        for (row, line) in self.rows.iter().zip(&cells) {
            let note = row.extra.get("note").and_then(|v| v.as_str());
            write_line(&mut out, line, note);
        }
        out
    }
}

impl Report {
    /// The report as a Markdown table for READMEs: the [`table`](Report::table) columns, then
    /// one column per key in `extra_columns` (numbers to one decimal, `-` where a row lacks the
    /// key), then the `note` of rows that have one.
    pub fn markdown(&self, extra_columns: &[&str]) -> String {
        let mut out = String::from(
            "| case | transport | size | msgs | avg µs | p50 µs | p99 µs | max µs | stall |",
        );
        for key in extra_columns {
            let _ = write!(out, " {key} |");
        }
        out.push_str(" note |\n|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for _ in extra_columns {
            out.push_str("---:|");
        }
        out.push_str("---|\n");
        for row in &self.rows {
            let _ = write!(
                out,
                "| {} | {} | {} |",
                row.case,
                row.transport.as_deref().unwrap_or("-"),
                row.size_bytes.map(human_size).unwrap_or_else(|| "-".into()),
            );
            for cell in delay_cells(row.summary.as_ref()) {
                let _ = write!(out, " {cell} |");
            }
            for key in extra_columns {
                match row.extra.get(*key) {
                    Some(serde_json::Value::Number(n)) => match n.as_f64() {
                        Some(f) if n.is_f64() => {
                            let _ = write!(out, " {f:.1} |");
                        }
                        _ => {
                            let _ = write!(out, " {n} |");
                        }
                    },
                    Some(serde_json::Value::String(t)) => {
                        let _ = write!(out, " {} |", t.replace('|', "\\|"));
                    }
                    Some(other) => {
                        let _ = write!(out, " {other} |");
                    }
                    None => out.push_str(" - |"),
                }
            }
            let note = row.extra.get("note").and_then(|v| v.as_str()).unwrap_or("");
            let _ = writeln!(out, " {} |", note.replace('|', "\\|"));
        }
        out
    }
}

/// The six delay columns of a row as text (`-` each when the row measured no delays).
fn delay_cells(summary: Option<&Summary>) -> Vec<String> {
    match summary {
        Some(s) => vec![
            s.messages.to_string(),
            format!("{:.1}", s.avg_us),
            format!("{:.1}", s.p50_us),
            format!("{:.1}", s.p99_us),
            format!("{:.1}", s.max_us),
            format!("{:.2}%", s.stall_rate * 100.0),
        ],
        None => vec!["-".into(); 6],
    }
}

/// (De)serialises an optional [`Summary`] flattened into its row, with every field `null`
/// when there is none: a reader must be able to tell "not measured" from a measured 0.
mod nullable_summary {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Summary;

    /// The summary's fields, each nullable.
    #[derive(Serialize, Deserialize, Default)]
    struct Nullable {
        messages: Option<usize>,
        avg_us: Option<f64>,
        p50_us: Option<f64>,
        p99_us: Option<f64>,
        max_us: Option<f64>,
        stall_rate: Option<f64>,
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<Summary>, s: S) -> Result<S::Ok, S::Error> {
        let n = match v {
            Some(x) => Nullable {
                messages: Some(x.messages),
                avg_us: Some(x.avg_us),
                p50_us: Some(x.p50_us),
                p99_us: Some(x.p99_us),
                max_us: Some(x.max_us),
                stall_rate: Some(x.stall_rate),
            },
            None => Nullable::default(),
        };
        n.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Summary>, D::Error> {
        let n = Nullable::deserialize(d)?;
        Ok(match n {
            Nullable {
                messages: Some(messages),
                avg_us: Some(avg_us),
                p50_us: Some(p50_us),
                p99_us: Some(p99_us),
                max_us: Some(max_us),
                stall_rate: Some(stall_rate),
            } => Some(Summary {
                messages,
                avg_us,
                p50_us,
                p99_us,
                max_us,
                stall_rate,
            }),
            _ => None,
        })
    }
}

impl Report {
    /// The named extra fields of every row as an aligned text table (case, transport, then one
    /// column each, `decimals` places): a figure with a `<name>_min`/`<name>_max` range shows
    /// it in brackets, a `null` or absent one (not measured for that row) shows `-`.
    pub fn figures_table(&self, columns: &[&str], decimals: usize) -> String {
        let cell = |r: &Row, name: &str| -> String {
            let get = |k: &str| r.extra.get(k).and_then(|v| v.as_f64());
            match (
                get(name),
                get(&format!("{name}_min")),
                get(&format!("{name}_max")),
            ) {
                (Some(m), Some(lo), Some(hi)) if lo != hi => {
                    format!("{m:.decimals$} [{lo:.decimals$}-{hi:.decimals$}]")
                }
                (Some(m), _, _) => format!("{m:.decimals$}"),
                _ => "-".into(),
            }
        };
        let mut lines = vec![["case", "transport"]
            .iter()
            .chain(columns)
            .map(|h| h.to_string())
            .collect::<Vec<_>>()];
        for r in &self.rows {
            let mut line = vec![
                r.case.clone(),
                r.transport.clone().unwrap_or_else(|| "-".into()),
            ];
            line.extend(columns.iter().map(|c| cell(r, c)));
            lines.push(line);
        }
        let mut widths = vec![0; columns.len() + 2];
        for line in &lines {
            for (w, c) in widths.iter_mut().zip(line) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
                // Text columns (case, transport) align left, figures align right.
                if i < 2 {
                    let _ = write!(out, "{c:<w$}  ");
                } else {
                    let _ = write!(out, "{c:>w$}  ");
                }
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('\n');
        }
        out
    }
}

/// Byte count as a short human string: `3 KiB`, `4 MiB`, `10 MiB`, or plain bytes.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), 50);
        assert_eq!(percentile_sorted(&v, 99.0), 99);
        assert_eq!(percentile_sorted(&v, 100.0), 100);
        assert_eq!(percentile_sorted(&v, 0.0), 1);
        assert_eq!(percentile_sorted(&[7], 99.0), 7);
        assert_eq!(percentile_sorted(&[], 50.0), 0);
        // 10 values: p99 is the 10th (ceil(9.9)), p50 the 5th.
        let v: Vec<u64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(percentile_sorted(&v, 99.0), 100);
        assert_eq!(percentile_sorted(&v, 50.0), 50);
    }

    #[test]
    fn summary_figures_in_microseconds() {
        // Unsorted input: the summary must sort it.
        let delays = [3_000u64, 1_000, 2_000, 4_000];
        let s = Summary::from_delays_ns(&delays);
        assert_eq!(s.messages, 4);
        assert!((s.avg_us - 2.5).abs() < 1e-9);
        assert!((s.p50_us - 2.0).abs() < 1e-9);
        assert!((s.p99_us - 4.0).abs() < 1e-9);
        assert!((s.max_us - 4.0).abs() < 1e-9);
        assert_eq!(s.stall_rate, 0.0);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Summary::from_delays_ns(&[]), Summary::default());
    }

    #[test]
    fn stall_needs_both_twice_average_and_ten_ms() {
        // 99 fast messages of 1 ms and one of 30 ms: avg = 1.29 ms, the 30 ms one exceeds both
        // 2×avg and 10 ms, so exactly 1% stalls.
        let mut delays = vec![1_000_000u64; 99];
        delays.push(30_000_000);
        let s = Summary::from_delays_ns(&delays);
        assert!((s.stall_rate - 0.01).abs() < 1e-12);

        // More than twice the average but under 10 ms: not a stall.
        let mut delays = vec![100_000u64; 99];
        delays.push(9_000_000);
        assert_eq!(Summary::from_delays_ns(&delays).stall_rate, 0.0);

        // Over 10 ms but not more than twice the average: not a stall either.
        let delays = vec![20_000_000u64, 20_000_000, 25_000_000];
        assert_eq!(Summary::from_delays_ns(&delays).stall_rate, 0.0);

        // Exactly 10 ms is not "more than" 10 ms.
        let mut delays = vec![0u64; 9];
        delays.push(STALL_FLOOR_NS);
        assert_eq!(Summary::from_delays_ns(&delays).stall_rate, 0.0);
    }

    #[test]
    fn json_has_designs_schema_with_extra_fields_flattened() {
        let mut report = Report::new("ipc");
        report.rows.push(
            Row::new("tcp/3072", Summary::from_delays_ns(&[1_000, 3_000]))
                .with_transport("tcp")
                .with_size(3072)
                .with_extra("checksum_avg_us", 0.5),
        );
        report.rows.push(Row::without_delays("video-1280x720"));
        let v: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(v["bench"], "ipc");
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        let r = rows[0].as_object().unwrap();
        let mut keys: Vec<&str> = r.keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "avg_us",
                "case",
                "checksum_avg_us",
                "max_us",
                "messages",
                "p50_us",
                "p99_us",
                "size_bytes",
                "stall_rate",
                "transport"
            ]
        );
        assert_eq!(r["case"], "tcp/3072");
        assert_eq!(r["transport"], "tcp");
        assert_eq!(r["size_bytes"], 3072);
        assert_eq!(r["messages"], 2);
        assert_eq!(r["avg_us"], 2.0);
        assert_eq!(r["checksum_avg_us"], 0.5);
        // Rows without a transport or size say so with null rather than dropping the key.
        assert!(rows[1]["transport"].is_null());
        assert!(rows[1]["size_bytes"].is_null());
        // A row that measured no delays says null for each delay field, never 0.
        for key in DELAY_FIELDS {
            assert!(rows[1][key].is_null(), "{key} must be null: {}", rows[1]);
        }
        // And the JSON reads back into the same report.
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn table_aligns_columns_and_shows_notes() {
        let mut report = Report::new("ipc");
        report.rows.push(
            Row::new("uds-stream/3072", Summary::from_delays_ns(&[40_000]))
                .with_transport("uds-stream")
                .with_size(3072),
        );
        report.rows.push(
            Row::without_delays("surface/10485760")
                .with_transport("surface")
                .with_size(10_485_760)
                .with_extra("note", "could not run: no BufferQueue"),
        );
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("case"));
        assert!(lines[1].contains("3 KiB") && lines[1].contains("40.0"));
        assert!(lines[2].contains("10 MiB") && lines[2].ends_with("could not run: no BufferQueue"));
        // The msgs column ends at the same character position on every line.
        let end = lines[0].find("msgs").unwrap() + "msgs".len();
        assert_eq!(&lines[1][end - 1..end], "1");
        assert_eq!(&lines[2][end - 1..end], "-");
    }

    #[test]
    fn markdown_has_a_header_a_rule_and_a_line_per_row() {
        let mut report = Report::new("ipc");
        report.rows.push(
            Row::new("pipe/3072", Summary::from_delays_ns(&[40_000]))
                .with_transport("pipe")
                .with_size(3072)
                .with_extra("validated_p99_us", 39.25)
                .with_extra("pipe_buffer_bytes", 65536),
        );
        report.rows.push(
            Row::new("surface/3072", Summary::default()).with_extra("note", "could not run: a|b"),
        );
        let md = report.markdown(&["validated_p99_us", "pipe_buffer_bytes"]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4);
        let cols = |l: &str| l.matches('|').count() - l.matches("\\|").count();
        assert!(lines.iter().all(|l| cols(l) == cols(lines[0])), "{md}");
        assert!(
            lines[2].contains("| 39.2 |") && lines[2].contains("| 65536 |"),
            "{md}"
        );
        assert!(
            lines[3].contains("| - | - |") && lines[3].contains("a\\|b"),
            "{md}"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(3072), "3 KiB");
        assert_eq!(human_size(4_194_304), "4 MiB");
        assert_eq!(human_size(10_485_760), "10 MiB");
        assert_eq!(human_size(1000), "1000 B");
    }

    #[test]
    fn figures_table_marks_unmeasured_fields() {
        let mut report = Report::new("handoff");
        report.rows.push(
            Row::new("video-1280x720", Summary::from_delays_ns(&[1_000]))
                .with_extra("p99_over_floor", 1.5)
                .with_extra("busy_poll_core_pct", None::<f64>),
        );
        let table = report.figures_table(&["p99_over_floor", "busy_poll_core_pct"], 2);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("p99_over_floor") && lines[0].contains("busy_poll_core_pct"));
        assert!(lines[1].contains("1.50"), "{table}");
        assert!(lines[1].trim_end().ends_with('-'), "{table}");
    }

    #[test]
    fn figures_table_shows_median_and_range() {
        let mut report = Report::new("pipeline");
        report.rows.push(
            Row::without_delays("720p")
                .with_extra("cpu", 5.0)
                .with_extra("cpu_min", 4.0)
                .with_extra("cpu_max", 6.0),
        );
        let table = report.figures_table(&["cpu"], 1);
        assert!(
            table.lines().nth(1).unwrap().ends_with("5.0 [4.0-6.0]"),
            "{table}"
        );
    }
}

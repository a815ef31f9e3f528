//! The delay chart of a transport comparison: one panel per payload size, one row per
//! transport, on a logarithmic delay axis, so 30 µs and 30 ms fit on one page.
//!
//! Each transport shows its distribution as the bench measured it: a line from the fastest to
//! the slowest message, a box from the median to the 99th percentile, a tick at the 90th
//! percentile and a dot at the mean. Zero-copy transports (rows with `"zero_copy": true`) are
//! drawn in another colour. `.svg` and `.png` are supported; text uses the bundled DejaVu Sans,
//! so the chart looks the same on any machine.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::stats::{human_size, Report, Row};
use crate::BenchError;

/// DejaVu Sans (see `assets/LICENSE-DejaVu.txt`), so text metrics never depend on system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

const WIDTH: u32 = 1100;
const ROW_PX: u32 = 34;
const COPY_COLOUR: RGBColor = RGBColor(70, 110, 170);
const ZERO_COPY_COLOUR: RGBColor = RGBColor(220, 110, 30);

/// One transport's figures in one panel.
struct Bar {
    transport: String,
    zero_copy: bool,
    ran: bool,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    avg: f64,
}

impl Bar {
    fn from_row(row: &Row) -> Bar {
        let s = row.summary.unwrap_or_default();
        let extra = |k: &str, fallback: f64| {
            row.extra
                .get(k)
                .and_then(|v| v.as_f64())
                .unwrap_or(fallback)
        };
        Bar {
            transport: row.transport.clone().unwrap_or_else(|| row.case.clone()),
            zero_copy: row
                .extra
                .get("zero_copy")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            ran: s.messages > 0,
            min: extra("min_us", s.p50_us),
            p50: s.p50_us,
            p90: extra("p90_us", s.p50_us),
            p99: s.p99_us,
            max: s.max_us,
            avg: s.avg_us,
        }
    }
}

/// Draws `report`'s delay distributions to `path`; the format follows the extension (`.svg`
/// or `.png`).
pub fn write_plot(report: &Report, path: &Path) -> Result<(), BenchError> {
    let fail = |reason: String| BenchError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if !*REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        return Err(fail("the bundled font cannot be loaded".into()));
    }
    let panels = panels(report);
    if panels.is_empty() {
        return Err(fail("the report has no rows to draw".into()));
    }
    let height = 70
        + panels
            .iter()
            .map(|(_, bars)| 80 + ROW_PX * bars.len() as u32)
            .sum::<u32>();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let title = format!(
        "crosscast bench {}: delay until the receiver holds a validated object",
        report.bench
    );
    match ext.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
            draw(&root, &title, &panels).map_err(fail)?;
            root.present().map_err(|e| fail(format!("{e:?}")))
        }
        Some("png") => {
            let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
            draw(&root, &title, &panels).map_err(fail)?;
            root.present().map_err(|e| fail(format!("{e:?}")))
        }
        _ => Err(fail("the chart file must end in .svg or .png".into())),
    }
}

/// Rows grouped by size, in report order.
fn panels(report: &Report) -> Vec<(Option<u64>, Vec<Bar>)> {
    let mut out: Vec<(Option<u64>, Vec<Bar>)> = Vec::new();
    for row in &report.rows {
        let bar = Bar::from_row(row);
        match out.iter_mut().find(|(size, _)| *size == row.size_bytes) {
            Some((_, bars)) => bars.push(bar),
            None => out.push((row.size_bytes, vec![bar])),
        }
    }
    out
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[(Option<u64>, Vec<Bar>)],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (_, h) = root.dim_in_pixel();
    let (head, body) = root.split_vertically(70);
    head.draw(&Text::new(title, (20, 12), (FAMILY, 20).into_font()))
        .map_err(err)?;
    head.draw(&Text::new(
        "line: min to max   box: p50 to p99   tick: p90   dot: mean   (log scale; orange = zero-copy)",
        (20, 42),
        (FAMILY, 14).into_font().color(&RGBColor(80, 80, 80)),
    ))
    .map_err(err)?;
    let heights: Vec<u32> = panels
        .iter()
        .map(|(_, bars)| 80 + ROW_PX * bars.len() as u32)
        .collect();
    let mut rest = body;
    debug_assert_eq!(heights.iter().sum::<u32>() + 70, h);
    for ((size, bars), ph) in panels.iter().zip(heights) {
        let (area, below) = rest.split_vertically(ph);
        rest = below;
        draw_panel(&area, *size, bars)?;
    }
    Ok(())
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        let ms = us / 1000.0;
        if ms >= 10.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms:.1} ms")
        }
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    size: Option<u64>,
    bars: &[Bar],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    let ran: Vec<&Bar> = bars.iter().filter(|b| b.ran).collect();
    let lo = ran
        .iter()
        .map(|b| b.min)
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    let hi = ran.iter().map(|b| b.max).fold(0.0, f64::max);
    let (lo, hi) = if ran.is_empty() || !lo.is_finite() {
        (1.0, 1000.0)
    } else {
        // Room on the right for the p99 label.
        (lo / 1.6, (hi * 6.0).max(lo * 10.0))
    };
    let n = bars.len();
    let caption = match size {
        Some(s) => format!("{} objects", human_size(s)),
        None => "all cases".to_string(),
    };
    let names: Vec<String> = bars.iter().map(|b| b.transport.clone()).collect();
    let y_of = |i: usize| (n - 1 - i) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 17).into_font())
        .margin_left(20)
        .margin_right(30)
        .margin_top(6)
        .margin_bottom(6)
        .x_label_area_size(30)
        .y_label_area_size(130)
        .build_cartesian_2d((lo..hi).log_scale(), -0.6f64..(n as f64 - 0.4))
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|y: &f64| {
            let i = y.round();
            if (y - i).abs() > 1e-6 || i < 0.0 || i as usize >= n {
                return String::new();
            }
            names[n - 1 - i as usize].clone()
        })
        .x_label_formatter(&|x: &f64| fmt_us(*x))
        .label_style((FAMILY, 13).into_font())
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (i, b) in bars.iter().enumerate() {
        let y = y_of(i);
        if !b.ran {
            chart
                .draw_series(std::iter::once(Text::new(
                    "could not run (see the report's note)",
                    (lo * 1.2, y + 0.15),
                    (FAMILY, 13).into_font().color(&RGBColor(150, 40, 40)),
                )))
                .map_err(err)?;
            continue;
        }
        let colour = if b.zero_copy {
            ZERO_COPY_COLOUR
        } else {
            COPY_COLOUR
        };
        let clamp = |v: f64| v.max(lo);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(clamp(b.min), y), (clamp(b.max), y)],
                RGBColor(120, 120, 120).stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (clamp(b.p50), y - 0.3),
                    (clamp(b.p99).max(clamp(b.p50) * 1.02), y + 0.3),
                ],
                colour.mix(0.75).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(clamp(b.p90), y - 0.3), (clamp(b.p90), y + 0.3)],
                BLACK.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Circle::new(
                (clamp(b.avg), y),
                4,
                BLACK.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("p99 {}", fmt_us(b.p99)),
                (clamp(b.max) * 1.15, y + 0.2),
                (FAMILY, 12).into_font(),
            )))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn report() -> Report {
        let mut r = Report::new("ipc");
        for (t, zc) in [("pipe", false), ("surface", true)] {
            for size in [3072u64, 4 << 20] {
                let d: Vec<u64> = (1..=100).map(|x| x * 1000 * (size / 3072).max(1)).collect();
                r.rows.push(
                    Row::new(format!("{t}/{size}"), Summary::from_delays_ns(&d))
                        .with_transport(t)
                        .with_size(size)
                        .with_extra("zero_copy", zc),
                );
            }
        }
        r.rows.push(
            Row::without_delays("tcp/3072")
                .with_transport("tcp")
                .with_size(3072)
                .with_extra("note", "could not run: test"),
        );
        r
    }

    #[test]
    fn svg_has_a_panel_per_size_and_every_transport() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        write_plot(&report(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for needle in [
            "3 KiB objects",
            "4 MiB objects",
            "pipe",
            "surface",
            "tcp",
            "could not run",
        ] {
            assert!(svg.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn png_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        write_plot(&report(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn other_extensions_and_empty_reports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            write_plot(&report(), &dir.path().join("chart.gif")),
            Err(BenchError::Plot { .. })
        ));
        assert!(matches!(
            write_plot(&Report::new("ipc"), &dir.path().join("chart.svg")),
            Err(BenchError::Plot { .. })
        ));
    }

    #[test]
    fn microseconds_read_naturally() {
        assert_eq!(fmt_us(3.25), "3.2 µs");
        assert_eq!(fmt_us(41.0), "41 µs");
        assert_eq!(fmt_us(1500.0), "1.5 ms");
        assert_eq!(fmt_us(25_000.0), "25 ms");
    }
}

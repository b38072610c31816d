//! The learning curves as an SVG file, refreshed while training runs: loss
//! against step for the training batches and the eval set.

use std::fmt::Write;
use std::path::Path;

use crate::metrics::LogRecord;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 48.0;

/// Writes `curves.svg` into the run directory.
pub fn write_curves(run_dir: &Path, records: &[LogRecord]) -> std::io::Result<()> {
    crate::files::write_atomic(&run_dir.join("curves.svg"), curves_svg(records).as_bytes())
}

/// The SVG text: one polyline per kind ("train", "eval"), axes with the
/// step and loss ranges.
pub fn curves_svg(records: &[LogRecord]) -> String {
    let max_step = records.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
    let losses = records.iter().map(|r| r.metrics.loss).filter(|l| l.is_finite());
    let (lo, hi) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), l| (a.min(l), b.max(l)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let x = |step: u64| MARGIN + (step as f64 / max_step) * (WIDTH - 2.0 * MARGIN);
    let y = |loss: f64| HEIGHT - MARGIN - (loss - lo) / (hi - lo) * (HEIGHT - 2.0 * MARGIN);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        svg,
        "<path d=\"M{MARGIN} {MARGIN} V{b} H{r}\" stroke=\"black\" fill=\"none\"/>",
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    );
    let _ = writeln!(svg, "<text x=\"4\" y=\"{}\">{hi:.3}</text>", MARGIN + 4.0);
    let _ = writeln!(svg, "<text x=\"4\" y=\"{}\">{lo:.3}</text>", HEIGHT - MARGIN);
    let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">step {max_step}</text>", WIDTH - MARGIN - 60.0, HEIGHT - 16.0);
    for (kind, colour, label_y) in [("train", "#1f77b4", 20.0), ("eval", "#d62728", 36.0)] {
        let points: Vec<String> = records
            .iter()
            .filter(|r| r.kind == kind && r.metrics.loss.is_finite())
            .map(|r| format!("{:.1},{:.1}", x(r.step), y(r.metrics.loss)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let _ = writeln!(svg, "<polyline points=\"{}\" stroke=\"{colour}\" fill=\"none\"/>", points.join(" "));
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{label_y}\" fill=\"{colour}\">{kind} loss</text>", WIDTH - 130.0);
    }
    svg.push_str("</svg>\n");
    svg
}

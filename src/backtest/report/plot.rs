//! One rule's plot for one user, as inline SVG (plotters' SVG backend, no fonts loaded: the
//! browser draws the text). The legend is the HTML around it ([`super::Report`]): plotters'
//! own legend sits inside the plot, over the data.

use plotters::prelude::*;

use super::trace::Point;
use crate::event::DAY_MS;

/// A span of a set's outputs for the user: firing to resolution, or one night for an output
/// without a lifecycle (a milestone, an alert that does not resolve).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What one set contributes to a plot.
pub struct SetSeries<'a> {
    pub name: &'a str,
    pub points: &'a [Point],
    pub spans: &'a [Span],
}

/// The set colours: A blue, B orange (distinguishable for the common colour blindnesses).
const COLORS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(230, 120, 20)];

/// Set `i`'s colour as (r, g, b), for the HTML legend.
pub fn rgb(i: usize) -> (u8, u8, u8) {
    let RGBColor(r, g, b) = COLORS[i % COLORS.len()];
    (r, g, b)
}

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 300;

/// Days since 1970-01-01, the x axis.
fn day(ms: i64) -> f64 {
    ms as f64 / DAY_MS as f64
}

fn date_label(days: &f64) -> String {
    chrono::DateTime::from_timestamp_millis((days * DAY_MS as f64) as i64)
        .map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string())
}

/// The plot of `sets` between `from_ms` and `to_ms`, as an SVG document without its XML
/// namespace (it is inlined in HTML, where none is needed, and the report names no URL).
pub fn svg(
    title: &str,
    (from_ms, to_ms): (i64, i64),
    sets: &[SetSeries<'_>],
) -> Result<String, String> {
    let mut text = String::new();
    draw(&mut text, title, (from_ms, to_ms), sets).map_err(|e| e.to_string())?;
    Ok(text.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1))
}

fn draw(
    text: &mut String,
    title: &str,
    (from_ms, to_ms): (i64, i64),
    sets: &[SetSeries<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(text, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = sets
        .iter()
        .flat_map(|s| s.points.iter())
        .flat_map(|p| [p.metric, p.threshold, p.band])
        .flatten()
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    // Room above the values for one strip of firings per set.
    let strip = (hi - lo + 2.0 * pad) * 0.07;
    let top = hi + pad + strip * sets.len() as f64;
    let (x0, x1) = (day(from_ms) - 1.0, day(to_ms.max(from_ms)) + 1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, (lo - pad)..top)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&date_label)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, set) in sets.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        // B's threshold and band where they are A's would only hide A's.
        let same_threshold = i > 0 && sets.first().is_some_and(|a| same_threshold(a, set));
        // The band between the central statistic and the threshold, where both are known.
        let shown = if same_threshold { &[][..] } else { set.points };
        for run in runs(shown, |p| finite(p.band).zip(finite(p.threshold))) {
            let mut outline: Vec<(f64, f64)> = run.iter().map(|(t, (b, _))| (*t, *b)).collect();
            outline.extend(run.iter().rev().map(|(t, (_, th))| (*t, *th)));
            chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.15))))?;
        }
        for run in runs(shown, |p| finite(p.threshold)) {
            chart.draw_series(std::iter::once(PathElement::new(
                run,
                color.mix(0.9).stroke_width(1),
            )))?;
        }
        // The metric, drawn for B only where it differs from A's.
        let same_metric = i > 0
            && sets.first().is_some_and(|a| {
                a.points.len() == set.points.len()
                    && a.points
                        .iter()
                        .zip(set.points)
                        .all(|(p, q)| p.metric == q.metric)
            });
        if !same_metric {
            for run in runs(set.points, |p| finite(p.metric)) {
                chart.draw_series(std::iter::once(PathElement::new(
                    run,
                    RGBColor(40, 40, 40).stroke_width(2),
                )))?;
            }
            chart.draw_series(set.points.iter().filter_map(|p| {
                p.metric
                    .filter(|v| v.is_finite())
                    .map(|v| Circle::new((day(p.t_ms), v), 2, RGBColor(40, 40, 40).filled()))
            }))?;
        }
        // The set's firings, as a strip above the values.
        let strip_hi = top - strip * i as f64;
        let strip_lo = strip_hi - strip * 0.8;
        chart.draw_series(set.spans.iter().map(|s| {
            let (a, b) = (day(s.from_ms), day(s.to_ms).max(day(s.from_ms) + 1.0));
            Rectangle::new([(a, strip_lo), (b, strip_hi)], color.filled())
        }))?;
    }
    root.present()?;
    Ok(())
}

/// Whether `b`'s threshold and band are `a`'s at every point (B's are then not drawn).
pub fn same_threshold(a: &SetSeries<'_>, b: &SetSeries<'_>) -> bool {
    a.points.len() == b.points.len()
        && a.points
            .iter()
            .zip(b.points)
            .all(|(p, q)| p.threshold == q.threshold && p.band == q.band)
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// The stretches of consecutive points where `value` is known, as (day, value) lines.
fn runs<T: Copy>(points: &[Point], value: impl Fn(&Point) -> Option<T>) -> Vec<Vec<(f64, T)>> {
    let mut runs: Vec<Vec<(f64, T)>> = Vec::new();
    let mut current: Vec<(f64, T)> = Vec::new();
    for p in points {
        match value(p) {
            Some(v) => current.push((day(p.t_ms), v)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

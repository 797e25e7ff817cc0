//! Plots, as PNG and SVG: learning curves of several runs on one chart, and trajectories
//! before and after adaptation like the paper's Figure 1.
//!
//! Text is drawn with the DejaVu Sans font shipped in `host-sim/assets/` (plotters'
//! `ab_glyph` backend), so no system font library is needed. Files are written
//! atomically.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters_backend::DrawingErrorKind;
use plotters_bitmap::BitMapBackendError;

use crate::runlog::Curve;

/// The font every plot uses.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the bundled font could not be loaded"));
    });
    result
}

/// Text sizes, px. All even: plotters' `ab_glyph` text places each glyph at
/// `(size / 2 + top) as i32`, which truncates toward zero, so at an odd size glyphs whose
/// top is above the middle line (digits) land one pixel lower than those below it (the
/// period), and "0.13" reads "0·13". At an even size the offset is a whole number.
mod sizes {
    pub const CHART_TITLE: u32 = 24;
    pub const CHART_TICK: u32 = 16;
    pub const CHART_AXIS: u32 = 18;
    pub const LEGEND: u32 = 16;
    pub const FIGURE_TITLE: u32 = 22;
    pub const PANEL_CAPTION: u32 = 16;
    pub const PANEL_AXIS: u32 = 14;
    pub const PANEL_TICK: u32 = 12;
    /// Every size above (for the test that the period sits on the baseline).
    #[cfg(test)]
    pub const ALL: [u32; 8] = [
        CHART_TITLE,
        CHART_TICK,
        CHART_AXIS,
        LEGEND,
        FIGURE_TITLE,
        PANEL_CAPTION,
        PANEL_AXIS,
        PANEL_TICK,
    ];
}

/// Okabe–Ito colours (distinguishable with colour-vision deficiencies).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The files a plot goes to: `prefix.png` and `prefix.svg`, or only the one named when
/// `out` already ends in `.png` or `.svg`.
pub fn outputs(out: &Path) -> Vec<PathBuf> {
    match out.extension().and_then(|e| e.to_str()) {
        Some("png") | Some("svg") => vec![out.to_path_buf()],
        _ => {
            let name = out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plot".into());
            vec![
                out.with_file_name(format!("{name}.png")),
                out.with_file_name(format!("{name}.svg")),
            ]
        }
    }
}

/// A plotters error as one readable line. Plotters' own text wraps the cause in
/// "backend error: Drawing backend error: …" and prints the bitmap backend's error with
/// `{:?}` (`ImageError(IoError(Os { code: 13, … }))`).
fn drawing_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    match &e {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::DrawingError(inner)) => {
            let any: &dyn std::any::Any = inner;
            match any.downcast_ref::<BitMapBackendError>() {
                Some(BitMapBackendError::IOError(io)) => anyhow!("{io}"),
                // image's own text is the io error's for an io failure.
                Some(BitMapBackendError::ImageError(img)) => anyhow!("{img}"),
                Some(_) => anyhow!("cannot encode the image"),
                None => anyhow!("{inner}"),
            }
        }
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::FontError(f)) => {
            anyhow!("cannot draw text: {f}")
        }
        DrawingAreaErrorKind::SharingError | DrawingAreaErrorKind::LayoutError => {
            anyhow!("cannot lay out the plot ({e})")
        }
    }
}

/// Writes one plot, drawn by `draw` on any backend, to every file of [`outputs`].
macro_rules! write_plot {
    ($out:expr, $size:expr, $draw:ident($($arg:expr),*)) => {{
        register_font()?;
        let mut written = Vec::new();
        for path in outputs($out) {
            let is_svg = path.extension().and_then(|e| e.to_str()) == Some("svg");
            if is_svg {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, $size).into_drawing_area();
                    $draw(&root, $($arg),*)?;
                    root.present().map_err(drawing_error)?;
                }
                crate::atomic::write(&path, svg.as_bytes())?;
            } else {
                crate::atomic::write_with(&path, |tmp| -> anyhow::Result<()> {
                    let root = BitMapBackend::new(tmp, $size).into_drawing_area();
                    $draw(&root, $($arg),*)?;
                    root.present().map_err(drawing_error)?;
                    Ok(())
                })
                .with_context(|| format!("cannot write {}", path.display()))?;
            }
            written.push(path);
        }
        Ok::<Vec<PathBuf>, anyhow::Error>(written)
    }};
}

/// One learning curve with its legend label (runs sharing a label are averaged).
#[derive(Clone, Debug)]
pub struct LabelledCurve {
    /// Legend label (e.g. the algorithm).
    pub label: String,
    /// The run's curve.
    pub curve: Curve,
}

/// Mean and, with several runs, ± one standard deviation across them, per iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Legend label.
    pub label: String,
    /// Runs averaged.
    pub runs: usize,
    /// Iterations (common to all runs of the label).
    pub x: Vec<f64>,
    /// Mean return after adaptation.
    pub after: Vec<f64>,
    /// Its standard deviation across runs (0 for one run).
    pub after_sd: Vec<f64>,
    /// Mean return before adaptation.
    pub before: Vec<f64>,
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, sd)
}

/// Groups curves by label (first-seen order) and averages each group over the iterations
/// all its runs have.
pub fn bands(curves: &[LabelledCurve]) -> Vec<Band> {
    let mut labels: Vec<&str> = Vec::new();
    for c in curves {
        if !labels.contains(&c.label.as_str()) {
            labels.push(&c.label);
        }
    }
    labels
        .into_iter()
        .map(|label| {
            let runs: Vec<&Curve> = curves
                .iter()
                .filter(|c| c.label == label)
                .map(|c| &c.curve)
                .collect();
            let len = runs.iter().map(|c| c.iteration.len()).min().unwrap_or(0);
            let mut b = Band {
                label: label.to_string(),
                runs: runs.len(),
                x: Vec::with_capacity(len),
                after: Vec::with_capacity(len),
                after_sd: Vec::with_capacity(len),
                before: Vec::with_capacity(len),
            };
            for i in 0..len {
                let (a, sd) = mean_sd(&runs.iter().map(|c| c.after[i]).collect::<Vec<_>>());
                let (bf, _) = mean_sd(&runs.iter().map(|c| c.before[i]).collect::<Vec<_>>());
                b.x.push(runs[0].iteration[i] as f64);
                b.after.push(a);
                b.after_sd.push(sd);
                b.before.push(bf);
            }
            b
        })
        .collect()
}

/// Centred moving average over `window` points (fewer at the ends), skipping NaN.
pub fn smooth(xs: &[f64], window: usize) -> Vec<f64> {
    let half = window / 2;
    (0..xs.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(xs.len());
            let (s, n) = xs[lo..hi]
                .iter()
                .filter(|x| x.is_finite())
                .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            if n == 0 { f64::NAN } else { s / n as f64 }
        })
        .collect()
}

fn range_of<'a>(values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (-1.0, 0.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

/// Learning curves: return after adaptation (solid, with a ± s.d. band across runs of
/// the same label) and before adaptation (dashed, its own colour), against
/// meta-iteration. `standing_still` (mean return of a policy that never moves, e.g. from
/// [`crate::eval::standing_still_return`]) is drawn as a grey reference line: the level
/// a policy must beat to have learned anything.
pub fn plot_curves(
    curves: &[LabelledCurve],
    title: &str,
    standing_still: Option<f64>,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    // Per-iteration returns are noisy; a centred moving average over ~2 % of the run
    // shows the trend (the window is stated in the caption).
    let longest = curves
        .iter()
        .map(|c| c.curve.iteration.len())
        .max()
        .unwrap_or(0);
    let window = (longest / 50).max(1) | 1;
    let smoothed: Vec<LabelledCurve> = curves
        .iter()
        .map(|c| LabelledCurve {
            label: c.label.clone(),
            curve: Curve {
                before: smooth(&c.curve.before, window),
                after: smooth(&c.curve.after, window),
                ..c.curve.clone()
            },
        })
        .collect();
    let bands = bands(&smoothed);
    let caption = if window > 1 {
        format!("{title} (moving average over {window} iterations)")
    } else {
        title.to_string()
    };
    let title = caption.as_str();
    if bands.iter().all(|b| b.x.is_empty()) {
        anyhow::bail!("no logged iterations to plot");
    }
    let x_max = bands
        .iter()
        .flat_map(|b| b.x.last())
        .fold(1.0f64, |m, &x| m.max(x));
    let mut ys: Vec<f64> = Vec::new();
    for b in &bands {
        ys.extend(&b.before);
        ys.extend(
            b.after
                .iter()
                .zip(&b.after_sd)
                .flat_map(|(a, s)| [a - s, a + s]),
        );
    }
    ys.extend(standing_still);
    let (y_lo, y_hi) = range_of(ys.iter());
    write_plot!(
        out,
        (1000, 640),
        draw_curves(&bands, title, standing_still, x_max, (y_lo, y_hi))
    )
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bands: &[Band],
    title: &str,
    standing_still: Option<f64>,
    x_max: f64,
    (y_lo, y_hi): (f64, f64),
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = drawing_error::<DB::ErrorType>;
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, sizes::CHART_TITLE))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, y_lo..y_hi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("meta-iteration")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("mean return")
        .label_style((FAMILY, sizes::CHART_TICK))
        .axis_desc_style((FAMILY, sizes::CHART_AXIS))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    if let Some(y) = standing_still.filter(|y| y.is_finite()) {
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y), (x_max, y)],
                grey.stroke_width(1),
            )))
            .map_err(e)?
            .label(format!("standing still ({y:.2})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1))
            });
    }
    for (i, b) in bands.iter().enumerate() {
        // After and before in different colours (and before dashed), so they read apart
        // in print and with colour-vision deficiencies.
        let c = color(2 * i);
        let c_before = color(2 * i + 1);
        if b.runs > 1 {
            let upper =
                b.x.iter()
                    .zip(b.after.iter().zip(&b.after_sd))
                    .map(|(&x, (&a, &s))| (x, a + s));
            let lower =
                b.x.iter()
                    .zip(b.after.iter().zip(&b.after_sd))
                    .rev()
                    .map(|(&x, (&a, &s))| (x, a - s));
            let poly: Vec<(f64, f64)> = upper.chain(lower).filter(|(_, y)| y.is_finite()).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                .map_err(e)?;
        }
        let after: Vec<(f64, f64)> =
            b.x.iter()
                .copied()
                .zip(b.after.iter().copied())
                .filter(|(_, y)| y.is_finite())
                .collect();
        let runs = if b.runs > 1 {
            format!(" (mean ± s.d., {} runs)", b.runs)
        } else {
            String::new()
        };
        // Segment by segment, not one wide `LineSeries`: see `draw_trajectories`.
        chart
            .draw_series(
                after
                    .windows(2)
                    .map(|seg| PathElement::new(seg.to_vec(), c.stroke_width(2))),
            )
            .map_err(e)?
            .label(format!("{}: after adaptation{runs}", b.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        let before: Vec<(f64, f64)> =
            b.x.iter()
                .copied()
                .zip(b.before.iter().copied())
                .filter(|(_, y)| y.is_finite())
                .collect();
        chart
            .draw_series(DashedLineSeries::new(
                before,
                6,
                4,
                c_before.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("{}: before adaptation", b.label))
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 20, y)], 6, 4, c_before.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FAMILY, sizes::LEGEND))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// An axis tick of the unit square: `0.2`, `-0.4`, and `0` (never `-0.0`).
fn tick(v: f32) -> String {
    if v.abs() < 1e-6 {
        "0".into()
    } else {
        format!("{v:.1}")
    }
}

/// Paths of one goal for the trajectory plot.
#[derive(Clone, Debug, PartialEq)]
pub struct GoalPaths {
    /// The goal.
    pub goal: [f32; 2],
    /// Positions of one episode of each policy: before adaptation, after 1..ζ steps.
    pub paths: Vec<Vec<[f32; 2]>>,
    /// Mean returns of each policy on this goal (same order), for the panel title.
    pub returns: Vec<f32>,
}

/// Figure-1-style panels: for each goal, one episode of the meta-policy (grey, dashed)
/// and of the policy after each adaptation step, in the `[−0.5, 0.5]²` square.
pub fn plot_trajectories(
    goals: &[GoalPaths],
    title: &str,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    if goals.is_empty() {
        anyhow::bail!("no goals to plot");
    }
    let cols = goals.len().min(4);
    let rows = goals.len().div_ceil(cols);
    let size = (360 * cols as u32 + 20, 370 * rows as u32 + 90);
    write_plot!(out, size, draw_trajectories(goals, title, (rows, cols)))
}

fn draw_trajectories<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    goals: &[GoalPaths],
    title: &str,
    (rows, cols): (usize, usize),
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = drawing_error::<DB::ErrorType>;
    root.fill(&WHITE).map_err(e)?;
    let root = root
        .titled(title, (FAMILY, sizes::FIGURE_TITLE))
        .map_err(e)?;
    let (body, legend) = root.split_vertically(root.dim_in_pixel().1 - 40);
    let steps = goals
        .iter()
        .map(|g| g.paths.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1);
    let style = |k: usize| -> RGBColor {
        if k == 0 {
            RGBColor(110, 110, 110)
        } else {
            color(k - 1)
        }
    };
    let name = |k: usize| -> String {
        match k {
            0 => "before adaptation".into(),
            1 => "after 1 step".into(),
            k => format!("after {k} steps"),
        }
    };
    for (panel, g) in body.split_evenly((rows, cols)).iter().zip(goals) {
        let caption = match (g.returns.first(), g.returns.last()) {
            (Some(b), Some(a)) if g.returns.len() > 1 => {
                format!(
                    "goal ({:.2}, {:.2}): return {b:.1} → {a:.1}",
                    g.goal[0], g.goal[1]
                )
            }
            _ => format!("goal ({:.2}, {:.2})", g.goal[0], g.goal[1]),
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, (FAMILY, sizes::PANEL_CAPTION))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.55f32..0.55f32, -0.55f32..0.55f32)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .x_desc("x position")
            .y_desc("y position")
            .axis_desc_style((FAMILY, sizes::PANEL_AXIS))
            .label_style((FAMILY, sizes::PANEL_TICK))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(e)?;
        // The walls of the square.
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-0.5f32, -0.5f32), (0.5, 0.5)],
                RGBColor(150, 150, 150).stroke_width(1),
            )))
            .map_err(e)?;
        for (k, path) in g.paths.iter().enumerate() {
            let pts: Vec<(f32, f32)> = path.iter().map(|p| (p[0], p[1])).collect();
            let c = style(k);
            // One two-point path per segment: plotters joins the segments of a wide
            // polyline with unbounded miters, which draw spikes across the figure where a
            // path turns back on itself (plotters issue #549). The dots cover the joints.
            if k == 0 {
                for seg in pts.windows(2) {
                    chart
                        .draw_series(DashedLineSeries::new(
                            seg.iter().copied(),
                            5,
                            3,
                            c.stroke_width(2),
                        ))
                        .map_err(e)?;
                }
            } else {
                chart
                    .draw_series(
                        pts.windows(2)
                            .map(|seg| PathElement::new(seg.to_vec(), c.stroke_width(2))),
                    )
                    .map_err(e)?;
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 2, c.filled())))
                .map_err(e)?;
        }
        chart
            .draw_series(std::iter::once(Circle::new(
                (0.0f32, 0.0f32),
                4,
                BLACK.filled(),
            )))
            .map_err(e)?;
        let (gx, gy) = (g.goal[0], g.goal[1]);
        chart
            .draw_series(std::iter::once(Cross::new(
                (gx, gy),
                8,
                RGBColor(200, 0, 0).stroke_width(3),
            )))
            .map_err(e)?;
    }
    // Shared legend under the panels.
    let mut x = 20i32;
    for k in 0..=steps {
        let label = name(k);
        // The legend draws each policy as its paths are drawn: before adaptation dashed.
        if k == 0 {
            legend
                .draw(&DashedPathElement::new(
                    vec![(x, 18), (x + 24, 18)],
                    5,
                    3,
                    style(k).stroke_width(3),
                ))
                .map_err(e)?;
        } else {
            legend
                .draw(&PathElement::new(
                    vec![(x, 18), (x + 24, 18)],
                    style(k).stroke_width(3),
                ))
                .map_err(e)?;
        }
        legend
            .draw(&Text::new(
                label.clone(),
                (x + 30, 10),
                (FAMILY, sizes::LEGEND),
            ))
            .map_err(e)?;
        x += 40 + 8 * label.chars().count() as i32;
    }
    legend
        .draw(&Cross::new(
            (x + 6, 18),
            6,
            RGBColor(200, 0, 0).stroke_width(3),
        ))
        .map_err(e)?;
    legend
        .draw(&Text::new("goal", (x + 18, 10), (FAMILY, sizes::LEGEND)))
        .map_err(e)?;
    legend
        .draw(&Circle::new((x + 70, 18), 4, BLACK.filled()))
        .map_err(e)?;
    legend
        .draw(&Text::new("start", (x + 80, 10), (FAMILY, sizes::LEGEND)))
        .map_err(e)?;
    Ok(())
}

/// One bar of [`plot_comparison`]: a label and a mean return ± standard error.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// The label under the bar.
    pub label: String,
    /// Mean return.
    pub mean: f64,
    /// Standard error (drawn as ± 1 whisker).
    pub stderr: f64,
}

/// A bar chart of mean returns with ± 1 standard-error whiskers (returns are negative:
/// bars hang from 0, and the shorter bar is the better policy).
pub fn plot_comparison(bars: &[Bar], title: &str, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if bars.is_empty() {
        anyhow::bail!("no bars to plot");
    }
    let lo = bars
        .iter()
        .map(|b| b.mean - b.stderr)
        .fold(0.0f64, f64::min);
    let hi = bars
        .iter()
        .map(|b| b.mean + b.stderr)
        .fold(0.0f64, f64::max);
    let pad = ((hi - lo) * 0.08).max(0.1);
    write_plot!(
        out,
        (1100, 620),
        draw_comparison(bars, title, (lo - pad, hi + pad * 0.5))
    )
}

fn draw_comparison<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bars: &[Bar],
    title: &str,
    (y_lo, y_hi): (f64, f64),
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
    root.fill(&WHITE).map_err(e)?;
    let n = bars.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, y_lo..y_hi)
        .map_err(e)?;
    let label_of = |x: &f64| -> String {
        let i = x.floor();
        if (x - i - 0.5).abs() < 1e-6 && i >= 0.0 {
            bars.get(i as usize)
                .map(|b| b.label.clone())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&label_of)
        .y_desc("mean return (± 1 s.e.)")
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64;
        let c = color(i);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, b.mean)],
                c.mix(0.8).filled(),
            )))
            .map_err(e)?;
        let whisker = |y: f64| PathElement::new(vec![(x + 0.4, y), (x + 0.6, y)], BLACK);
        chart
            .draw_series([
                PathElement::new(
                    vec![(x + 0.5, b.mean - b.stderr), (x + 0.5, b.mean + b.stderr)],
                    BLACK,
                ),
                whisker(b.mean - b.stderr),
                whisker(b.mean + b.stderr),
            ])
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{:.2}", b.mean),
                (x + 0.32, b.mean - b.stderr - (y_hi - y_lo) * 0.01),
                (FAMILY, 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Top,
                    )),
            )))
            .map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(shift: f64, n: u64) -> Curve {
        Curve {
            iteration: (0..n).collect(),
            before: (0..n).map(|i| -38.0 + shift + i as f64 * 0.01).collect(),
            after: (0..n).map(|i| -30.0 + shift + i as f64 * 0.05).collect(),
            env_steps: (0..n).map(|i| i * 1000).collect(),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgmrl-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn bands_average_runs_sharing_a_label() {
        let cs = vec![
            LabelledCurve {
                label: "sgmrl".into(),
                curve: curve(0.0, 5),
            },
            LabelledCurve {
                label: "maml".into(),
                curve: curve(1.0, 5),
            },
            LabelledCurve {
                label: "sgmrl".into(),
                curve: curve(2.0, 4),
            },
        ];
        let b = bands(&cs);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].label.as_str(), b[0].runs, b[0].x.len()),
            ("sgmrl", 2, 4)
        );
        assert!((b[0].after[0] - -29.0).abs() < 1e-12);
        assert!((b[0].after_sd[0] - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!((b[1].runs, b[1].after_sd[0]), (1, 0.0));
    }

    #[test]
    fn comparison_chart_has_every_label_and_value() {
        let d = scratch("bars");
        let bars: Vec<Bar> = [
            ("meta", -3.1, 0.1),
            ("still", -7.6, 0.2),
            ("greedy", -0.5, 0.0),
        ]
        .iter()
        .map(|&(l, m, s)| Bar {
            label: l.into(),
            mean: m,
            stderr: s,
        })
        .collect();
        let files = plot_comparison(&bars, "lines", &d.join("cmp")).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(d.join("cmp.svg")).unwrap();
        for text in ["meta", "still", "greedy", "-3.10", "-7.60", "-0.50"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(std::fs::metadata(d.join("cmp.png")).unwrap().len() > 1000);
        assert!(plot_comparison(&[], "none", &d.join("none")).is_err());
    }

    #[test]
    fn writes_png_and_svg() {
        let d = scratch("files");
        let cs = vec![
            LabelledCurve {
                label: "sgmrl".into(),
                curve: curve(0.0, 50),
            },
            LabelledCurve {
                label: "sgmrl".into(),
                curve: curve(1.5, 50),
            },
            LabelledCurve {
                label: "maml".into(),
                curve: curve(-2.0, 50),
            },
        ];
        let files = plot_curves(&cs, "nav2d", Some(-37.5), &d.join("curves")).unwrap();
        assert_eq!(files.len(), 2);
        let png = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("meta-iteration"));
        // The reference line, and before/after of one label in two colours.
        assert!(svg.contains("standing still (-37.50)"), "no reference line");
        let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
        assert!(svg.contains(&hex(color(0))) && svg.contains(&hex(color(1))));
        let g = GoalPaths {
            goal: [0.3, -0.2],
            paths: vec![
                vec![[0.0, 0.0], [0.05, 0.02], [0.1, 0.0]],
                vec![[0.0, 0.0], [0.1, -0.1], [0.2, -0.2], [0.3, -0.2]],
            ],
            returns: vec![-30.0, -10.0],
        };
        let files = plot_trajectories(&[g.clone(), g], "t", &d.join("traj.png")).unwrap();
        assert_eq!(files, vec![d.join("traj.png")]);
        assert!(std::fs::metadata(&files[0]).unwrap().len() > 1000);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A failed PNG write reads like every other error: the path and the OS's reason, no
    /// plotters debug text (`ImageError(IoError(Os { … }))`).
    #[test]
    fn a_failed_png_write_is_one_plain_line() {
        let d = scratch("unwritable");
        std::fs::write(d.join("file"), b"x").unwrap();
        let g = GoalPaths {
            goal: [0.3, -0.2],
            paths: vec![vec![[0.0, 0.0], [0.1, 0.0]]],
            returns: vec![-30.0],
        };
        let out = d.join("file/traj.png");
        let e = plot_trajectories(&[g], "t", &out).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "cannot write {}: Not a directory (os error 20)",
                out.display()
            )
        );
        let cs = vec![LabelledCurve {
            label: "sgmrl".into(),
            curve: curve(0.0, 5),
        }];
        let out = d.join("file/curves.svg");
        let e = plot_curves(&cs, "t", None, &out).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!(
                "cannot write {}: Not a directory (os error 20)",
                out.display()
            )
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    /// plotters joins the segments of a wide `LineSeries` with unclipped miters, so a path
    /// that turns back on itself drew a spike across the figure (plotters issue #549; it
    /// showed in `runs/demo/trajectories.png`).
    #[test]
    fn a_path_that_turns_back_stays_inside_its_panel() {
        register_font().unwrap();
        let (w, h) = (380u32, 460u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            let g = GoalPaths {
                goal: [0.3, -0.2],
                // Straight up to y = 0.45, then straight back down: the join at the
                // turn has no bounded miter.
                paths: vec![
                    vec![[0.0, 0.0], [-0.1, -0.1]],
                    vec![[0.0, 0.0], [0.0, 0.45], [0.002, 0.0]],
                ],
                returns: vec![-30.0, -10.0],
            };
            draw_trajectories(&root, &[g], "t", (1, 1)).unwrap();
            root.present().unwrap();
        }
        // The path stays in y ∈ [0, 0.45], the upper half of the panel (the start dot is at
        // pixel row ≈ 222); rows 250–400 (y below ≈ −0.1, above the legend) must not show it.
        let after = color(0);
        let stray = (250..400u32)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let i = ((y * w + x) * 3) as usize;
                buf[i..i + 3] == [after.0, after.1, after.2]
            })
            .count();
        assert_eq!(stray, 0, "the path was drawn where it never went");
    }

    /// Lowest inked pixel row of `text` drawn at `size` into a white bitmap.
    fn bottom_row(text: &str, size: u32) -> Option<u32> {
        let (w, h) = (60u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.draw(&Text::new(text, (5, 10), (FAMILY, size)))
                .unwrap();
            root.present().unwrap();
        }
        (0..h).rev().find(|&y| {
            (0..w).any(|x| {
                let i = ((y * w + x) * 3) as usize;
                buf[i] < 128
            })
        })
    }

    /// The decimal point rendered as a mid-dot at odd sizes (issue #9): a period and a
    /// digit must end on the same pixel row (the baseline) at every size the plots use.
    #[test]
    fn the_period_sits_on_the_baseline_at_every_size() {
        register_font().unwrap();
        for size in sizes::ALL {
            assert_eq!(
                bottom_row(".", size),
                bottom_row("1", size),
                "size {size}: period and digit end on different rows"
            );
        }
        // The test can fail: the odd size the panels used did misplace it.
        assert_ne!(bottom_row(".", 15), bottom_row("1", 15));
    }

    #[test]
    fn smoothing_is_a_centred_mean_that_skips_nan() {
        let s = smooth(&[1.0, 2.0, 3.0, f64::NAN, 5.0], 3);
        assert_eq!(s, vec![1.5, 2.0, 2.5, 4.0, 5.0]);
        assert_eq!(smooth(&[1.0, 4.0], 1), vec![1.0, 4.0]);
    }

    #[test]
    fn outputs_follow_the_extension() {
        assert_eq!(
            outputs(Path::new("a/b.svg")),
            vec![PathBuf::from("a/b.svg")]
        );
        assert_eq!(
            outputs(Path::new("a/b")),
            vec![PathBuf::from("a/b.png"), PathBuf::from("a/b.svg")]
        );
    }
}

//! Line plots of time series: SVG (plotters' SVG backend) and PNG (bitmap backend, text drawn with the DejaVu
//! Sans font bundled in `assets/fonts/`, so no system library or installed font is needed).

use super::Series;
use plotters::prelude::*;
use std::path::Path;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static FONT_REGISTERED: std::sync::Once = std::sync::Once::new();

/// Plots every column of `s` against time in hours, as SVG.
pub fn svg(path: &Path, s: &Series) -> Result<(), String> {
    register_font();
    draw(SVGBackend::new(path, (900, 480)).into_drawing_area(), path, s)
}

/// The same plot as PNG.
pub fn png(path: &Path, s: &Series) -> Result<(), String> {
    register_font();
    draw(BitMapBackend::new(path, (900, 480)).into_drawing_area(), path, s)
}

/// Text layout (both backends) needs a font; ours is bundled, registered once per process.
fn register_font() {
    FONT_REGISTERED.call_once(|| {
        // The bundled font is valid; were it not, drawing text would fail and report it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    path: &Path,
    s: &Series,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot plot {}: {e}", path.display());
    let t_h: Vec<f64> = s.t_s.iter().map(|t| t / 3600.0).collect();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, c) in &s.columns {
        for v in c.iter().filter(|v| v.is_finite()) {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    let t_end = t_h.last().copied().unwrap_or(1.0).max(1e-9);
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&s.name, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(t_h[0].min(t_end)..t_end, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("time (h)").y_desc(&s.y_label).draw().map_err(|e| err(&e))?;
    for (k, (name, c)) in s.columns.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let pts: Vec<(f64, f64)> = t_h.iter().copied().zip(c.iter().copied()).filter(|(_, v)| v.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    if s.columns.len() > 1 {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

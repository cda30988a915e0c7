//! Plots people read, drawn from the files of an output directory (so `gridtwin plot OUT_DIR` regenerates
//! exactly what a run wrote): SVG (plotters' SVG backend) and PNG (bitmap backend, text in the DejaVu Sans font
//! bundled in `assets/fonts/`, so no system library or installed font is needed).
//!
//! Every plot has a title naming what it shows with the scenario and seed, axis labels in words with units,
//! one quantity per axis (a second unit gets the right-hand axis), and its legend in a strip below the chart,
//! never over the data. Lines are clipped to the chart here, before drawing, so PNG and SVG agree.
//!
//! Kinds (`--kind`): `series` (every `*.csv` whose first column is `t_s`; EN 50160 limits on p.u. voltage),
//! `voltage-profile` (`grid_buses.csv`: distance from the transformer vs voltage with the EN 50160 ±10 %
//! band), `mesh-map` (`mesh_nodes.csv` or `plan_sites.csv`: sites, links by quality, routes, failed nodes,
//! gateways), `fault-timeline` (`faults.csv`: onset, detection, trip, isolation, restoration per fault),
//! `mesh-distributions` (`mesh_nodes.csv`: per-node delivery ratio and latency histograms), `accounting`
//! (`summary.json` `accounting` object: generated, stored, dropped by reason, as a waterfall) and `sweep`
//! (the sweep CSV: a heatmap per KPI over two axes, the first pair that fills its grid, and a Pareto front
//! when the plan names one).

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const GREY: RGBColor = RGBColor(150, 150, 150);
const LIMIT: RGBColor = RGBColor(200, 30, 30);
const SIZE: (u32, u32) = (960, 540);
const FONT_NAME: &str = "sans-serif";

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static FONT_REGISTERED: std::sync::Once = std::sync::Once::new();

/// Every plot kind, in the order `run` draws them.
pub const KINDS: [&str; 8] = [
    "series",
    "voltage-profile",
    "lmu-series",
    "mesh-map",
    "fault-timeline",
    "mesh-distributions",
    "accounting",
    "sweep",
];

/// LMUs drawn by the `lmu-series` kind when none are chosen: the ones that saw the lowest voltages.
pub const AUTO_LMUS: usize = 3;

/// Text layout (both backends) needs a font; ours is bundled, registered once per process.
fn register_font() {
    FONT_REGISTERED.call_once(|| {
        // The bundled font is valid; were it not, drawing text would fail and report it.
        let _ = plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT);
    });
}

type R = Result<(), String>;
/// A line segment between two points with a class.
type Segment = ((f64, f64), (f64, f64), u8);
/// Columns of one unit: (unit, axis label, (legend label, values) per column).
type Group = (String, String, Vec<(String, Vec<f64>)>);
/// A chart area and its legend strip.
type Areas<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);
fn pe<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws one figure as `<stem>.svg` and `<stem>.png` in `dir` with the drawing function `$draw(area, data)`.
macro_rules! emit {
    ($dir:expr, $stem:expr, $draw:ident, $data:expr, $out:expr) => {{
        let stem: &str = $stem;
        let svg = $dir.join(format!("{stem}.svg"));
        $draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), $data)
            .map_err(|e| format!("cannot plot {}: {e}", svg.display()))?;
        let png = $dir.join(format!("{stem}.png"));
        $draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), $data)
            .map_err(|e| format!("cannot plot {}: {e}", png.display()))?;
        $out.push(svg);
        $out.push(png);
    }};
}

/// A CSV file read back: header and rows of cells.
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    pub fn read(path: &Path) -> Option<Csv> {
        let mut r = csv::ReaderBuilder::new().flexible(true).from_path(path).ok()?;
        let header = r.headers().ok()?.iter().map(str::to_string).collect();
        let rows = r.records().filter_map(Result::ok).map(|rec| rec.iter().map(str::to_string).collect()).collect();
        Some(Csv { header, rows })
    }
    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
    /// Column `c` as numbers (empty or unparsable: NaN; `inf` parses).
    pub fn nums(&self, c: usize) -> Vec<f64> {
        self.rows.iter().map(|r| r.get(c).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN)).collect()
    }
    pub fn text(&self, c: usize) -> Vec<String> {
        self.rows.iter().map(|r| r.get(c).cloned().unwrap_or_default()).collect()
    }
}

/// What the plots of a directory are about: for titles.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub scenario: String,
    pub seed: Option<u64>,
    pub summary: Value,
}

impl Context {
    pub fn read(dir: &Path) -> Context {
        let summary: Value = std::fs::read_to_string(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let scenario = ["scenario", "sweep", "plan"]
            .iter()
            .find_map(|k| summary.get(*k).and_then(Value::as_str))
            .unwrap_or("gridtwin output")
            .to_string();
        let seed = summary.get("seed").and_then(Value::as_u64);
        Context { scenario, seed, summary }
    }
    pub fn title(&self, what: &str) -> String {
        match self.seed {
            Some(s) => format!("{what} — {} (seed {s})", self.scenario),
            None => format!("{what} — {}", self.scenario),
        }
    }
}

/// Renders the plots of `kinds` (all when empty) from the files in `dir`; returns the files written.
pub fn render_dir(dir: &Path, kinds: &[String]) -> Result<Vec<PathBuf>, String> {
    render_dir_with(dir, kinds, &[])
}

/// [`render_dir`] with the LMUs whose readings the `lmu-series` kind draws (empty: the [`AUTO_LMUS`] LMUs
/// that saw the lowest phase voltage). A chosen LMU without readings is an error naming it.
pub fn render_dir_with(dir: &Path, kinds: &[String], lmus: &[u32]) -> Result<Vec<PathBuf>, String> {
    register_font();
    for k in kinds {
        if !KINDS.contains(&k.as_str()) {
            return Err(format!("unknown plot kind `{k}`; known kinds: {}", KINDS.join(", ")));
        }
    }
    let want = |k: &str| kinds.is_empty() || kinds.iter().any(|x| x == k);
    let ctx = Context::read(dir);
    let mut out = Vec::new();
    let mut csvs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    csvs.sort();
    if want("series") {
        for p in &csvs {
            let Some(csv) = Csv::read(p) else { continue };
            if csv.header.first().map(String::as_str) != Some("t_s") || csv.rows.is_empty() || csv.header.len() < 2 {
                continue;
            }
            let stem = p.file_stem().map_or(String::new(), |s| s.to_string_lossy().to_string());
            let s = series_from_csv(&ctx, &stem, &csv);
            emit!(dir, &stem, draw_series, &s, out);
        }
    }
    if want("voltage-profile")
        && let Some(csv) = Csv::read(&dir.join("grid_buses.csv"))
        && !csv.rows.is_empty()
    {
        let d = (ctx.clone(), csv);
        emit!(dir, "voltage_profile", draw_voltage_profile, &d, out);
    }
    if want("lmu-series")
        && let Some(csv) = Csv::read(&dir.join("readings.csv"))
    {
        for fig in lmu_series(&ctx, &csv, lmus)? {
            let stem = format!("lmu_{}_readings", fig.0);
            emit!(dir, &stem, draw_series, &fig.1, out);
        }
    } else if !lmus.is_empty() && want("lmu-series") {
        return Err(format!("{} has no readings.csv: no LMU readings to plot", dir.display()));
    }
    if want("mesh-map") {
        let map = Csv::read(&dir.join("mesh_nodes.csv"))
            .and_then(|c| MeshMap::from_mesh_nodes(&ctx, &c))
            .or_else(|| MeshMap::from_plan(&ctx, dir));
        if let Some(m) = map {
            emit!(dir, "mesh_map", draw_mesh_map, &m, out);
        }
    }
    if want("fault-timeline")
        && let Some(csv) = Csv::read(&dir.join("faults.csv"))
        && !csv.rows.is_empty()
    {
        let d = (ctx.clone(), csv);
        emit!(dir, "fault_timeline", draw_fault_timeline, &d, out);
    }
    if want("mesh-distributions")
        && let Some(csv) = Csv::read(&dir.join("mesh_nodes.csv"))
        && csv.col("pdr").is_some()
        && !csv.rows.is_empty()
    {
        let d = (ctx.clone(), csv);
        emit!(dir, "mesh_distributions", draw_mesh_distributions, &d, out);
    }
    if want("accounting")
        && let Some(steps) = accounting_steps(&ctx.summary)
    {
        let d = (ctx.clone(), steps);
        emit!(dir, "reading_accounting", draw_waterfall, &d, out);
    }
    if want("sweep")
        && let Some(name) = ctx.summary.get("sweep").and_then(Value::as_str)
    {
        let stem = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect::<String>();
        if let Some(csv) = Csv::read(&dir.join(format!("{stem}.csv"))) {
            let axes: Vec<String> = ctx
                .summary
                .get("axes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            for (k, h) in sweep_heatmaps(&csv, &axes).into_iter().enumerate() {
                let d = (ctx.clone(), h);
                emit!(dir, &format!("sweep_heatmap_{k}"), draw_heatmap, &d, out);
            }
            if let Some(pf) = ctx.summary.get("pareto").and_then(|p| pareto(&csv, p)) {
                let d = (ctx.clone(), pf);
                emit!(dir, "sweep_pareto", draw_pareto, &d, out);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Names and units.

/// (quantity in words, unit) of a column, from its name.
pub fn describe(col: &str) -> (String, String) {
    let known: &[(&str, &str, &str)] = &[
        ("p_slack_kw", "active power at the transformer", "kW"),
        ("q_slack_kvar", "reactive power at the transformer", "kvar"),
        ("v_min_pu", "lowest LV bus voltage", "p.u."),
        ("v_max_pu", "highest LV bus voltage", "p.u."),
        ("readings", "readings per batch", "count"),
        ("v_a_mean_v", "mean phase-A voltage reported", "V"),
        ("sent", "reports sent", "count"),
        ("delivered", "reports delivered", "count"),
        ("pdr", "delivery ratio", "ratio"),
        ("p2p_mean_price_ct_per_kwh", "mean P2P price", "ct/kWh"),
        ("minted_kwh", "minted (certificates)", "kWh"),
        ("p2p_kwh", "traded peer to peer", "kWh"),
        ("grid_import_kwh", "imported from the grid", "kWh"),
        ("claimed_kwh", "claimed against consumption", "kWh"),
        ("transformer_peak_kw_with_dr", "transformer power with demand response", "kW"),
        ("transformer_peak_kw_without_dr", "transformer power without demand response", "kW"),
        ("optimal_ct", "optimal clearing", "ct"),
        ("greedy_ct", "greedy matching", "ct"),
        ("cda_ct", "continuous double auction", "ct"),
    ];
    if let Some((_, q, u)) = known.iter().find(|(c, _, _)| *c == col) {
        return (q.to_string(), u.to_string());
    }
    let units: &[(&str, &str)] = &[
        ("_ct_per_kwh", "ct/kWh"),
        ("_ct", "ct"),
        ("_kwh", "kWh"),
        ("_kw", "kW"),
        ("_kvar", "kvar"),
        ("_kva", "kVA"),
        ("_pu", "p.u."),
        ("_ms", "ms"),
        ("_s", "s"),
        ("_v", "V"),
        ("_a", "A"),
        ("_pct", "%"),
        ("_m", "m"),
        ("_db", "dB"),
        ("_dbm", "dBm"),
    ];
    for (suf, u) in units {
        if let Some(stem) = col.strip_suffix(suf) {
            return (stem.replace('_', " "), u.to_string());
        }
    }
    (col.replace('_', " "), "count".into())
}

fn file_title(stem: &str) -> String {
    match stem {
        "grid_power" => "Power at the transformer".into(),
        "grid_voltage" => "Voltage range over the LV buses".into(),
        "cloud_batches" => "Batches stored in the cloud".into(),
        "mesh_pdr" => "Mesh delivery over time".into(),
        "market_prices" => "Mean P2P clearing price per slot".into(),
        "market_volumes" => "Energy minted, traded P2P, imported and claimed per slot".into(),
        "market_welfare" => "Welfare per slot: optimal clearing against greedy and CDA".into(),
        "market_dr" => "Transformer peak with and without demand response".into(),
        s if s.starts_with("market_origin_") => {
            format!("Origin of {}'s consumed energy (cumulative)", &s["market_origin_".len()..])
        }
        s => {
            let mut t = s.replace('_', " ");
            if let Some(c) = t.get_mut(0..1) {
                c.make_ascii_uppercase();
            }
            t
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.

fn finite_range(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    lo.is_finite().then_some((lo, hi))
}

/// Pads a value range by 5 % (and widens a flat one) for an axis.
fn padded((lo, hi): (f64, f64)) -> (f64, f64) {
    let (lo, hi) = if hi - lo < 1e-12 * hi.abs().max(1.0) {
        (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3))
    } else {
        (lo, hi)
    };
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Splits a polyline into pieces inside the box, clipping segments at its edges (Liang-Barsky); NaN values
/// break the line.
pub fn clip_polyline(pts: &[(f64, f64)], x: (f64, f64), y: (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let flush = |cur: &mut Vec<(f64, f64)>, out: &mut Vec<Vec<(f64, f64)>>| {
        if cur.len() >= 2 {
            out.push(std::mem::take(cur));
        } else {
            cur.clear();
        }
    };
    if pts.len() == 1 && pts[0].0.is_finite() && pts[0].1.is_finite() {
        let p = pts[0];
        if p.0 >= x.0 && p.0 <= x.1 && p.1 >= y.0 && p.1 <= y.1 {
            out.push(vec![p, p]);
        }
        return out;
    }
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
            flush(&mut cur, &mut out);
            continue;
        }
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        let mut visible = true;
        for (p, q) in [(-dx, a.0 - x.0), (dx, x.1 - a.0), (-dy, a.1 - y.0), (dy, y.1 - a.1)] {
            if p == 0.0 {
                if q < 0.0 {
                    visible = false;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if !visible || t0 > t1 {
            flush(&mut cur, &mut out);
            continue;
        }
        let s = (a.0 + t0 * dx, a.1 + t0 * dy);
        let e = (a.0 + t1 * dx, a.1 + t1 * dy);
        if t0 > 0.0 || cur.last() != Some(&s) {
            flush(&mut cur, &mut out);
            cur.push(s);
        }
        cur.push(e);
        if t1 < 1.0 {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// One legend entry: label, colour, line (true) or marker.
struct Entry {
    label: String,
    colour: RGBColor,
    line: bool,
    dashed: bool,
    /// The marker of an entry that is not a line (as drawn on the chart).
    marker: Marker,
}

/// A legend marker.
#[derive(Clone, Copy, PartialEq)]
enum Marker {
    Dot,
    Cross,
    /// A white dot ringed in the entry's colour (coordinators on a map drawn by area).
    Ring,
    Triangle,
}

/// Draws legend entries left to right (wrapping) in their own strip.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[Entry]) -> R {
    let font = (FONT_NAME, 15).into_font();
    let (w, _) = area.dim_in_pixel();
    let (mut x, mut y) = (70i32, 10i32);
    for e in entries {
        let tw = area.estimate_text_size(&e.label, &TextStyle::from(font.clone())).map_err(pe)?.0 as i32;
        if x + 30 + tw > w as i32 - 10 && x > 70 {
            x = 70;
            y += 22;
        }
        if e.line {
            if e.dashed {
                for k in 0..3 {
                    area.draw(&PathElement::new(
                        vec![(x + k * 9, y + 8), (x + k * 9 + 5, y + 8)],
                        e.colour.stroke_width(2),
                    ))
                    .map_err(pe)?;
                }
            } else {
                area.draw(&PathElement::new(vec![(x, y + 8), (x + 24, y + 8)], e.colour.stroke_width(3)))
                    .map_err(pe)?;
            }
        } else {
            let c = (x + 12, y + 8);
            match e.marker {
                Marker::Dot => area.draw(&Circle::new(c, 5, e.colour.filled())).map_err(pe)?,
                Marker::Cross => area.draw(&Cross::new(c, 4, e.colour.stroke_width(2))).map_err(pe)?,
                Marker::Ring => {
                    area.draw(&Circle::new(c, 5, e.colour.filled())).map_err(pe)?;
                    area.draw(&Circle::new(c, 3, WHITE.filled())).map_err(pe)?;
                }
                Marker::Triangle => area.draw(&TriangleMarker::new(c, 6, e.colour.filled())).map_err(pe)?,
            }
        }
        area.draw(&Text::new(e.label.clone(), (x + 30, y), font.clone())).map_err(pe)?;
        x += 30 + tw + 24;
    }
    Ok(())
}

/// Splits `root` into a titled chart area and a legend strip of `legend_rows` rows below it.
fn layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend_rows: u32,
) -> Result<Areas<DB>, String> {
    root.fill(&WHITE).map_err(pe)?;
    let titled = root.titled(title, (FONT_NAME, 20)).map_err(pe)?;
    let (_, h) = titled.dim_in_pixel();
    let strip = if legend_rows == 0 { 0 } else { 12 + 22 * legend_rows };
    Ok(titled.split_vertically(h.saturating_sub(strip)))
}

fn dashed_hline<DB: DrawingBackend, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    x: (f64, f64),
    y: f64,
    colour: RGBColor,
) -> R {
    let n = 60;
    let step = (x.1 - x.0) / n as f64;
    chart
        .draw_series((0..n).step_by(2).map(|i| {
            let a = x.0 + i as f64 * step;
            PathElement::new(vec![(a, y), (a + step, y)], colour.stroke_width(2))
        }))
        .map_err(pe)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Time series.

/// A time-series figure: columns grouped by unit (first group left axis, second group right axis).
pub struct SeriesFig {
    pub title: String,
    pub t_h: Vec<f64>,
    /// (unit, quantity label, columns (legend label, values)).
    pub groups: Vec<Group>,
    /// EN 50160 limits apply (a p.u. voltage group exists).
    pub en50160: bool,
}

fn series_from_csv(ctx: &Context, stem: &str, csv: &Csv) -> SeriesFig {
    let mut t_s = csv.nums(0);
    let mut cols: Vec<(String, Vec<f64>)> =
        (1..csv.header.len()).map(|c| (csv.header[c].clone(), csv.nums(c))).collect();
    if let Some((t, c)) = coarser_delivery_bins(&t_s, &cols) {
        (t_s, cols) = (t, c);
    }
    let t_h: Vec<f64> = t_s.iter().map(|t| t / 3600.0).collect();
    let mut groups: Vec<Group> = Vec::new();
    for (name, vals) in cols {
        let (q, u) = describe(&name);
        match groups.iter_mut().find(|g| g.0 == u) {
            Some(g) => {
                g.2.push((q, vals));
            }
            None => groups.push((u.clone(), q.clone(), vec![(q, vals)])),
        }
    }
    // Axis label: the quantity when the axis has one column, else a word for the unit.
    for g in &mut groups {
        if g.2.len() > 1 {
            g.1 = match g.0.as_str() {
                "p.u." => "voltage".into(),
                "kW" => "active power".into(),
                "count" => "count".into(),
                "kWh" => "energy".into(),
                "ct" => "welfare".into(),
                u => u.to_string(),
            };
        }
    }
    // Counts of reports are per time bin: say which (the mesh's `metrics_bin`, by generation time).
    if let Some(bin) = uniform_step_s(&t_s) {
        for g in &mut groups {
            if g.0 == "count" && g.2.iter().all(|c| c.0.starts_with("reports ")) {
                g.1 = format!("reports per {}, by the time they were generated", bin_words(bin));
            }
        }
    }
    let en50160 = groups.iter().any(|g| g.0 == "p.u." && g.2.iter().any(|c| c.0.contains("voltage")));
    SeriesFig { title: ctx.title(&file_title(stem)), t_h, groups, en50160 }
}

/// A table's value columns: (header, values).
type Columns = Vec<(String, Vec<f64>)>;

/// Delivery counts (`sent`, `delivered`, `pdr`) in bins wide enough that most of them hold a report: a few LMUs
/// that report every 15 minutes leave 14 of 15 one-minute bins empty, which draws as spikes and leaves the
/// delivery ratio as isolated points. Bins are merged by the least of 1, 2, 5, 10, 15, 30, 60, ... whose
/// merged bins are nine in ten non-empty, and the ratio recomputed from the merged counts. `None` when
/// the table has no such columns or needs no merging.
fn coarser_delivery_bins(t_s: &[f64], cols: &Columns) -> Option<(Vec<f64>, Columns)> {
    let col = |name: &str| cols.iter().position(|c| c.0 == name);
    let (cs, cd, cp) = (col("sent")?, col("delivered")?, col("pdr")?);
    uniform_step_s(t_s)?;
    let (sent, delivered) = (&cols[cs].1, &cols[cd].1);
    let busy_share = |k: usize| {
        let chunks = sent.chunks(k);
        let n = chunks.len().max(1);
        chunks.filter(|c| c.iter().any(|&x| x > 0.0)).count() as f64 / n as f64
    };
    const FACTORS: [usize; 10] = [1, 2, 5, 10, 15, 30, 60, 120, 240, 1440];
    let k = FACTORS.into_iter().take_while(|&k| k <= sent.len().max(1)).find(|&k| busy_share(k) >= 0.9)?;
    if k == 1 {
        return None;
    }
    let sum = |v: &[f64]| v.chunks(k).map(|c| c.iter().filter(|x| x.is_finite()).sum::<f64>()).collect::<Vec<_>>();
    let (s, d) = (sum(sent), sum(delivered));
    let pdr: Vec<f64> = s.iter().zip(&d).map(|(&s, &d)| if s > 0.0 { d / s } else { f64::NAN }).collect();
    let t: Vec<f64> = t_s.chunks(k).map(|c| c[0]).collect();
    let mut out = cols.clone();
    (out[cs].1, out[cd].1, out[cp].1) = (s, d, pdr);
    for (j, c) in out.iter_mut().enumerate() {
        if j != cs && j != cd && j != cp {
            c.1 = c.1.chunks(k).map(|v| v[0]).collect();
        }
    }
    Some((t, out))
}

/// The spacing of a time column (s) when every step is the same and positive.
fn uniform_step_s(t: &[f64]) -> Option<f64> {
    let step = t.get(1)? - t.first()?;
    let same = t.windows(2).all(|w| ((w[1] - w[0]) - step).abs() <= 1e-9 * step.abs().max(1.0));
    (step > 0.0 && step.is_finite() && same).then_some(step)
}

/// A bin width in words: "minute", "15 min", "30 s", "hour", "2 h".
fn bin_words(s: f64) -> String {
    match s {
        60.0 => "minute".into(),
        3600.0 => "hour".into(),
        s if s >= 3600.0 && (s / 3600.0).fract() == 0.0 => format!("{} h", s / 3600.0),
        s if s >= 60.0 && (s / 60.0).fract() == 0.0 => format!("{} min", s / 60.0),
        s => format!("{} s", tick(&s)),
    }
}

/// The LMUs worth a look when none are chosen, at most [`AUTO_LMUS`]: the one that saw the lowest phase
/// voltage while supplied (above 0.5 p.u.), the one that carried the highest phase current, and one that lost
/// supply (below 0.5 p.u.) if any did; the lowest ids fill the rest.
fn auto_lmus(ids: &[Option<u32>], v: &[Vec<f64>; 3], i: &[Vec<f64>; 3]) -> Vec<u32> {
    use std::collections::BTreeMap;
    let (mut v_min, mut i_max, mut dark) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (r, id) in ids.iter().enumerate() {
        let Some(id) = *id else { continue };
        for c in v {
            let x = c[r];
            if x.is_finite() && x >= 0.5 * 230.0 {
                let e = v_min.entry(id).or_insert(f64::INFINITY);
                *e = x.min(*e);
            } else if x.is_finite() {
                dark.insert(id, ());
            }
        }
        for c in i {
            if c[r].is_finite() {
                let e = i_max.entry(id).or_insert(f64::NEG_INFINITY);
                *e = c[r].max(*e);
            }
        }
    }
    let best = |m: &BTreeMap<u32, f64>, lowest: bool| {
        m.iter()
            .min_by(|a, b| if lowest { a.1.total_cmp(b.1) } else { b.1.total_cmp(a.1) }.then(a.0.cmp(b.0)))
            .map(|(id, _)| *id)
    };
    let mut out: Vec<u32> = Vec::new();
    let all: Vec<u32> = {
        let mut a: Vec<u32> = ids.iter().flatten().copied().collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    let picks = [best(&v_min, true), best(&i_max, false), dark.keys().next().copied()];
    for id in picks.into_iter().flatten().chain(all) {
        if out.len() == AUTO_LMUS {
            break;
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Per-LMU figures from `readings.csv` (one row per reading the cloud stored): phase voltages in p.u. of
/// 230 V against the EN 50160 limits, phase currents (A) and active power (kW), over the time each reading
/// was taken.
fn lmu_series(ctx: &Context, csv: &Csv, chosen: &[u32]) -> Result<Vec<(u32, SeriesFig)>, String> {
    let col = |name: &str| csv.col(name).ok_or_else(|| format!("readings.csv has no column `{name}`"));
    let (id_c, t_c) = (col("lmu_id")?, col("taken_at_s")?);
    let v_c = [col("v_a_v")?, col("v_b_v")?, col("v_c_v")?];
    let i_c = [col("i_a_a")?, col("i_b_a")?, col("i_c_a")?];
    let p_c = col("p_w")?;
    let ids: Vec<Option<u32>> = csv.text(id_c).iter().map(|t| t.parse().ok()).collect();
    let num = |c: usize| csv.nums(c);
    let (t, v, i, p) = (num(t_c), v_c.map(num), i_c.map(num), num(p_c));
    let mut lmus: Vec<u32> = chosen.to_vec();
    if lmus.is_empty() {
        lmus = auto_lmus(&ids, &v, &i);
    }
    let mut figs = Vec::new();
    for id in lmus {
        let rows: Vec<usize> = (0..ids.len()).filter(|&r| ids[r] == Some(id)).collect();
        if rows.is_empty() {
            return Err(format!("readings.csv has no readings of LMU {id}"));
        }
        let pick = |c: &Vec<f64>, scale: f64| rows.iter().map(|&r| c[r] * scale).collect::<Vec<f64>>();
        let phases = ["A", "B", "C"];
        let volts = (0..3).map(|k| (format!("phase-{} voltage", phases[k]), pick(&v[k], 1.0 / 230.0))).collect();
        let amps = (0..3).map(|k| (format!("phase-{} current", phases[k]), pick(&i[k], 1.0))).collect();
        let groups = vec![
            ("p.u.".to_string(), "voltage (of 230 V)".to_string(), volts),
            ("A".to_string(), "current".to_string(), amps),
            ("kW".to_string(), "active power".to_string(), vec![("active power".to_string(), pick(&p, 1e-3))]),
        ];
        let title = ctx.title(&format!("Readings of LMU {id}"));
        figs.push((id, SeriesFig { title, t_h: pick(&t, 1.0 / 3600.0), groups, en50160: true }));
    }
    Ok(figs)
}

/// Draws a polyline clipped to the chart, dropping points that land on the same pixel as the one before
/// (the bitmap backend's thick-line code turns a zero-length segment into a stroke across the whole image).
fn draw_line<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    pts: &[(f64, f64)],
    x: (f64, f64),
    y: (f64, f64),
    style: ShapeStyle,
) -> R {
    for piece in clip_polyline(pts, x, y) {
        // Also split where the line turns back by more than 90 degrees: the bitmap backend joins thick
        // segments with mitres, and a mitre at a reversal (a spike down and back up) reaches far out.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        let mut px_run: Vec<(i32, i32)> = Vec::new();
        for p in piece {
            let px = chart.backend_coord(&p);
            if px_run.last() == Some(&px) {
                continue;
            }
            if px_run.len() >= 2 {
                let (a, b) = (px_run[px_run.len() - 2], px_run[px_run.len() - 1]);
                let (d1, d2) = ((b.0 - a.0, b.1 - a.1), (px.0 - b.0, px.1 - b.1));
                if (d1.0 as i64) * (d2.0 as i64) + (d1.1 as i64) * (d2.1 as i64) < 0 {
                    let vertex = *runs.last().and_then(|r| r.last()).unwrap_or(&p);
                    runs.push(vec![vertex]);
                    px_run = vec![b];
                }
            }
            px_run.push(px);
            if let Some(r) = runs.last_mut() {
                r.push(p);
            }
        }
        for run in runs.into_iter().filter(|r| r.len() >= 2) {
            chart.draw_series(std::iter::once(PathElement::new(run, style))).map_err(pe)?;
        }
    }
    Ok(())
}

fn draw_series<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, s: &SeriesFig) -> R {
    // One panel per unit (at most three), stacked over a shared time axis: one quantity per axis.
    let groups: Vec<&Group> = s.groups.iter().take(3).collect();
    let n_entries: usize = groups.iter().map(|g| g.2.len()).sum::<usize>() + usize::from(s.en50160);
    let (area, legend) = layout(&root, &s.title, if n_entries > 1 { 1 + (n_entries as u32 / 4) } else { 0 })?;
    let (t0, t1) = finite_range(s.t_h.iter().copied()).unwrap_or((0.0, 1.0));
    let t1 = if t1 > t0 { t1 } else { t0 + 1.0 };
    let panels = area.split_evenly((groups.len().max(1), 1));
    let mut entries = Vec::new();
    if s.en50160 {
        entries.push(Entry {
            label: "EN 50160 limits (±10 %)".into(),
            colour: LIMIT,
            line: true,
            dashed: true,
            marker: Marker::Dot,
        });
    }
    let mut k = 0usize;
    for (gi, (g, panel)) in groups.iter().zip(panels.iter()).enumerate() {
        let last = gi + 1 == groups.len();
        let mut r = finite_range(g.2.iter().flat_map(|c| c.1.iter().copied())).unwrap_or((0.0, 1.0));
        let lim = s.en50160 && g.0 == "p.u.";
        if lim {
            r = (r.0.min(0.88), r.1.max(1.12));
        }
        // A ratio that never passes 1 (delivery) reads against its ceiling, with at least 5 % below it.
        if g.0 == "ratio" && r.1 <= 1.0 {
            r = (r.0.min(0.95), 1.0);
        }
        let y = padded(r);
        // Stacked panels: the quantity as the panel's caption, the unit on its axis (long axis titles would
        // overlap in short panels).
        let stacked = groups.len() > 1;
        let mut builder = ChartBuilder::on(panel);
        if stacked {
            builder.caption(&g.1, (FONT_NAME, 15));
        }
        let mut chart = builder
            .margin(10)
            .x_label_area_size(if last { 45 } else { 8 })
            .y_label_area_size(90)
            .build_cartesian_2d(t0..t1, y.0..y.1)
            .map_err(pe)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(if stacked { g.0.clone() } else { format!("{} ({})", g.1, g.0) })
            .y_label_formatter(&tick)
            .axis_desc_style((FONT_NAME, 15))
            .label_style((FONT_NAME, 13))
            // Fewer labels on shorter panels so that they never overlap.
            .y_labels(match groups.len() {
                1 => 10,
                2 => 6,
                _ => 4,
            })
            .light_line_style(RGBColor(235, 235, 235));
        if last {
            mesh.x_desc("time since start (h)").x_label_formatter(&tick);
        } else {
            mesh.x_label_formatter(&|_| String::new());
        }
        mesh.draw().map_err(pe)?;
        if lim {
            for l in [0.9, 1.1] {
                dashed_hline(&mut chart, (t0, t1), l, LIMIT)?;
            }
        }
        for (label, vals) in &g.2 {
            let colour = COLOURS[k % COLOURS.len()];
            k += 1;
            let pts: Vec<(f64, f64)> = s.t_h.iter().copied().zip(vals.iter().copied()).collect();
            draw_line(&mut chart, &pts, (t0, t1), y, colour.stroke_width(2))?;
            entries.push(Entry { label: label.clone(), colour, line: true, dashed: false, marker: Marker::Dot });
        }
    }
    if n_entries > 1 {
        draw_legend(&legend, &entries)?;
    }
    root.present().map_err(pe)
}

// ---------------------------------------------------------------------------------------------------------
// Voltage profile along the feeder.

fn draw_voltage_profile<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &(Context, Csv)) -> R {
    let (ctx, csv) = d;
    let (area, legend) = layout(&root, &ctx.title("Voltage profile along the feeder"), 1)?;
    let (Some(cd), Some(clo), Some(chi)) = (csv.col("distance_m"), csv.col("v_min_pu"), csv.col("v_max_pu")) else {
        return Err("grid_buses.csv lacks distance_m, v_min_pu or v_max_pu".into());
    };
    let dist: Vec<f64> = csv.nums(cd).iter().map(|m| m / 1000.0).collect();
    let (lo, hi) = (csv.nums(clo), csv.nums(chi));
    let x = padded(finite_range(dist.iter().copied()).unwrap_or((0.0, 1.0)));
    let x = (x.0.min(0.0), x.1);
    let yr = finite_range(lo.iter().chain(hi.iter()).copied()).unwrap_or((0.9, 1.1));
    let y = padded((yr.0.min(0.88), yr.1.max(1.12)));
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("distance from the transformer along the lines (km)")
        .y_desc("bus voltage (p.u.)")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style((FONT_NAME, 16))
        .label_style((FONT_NAME, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    for lim in [0.9, 1.1] {
        dashed_hline(&mut chart, x, lim, LIMIT)?;
    }
    // A bar from lowest to highest per bus, with markers at both ends.
    let n = dist.len();
    chart
        .draw_series(
            (0..n)
                .filter(|&i| dist[i].is_finite() && lo[i].is_finite() && hi[i].is_finite())
                .map(|i| PathElement::new(vec![(dist[i], lo[i]), (dist[i], hi[i])], GREY.stroke_width(2))),
        )
        .map_err(pe)?;
    chart
        .draw_series(
            (0..n)
                .filter(|&i| dist[i].is_finite() && lo[i].is_finite())
                .map(|i| Circle::new((dist[i], lo[i]), 4, COLOURS[0].filled())),
        )
        .map_err(pe)?;
    chart
        .draw_series(
            (0..n)
                .filter(|&i| dist[i].is_finite() && hi[i].is_finite())
                .map(|i| Circle::new((dist[i], hi[i]), 4, COLOURS[1].filled())),
        )
        .map_err(pe)?;
    draw_legend(
        &legend,
        &[
            Entry {
                label: "lowest voltage over the run".into(),
                colour: COLOURS[0],
                line: false,
                dashed: false,
                marker: Marker::Dot,
            },
            Entry {
                label: "highest voltage over the run".into(),
                colour: COLOURS[1],
                line: false,
                dashed: false,
                marker: Marker::Dot,
            },
            Entry {
                label: "EN 50160 limits (±10 %)".into(),
                colour: LIMIT,
                line: true,
                dashed: true,
                marker: Marker::Dot,
            },
        ],
    )?;
    root.present().map_err(pe)
}

// ---------------------------------------------------------------------------------------------------------
// Mesh map.

/// Sites, links and routes to draw.
pub struct MeshMap {
    pub title: String,
    /// (x_m, y_m, kind): 0 LMU/site, 1 gateway/coordinator, 2 failed, 3 relay (planned).
    pub nodes: Vec<(f64, f64, u8)>,
    /// Hops to the gateway or coordinator per node, in the order of `nodes` (NaN: unknown or none). A map of
    /// more than [`BIG_MAP_NODES`] nodes shows them by area instead of drawing every route.
    pub hops: Vec<f64>,
    /// The title of the map drawn by area (above [`BIG_MAP_NODES`] nodes).
    pub area_title: String,
    /// Route or link segments with a quality class: 0 good, 1 fair, 2 poor.
    pub links: Vec<Segment>,
    /// What the links are ("route to the gateway" or "radio link").
    pub link_kind: &'static str,
    pub quality_names: [&'static str; 3],
}

impl MeshMap {
    /// From a run's `mesh_nodes.csv`: each node's route to its parent, classed by the link's ETX.
    pub fn from_mesh_nodes(ctx: &Context, csv: &Csv) -> Option<MeshMap> {
        let (cid, cx, cy) = (csv.col("id")?, csv.col("x_m")?, csv.col("y_m")?);
        let (cc, ca, cp, ce) =
            (csv.col("coordinator")?, csv.col("alive")?, csv.col("parent")?, csv.col("parent_link_etx"));
        let ids = csv.nums(cid);
        let (xs, ys) = (csv.nums(cx), csv.nums(cy));
        let coord = csv.text(cc);
        let alive = csv.text(ca);
        let parent = csv.nums(cp);
        let etx = ce.map(|c| csv.nums(c)).unwrap_or_default();
        // Mean hops of the node's delivered reports (the last report's when the mean is absent).
        let hops = csv.col("hops_mean").or_else(|| csv.col("hops_last")).map(|c| csv.nums(c)).unwrap_or_default();
        let mut by_id: Vec<(u64, usize)> = ids.iter().enumerate().map(|(i, v)| (*v as u64, i)).collect();
        by_id.sort_unstable();
        let find = |id: f64| by_id.binary_search_by_key(&(id as u64), |e| e.0).ok().map(|k| by_id[k].1);
        let nodes: Vec<(f64, f64, u8)> = (0..ids.len())
            .map(|i| {
                (
                    xs[i],
                    ys[i],
                    if coord[i] == "true" {
                        1
                    } else if alive[i] == "false" {
                        2
                    } else {
                        0
                    },
                )
            })
            .collect();
        let mut links = Vec::new();
        for i in 0..ids.len() {
            if !parent[i].is_finite() || alive[i] == "false" {
                continue;
            }
            if let Some(j) = find(parent[i]) {
                let e = etx.get(i).copied().unwrap_or(f64::NAN);
                let q = if e.is_finite() { tier(e, 1.5, 3.0) } else { 0 };
                links.push(((xs[i], ys[i]), (xs[j], ys[j]), q));
            }
        }
        Some(MeshMap {
            title: ctx.title("Mesh map: routes at the end of the run"),
            area_title: ctx.title(&format!(
                "Mesh map: hops of delivered reports, mean per {} m square",
                hop_cell_m(&nodes).round()
            )),
            nodes,
            hops,
            links,
            link_kind: "route",
            quality_names: ["route, ETX ≤ 1.5", "route, ETX 1.5-3", "route, ETX > 3"],
        })
    }

    /// From a plan's `plan_sites.csv`, `plan_links.csv` and `plan_relays.csv`: links classed by distance.
    pub fn from_plan(ctx: &Context, dir: &Path) -> Option<MeshMap> {
        let sites = Csv::read(&dir.join("plan_sites.csv"))?;
        let links = Csv::read(&dir.join("plan_links.csv"))?;
        let relays = Csv::read(&dir.join("plan_relays.csv"));
        let (ci, cx, cy, cn) = (sites.col("id")?, sites.col("x_m")?, sites.col("y_m")?, sites.col("node_id")?);
        let ids = sites.text(ci);
        let (xs, ys) = (sites.nums(cx), sites.nums(cy));
        let node = sites.nums(cn);
        let hops = sites.col("hops").map(|c| sites.nums(c)).unwrap_or_default();
        let mut by_id: Vec<(&str, usize)> = ids.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
        by_id.sort_unstable();
        let find = |id: &str| by_id.binary_search_by_key(&id, |e| e.0).ok().map(|k| by_id[k].1);
        let range = ctx.summary.get("range_m").and_then(Value::as_f64).unwrap_or(750.0);
        let mut nodes: Vec<(f64, f64, u8)> = (0..ids.len())
            .map(|i| {
                (
                    xs[i],
                    ys[i],
                    if node[i] == 1.0 {
                        1
                    } else if hops.get(i).is_some_and(|h| h.is_nan()) {
                        2
                    } else {
                        0
                    },
                )
            })
            .collect();
        if let Some(r) = relays
            && let (Some(rx), Some(ry)) = (r.col("x_m"), r.col("y_m"))
        {
            nodes.extend(r.nums(rx).into_iter().zip(r.nums(ry)).map(|(x, y)| (x, y, 3)));
        }
        let mut hops = hops;
        hops.resize(nodes.len(), f64::NAN);
        let (la, lb, ld) = (links.col("a")?, links.col("b")?, links.col("distance_m")?);
        let d = links.nums(ld);
        let mut segs = Vec::new();
        for (k, row) in links.rows.iter().enumerate() {
            if let (Some(i), Some(j)) = (find(&row[la]), find(&row[lb])) {
                let q = tier(d[k], 0.5 * range, 0.8 * range);
                segs.push(((xs[i], ys[i]), (xs[j], ys[j]), q));
            }
        }
        Some(MeshMap {
            title: ctx.title("Planned mesh: sites, radio links and proposed relays"),
            area_title: ctx.title(&format!(
                "Planned mesh: hops to the gateway, mean per {} m square{}",
                hop_cell_m(&nodes).round(),
                if nodes.iter().any(|n| n.2 == 3) { ", and proposed relays" } else { "" }
            )),
            nodes,
            hops,
            links: segs,
            link_kind: "link",
            quality_names: ["link ≤ half range", "link ≤ 0.8 range", "link > 0.8 range (weak)"],
        })
    }
}

fn draw_mesh_map<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, m: &MeshMap) -> R {
    let by_area = m.nodes.len() > BIG_MAP_NODES;
    let (area, legend) = layout(&root, if by_area { &m.area_title } else { &m.title }, 2)?;
    let xr = finite_range(m.nodes.iter().map(|n| n.0)).unwrap_or((0.0, 1.0));
    let yr = finite_range(m.nodes.iter().map(|n| n.1)).unwrap_or((0.0, 1.0));
    // Equal scale on both axes: widen the narrower range to the chart's aspect ratio.
    let (w, h) = area.dim_in_pixel();
    let aspect = (w.saturating_sub(110)) as f64 / (h.saturating_sub(70)).max(1) as f64;
    let (mut x, mut y) = (padded(xr), padded(yr));
    let (dx, dy) = (x.1 - x.0, y.1 - y.0);
    if dx / dy < aspect {
        let c = (x.0 + x.1) / 2.0;
        x = (c - dy * aspect / 2.0, c + dy * aspect / 2.0);
    } else {
        let c = (y.0 + y.1) / 2.0;
        y = (c - dx / aspect / 2.0, c + dx / aspect / 2.0);
    }
    let km = x.1 - x.0 > 5000.0;
    let s = if km { 1e-3 } else { 1.0 };
    let unit = if km { "km" } else { "m" };
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0 * s..x.1 * s, y.0 * s..y.1 * s)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc(format!("east ({unit})"))
        .y_desc(format!("north ({unit})"))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style((FONT_NAME, 16))
        .label_style((FONT_NAME, 14))
        .disable_mesh()
        .draw()
        .map_err(pe)?;
    if by_area {
        let entries = draw_hop_cells(&mut chart, m, xr, yr, s)?;
        draw_legend(&legend, &entries)?;
        return root.present().map_err(pe);
    }
    let qc = [RGBColor(44, 160, 44), RGBColor(230, 160, 20), RGBColor(214, 39, 40)];
    let big = m.nodes.len() > 2000;
    for q in 0..3u8 {
        chart
            .draw_series(m.links.iter().filter(|l| l.2 == q).map(|l| {
                PathElement::new(
                    vec![(l.0.0 * s, l.0.1 * s), (l.1.0 * s, l.1.1 * s)],
                    qc[q as usize].mix(if big { 0.5 } else { 0.8 }).stroke_width(1),
                )
            }))
            .map_err(pe)?;
    }
    let (r0, r1) = if big { (1, 2) } else { (3, 4) };
    chart
        .draw_series(
            m.nodes.iter().filter(|n| n.2 == 0).map(|n| Circle::new((n.0 * s, n.1 * s), r0, COLOURS[0].filled())),
        )
        .map_err(pe)?;
    chart
        .draw_series(
            m.nodes
                .iter()
                .filter(|n| n.2 == 3)
                .map(|n| TriangleMarker::new((n.0 * s, n.1 * s), 6, COLOURS[4].filled())),
        )
        .map_err(pe)?;
    chart
        .draw_series(
            m.nodes.iter().filter(|n| n.2 == 2).map(|n| Cross::new((n.0 * s, n.1 * s), r1 + 2, BLACK.stroke_width(2))),
        )
        .map_err(pe)?;
    chart
        .draw_series(
            m.nodes
                .iter()
                .filter(|n| n.2 == 1)
                .map(|n| Rectangle::new([(n.0 * s, n.1 * s), (n.0 * s, n.1 * s)], BLACK)),
        )
        .map_err(pe)?;
    chart
        .draw_series(m.nodes.iter().filter(|n| n.2 == 1).map(|n| Circle::new((n.0 * s, n.1 * s), 8, BLACK.filled())))
        .map_err(pe)?;
    let mut entries = vec![
        Entry {
            label: if m.link_kind == "route" { "LMU".into() } else { "site".into() },
            colour: COLOURS[0],
            line: false,
            dashed: false,
            marker: Marker::Dot,
        },
        Entry { label: "gateway / coordinator".into(), colour: BLACK, line: false, dashed: false, marker: Marker::Dot },
    ];
    if m.nodes.iter().any(|n| n.2 == 2) {
        entries.push(Entry {
            label: if m.link_kind == "route" { "failed node (×)".into() } else { "unreachable site (×)".into() },
            colour: BLACK,
            line: false,
            dashed: false,
            marker: Marker::Cross,
        });
    }
    entries.extend(relay_entry(m));
    for (name, colour) in m.quality_names.iter().zip(qc) {
        entries.push(Entry { label: (*name).into(), colour, line: true, dashed: false, marker: Marker::Dot });
    }
    draw_legend(&legend, &entries)?;
    root.present().map_err(pe)
}

/// Above this many nodes a map shows hops by area instead of every node and route: a city's 100,000 routes
/// and markers would cover the chart in one blot (a 30 km square is about 400 px wide, four LMUs a pixel).
pub const BIG_MAP_NODES: usize = 5_000;

/// Cells across the longer side of a big map: about 3 px each on the default chart, a few LMUs each at
/// street-light spacing.
const HOP_CELLS_ACROSS: usize = 120;

/// The side of a big map's cells for these nodes, m: [`HOP_CELLS_ACROSS`] to the longer side, but no
/// smaller than twice the nodes' mean spacing, so that a cell holds about four of them and a district's map
/// is not a checkerboard of empty cells.
fn hop_cell_m(nodes: &[(f64, f64, u8)]) -> f64 {
    let xr = finite_range(nodes.iter().map(|n| n.0)).unwrap_or((0.0, 1.0));
    let yr = finite_range(nodes.iter().map(|n| n.1)).unwrap_or((0.0, 1.0));
    let (w, h) = ((xr.1 - xr.0).max(0.0), (yr.1 - yr.0).max(0.0));
    let spacing = (w.max(1e-9) * h.max(w / HOP_CELLS_ACROSS as f64).max(1e-9) / nodes.len().max(1) as f64).sqrt();
    (w.max(h).max(1e-9) / HOP_CELLS_ACROSS as f64).max(2.0 * spacing)
}

/// A big map's nodes binned into square cells: the mean hops of the nodes with a known count, per cell.
#[derive(Debug, PartialEq)]
pub struct HopCells {
    pub x0_m: f64,
    pub y0_m: f64,
    pub cell_m: f64,
    pub nx: usize,
    pub ny: usize,
    /// Row-major (`y * nx + x`): mean hops, NaN for a cell whose LMUs or sites have no hop count.
    pub mean_hops: Vec<f64>,
    /// Row-major: LMUs or sites (kind 0) in the cell, with or without a hop count.
    pub nodes: Vec<u32>,
}

impl HopCells {
    /// Bins the LMUs or sites (kind 0) of `nodes` over the box `x` x `y` (m) in square cells of `cell_m`
    /// (at most [`HOP_CELLS_ACROSS`] to a side). Nodes outside the box or without a finite position are left out.
    pub fn bin(nodes: &[(f64, f64, u8)], hops: &[f64], x: (f64, f64), y: (f64, f64), cell_m: f64) -> HopCells {
        let span = (x.1 - x.0).max(y.1 - y.0).max(1e-9);
        let cell_m = cell_m.max(span / HOP_CELLS_ACROSS as f64);
        let nx = (((x.1 - x.0) / cell_m).ceil() as usize).clamp(1, HOP_CELLS_ACROSS);
        let ny = (((y.1 - y.0) / cell_m).ceil() as usize).clamp(1, HOP_CELLS_ACROSS);
        let mut sum = vec![0.0f64; nx * ny];
        let mut known = vec![0u32; nx * ny];
        let mut count = vec![0u32; nx * ny];
        for (k, n) in nodes.iter().enumerate() {
            if n.2 != 0 || !(n.0.is_finite() && n.1.is_finite()) {
                continue;
            }
            if n.0 < x.0 || n.0 > x.1 || n.1 < y.0 || n.1 > y.1 {
                continue;
            }
            let (fx, fy) = ((n.0 - x.0) / cell_m, (n.1 - y.0) / cell_m);
            let c = (fy as usize).min(ny - 1) * nx + (fx as usize).min(nx - 1);
            count[c] += 1;
            if let Some(&h) = hops.get(k)
                && h.is_finite()
            {
                sum[c] += h;
                known[c] += 1;
            }
        }
        let mean_hops = sum.iter().zip(&known).map(|(s, &k)| if k > 0 { s / k as f64 } else { f64::NAN }).collect();
        HopCells { x0_m: x.0, y0_m: y.0, cell_m, nx, ny, mean_hops, nodes: count }
    }
}

/// Ticks of the hop scale from 1 to at least `hi`: every whole hop up to seven, else five evenly spaced whole
/// numbers (the scale then ends at the last).
fn hop_ticks(hi: f64) -> Vec<f64> {
    let top = hi.ceil().max(2.0);
    if top <= 7.0 {
        (1..=top as u32).map(f64::from).collect()
    } else {
        let step = ((top - 1.0) / 4.0).ceil();
        (0..5).map(|k| 1.0 + step * k as f64).collect()
    }
}

/// Draws a big map: cells coloured by mean hops, nodes without a hop count grey, failed nodes as small red
/// crosses, coordinators (or gateways) and proposed relays on top. Returns the legend's entries.
fn draw_hop_cells<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    m: &MeshMap,
    xr: (f64, f64),
    yr: (f64, f64),
    s: f64,
) -> Result<Vec<Entry>, String> {
    let cells = HopCells::bin(&m.nodes, &m.hops, xr, yr, hop_cell_m(&m.nodes));
    let hi = finite_range(cells.mean_hops.iter().copied()).map_or(2.0, |r| r.1);
    let ticks = hop_ticks(hi);
    let top = ticks.last().copied().unwrap_or(2.0);
    let colour = |h: f64| heat_colour((h - 1.0) / (top - 1.0).max(1e-9));
    let no_hops = RGBColor(200, 200, 200);
    let mut any_unknown = false;
    let mut rects = Vec::new();
    for cy in 0..cells.ny {
        for cx in 0..cells.nx {
            let c = cy * cells.nx + cx;
            if cells.nodes[c] == 0 {
                continue;
            }
            let h = cells.mean_hops[c];
            any_unknown |= !h.is_finite();
            let fill = if h.is_finite() { colour(h) } else { no_hops };
            let (x0, y0) = (cells.x0_m + cx as f64 * cells.cell_m, cells.y0_m + cy as f64 * cells.cell_m);
            rects.push(Rectangle::new(
                [(x0 * s, y0 * s), ((x0 + cells.cell_m) * s, (y0 + cells.cell_m) * s)],
                fill.filled(),
            ));
        }
    }
    chart.draw_series(rects).map_err(pe)?;
    let failed = RGBColor(214, 39, 40);
    chart
        .draw_series(
            m.nodes.iter().filter(|n| n.2 == 2).map(|n| Cross::new((n.0 * s, n.1 * s), 2, failed.stroke_width(1))),
        )
        .map_err(pe)?;
    chart
        .draw_series(
            m.nodes
                .iter()
                .filter(|n| n.2 == 3)
                .map(|n| TriangleMarker::new((n.0 * s, n.1 * s), 4, COLOURS[4].filled())),
        )
        .map_err(pe)?;
    for (r, c) in [(4, BLACK), (2, WHITE)] {
        chart
            .draw_series(m.nodes.iter().filter(|n| n.2 == 1).map(|n| Circle::new((n.0 * s, n.1 * s), r, c.filled())))
            .map_err(pe)?;
    }
    let what = if m.link_kind == "route" { "mean hops of delivered reports" } else { "hops to the gateway" };
    let mut entries: Vec<Entry> = ticks
        .iter()
        .enumerate()
        .map(|(k, &t)| Entry {
            label: if k == 0 { format!("{what}: {}", tick(&t)) } else { tick(&t) },
            colour: colour(t),
            line: false,
            dashed: false,
            marker: Marker::Dot,
        })
        .collect();
    if any_unknown {
        let label = if m.link_kind == "route" { "no report delivered" } else { "unreachable" };
        entries.push(Entry { label: label.into(), colour: no_hops, line: false, dashed: false, marker: Marker::Dot });
    }
    let gw = if m.link_kind == "route" { "coordinator (○)" } else { "gateway (○)" };
    entries.push(Entry { label: gw.into(), colour: BLACK, line: false, dashed: false, marker: Marker::Ring });
    if m.nodes.iter().any(|n| n.2 == 2) {
        let label = if m.link_kind == "route" { "failed node (×)" } else { "unreachable site (×)" };
        entries.push(Entry { label: label.into(), colour: failed, line: false, dashed: false, marker: Marker::Cross });
    }
    entries.extend(relay_entry(m));
    Ok(entries)
}

/// An axis label: the value with no trailing zeros (`6000`, `0.85`, `-2.5`), where plotters would print `6000.0`.
fn tick(v: &f64) -> String {
    let t = format!("{v:.6}");
    let t = if t.contains('.') { t.trim_end_matches('0').trim_end_matches('.') } else { &t };
    if t == "-0" { "0".into() } else { t.into() }
}

// ---------------------------------------------------------------------------------------------------------
// Fault timeline.

fn draw_fault_timeline<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &(Context, Csv)) -> R {
    let (ctx, csv) = d;
    let (area, legend) = layout(&root, &ctx.title("Fault timeline: time after onset of each step"), 1)?;
    let get =
        |name: &str, scale: f64| csv.col(name).map(|c| csv.nums(c).iter().map(|v| v * scale).collect::<Vec<f64>>());
    let steps: Vec<(&str, Vec<f64>)> = [
        ("detection", get("detection_ms", 1e-3)),
        ("trip", get("trip_ms", 1e-3)),
        ("isolation", get("isolation_s", 1.0)),
        ("restoration", get("restore_s", 1.0)),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n, v)))
    .collect();
    let n = csv.rows.len();
    let labels: Vec<String> = (0..n)
        .map(|i| {
            let g = |c: &str| csv.col(c).map(|k| csv.rows[i][k].clone()).unwrap_or_default();
            format!("{} on line {} at {} s", g("kind"), g("line"), g("onset_s"))
        })
        .collect();
    let all = steps.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = finite_range(all).unwrap_or((1e-3, 1.0));
    let x = (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()).max(10f64.powf(lo.log10().floor()) * 10.0));
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(230)
        .build_cartesian_2d((x.0..x.1).log_scale(), -0.6f64..(n as f64 - 0.4))
        .map_err(pe)?;
    let lab = labels.clone();
    chart
        .configure_mesh()
        .x_desc("time after fault onset (s, log scale)")
        .y_desc("fault")
        .axis_desc_style((FONT_NAME, 16))
        .label_style((FONT_NAME, 13))
        .y_labels(n.max(1))
        .disable_y_mesh()
        .y_label_formatter(&move |v: &f64| category_label(&lab, *v))
        .x_label_formatter(&|v: &f64| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v}") })
        .draw()
        .map_err(pe)?;
    let mut entries = Vec::new();
    for i in 0..n {
        let pts: Vec<(f64, f64)> =
            steps.iter().map(|s| s.1[i]).filter(|v| v.is_finite() && *v > 0.0).map(|v| (v, i as f64)).collect();
        if pts.len() >= 2 {
            chart
                .draw_series(std::iter::once(PathElement::new(vec![pts[0], pts[pts.len() - 1]], GREY.stroke_width(2))))
                .map_err(pe)?;
        }
    }
    for (k, (name, vals)) in steps.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        for i in (0..n).filter(|&i| vals[i].is_finite() && vals[i] > 0.0) {
            chart.draw_series(std::iter::once(Circle::new((vals[i], i as f64), 7, colour.filled()))).map_err(pe)?;
            // The value beside the marker, alternately above and below the row so neighbours do not collide.
            let txt = if vals[i] < 1.0 { format!("{:.0} ms", vals[i] * 1e3) } else { format!("{:.2} s", vals[i]) };
            let dy = if k % 2 == 0 { 0.12 } else { -0.06 };
            chart
                .draw_series(std::iter::once(Text::new(
                    txt,
                    (vals[i], i as f64 + dy),
                    (FONT_NAME, 13).into_font().color(&colour),
                )))
                .map_err(pe)?;
        }
        entries.push(Entry { label: (*name).to_string(), colour, line: false, dashed: false, marker: Marker::Dot });
    }
    let never: Vec<&str> = steps.iter().filter(|s| s.1.iter().any(|v| v.is_infinite())).map(|s| s.0).collect();
    if !never.is_empty() {
        entries.push(Entry {
            label: format!("never reached: {}", never.join(", ")),
            colour: GREY,
            line: true,
            dashed: true,
            marker: Marker::Dot,
        });
    }
    draw_legend(&legend, &entries)?;
    root.present().map_err(pe)
}

// ---------------------------------------------------------------------------------------------------------
// Mesh distributions.

fn histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    vals: &[f64],
    x_desc: &str,
    caption: &str,
    colour: RGBColor,
    fixed: Option<(f64, f64)>,
) -> R {
    let v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
    let (lo, hi) = fixed.unwrap_or_else(|| finite_range(v.iter().copied()).unwrap_or((0.0, 1.0)));
    let (lo, hi) =
        if hi - lo < 1e-9 { (lo - 0.5 * lo.abs().max(0.01), hi + 0.5 * hi.abs().max(0.01)) } else { (lo, hi) };
    let bins = 30usize;
    let w = (hi - lo) / bins as f64;
    let mut count = vec![0u32; bins];
    for x in &v {
        let b = (((x - lo) / w) as usize).min(bins - 1);
        count[b] += 1;
    }
    let top = count.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut builder = ChartBuilder::on(area);
    builder.caption(caption, (FONT_NAME, 16)).margin(10).x_label_area_size(45).y_label_area_size(60);
    let bar = |b: usize, y0: f64| {
        let x0 = lo + b as f64 * w;
        Rectangle::new([(x0, y0), (x0 + w, count[b] as f64)], colour.filled())
    };
    if log_counts(&count) {
        // One bin holds most nodes: on a linear axis the others would be invisible slivers.
        let chart = builder.build_cartesian_2d(lo..hi, (0.8f64..top * 2.0).log_scale()).map_err(pe)?;
        let bars = (0..bins).filter(|&b| count[b] > 0).map(|b| bar(b, 0.8));
        return draw_bars(chart, x_desc, "nodes (count, log scale)", bars);
    }
    let chart = builder.build_cartesian_2d(lo..hi, 0f64..top * 1.1).map_err(pe)?;
    draw_bars(chart, x_desc, "nodes (count)", (0..bins).map(|b| bar(b, 0.0)))
}

/// A histogram's axes (whole counts on the y axis, linear or log) and its bars.
fn draw_bars<DB: DrawingBackend, Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>>(
    mut chart: ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    x_desc: &str,
    y_desc: &str,
    bars: impl Iterator<Item = Rectangle<(f64, f64)>>,
) -> R {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&tick)
        .y_desc(y_desc)
        .y_label_formatter(&|v: &f64| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() })
        .axis_desc_style((FONT_NAME, 15))
        .label_style((FONT_NAME, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    chart.draw_series(bars).map_err(pe)?;
    Ok(())
}

/// Whether a histogram's counts read better on a log axis: one bin holds more than half of at least 100
/// values and another bin is non-empty but under a twentieth of it (a city whose LMUs nearly all deliver
/// every report, and a few hundred that do not).
fn log_counts(count: &[u32]) -> bool {
    let total: u64 = count.iter().map(|&c| c as u64).sum();
    let top = count.iter().copied().max().unwrap_or(0);
    total >= 100 && 2 * top as u64 > total && count.iter().any(|&c| c > 0 && 20 * c < top)
}

fn draw_mesh_distributions<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &(Context, Csv)) -> R {
    let (ctx, csv) = d;
    let (area, _) = layout(&root, &ctx.title("Per-node delivery ratio and latency"), 0)?;
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    let coord = csv.col("coordinator").map(|c| csv.text(c)).unwrap_or_default();
    let keep = |vals: Vec<f64>| -> Vec<f64> {
        vals.into_iter()
            .enumerate()
            .filter(|(i, _)| coord.get(*i).is_none_or(|c| c != "true"))
            .map(|(_, v)| v)
            .collect()
    };
    let pdr = csv.col("pdr").map(|c| keep(csv.nums(c))).unwrap_or_default();
    let lat = csv.col("latency_ms_p50").map(|c| keep(csv.nums(c))).unwrap_or_default();
    let pct: Vec<f64> = pdr.iter().map(|p| p * 100.0).collect();
    // Delivery ratio: bins of 1 % up to 100 %, from at most 70 % (lower when some node delivered less).
    let low = finite_range(pct.iter().copied()).map_or(70.0, |(a, _)| (a.floor() - 1.0).clamp(0.0, 70.0));
    histogram(
        &left,
        &pct,
        "end-to-end delivery ratio per LMU (%)",
        "Delivery ratio",
        COLOURS[0],
        Some((low, 100.0 + 1e-9)),
    )?;
    histogram(&right, &lat, "median end-to-end latency per LMU (ms)", "Latency", COLOURS[1], None)?;
    root.present().map_err(pe)
}

// ---------------------------------------------------------------------------------------------------------
// Reading accounting waterfall.

/// (label, amount) steps from `summary.accounting`: `generated` first, then every `dropped_*` (or entries of a
/// `dropped` object), ending at `stored`.
pub fn accounting_steps(summary: &Value) -> Option<Vec<(String, f64)>> {
    let a = summary.get("accounting")?.as_object()?;
    let generated = a.get("generated")?.as_f64()?;
    let stored = a.get("stored")?.as_f64()?;
    let mut steps = vec![("generated".to_string(), generated)];
    if let Some(Value::Object(d)) = a.get("dropped") {
        for (k, v) in d {
            if let Some(x) = v.as_f64() {
                steps.push((format!("dropped: {}", k.replace('_', " ")), -x));
            }
        }
    }
    for (k, v) in a {
        if let (Some(r), Some(x)) = (k.strip_prefix("dropped_"), v.as_f64()) {
            steps.push((format!("dropped: {}", r.replace('_', " ")), -x));
        }
    }
    steps.push(("stored".to_string(), stored));
    Some(steps)
}

fn draw_waterfall<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &(Context, Vec<(String, f64)>)) -> R {
    let (ctx, steps) = d;
    let (area, _) = layout(&root, &ctx.title("Reading accounting: generated = stored + dropped by reason"), 0)?;
    let n = steps.len();
    let top = steps.first().map_or(1.0, |s| s.1).max(1.0) * 1.08;
    let names: Vec<String> = steps.iter().map(|s| s.0.clone()).collect();
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .y_desc("readings (count)")
        .x_desc("step")
        .axis_desc_style((FONT_NAME, 16))
        .label_style((FONT_NAME, 13))
        .x_labels(n)
        .x_label_formatter(&move |v: &f64| category_label(&names, *v))
        .disable_x_mesh()
        .draw()
        .map_err(pe)?;
    let mut level = 0.0;
    for (i, (name, v)) in steps.iter().enumerate() {
        let (a, b, c) = if i == 0 || i == n - 1 || name == "stored" {
            level = if i == 0 { *v } else { level };
            (0.0, *v, COLOURS[0])
        } else {
            let a = level + v;
            let r = (a, level, COLOURS[3]);
            level = a;
            r
        };
        chart
            .draw_series(std::iter::once(Rectangle::new([(i as f64 - 0.35, a), (i as f64 + 0.35, b)], c.filled())))
            .map_err(pe)?;
    }
    root.present().map_err(pe)
}

// ---------------------------------------------------------------------------------------------------------
// Sweeps.

/// A heatmap of one KPI over two axes (mean over replications).
pub struct Heatmap {
    /// The plan has more axes than the two shown: each cell is the mean over them too.
    pub others: bool,
    pub x_name: String,
    pub y_name: String,
    pub kpi: String,
    pub xs: Vec<String>,
    pub ys: Vec<String>,
    /// `values[y][x]`, NaN where no point.
    pub values: Vec<Vec<f64>>,
}

fn sweep_heatmaps(csv: &Csv, axes: &[String]) -> Vec<Heatmap> {
    let mut axis_cols: Vec<usize> = axes.iter().filter_map(|a| csv.col(a)).collect();
    if axis_cols.is_empty() {
        // Without the plan's axis list: the columns after point, replication and seed whose values are not
        // all numbers, else the first two after them.
        axis_cols = (3..csv.header.len().min(5)).collect();
    }
    if axis_cols.len() < 2 {
        return Vec::new();
    }
    let uniq = |c: usize| {
        let mut v: Vec<String> = Vec::new();
        for r in &csv.rows {
            if !v.contains(&r[c]) {
                v.push(r[c].clone());
            }
        }
        v
    };
    let (cx, cy) = heatmap_axes(csv, &axis_cols);
    let (xs, ys) = (uniq(cx), uniq(cy));
    let others = axis_cols.len() > 2;
    let skip = ["point", "replication", "seed", "digest"];
    let mut out = Vec::new();
    for k in 0..csv.header.len() {
        if axis_cols.contains(&k) || skip.contains(&csv.header[k].as_str()) {
            continue;
        }
        let vals = csv.nums(k);
        let finite = vals.iter().filter(|v| v.is_finite()).count();
        if finite == 0 || finite_range(vals.iter().copied()).is_some_and(|(a, b)| a == b) {
            continue;
        }
        let mut sum = vec![vec![(0.0, 0u32); xs.len()]; ys.len()];
        for (r, v) in csv.rows.iter().zip(&vals) {
            if v.is_finite()
                && let (Some(i), Some(j)) = (xs.iter().position(|x| *x == r[cx]), ys.iter().position(|y| *y == r[cy]))
            {
                sum[j][i].0 += v;
                sum[j][i].1 += 1;
            }
        }
        let values = sum
            .iter()
            .map(|row| row.iter().map(|&(s, n)| if n > 0 { s / n as f64 } else { f64::NAN }).collect())
            .collect();
        out.push(Heatmap {
            others,
            x_name: csv.header[cx].clone(),
            y_name: csv.header[cy].clone(),
            kpi: csv.header[k].clone(),
            xs: xs.clone(),
            ys: ys.clone(),
            values,
        });
        if out.len() >= 6 {
            break;
        }
    }
    out
}

/// The two axes a sweep's heatmaps show (CSV columns, from `axis_cols` in plan order): the first pair of axes
/// that both vary and fill their grid (every combination is a point), so no cell is empty; else the pair that
/// fills the largest share of its grid. Plans whose axes each name their own block (a feeder and the placement
/// made for it) would otherwise show a diagonal of values in a grid of empty cells.
fn heatmap_axes(csv: &Csv, axis_cols: &[usize]) -> (usize, usize) {
    let distinct = |cols: &[usize]| -> usize {
        let keys: std::collections::BTreeSet<Vec<&str>> =
            csv.rows.iter().map(|r| cols.iter().map(|&c| r.get(c).map_or("", String::as_str)).collect()).collect();
        keys.len()
    };
    let counts: Vec<usize> = axis_cols.iter().map(|&c| distinct(&[c])).collect();
    let mut best: Option<(f64, usize, usize)> = None;
    for a in 0..axis_cols.len() {
        for b in a + 1..axis_cols.len() {
            if counts[a] < 2 || counts[b] < 2 {
                continue;
            }
            let fill = distinct(&[axis_cols[a], axis_cols[b]]) as f64 / (counts[a] * counts[b]) as f64;
            if fill >= 1.0 {
                return (axis_cols[a], axis_cols[b]);
            }
            if best.is_none_or(|(f, _, _)| fill > f) {
                best = Some((fill, axis_cols[a], axis_cols[b]));
            }
        }
    }
    best.map_or((axis_cols[0], axis_cols[1]), |(_, x, y)| (x, y))
}

fn heat_colour(t: f64) -> RGBColor {
    // Viridis-like ramp from dark blue through green to yellow.
    let stops =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor((a.0 + (b.0 - a.0) * f) as u8, (a.1 + (b.1 - a.1) * f) as u8, (a.2 + (b.2 - a.2) * f) as u8)
}

fn draw_heatmap<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &(Context, Heatmap)) -> R {
    let (ctx, h) = d;
    let (q, u) = describe(&h.kpi);
    let over = if h.others { "mean over the other axes and replications" } else { "mean over replications" };
    let (area, legend) = layout(&root, &ctx.title(&format!("Sweep: {q} ({u}), {over}")), 1)?;
    let (nx, ny) = (h.xs.len(), h.ys.len());
    // Room for the longest value label of the y axis (about 8 px a character at the label size).
    let y_label_px = h.ys.iter().map(|y| y.chars().count()).max().unwrap_or(0) as u32 * 8 + 40;
    let (lo, hi) = finite_range(h.values.iter().flatten().copied()).unwrap_or((0.0, 1.0));
    let xs = h.xs.clone();
    let ys = h.ys.clone();
    let y_area_px = y_label_px.clamp(90, 320);
    // Labels wider than their cell (about 8 px a character) would run into each other: set them vertically,
    // with room below for the longest one.
    let x_label_px = h.xs.iter().map(|x| x.chars().count()).max().unwrap_or(0) as u32 * 8;
    let vertical = x_labels_turned(&h.xs, area.dim_in_pixel().0.saturating_sub(y_area_px + 24));
    // Turned, a label takes about 7 px a character (the estimate above is generous for the horizontal check).
    let x_area_px = if vertical { (x_label_px * 7 / 8 + 20).clamp(45, 300) } else { 45 };
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(x_area_px)
        .y_label_area_size(y_area_px)
        .build_cartesian_2d(-0.5f64..(nx as f64 - 0.5), -0.5f64..(ny as f64 - 0.5))
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc(h.x_name.replace('_', " "))
        .y_desc(h.y_name.replace('_', " "))
        .axis_desc_style((FONT_NAME, 16))
        .label_style((FONT_NAME, 14))
        .x_labels(nx)
        .y_labels(ny)
        .x_label_formatter(&move |v: &f64| {
            if vertical { String::new() } else { category_label(&xs, *v) }
        })
        .y_label_formatter(&move |v: &f64| category_label(&ys, *v))
        .disable_mesh()
        .draw()
        .map_err(pe)?;
    if vertical {
        // Drawn by hand: the mesh centres its labels on the ticks, which puts half of a turned label inside
        // the plot. Each starts just below its cell and runs down.
        let style = TextStyle::from((FONT_NAME, 14).into_font().transform(FontTransform::Rotate90));
        for (i, x) in h.xs.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, -0.5));
            root.draw(&Text::new(x.clone(), (px + 7, py + 8), style.clone())).map_err(pe)?;
        }
    }
    for j in 0..ny {
        for i in 0..nx {
            let v = h.values[j][i];
            let c = if v.is_finite() {
                heat_colour(if hi > lo { (v - lo) / (hi - lo) } else { 0.5 })
            } else {
                RGBColor(220, 220, 220)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(i as f64 - 0.5, j as f64 - 0.5), (i as f64 + 0.5, j as f64 + 0.5)],
                    c.filled(),
                )))
                .map_err(pe)?;
            if v.is_finite() && nx * ny <= 100 {
                let t = if (v - lo) / (hi - lo).max(1e-300) > 0.6 { BLACK } else { WHITE };
                chart
                    .draw_series(std::iter::once(Text::new(
                        sig(v),
                        (i as f64 - 0.15, j as f64),
                        (FONT_NAME, 14).into_font().color(&t),
                    )))
                    .map_err(pe)?;
            }
        }
    }
    let mut entries: Vec<Entry> = (0..5)
        .map(|k| {
            let t = k as f64 / 4.0;
            Entry {
                label: format!("{} {u}", sig(lo + (hi - lo) * t)),
                colour: heat_colour(t),
                line: false,
                dashed: false,
                marker: Marker::Dot,
            }
        })
        .collect();
    if h.values.iter().flatten().any(|v| !v.is_finite()) {
        entries.push(Entry {
            label: "no point".into(),
            colour: RGBColor(220, 220, 220),
            line: false,
            dashed: false,
            marker: Marker::Dot,
        });
    }
    draw_legend(&legend, &entries)?;
    root.present().map_err(pe)
}

/// Whether a heatmap's x labels are set vertically: the longest (about 8 px a character) is wider than its
/// cell, with `plot_px` pixels shared by the cells.
fn x_labels_turned(labels: &[String], plot_px: u32) -> bool {
    let longest_px = labels.iter().map(|x| x.chars().count()).max().unwrap_or(0) as u32 * 8;
    longest_px + 8 > plot_px / (labels.len().max(1) as u32)
}

fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let d = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.d$}")
}

/// A Pareto front: (cost, reliability) per sweep point and the non-dominated subset (cost lower is better,
/// reliability higher is better).
pub struct Pareto {
    pub cost: String,
    pub reliability: String,
    pub points: Vec<(f64, f64, String)>,
    pub front: Vec<(f64, f64)>,
}

fn pareto(csv: &Csv, spec: &Value) -> Option<Pareto> {
    let cost = spec.get("cost")?.as_str()?.to_string();
    let rel = spec.get("reliability")?.as_str()?.to_string();
    let (cc, cr) = (csv.col(&cost)?, csv.col(&rel)?);
    let label_cols: Vec<usize> = (3..csv.header.len()).filter(|&c| c != cc && c != cr).take(2).collect();
    let (c, r) = (csv.nums(cc), csv.nums(cr));
    let points: Vec<(f64, f64, String)> = (0..c.len())
        .filter(|&i| c[i].is_finite() && r[i].is_finite())
        .map(|i| (c[i], r[i], label_cols.iter().map(|&k| csv.rows[i][k].clone()).collect::<Vec<_>>().join(", ")))
        .collect();
    let mut sorted: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if front.last().is_none_or(|l| p.1 > l.1) {
            front.push(p);
        }
    }
    Some(Pareto { cost, reliability: rel, points, front })
}

fn draw_pareto<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, d: &(Context, Pareto)) -> R {
    let (ctx, p) = d;
    let (qc, uc) = describe(&p.cost);
    let (qr, ur) = describe(&p.reliability);
    let (area, legend) = layout(&root, &ctx.title(&format!("Sweep: {qr} against {qc}")), 1)?;
    let x = padded(finite_range(p.points.iter().map(|q| q.0)).unwrap_or((0.0, 1.0)));
    let y = padded(finite_range(p.points.iter().map(|q| q.1)).unwrap_or((0.0, 1.0)));
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc(format!("{qc} ({uc}), lower is better"))
        .y_desc(format!("{qr} ({ur}), higher is better"))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style((FONT_NAME, 16))
        .label_style((FONT_NAME, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    chart.draw_series(p.points.iter().map(|q| Circle::new((q.0, q.1), 4, COLOURS[0].mix(0.6).filled()))).map_err(pe)?;
    draw_line(&mut chart, &p.front, x, y, COLOURS[3].stroke_width(2))?;
    chart.draw_series(p.front.iter().map(|q| Circle::new(*q, 6, COLOURS[3].filled()))).map_err(pe)?;
    draw_legend(
        &legend,
        &[
            Entry { label: "sweep point".into(), colour: COLOURS[0], line: false, dashed: false, marker: Marker::Dot },
            Entry {
                label: "Pareto front (no point is cheaper and more reliable)".into(),
                colour: COLOURS[3],
                line: true,
                dashed: false,
                marker: Marker::Dot,
            },
        ],
    )?;
    root.present().map_err(pe)
}

/// The legend entry of proposed relays, where the map has any.
fn relay_entry(m: &MeshMap) -> Option<Entry> {
    m.nodes.iter().any(|n| n.2 == 3).then(|| Entry {
        label: "proposed relay (▲)".into(),
        colour: COLOURS[4],
        line: false,
        dashed: false,
        marker: Marker::Triangle,
    })
}

/// 0 up to `first`, 1 up to `second`, 2 above (and for NaN).
fn tier(x: f64, first: f64, second: f64) -> u8 {
    if x <= first {
        0
    } else if x <= second {
        1
    } else {
        2
    }
}

/// The label of category `v` on an axis whose categories sit at 0, 1, 2, ...; empty between them, where
/// the mesh puts intermediate ticks.
fn category_label(names: &[String], v: f64) -> String {
    let k = v.round();
    if (v - k).abs() < 1e-6 && k >= 0.0 { names.get(k as usize).cloned().unwrap_or_default() } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above [`BIG_MAP_NODES`] nodes the map is drawn by area: titled so, a hop scale in the legend, no route
    /// lines, and a file that stays small however many nodes there are.
    #[test]
    fn a_big_map_is_drawn_by_area_with_a_hop_scale() {
        register_font();
        let side = 80;
        let mut nodes: Vec<(f64, f64, u8)> =
            (0..side * side).map(|k| ((k % side) as f64 * 100.0, (k / side) as f64 * 100.0, 0u8)).collect();
        nodes[0].2 = 1;
        nodes[1].2 = 2;
        let hops: Vec<f64> = nodes.iter().map(|n| 1.0 + ((n.0 + n.1) / 1000.0).floor()).collect();
        let links = vec![((0.0, 0.0), (100.0, 0.0), 0u8); nodes.len()];
        let ctx = Context { scenario: "big".into(), seed: Some(1), summary: Value::Null };
        let map = MeshMap {
            title: ctx.title("Mesh map: routes at the end of the run"),
            area_title: ctx.title(&format!("Mesh map: hops, mean per {} m square", hop_cell_m(&nodes).round())),
            nodes,
            hops,
            links,
            link_kind: "route",
            quality_names: ["a", "b", "c"],
        };
        let mut svg = String::new();
        draw_mesh_map(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(), &map).unwrap();
        assert!(svg.contains("Mesh map: hops, mean per 198 m square"), "title");
        assert!(svg.contains("mean hops of delivered reports: 1") && svg.contains("coordinator (○)"));
        assert!(svg.contains("failed node (×)"));
        // Axes, ticks and the failed node's cross are lines; 6,400 routes would be as many more.
        assert!(svg.matches("<polyline").count() < 100, "no route lines");
        assert!(svg.len() < 2_000_000, "{} bytes", svg.len());
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        let t = |v: f64| tick(&v);
        assert_eq!(
            [t(6000.0), t(0.85), t(-2.5), t(-0.0), t(0.1 + 0.2), t(1e-7)],
            ["6000", "0.85", "-2.5", "0", "0.3", "0"]
        );
    }

    #[test]
    fn counts_go_on_a_log_axis_only_when_one_bin_dwarfs_a_visible_other() {
        assert!(log_counts(&[3, 0, 1, 980]));
        assert!(!log_counts(&[3, 0, 1, 80]), "too few values");
        assert!(!log_counts(&[300, 250, 200, 250]), "no bin holds most");
        assert!(!log_counts(&[0, 0, 0, 1000]), "nothing else to see");
    }

    /// Big maps bin LMUs (kind 0) into square cells and average the hop counts they know; coordinators,
    /// failed nodes and nodes outside the box do not count, and a cell whose LMUs know no count is NaN.
    #[test]
    fn hop_cells_average_the_known_counts_of_each_cells_lmus() {
        let nodes = [
            (10.0, 10.0, 0u8),
            (20.0, 30.0, 0),
            (90.0, 10.0, 0),
            (95.0, 95.0, 0),
            (5.0, 5.0, 1),
            (50.0, 50.0, 2),
            (500.0, 5.0, 0),
        ];
        let hops = [2.0, 4.0, f64::NAN, 7.0, 0.0, 9.0, 1.0];
        let c = HopCells::bin(&nodes, &hops, (0.0, 100.0), (0.0, 100.0), 50.0);
        assert_eq!((c.nx, c.ny, c.cell_m), (2, 2, 50.0));
        assert_eq!(c.nodes, [2, 1, 0, 1]);
        assert_eq!(c.mean_hops[0], 3.0);
        assert!(c.mean_hops[1].is_nan() && c.mean_hops[2].is_nan());
        assert_eq!(c.mean_hops[3], 7.0);
        // A flat box (every node on one line) still gets one row of cells.
        let line = HopCells::bin(&nodes[..3], &hops[..3], (0.0, 100.0), (10.0, 10.0), 25.0);
        assert_eq!((line.nx, line.ny, line.nodes.iter().sum::<u32>()), (4, 1, 2));
        // Cells no finer than the longest side allows, and never empty for a regular grid of nodes.
        let grid: Vec<(f64, f64, u8)> =
            (0..10_000).map(|k| ((k % 100) as f64 * 100.0, (k / 100) as f64 * 100.0, 0)).collect();
        assert!((190.0..=200.0).contains(&hop_cell_m(&grid)), "{}", hop_cell_m(&grid));
        let g = HopCells::bin(&grid, &[], (0.0, 9900.0), (0.0, 9900.0), hop_cell_m(&grid));
        assert!(g.nodes.iter().all(|&n| n >= 1), "an empty cell in a regular grid");
        assert_eq!(hop_ticks(4.2), [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(hop_ticks(10.6), [1.0, 4.0, 7.0, 10.0, 13.0]);
        assert_eq!(hop_ticks(6.5).len(), 7);
    }

    /// Axes that each name their own block (a feeder and its placement) leave most of their grid empty; the
    /// heatmaps take the first pair that fills its grid, and the first two axes when none does.
    #[test]
    fn heatmap_x_labels_turn_only_when_wider_than_their_cells() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!x_labels_turned(&names(&["3ph", "2ph", "1ph-e", "open"]), 800));
        assert!(!x_labels_turned(&names(&["kerber_landnetz_freileitung_1", "ieee_european_lv_on_peak_566"]), 800));
        let five = names(&["kerber_vorstadtnetz_kabel_1", "dickert_middle_cohl_multiple_bad", "a", "b", "c"]);
        assert!(x_labels_turned(&five, 800));
        assert!(!x_labels_turned(&[], 800));
    }

    #[test]
    fn heatmaps_take_the_first_pair_of_axes_that_fills_its_grid() {
        let header: Vec<String> =
            ["point", "replication", "seed", "feeder", "placement", "kind", "pv", "trip_ms"].map(String::from).into();
        let mut rows = Vec::new();
        for (f, pl) in [("a", "every"), ("b", "junctions")] {
            for kind in ["open", "3ph"] {
                for pv in ["0", "100"] {
                    let t = if kind == "open" { 300.0 } else { 100.0 } + if f == "b" { 10.0 } else { 0.0 };
                    rows.push(
                        [&rows.len().to_string(), "0", "1", f, pl, kind, pv, &t.to_string()].map(String::from).into(),
                    );
                }
            }
        }
        let csv = Csv { header, rows };
        let axes: Vec<String> = ["feeder", "placement", "kind", "pv"].map(String::from).into();
        let h = sweep_heatmaps(&csv, &axes);
        assert_eq!((h[0].x_name.as_str(), h[0].y_name.as_str()), ("feeder", "kind"));
        assert!(h[0].others && h[0].values.iter().flatten().all(|v| v.is_finite()));
        assert_eq!(h[0].values, vec![vec![300.0, 310.0], vec![100.0, 110.0]]);
        // Two axes only, block-diagonal: shown as they are, empty cells and all.
        let two: Vec<String> = ["feeder", "placement"].map(String::from).into();
        let h = sweep_heatmaps(&csv, &two);
        assert_eq!((h[0].x_name.as_str(), h[0].y_name.as_str(), h[0].others), ("feeder", "placement", false));
        assert!(h[0].values[0][1].is_nan());
    }

    #[test]
    fn clipping_keeps_lines_inside_the_box() {
        let pieces = clip_polyline(&[(0.0, 0.0), (1.0, 10.0), (2.0, 0.0)], (0.0, 2.0), (0.0, 1.0));
        for p in &pieces {
            for &(x, y) in p {
                assert!((0.0..=2.0).contains(&x) && (0.0..=1.0 + 1e-12).contains(&y), "{x},{y}");
            }
        }
        assert_eq!(pieces.len(), 2);
        assert_eq!(clip_polyline(&[(0.0, 0.5), (1.0, f64::NAN), (2.0, 0.5)], (0.0, 2.0), (0.0, 1.0)).len(), 0);
        assert_eq!(
            clip_polyline(&[(0.0, 0.5), (1.0, 0.6), (2.0, 0.5)], (0.0, 2.0), (0.0, 1.0)),
            vec![vec![(0.0, 0.5), (1.0, 0.6), (2.0, 0.5)]]
        );
    }

    /// 14 LMUs reporting every 15 one-minute bins, one report lost: merged into 15-minute bins, every one
    /// holding the 14 reports, and the ratio recomputed from the merged counts; full bins stay as they are.
    #[test]
    fn sparse_delivery_bins_are_merged_and_named_by_their_width() {
        let t: Vec<f64> = (0..90).map(|k| 60.0 * k as f64).collect();
        let sent: Vec<f64> = (0..90).map(|k| if k % 15 == 3 { 14.0 } else { 0.0 }).collect();
        let mut delivered = sent.clone();
        delivered[33] = 13.0;
        let pdr: Vec<f64> = sent.iter().zip(&delivered).map(|(s, d)| if *s > 0.0 { d / s } else { f64::NAN }).collect();
        let cols = vec![("sent".to_string(), sent), ("delivered".to_string(), delivered), ("pdr".to_string(), pdr)];
        let (t2, c2) = coarser_delivery_bins(&t, &cols).expect("sparse bins are merged");
        assert_eq!(t2, vec![0.0, 900.0, 1800.0, 2700.0, 3600.0, 4500.0]);
        assert_eq!(c2[0].1, vec![14.0; 6]);
        assert_eq!(c2[2].1[2], 13.0 / 14.0);
        assert!(c2[2].1.iter().enumerate().all(|(k, p)| k == 2 || *p == 1.0));
        let busy = vec![("sent".to_string(), vec![5.0; 90]), cols[1].clone(), cols[2].clone()];
        assert!(coarser_delivery_bins(&t, &busy).is_none(), "bins that hold reports stay as they are");
        assert_eq!(bin_words(60.0), "minute");
        assert_eq!(bin_words(900.0), "15 min");
        assert_eq!(bin_words(7200.0), "2 h");
        assert_eq!(bin_words(30.0), "30 s");
        assert_eq!(uniform_step_s(&[0.0, 60.0, 120.0]), Some(60.0));
        assert_eq!(uniform_step_s(&[0.0, 60.0, 150.0]), None);
        assert_eq!(uniform_step_s(&[0.0]), None);
    }

    #[test]
    fn units_come_from_column_names() {
        assert_eq!(describe("p_slack_kw").1, "kW");
        assert_eq!(describe("trip_ms"), ("trip".into(), "ms".into()));
        assert_eq!(describe("v_a_mean_v").1, "V");
    }
}

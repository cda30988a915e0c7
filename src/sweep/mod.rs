//! Sweeps: one base scenario run over a grid of field overrides and replications, in parallel.
//!
//! A plan lists one or more blocks; each block is the cartesian product of its axes (an axis overrides the
//! value at a scenario path, like `gateway.uart_baud` or `faults[0].r_ohm`, with RON text). Every point's seed
//! is a pure function of (plan seed, point index, replication); points run on rayon's pool and results are
//! collected in point order, so the CSV is byte-identical whatever the thread count.
//!
//! Sampling (`sampling`): `Grid` (the default: each block's cartesian product), `Random(count: N)` (N points per
//! block, each axis drawn uniformly from its `values` or its `between: (lo, hi)` interval) or
//! `LatinHypercube(count: N)` (N points per block; each axis's range cut into N equal strata, each stratum used
//! once, strata paired across axes by seeded permutations). Draws are pure functions of the plan seed.
//! Scaling out over processes and machines (shards, manifests, resume, merge) lives in [`shard`].

pub mod shard;

pub mod stats;

use crate::engine::derive_seed;
use crate::report::Table;
use crate::scenario::{InputError, Loaded, parse_ron, ron_path};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Most points one plan may expand to.
pub const MAX_POINTS: usize = 1_000_000;

/// A sweep plan (RON).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(rename = "Sweep")]
pub struct Plan {
    /// Name of the study (the CSV is `<name>.csv`).
    pub name: String,
    /// Base scenario, relative to the plan file.
    pub base: String,
    /// Master seed of the sweep; each point's seed derives from it and the point's index.
    pub seed: u64,
    /// Runs per point, each with its own seed.
    #[serde(default = "one")]
    pub replications: u32,
    /// Blocks of axes; the plan's points are the union of each block's cartesian product.
    pub blocks: Vec<Vec<Axis>>,
    /// KPI columns taken from each run's summary.json by path (`mesh.pdr`, `faults.events[0].trip_ms`).
    /// Empty: every scalar at the top two levels of the summary.
    #[serde(default)]
    pub columns: Vec<Column>,
    /// How points are drawn from the axes (default: the full grid).
    #[serde(default)]
    pub sampling: Sampling,
    /// Columns to plot as a Pareto front (cost lower is better, reliability higher is better).
    #[serde(default)]
    pub pareto: Option<ParetoSpec>,
}

/// How a block's axes become points.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub enum Sampling {
    /// The cartesian product of the axes' values.
    #[default]
    Grid,
    /// `count` points per block, each axis drawn independently and uniformly.
    Random { count: u32 },
    /// `count` points per block, Latin-hypercube stratified per axis.
    LatinHypercube { count: u32 },
}

/// The two CSV columns of a Pareto plot.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParetoSpec {
    pub cost: String,
    pub reliability: String,
}

fn one() -> u32 {
    1
}

/// One overridden field and its values (RON text, e.g. `"115200"`, `"\"30s\""`, `"File(\"net.json\")"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub path: String,
    /// CSV column name (default: the path).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
    /// Integer values `start..end` (end excluded), appended to `values`: e.g. every line of a feeder.
    #[serde(default)]
    pub range: Option<(i64, i64)>,
    /// Optional display label per value (same length as `values`), e.g. the feeder's name for a network file.
    #[serde(default)]
    pub labels: Vec<String>,
    /// For `Random` and `LatinHypercube` sampling: draw from this interval instead of `values`.
    #[serde(default)]
    pub between: Option<(f64, f64)>,
    /// Round drawn values to integers.
    #[serde(default)]
    pub integer: bool,
}

/// A KPI column: CSV header and summary path.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    pub path: String,
    /// Text written when the summary has no value there (absent or null), e.g. `"inf"` for an event that
    /// never happened; default empty.
    #[serde(default)]
    pub missing: Option<String>,
}

/// A loaded plan: one scenario per point, all parsed and validated before anything runs.
pub struct Expanded {
    pub plan: Plan,
    pub file: String,
    /// (block, values per axis as labels, scenario) per point.
    pub points: Vec<Point>,
    pub headers: Vec<String>,
}

pub struct Point {
    pub labels: Vec<String>,
    pub loaded: Loaded,
}

/// Reads a plan and expands it into validated scenarios.
pub fn load(path: &Path) -> Result<Expanded, InputError> {
    let file = path.display().to_string();
    let text = crate::scenario::assets::read_text(path).map_err(|e| InputError::file(&file, e, None))?;
    let mut plan: Plan = parse_ron(&file, &text)?;
    let listed: Vec<Vec<usize>> = plan.blocks.iter().map(|b| b.iter().map(|a| a.values.len()).collect()).collect();
    for block in &mut plan.blocks {
        for axis in block.iter_mut() {
            if let Some((a, b)) = axis.range {
                if b.saturating_sub(a) > MAX_POINTS as i64 {
                    return Err(InputError::file(
                        &file,
                        format!("axis `{}`: range {a}..{b} is longer than {MAX_POINTS}", axis.path),
                        None,
                    ));
                }
                axis.values.extend((a..b).map(|v| v.to_string()));
            }
        }
    }
    let at = |p: &str, m: String| {
        let pos = ron_path::parse_path(p).ok().and_then(|s| ron_path::find(&text, &s)).map_or(0, |r| r.start);
        InputError::at(&file, &text, pos, format!("`{p}`: {m}"), None)
    };
    if plan.replications == 0 || plan.replications > 10_000 {
        return Err(at("replications", "must be between 1 and 10000".into()));
    }
    if plan.blocks.is_empty() {
        return Err(at("blocks", "needs at least one block (a list of axes; `[]` for just the base)".into()));
    }
    let base_dir = path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
    let base_path = base_dir.clone().unwrap_or_default().join(&plan.base);
    let base = Loaded::from_file(&base_path)?;
    let mut headers: Vec<String> = Vec::new();
    for (b, block) in plan.blocks.iter().enumerate() {
        for (a, axis) in block.iter().enumerate() {
            let p = format!("blocks[{b}][{a}]");
            if let Some((lo, hi)) = axis.between {
                if plan.sampling == Sampling::Grid {
                    return Err(at(
                        &format!("{p}.between"),
                        "needs `sampling: Random(..)` or `LatinHypercube(..)`; a grid takes `values`".into(),
                    ));
                }
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(at(&format!("{p}.between"), format!("({lo}, {hi}) is not an interval")));
                }
            } else if axis.values.is_empty() {
                return Err(at(&format!("{p}.values"), "needs at least one value (or a non-empty `range`)".into()));
            }
            if !axis.labels.is_empty() && axis.labels.len() != axis.values.len() {
                return Err(at(
                    &format!("{p}.labels"),
                    format!("has {} labels for {} values", axis.labels.len(), axis.values.len()),
                ));
            }
            ron_path::parse_path(&axis.path).map_err(|e| at(&format!("{p}.path"), e))?;
            let h = axis.name.clone().unwrap_or_else(|| axis.path.clone());
            if !headers.contains(&h) {
                headers.push(h);
            }
        }
    }
    let mut points = Vec::new();
    let sample_count = match plan.sampling {
        Sampling::Grid => None,
        Sampling::Random { count } | Sampling::LatinHypercube { count } => {
            if count == 0 || count as usize > MAX_POINTS {
                return Err(at("sampling", format!("count must be within 1..={MAX_POINTS}")));
            }
            Some(count as usize)
        }
    };
    for (b, block) in plan.blocks.iter().enumerate() {
        let n: usize = sample_count.unwrap_or_else(|| {
            block.iter().map(|a| a.values.len()).try_fold(1usize, |acc, n| acc.checked_mul(n)).unwrap_or(usize::MAX)
        });
        if points.len().saturating_add(n) > MAX_POINTS {
            return Err(at("blocks", format!("expands to more than {MAX_POINTS} points")));
        }
        let draws = sample_count.map(|n| draw(&plan.sampling, plan.seed, b, block.len(), n));
        for k in 0..n {
            let mut rest = k;
            let mut text = base.text.clone();
            let mut labels = vec![String::new(); headers.len()];
            for (a, axis) in block.iter().enumerate().rev() {
                let (v, label) = match &draws {
                    None => {
                        let i = rest % axis.values.len();
                        rest /= axis.values.len();
                        let v = axis.values[i].clone();
                        let label = axis.labels.get(i).cloned().unwrap_or_else(|| v.trim_matches('"').to_string());
                        (v, label)
                    }
                    Some(u) => axis_value(axis, u[a][k]),
                };
                text =
                    ron_path::replace(&text, &axis.path, &v).map_err(|e| at(&format!("blocks[{b}][{a}].path"), e))?;
                let h = axis.name.clone().unwrap_or_else(|| axis.path.clone());
                let col = headers.iter().position(|x| *x == h).expect("header registered above");
                labels[col] = label;
            }
            let name = format!("{} [block {b}, point {k}: {}]", base.file, labels.join(", "));
            let loaded = Loaded::from_text(name, text.clone(), base.base_dir.clone())
                .and_then(|l| l.validate().map(|_| l))
                .map_err(|e| point_error(&plan, &listed, b, k, &text, e, &at))?;
            points.push(Point { labels, loaded });
        }
    }
    Ok(Expanded { plan, file, points, headers })
}

/// An error in the scenario of point `k` of block `b`, located at the plan's value that made it (the axis
/// whose overridden value holds the error), else at the block.
fn point_error(
    plan: &Plan,
    listed: &[Vec<usize>],
    b: usize,
    k: usize,
    text: &str,
    e: InputError,
    at: &dyn Fn(&str, String) -> InputError,
) -> InputError {
    let block = &plan.blocks[b];
    let mut rest = k;
    let mut which = vec![0; block.len()];
    for (a, axis) in block.iter().enumerate().rev() {
        which[a] = rest % axis.values.len();
        rest /= axis.values.len();
    }
    let culprit = block.iter().enumerate().find(|(_, axis)| {
        ron_path::parse_path(&axis.path)
            .ok()
            .and_then(|p| ron_path::find(text, &p))
            .is_some_and(|r| r.start <= e.offset() && e.offset() <= r.end)
    });
    let settings: Vec<String> =
        block.iter().zip(&which).map(|(axis, &i)| format!("{} = {}", axis.path, axis.values[i])).collect();
    let message = format!("point {k} of block {b} ({}): {}", settings.join(", "), e.message);
    let mut out = match culprit {
        Some((a, _)) if which[a] < listed[b][a] => at(&format!("blocks[{b}][{a}].values[{}]", which[a]), message),
        Some((a, _)) => at(&format!("blocks[{b}][{a}].range"), message),
        None => at(&format!("blocks[{b}]"), message),
    };
    out.help = e.help;
    out
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform draws in [0, 1) per axis and point of block `b`: independent (`Random`) or Latin-hypercube.
fn draw(sampling: &Sampling, seed: u64, b: usize, axes: usize, n: usize) -> Vec<Vec<f64>> {
    const TAG: u64 = 0x0053_5745_4550; // "SWEEP"
    (0..axes)
        .map(|a| match sampling {
            Sampling::LatinHypercube { .. } => {
                // A seeded Fisher-Yates permutation of the strata, then a uniform offset inside each.
                let mut perm: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    let j = (derive_seed(seed, &[TAG, 1, b as u64, a as u64, i as u64]) % (i as u64 + 1)) as usize;
                    perm.swap(i, j);
                }
                (0..n)
                    .map(|k| {
                        (perm[k] as f64 + unit(derive_seed(seed, &[TAG, 2, b as u64, a as u64, k as u64]))) / n as f64
                    })
                    .collect()
            }
            _ => (0..n).map(|k| unit(derive_seed(seed, &[TAG, 3, b as u64, a as u64, k as u64]))).collect(),
        })
        .collect()
}

/// The RON text and label of an axis at the uniform draw `u`.
fn axis_value(axis: &Axis, u: f64) -> (String, String) {
    match axis.between {
        Some((lo, hi)) => {
            let x = lo + (hi - lo) * u;
            if axis.integer {
                let v = format!("{}", x.round() as i64);
                (v.clone(), v)
            } else {
                // Six significant digits keep labels short; RON needs a decimal point for floats.
                let v = format!("{:.6e}", x).parse::<f64>().unwrap_or(x);
                let t = if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.1}") } else { format!("{v}") };
                (t.clone(), t)
            }
        }
        None => {
            let i = ((u * axis.values.len() as f64) as usize).min(axis.values.len() - 1);
            let v = axis.values[i].clone();
            let label = axis.labels.get(i).cloned().unwrap_or_else(|| v.trim_matches('"').to_string());
            (v, label)
        }
    }
}

/// Looks up a path (`a.b[2].c`) in a JSON value.
pub fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in ron_path::parse_path(path).ok()? {
        cur = match seg {
            ron_path::Seg::Field(f) => cur.get(f.as_str())?,
            ron_path::Seg::Index(i) => cur.get(i)?,
        };
    }
    Some(cur)
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Scalars of a summary at the top two levels, as (dotted name, value), in the summary's key order.
fn default_columns(summary: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Value::Object(m) = summary {
        for (k, v) in m {
            match v {
                Value::Object(inner) => {
                    for (k2, v2) in inner {
                        if !v2.is_object() && !v2.is_array() {
                            out.push((format!("{k}.{k2}"), v2.clone()));
                        }
                    }
                }
                Value::Array(_) => {}
                _ if !matches!(k.as_str(), "scenario" | "version" | "seed") => out.push((k.clone(), v.clone())),
                _ => {}
            }
        }
    }
    out
}

/// Every (point, replication) of the plan in job order (job k = point k / reps, replication k % reps).
pub fn jobs(exp: &Expanded) -> Vec<(usize, usize)> {
    let reps = exp.plan.replications as usize;
    (0..exp.points.len()).flat_map(|p| (0..reps).map(move |r| (p, r))).collect()
}

/// Runs the jobs `which` (indices into [`jobs`]) on the current rayon pool; `done(job, summary)` is called as
/// each finishes (from worker threads, in any order). Returns the summaries in the order of `which`.
pub fn run_jobs(
    exp: &Expanded,
    which: &[usize],
    done: &(dyn Fn(usize, &Value) + Sync),
) -> Result<Vec<(usize, Value)>, String> {
    let all = jobs(exp);
    // One job per task: runs differ in length by several times (a 9600-baud UART, a 5-minute reporting
    // period), so coarser splits leave a thread idle at the end while the other finishes a long batch.
    let results: Vec<Result<Value, String>> = which
        .par_iter()
        .with_max_len(1)
        .map(|&j| {
            let (p, r) = all[j];
            let seed = derive_seed(exp.plan.seed, &[p as u64, r as u64]);
            let out = run_one(&exp.points[p].loaded, seed);
            if let Ok(v) = &out {
                done(j, v);
            }
            out
        })
        .collect();
    which
        .iter()
        .zip(results)
        .map(|(&j, r)| {
            let (p, rep) = all[j];
            r.map(|v| (j, v)).map_err(|e| format!("point {p} replication {rep}: {e}"))
        })
        .collect()
}

/// The CSV table of finished jobs (given in job order).
pub fn table(exp: &Expanded, results: &[(usize, Value)]) -> Table {
    let all = jobs(exp);
    let mut header = vec!["point".to_string(), "replication".to_string(), "seed".to_string()];
    header.extend(exp.headers.iter().cloned());
    let mut kpi_names: Vec<String> = exp.plan.columns.iter().map(|c| c.name.clone()).collect();
    let mut rows = Vec::new();
    for (j, summary) in results {
        let (p, r) = all[*j];
        let kpis: Vec<(String, Value)> = if exp.plan.columns.is_empty() {
            default_columns(summary)
        } else {
            exp.plan
                .columns
                .iter()
                .map(|c| {
                    let v = json_path(summary, &c.path).cloned().unwrap_or(Value::Null);
                    match (&v, &c.missing) {
                        (Value::Null, Some(m)) => (c.name.clone(), Value::String(m.clone())),
                        _ => (c.name.clone(), v),
                    }
                })
                .collect()
        };
        if exp.plan.columns.is_empty() && kpi_names.is_empty() {
            kpi_names = kpis.iter().map(|k| k.0.clone()).collect();
        }
        let mut row = vec![p.to_string(), r.to_string(), cell(summary.get("seed"))];
        row.extend(exp.points[p].labels.iter().cloned());
        for name in &kpi_names {
            row.push(cell(kpis.iter().find(|k| &k.0 == name).map(|k| &k.1)));
        }
        rows.push(row);
    }
    header.extend(kpi_names);
    Table { header, rows }
}

/// Runs every point x replication on the current rayon pool; returns the CSV table in point order.
pub fn run(exp: &Expanded, progress: &(dyn Fn() + Sync)) -> Result<Table, String> {
    let which: Vec<usize> = (0..jobs(exp).len()).collect();
    let results = run_jobs(exp, &which, &|_, _| progress())?;
    Ok(table(exp, &results))
}

/// Builds, runs and summarises one scenario (no files written).
pub fn run_one(loaded: &Loaded, seed: u64) -> Result<Value, String> {
    let mut world = crate::world::build(loaded, seed, None).map_err(|e| e.to_string())?;
    world.run(1, |_, _| {})?;
    Ok(Value::Object(world.report().summary))
}

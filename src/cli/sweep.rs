//! `gridtwin sweep PLAN [--count] [--shard I/N|auto|auto/N]` and `gridtwin merge SHARD_DIR... --out DIR`.
//!
//! An unsharded sweep writes `<name>.csv` (every job, in job order), `summary.json`, sweep plots and
//! `timing.json`. A shard writes its rows as `<name>.csv` plus `manifest.json` (see [`crate::sweep::shard`]).
//! Either way each finished job is saved at once under `.<out>.partial/`, so an interrupted run resumes where
//! it stopped; the output directory itself appears only when complete.

use super::{CliError, Global, progress_bar, sanitize};
use crate::report::{Report, write_output_dir};
use crate::sweep::shard::{self, Manifest};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Scaling options of `gridtwin sweep`.
#[derive(Args, Debug, Clone, Default)]
pub struct ScaleArgs {
    /// Print the number of points (jobs = points x replications) and exit.
    #[arg(long)]
    pub count: bool,
    /// Run one slice: `I/N` (0-based), or `auto` / `auto/N` from SLURM_ARRAY_TASK_ID (Slurm arrays),
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or HQ_TASK_ID (HyperQueue); the count from `/N`,
    /// SLURM_ARRAY_TASK_COUNT or GRIDTWIN_SHARDS.
    #[arg(long)]
    pub shard: Option<String>,
}

pub fn run(g: &Global, plan_path: &Path, a: &ScaleArgs) -> Result<(), CliError> {
    let t0 = Instant::now();
    if let Some(out) = &g.out {
        crate::report::check_out_dir(out).map_err(CliError::usage)?;
    }
    let mut exp = crate::sweep::load(plan_path)?;
    if let Some(seed) = g.seed {
        exp.plan.seed = seed;
    }
    if a.count {
        println!("{}", exp.points.len());
        return Ok(());
    }
    let shard = a.shard.as_deref().map(|s| shard::parse_shard(s, &|k| std::env::var(k).ok())).transpose()?;
    let name = sanitize(&exp.plan.name);
    let out = g.out.clone().unwrap_or_else(|| {
        let base = PathBuf::from("out").join(&name);
        match shard {
            Some(s) => base.join(format!("shard-{}-of-{}", s.index, s.count)),
            None => base,
        }
    });
    let all = crate::sweep::jobs(&exp);
    let range = shard.map_or(0..all.len(), |s| shard::shard_jobs(all.len(), s));
    let mine: Vec<usize> = range.collect();
    let hash = shard::plan_hash(&exp);
    let partial = shard::partial_dir(&out);
    let mut done = shard::load_partial(&partial, &hash, &mine)?;
    let resumed = done.len();
    if resumed > 0 {
        tracing::warn!("{}: resuming: {resumed} of {} jobs already done", exp.plan.name, mine.len());
    }
    let todo: Vec<usize> = mine.iter().copied().filter(|j| !done.iter().any(|d| d.0 == *j)).collect();
    let pb = progress_bar(mine.len() as u64, g.quiet, &exp.plan.name);
    pb.set_position(resumed as u64);
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = g.threads {
        builder = builder.num_threads(n.max(1));
    }
    let pool = builder.build().map_err(|e| format!("cannot start {} threads: {e}", g.threads.unwrap_or(0)))?;
    let save_err = std::sync::Mutex::new(None::<String>);
    let fresh = pool.install(|| {
        crate::sweep::run_jobs(&exp, &todo, &|j, v| {
            if let Err(e) = shard::save_job(&partial, j, v)
                && let Ok(mut s) = save_err.lock()
            {
                s.get_or_insert(e);
            }
            pb.inc(1);
        })
    })?;
    pb.finish_and_clear();
    if let Some(e) = save_err.into_inner().ok().flatten() {
        tracing::warn!("could not save a finished job for resuming: {e}");
    }
    done.extend(fresh);
    done.sort_by_key(|d| d.0);
    let table = crate::sweep::table(&exp, &done);
    let rows = table.rows.len();
    let mut report = Report { summary: shard::sweep_summary(&exp), ..Report::default() };
    let csv = format!("{name}.csv");
    if let Some(s) = shard {
        let m = Manifest {
            plan_hash: hash.clone(),
            sweep: exp.plan.name.clone(),
            plan_file: exp.file.clone(),
            shard: s,
            total_jobs: all.len(),
            replications: exp.plan.replications,
            jobs: mine.clone(),
            csv: csv.clone(),
            summary: report.summary.clone(),
        };
        report.summary.insert("shard".into(), json!(format!("{}/{}", s.index, s.count)));
        report.summary.insert("plan_hash".into(), json!(hash));
        let text = serde_json::to_string_pretty(&m).map_err(|e| e.to_string())? + "\n";
        report.files.push(("manifest.json".into(), text.into_bytes()));
    }
    let replications = if shard.is_none() { exp.plan.replications } else { 1 };
    push_tables(&mut report, &name, table, replications, exp.headers.len());
    let wall = t0.elapsed().as_secs_f64();
    let timing =
        json!({"wall_s": wall, "threads": pool.current_num_threads(), "jobs_run": todo.len(), "jobs_resumed": resumed});
    write_output_dir(&out, &report, &timing, shard.is_none())?;
    let _ = std::fs::remove_dir_all(&partial);
    println!(
        "{}{}: {rows} runs in {wall:.2} s{}; results in {}",
        exp.plan.name,
        shard.map_or(String::new(), |s| format!(" shard {}/{}", s.index, s.count)),
        if resumed > 0 { format!(" ({resumed} resumed)") } else { String::new() },
        out.join(&csv).display()
    );
    Ok(())
}

/// A whole sweep's tables, the same for an unsharded run and a merge: the per-point statistics when there
/// are replications (`<name>_points`, `axes` label columns), then the rows (`<name>`).
fn push_tables(report: &mut Report, name: &str, table: crate::report::Table, replications: u32, axes: usize) {
    if replications > 1 {
        let points = crate::sweep::stats::per_point(&table, axes);
        report.tables.push((format!("{name}_points"), points));
    }
    report.tables.push((name.to_string(), table));
}

/// `gridtwin merge SHARD_DIR... --out DIR`.
pub fn merge(g: &Global, dirs: &[PathBuf]) -> Result<(), CliError> {
    let m = shard::merge(dirs)?;
    let out = g.out.clone().ok_or_else(|| "merge: give the merged output directory with --out DIR".to_string())?;
    let rows = m.table.rows.len();
    let mut report = Report { summary: m.summary, ..Report::default() };
    let stem = m.csv_name.trim_end_matches(".csv").to_string();
    push_tables(&mut report, &stem, m.table, m.replications, m.axes);
    write_output_dir(&out, &report, &json!({"merged_shards": dirs.len()}), true)?;
    println!("merged {} shards, {rows} runs; results in {}", dirs.len(), out.join(&m.csv_name).display());
    Ok(())
}

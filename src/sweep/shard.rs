//! Sweeps at scale on existing schedulers: a plan's jobs (point x replication) split into `N` contiguous
//! shards, each run as its own process (a Slurm array task, a Kubernetes Indexed Job pod, a HyperQueue task),
//! each writing its rows and a `manifest.json` (plan hash, shard, job list) atomically; `merge` checks the
//! shards belong to one plan, names missing and duplicate points, and writes the whole table sorted, byte for
//! byte what the unsharded run writes.
//!
//! Resume: every finished job is saved at once (atomically) under `.<out>.partial/` beside the output
//! directory, keyed by the plan hash; a rerun of the same plan and shard loads those and runs only the rest.
//! The partial directory is removed when the output is complete.

use super::Expanded;
use crate::engine::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// One slice of a sweep: shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Most shards a sweep may be cut into.
pub const MAX_SHARDS: usize = 100_000;

/// Parses `--shard`: `I/N` (0-based, I < N), `auto` or `auto/N`. `auto` takes the index from
/// `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN` when set), Kubernetes `JOB_COMPLETION_INDEX` or HyperQueue
/// `HQ_TASK_ID`, and the count from `auto/N`, `SLURM_ARRAY_TASK_COUNT` or `GRIDTWIN_SHARDS`.
pub fn parse_shard(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let num = |what: &str, v: &str| {
        v.trim().parse::<usize>().map_err(|_| format!("--shard {s}: {what} `{v}` is not a whole number"))
    };
    let (i, n) = if let Some(rest) = s.strip_prefix("auto") {
        let count = match rest.strip_prefix('/') {
            Some(n) => Some(num("shard count", n)?),
            None if rest.is_empty() => None,
            None => return Err(format!("--shard {s}: want `I/N`, `auto` or `auto/N`")),
        };
        let (index, from) = if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
            let min = env("SLURM_ARRAY_TASK_MIN").map(|m| num("SLURM_ARRAY_TASK_MIN", &m)).transpose()?.unwrap_or(0);
            let id = num("SLURM_ARRAY_TASK_ID", &id)?;
            (
                id.checked_sub(min)
                    .ok_or_else(|| format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"))?,
                "SLURM_ARRAY_TASK_ID",
            )
        } else if let Some(id) = env("JOB_COMPLETION_INDEX") {
            (num("JOB_COMPLETION_INDEX", &id)?, "JOB_COMPLETION_INDEX")
        } else if let Some(id) = env("HQ_TASK_ID") {
            (num("HQ_TASK_ID", &id)?, "HQ_TASK_ID")
        } else {
            return Err("--shard auto: none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, HQ_TASK_ID is set".into());
        };
        let count = match count {
            Some(c) => c,
            None => match env("SLURM_ARRAY_TASK_COUNT").or_else(|| env("GRIDTWIN_SHARDS")) {
                Some(c) => num("shard count", &c)?,
                None => {
                    return Err(format!(
                        "--shard auto: the index comes from {from}, but no shard count: use `--shard auto/N` or set GRIDTWIN_SHARDS"
                    ));
                }
            },
        };
        (index, count)
    } else {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s}: want `I/N` (0-based, e.g. 0/8), `auto` or `auto/N`"))?;
        (num("shard index", i)?, num("shard count", n)?)
    };
    if n == 0 || n > MAX_SHARDS {
        return Err(format!("--shard {s}: the shard count must be within 1..={MAX_SHARDS}"));
    }
    if i >= n {
        return Err(format!("--shard {s}: shard index {i} is not below the count {n} (indices are 0-based)"));
    }
    Ok(Shard { index: i, count: n })
}

/// The jobs of shard `s` out of `total`: a contiguous range, sizes differing by at most one.
pub fn shard_jobs(total: usize, s: Shard) -> std::ops::Range<usize> {
    (s.index * total / s.count)..((s.index + 1) * total / s.count)
}

/// A 128-bit fingerprint of everything that decides a sweep's results: the plan (seed, replications, columns,
/// sampling), every point's scenario text and labels, and the binary's version and source fingerprint (so a
/// binary rebuilt from changed code never resumes results of the old one).
pub fn plan_hash(exp: &Expanded) -> String {
    let mut a = Digest::default();
    let mut b = Digest::default();
    b.fold(0x0053_4841_5244);
    let mut feed = |bytes: &[u8]| {
        a.fold_bytes(bytes);
        b.fold_bytes(bytes);
    };
    feed(serde_json::to_string(&exp.plan).unwrap_or_default().as_bytes());
    feed(env!("CARGO_PKG_VERSION").as_bytes());
    feed(env!("GRIDTWIN_SOURCE_ID").as_bytes());
    for p in &exp.points {
        feed(p.loaded.text.as_bytes());
        feed(p.labels.join("\u{1f}").as_bytes());
    }
    format!("{}{}", a.hex(), b.hex())
}

/// The shard manifest (`manifest.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub plan_hash: String,
    pub sweep: String,
    pub plan_file: String,
    pub shard: Shard,
    pub total_jobs: usize,
    pub replications: u32,
    /// Job indices this shard holds (job k = point k / replications, replication k % replications).
    pub jobs: Vec<usize>,
    /// The CSV file with this shard's rows.
    pub csv: String,
    /// The summary the whole sweep writes (identity of the plan), for the merged output.
    pub summary: Map<String, Value>,
}

/// The summary of a (whole) sweep's output directory.
pub fn sweep_summary(exp: &Expanded) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sweep".into(), json!(exp.plan.name));
    m.insert("plan".into(), json!(exp.file));
    m.insert("seed".into(), json!(exp.plan.seed));
    m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    m.insert("points".into(), json!(exp.points.len()));
    m.insert("replications".into(), json!(exp.plan.replications));
    m.insert("axes".into(), json!(exp.headers));
    if let Some(p) = &exp.plan.pareto {
        m.insert("pareto".into(), json!({"cost": p.cost, "reliability": p.reliability}));
    }
    m
}

/// The directory where finished jobs of an output directory are kept until it is complete.
pub fn partial_dir(out: &Path) -> PathBuf {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), Path::to_path_buf);
    let stem = out.file_name().map_or("out".into(), |n| n.to_string_lossy().to_string());
    parent.join(format!(".{stem}.partial"))
}

/// Finished jobs saved in `dir` for plan `hash` (a directory of another plan is cleared).
pub fn load_partial(dir: &Path, hash: &str, wanted: &[usize]) -> Result<Vec<(usize, Value)>, String> {
    let marker = dir.join("plan_hash");
    match std::fs::read_to_string(&marker) {
        Ok(h) if h.trim() == hash => {}
        Ok(_) | Err(_) => {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
            }
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            crate::report::write_file_atomic(&marker, hash.as_bytes())?;
            return Ok(Vec::new());
        }
    }
    let mut out = Vec::new();
    for &j in wanted {
        let p = dir.join(format!("job-{j}.json"));
        if let Ok(t) = std::fs::read_to_string(&p)
            && let Ok(v) = serde_json::from_str::<Value>(&t)
        {
            out.push((j, v));
        }
    }
    Ok(out)
}

/// Saves one finished job (atomically).
pub fn save_job(dir: &Path, j: usize, v: &Value) -> Result<(), String> {
    crate::report::write_file_atomic(&dir.join(format!("job-{j}.json")), v.to_string().as_bytes())
}

/// Reads a shard directory's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let p = dir.join("manifest.json");
    let t = std::fs::read_to_string(&p)
        .map_err(|e| format!("{}: {e} (is {} a sweep shard directory?)", p.display(), dir.display()))?;
    serde_json::from_str(&t).map_err(|e| format!("{}: not a shard manifest: {e}", p.display()))
}

/// What a merge produces.
pub struct Merged {
    pub summary: Map<String, Value>,
    pub csv_name: String,
    pub table: crate::report::Table,
    /// Replications per point (the per-point statistics are written when above 1).
    pub replications: u32,
    /// Label columns after `point, replication, seed` (the plan's axes).
    pub axes: usize,
}

/// Merges shard directories: same plan hash, every job exactly once; rows sorted by job.
pub fn merge(dirs: &[PathBuf]) -> Result<Merged, String> {
    if dirs.is_empty() {
        return Err("merge: no shard directories given".into());
    }
    let ms: Vec<Manifest> = dirs.iter().map(|d| read_manifest(d)).collect::<Result<_, _>>()?;
    let first = &ms[0];
    for (d, m) in dirs.iter().zip(&ms).skip(1) {
        if m.plan_hash != first.plan_hash {
            return Err(format!(
                "merge refused: {} is from plan `{}` (hash {}) but {} is from plan `{}` (hash {}); shards of different plans (or seeds, or binaries) do not merge",
                d.display(),
                m.sweep,
                m.plan_hash,
                dirs[0].display(),
                first.sweep,
                first.plan_hash
            ));
        }
    }
    let total = first.total_jobs;
    let reps = first.replications.max(1) as usize;
    let mut owner: Vec<Option<usize>> = vec![None; total];
    let mut dups: Vec<String> = Vec::new();
    for (k, m) in ms.iter().enumerate() {
        for &j in &m.jobs {
            if j >= total {
                return Err(format!("{}: job {j} is beyond the plan's {total} jobs", dirs[k].display()));
            }
            match owner[j] {
                Some(o) => dups.push(format!(
                    "point {} replication {} (in {} and {})",
                    j / reps,
                    j % reps,
                    dirs[o].display(),
                    dirs[k].display()
                )),
                None => owner[j] = Some(k),
            }
        }
    }
    if !dups.is_empty() {
        return Err(format!(
            "merge refused: {} duplicate job(s): {}{}",
            dups.len(),
            dups.iter().take(10).cloned().collect::<Vec<_>>().join("; "),
            if dups.len() > 10 { "; ..." } else { "" }
        ));
    }
    let missing: Vec<usize> = (0..total).filter(|&j| owner[j].is_none()).collect();
    if !missing.is_empty() {
        let names: Vec<String> =
            missing.iter().take(20).map(|j| format!("point {} replication {}", j / reps, j % reps)).collect();
        let shards: Vec<String> = {
            let mut have: Vec<usize> = ms.iter().map(|m| m.shard.index).collect();
            have.sort_unstable();
            let n = first.shard.count;
            (0..n).filter(|i| !have.contains(i)).map(|i| format!("{i}/{n}")).collect()
        };
        return Err(format!(
            "merge refused: {} of {total} jobs missing: {}{}{}",
            missing.len(),
            names.join(", "),
            if missing.len() > 20 { ", ..." } else { "" },
            if shards.is_empty() { String::new() } else { format!(" (shards not given: {})", shards.join(", ")) }
        ));
    }
    let mut header: Option<Vec<String>> = None;
    let mut rows: Vec<Option<Vec<String>>> = vec![None; total];
    for (k, m) in ms.iter().enumerate() {
        let p = dirs[k].join(&m.csv);
        let mut r = csv::Reader::from_path(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let h: Vec<String> =
            r.headers().map_err(|e| format!("{}: {e}", p.display()))?.iter().map(str::to_string).collect();
        match &header {
            None => header = Some(h),
            Some(h0) if *h0 != h => {
                return Err(format!(
                    "merge refused: {} has columns {} but {} has {}",
                    p.display(),
                    h.join(","),
                    dirs[0].display(),
                    h0.join(",")
                ));
            }
            _ => {}
        }
        let recs: Vec<Vec<String>> = r
            .records()
            .map(|rec| rec.map(|x| x.iter().map(str::to_string).collect()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        if recs.len() != m.jobs.len() {
            return Err(format!("{}: {} rows for {} jobs in its manifest", p.display(), recs.len(), m.jobs.len()));
        }
        for (&j, row) in m.jobs.iter().zip(recs) {
            rows[j] = Some(row);
        }
    }
    let table = crate::report::Table { header: header.unwrap_or_default(), rows: rows.into_iter().flatten().collect() };
    let axes = first.summary.get("axes").and_then(Value::as_array).map_or(0, Vec::len);
    Ok(Merged {
        summary: first.summary.clone(),
        csv_name: first.csv.clone(),
        table,
        replications: first.replications,
        axes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_cover_every_job_once() {
        let none = |_: &str| None;
        assert_eq!(parse_shard("2/8", &none).unwrap(), Shard { index: 2, count: 8 });
        assert!(parse_shard("8/8", &none).unwrap_err().contains("0-based"));
        assert!(parse_shard("auto", &none).is_err());
        let slurm = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("5".into()),
            "SLURM_ARRAY_TASK_MIN" => Some("1".into()),
            "SLURM_ARRAY_TASK_COUNT" => Some("8".into()),
            _ => None,
        };
        assert_eq!(parse_shard("auto", &slurm).unwrap(), Shard { index: 4, count: 8 });
        let k8s = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "3".to_string());
        assert_eq!(parse_shard("auto/4", &k8s).unwrap(), Shard { index: 3, count: 4 });
        assert!(parse_shard("auto", &k8s).unwrap_err().contains("GRIDTWIN_SHARDS"));
        let hq = |k: &str| match k {
            "HQ_TASK_ID" => Some("0".into()),
            "GRIDTWIN_SHARDS" => Some("2".into()),
            _ => None,
        };
        assert_eq!(parse_shard("auto", &hq).unwrap(), Shard { index: 0, count: 2 });
        for total in [0, 1, 7, 256] {
            for n in [1, 3, 8] {
                let mut seen = vec![0; total];
                for i in 0..n {
                    for j in shard_jobs(total, Shard { index: i, count: n }) {
                        seen[j] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1));
            }
        }
    }
}

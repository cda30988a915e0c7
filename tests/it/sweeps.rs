//! Sweeps at scale: sampling (grid, random, Latin hypercube), `--count`, shards run as separate processes and
//! merged byte for byte equal to the unsharded run, merges of incomplete or foreign shards refused by name,
//! and an interrupted sweep resuming without redoing finished points.

use std::path::Path;
use std::process::Command;

const BASE: &str = r#"Scenario(
    name: "line",
    seed: 1,
    duration: "20min",
    mesh: (
        radio: "sun-fsk-868",
        layout: Some(Line(nodes: 5, spacing_m: 250.0)),
        traffic: (report_every: Some("2min"), report_bytes: 40, start: "0s"),
    ),
)
"#;

fn plan(dir: &Path, name: &str, sampling: &str, seed: u64) -> std::path::PathBuf {
    std::fs::write(dir.join("base.ron"), BASE).unwrap();
    let p = dir.join(format!("{name}.ron"));
    std::fs::write(
        &p,
        format!(
            r#"Sweep(
    name: "{name}",
    base: "base.ron",
    seed: {seed},
    replications: 2,
    sampling: {sampling},
    blocks: [[
        (path: "mesh.traffic.report_bytes", name: Some("bytes"), values: ["20", "60", "100"], between: {between}, integer: true),
        (path: "seed", name: Some("scenario_seed"), values: ["1", "2"]),
    ]],
    columns: [(name: "pdr", path: "mesh.pdr"), (name: "p50_ms", path: "mesh.latency_ms_p50")],
    pareto: Some((cost: "bytes", reliability: "pdr")),
)
"#,
            between = if sampling == "Grid" { "None" } else { "Some((10.0, 120.0))" }
        ),
    )
    .unwrap();
    p
}

fn gt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gridtwin")).arg("--quiet").args(args).output().unwrap()
}

#[test]
fn shards_merge_to_the_unsharded_result_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = plan(d, "grid", "Grid", 5);
    let c = gt(&["sweep", p.to_str().unwrap(), "--count"]);
    assert_eq!(String::from_utf8_lossy(&c.stdout).trim(), "6");
    let all = d.join("all");
    let o = gt(&["sweep", p.to_str().unwrap(), "--out", all.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = std::fs::read(all.join("grid.csv")).unwrap();
    assert!(all.join("sweep_heatmap_0.svg").exists() && all.join("sweep_pareto.svg").exists());
    for n in [1usize, 3, 8] {
        let mut dirs = Vec::new();
        for i in 0..n {
            let s = d.join(format!("s{n}-{i}"));
            let o = gt(&["sweep", p.to_str().unwrap(), "--shard", &format!("{i}/{n}"), "--out", s.to_str().unwrap()]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(s.join("manifest.json").exists());
            dirs.push(s.to_str().unwrap().to_string());
        }
        let m = d.join(format!("m{n}"));
        let mut args = vec!["merge".to_string()];
        args.extend(dirs.iter().cloned());
        args.extend(["--out".to_string(), m.to_str().unwrap().to_string()]);
        let o = gt(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(std::fs::read(m.join("grid.csv")).unwrap(), whole, "{n} shards");
        assert_eq!(std::fs::read(m.join("summary.json")).unwrap(), std::fs::read(all.join("summary.json")).unwrap());
        // Every table the unsharded run writes, the per-point statistics of its 2 replications included.
        let mut tables: Vec<_> = std::fs::read_dir(&all)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|f| f.ends_with(".csv"))
            .collect();
        tables.sort();
        assert_eq!(tables, ["grid.csv", "grid_points.csv"]);
        for f in &tables {
            assert_eq!(std::fs::read(m.join(f)).ok(), std::fs::read(all.join(f)).ok(), "{f} after merging {n} shards");
        }
        if n == 3 {
            // A shard missing: refused, naming the points.
            let o = gt(&["merge", &dirs[0], &dirs[2], "--out", d.join("bad").to_str().unwrap()]);
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success()
                    && e.contains("missing")
                    && e.contains("point 2 replication 0")
                    && e.contains("1/3"),
                "{e}"
            );
            // The same shard twice: refused as duplicate.
            let o = gt(&["merge", &dirs[0], &dirs[0], &dirs[1], &dirs[2], "--out", d.join("bad").to_str().unwrap()]);
            assert!(String::from_utf8_lossy(&o.stderr).contains("duplicate"));
        }
    }
    // Shards of another plan (another seed) are refused, naming the mismatch.
    let other = d.join("other");
    let o = gt(&["--seed", "9", "sweep", p.to_str().unwrap(), "--shard", "1/3", "--out", other.to_str().unwrap()]);
    assert!(o.status.success());
    let s0 = d.join("s3-0");
    let s2 = d.join("s3-2");
    let o = gt(&[
        "merge",
        s0.to_str().unwrap(),
        other.to_str().unwrap(),
        s2.to_str().unwrap(),
        "--out",
        d.join("bad").to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("different plans") && e.contains("hash"), "{e}");
    assert!(!d.join("bad").exists());
}

#[test]
fn an_interrupted_sweep_resumes_without_redoing_points() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = plan(d, "lhs", "LatinHypercube(count: 4)", 11);
    let out = d.join("lhs");
    let o = gt(&["sweep", p.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = std::fs::read(out.join("lhs.csv")).unwrap();
    // Latin hypercube: 4 points, each stratum of 10..120 bytes used once.
    let text = String::from_utf8_lossy(&whole).to_string();
    let mut strata: Vec<usize> = text
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("0"))
        .map(|l| ((l.split(',').nth(3).unwrap().parse::<f64>().unwrap() - 10.0) / 27.5).floor().min(3.0) as usize)
        .collect();
    strata.sort_unstable();
    assert_eq!(strata, [0, 1, 2, 3], "{text}");
    // An interruption after the first half of the jobs: their results are in the partial store beside the
    // output directory (as the sweep saves each finished job), the output directory itself does not exist.
    let out2 = d.join("lhs2");
    let partial = gridtwin::sweep::shard::partial_dir(&out2);
    std::fs::create_dir_all(&partial).unwrap();
    let exp = gridtwin::sweep::load(&p).unwrap();
    std::fs::write(partial.join("plan_hash"), gridtwin::sweep::shard::plan_hash(&exp)).unwrap();
    let jobs = gridtwin::sweep::jobs(&exp);
    for (j, &(pt, r)) in jobs.iter().enumerate().take(4) {
        let seed = gridtwin::engine::derive_seed(exp.plan.seed, &[pt as u64, r as u64]);
        let s = gridtwin::sweep::run_one(&exp.points[pt].loaded, seed).unwrap();
        gridtwin::sweep::shard::save_job(&partial, j, &s).unwrap();
    }
    let o = gt(&["sweep", p.to_str().unwrap(), "--out", out2.to_str().unwrap()]);
    assert!(o.status.success());
    let timing: serde_json::Value = serde_json::from_slice(&std::fs::read(out2.join("timing.json")).unwrap()).unwrap();
    assert_eq!(timing["jobs_resumed"], 4);
    assert_eq!(timing["jobs_run"], 4);
    assert_eq!(std::fs::read(out2.join("lhs.csv")).unwrap(), whole);
    assert!(!partial.exists(), "the partial store is removed once the output is complete");
}

//! Determinism of every shipped scenario and sweep plan: each runs twice, once on a 1-thread and once on a
//! 2-thread rayon pool, and every output file (wall-clock `timing.json` aside) must be byte-identical, the
//! summary's run digest included.
//!
//! Scenarios and plans are found by listing `scenarios/`, so a new file is covered without editing this module.
//! How long each scenario runs:
//! - small scenarios (at most [`LARGE_MESH_NODES`] mesh nodes and [`LARGE_CHAIN_VALIDATORS`] chain validators) run
//!   their full `duration`, except where that is slower than the budget of `cargo test` (about a minute for all
//!   of this module in total): a chain of more validators (today `chain-31-day`: 31 validators exchange
//!   quadratically many votes every block, about a minute per simulated day in release) is cut;
//! - a cut ends [`SETTLE`] after the scenario's last scheduled event (faults, failures, joins, attacks, key
//!   rotations, partitions, harmonic sources switching, frequency steps, ...), read from the scenario's own
//!   text by [`scheduled_events`], never set per file; a scenario without scheduled events gets [`SETTLE`];
//! - meshes above [`LARGE_MESH_NODES`] (today `district-10k` and `city-30k`, events at 12:00 and 13:00) cost
//!   about ten seconds of building and joining plus a second per simulated hour in release, too slow for
//!   `cargo test`:
//!   they run through their events in the ignored test
//!   `large_shipped_scenarios_are_deterministic_through_their_events` (release build);
//! - meshes above [`CITY_MESH_NODES`] (today `city-100k`) are left out: minutes per simulated hour. Their
//!   determinism is checked by the city-scale benchmark runs in release.
//!
//! Sweep plans of at most [`SMALL_SWEEP_JOBS`] jobs run here in full; larger ones (today `default-sweep-256`) in
//! the ignored test `large_shipped_sweeps_are_byte_identical_with_one_and_two_threads`.

use gridtwin::cli::{Global, run_to_dir};
use gridtwin::engine::{SimDuration, format_duration, parse_duration};
use gridtwin::scenario::{Loaded, assets};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How long a cut run goes on after the scenario's last scheduled event: FLISR locates, isolates and restores
/// within a minute, and two 15-minute report rounds carry the readings taken after the event to the cloud.
const SETTLE: SimDuration = SimDuration::from_mins(30);
/// Meshes above this many nodes are too slow for `cargo test` (see the module docs).
const LARGE_MESH_NODES: usize = 1000;
/// Meshes above this many nodes (the city) are left out of these tests.
const CITY_MESH_NODES: usize = 50_000;
/// Chains of more validators are cut to their events: the votes of a round grow with the square of the count.
const LARGE_CHAIN_VALIDATORS: usize = 16;
/// Sweeps of more jobs (points x replications) run only in the ignored test.
const SMALL_SWEEP_JOBS: usize = 64;
/// Jobs of the shard a large plan's reduced determinism test runs.
const REDUCED_SWEEP_JOBS: usize = 4;
/// Mesh nodes of a large scenario's reduced determinism test.
const REDUCED_MESH_NODES: u32 = 300;
/// Fields whose duration value is an instant of the run (after its start) at which something is scheduled.
const INSTANT_FIELDS: [&str; 10] = ["at", "onset", "start", "stop", "end", "on", "off", "rejoin", "from", "until"];
/// Fields that give the length of something scheduled at the instant field beside them (an outage's
/// `duration`, a retired key's `retire_after`): its end is scheduled too.
const LENGTH_FIELDS: [&str; 2] = ["duration", "retire_after"];
/// Sections listing steps as `(instant, value)` tuples (the grid frequency profile).
const STEP_LISTS: [&str; 1] = ["frequency"];

/// Where a scenario is tested and for how long.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// In `cargo test`, for this long (`None`: the full duration), for this reason.
    Quick(Option<SimDuration>, String),
    /// In the ignored release test, for this long.
    Large(Option<SimDuration>, String),
    /// Not run.
    Excluded(String),
}

/// The `.ron` files of `scenarios/` whose top-level struct is `kind` (`Scenario` or `Sweep`), in name order.
fn shipped(kind: &str) -> Vec<(String, PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut found: Vec<(String, PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let rel = format!("scenarios/{}", p.file_name().unwrap().to_string_lossy());
            (assets::top_level_name(&text) == Some(kind)).then_some((rel, p, text))
        })
        .collect();
    found.sort();
    found
}

fn load(path: &Path, text: &str) -> Loaded {
    Loaded::from_text(path.display().to_string(), text.to_string(), path.parent().map(Path::to_path_buf))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every instant at which the scenario schedules something, read from its text: the duration values of
/// [`INSTANT_FIELDS`] anywhere in the scenario, each plus the [`LENGTH_FIELDS`] beside it, and the instants of
/// [`STEP_LISTS`]. Values that are not durations (`at: EveryLine`, `at: 0.5`) are not instants and are skipped.
fn scheduled_events(text: &str) -> Vec<SimDuration> {
    fn duration(v: &ron::Value) -> Option<SimDuration> {
        match v {
            ron::Value::String(s) => parse_duration(s).ok(),
            ron::Value::Option(Some(inner)) => duration(inner),
            _ => None,
        }
    }
    fn walk(v: &ron::Value, depth: usize, out: &mut Vec<SimDuration>) {
        // Scenarios nest a few levels; the limit only guards against a pathological file.
        if depth > 64 {
            return;
        }
        match v {
            ron::Value::Map(m) => {
                let field = |name: &str| m.iter().find(|(k, _)| matches!(k, ron::Value::String(s) if s == name));
                for (k, val) in m.iter() {
                    let ron::Value::String(key) = k else { continue };
                    if INSTANT_FIELDS.contains(&key.as_str())
                        && let Some(t) = duration(val)
                    {
                        out.push(t);
                        for len in LENGTH_FIELDS {
                            if let Some(d) = field(len).and_then(|(_, l)| duration(l)) {
                                out.push(SimDuration(t.0.saturating_add(d.0)));
                            }
                        }
                    }
                    if STEP_LISTS.contains(&key.as_str())
                        && let ron::Value::Seq(steps) = val
                    {
                        for step in steps {
                            if let ron::Value::Seq(pair) = step
                                && let Some(t) = pair.first().and_then(duration)
                            {
                                out.push(t);
                            }
                        }
                    }
                    walk(val, depth + 1, out);
                }
            }
            ron::Value::Seq(items) => items.iter().for_each(|i| walk(i, depth + 1, out)),
            ron::Value::Option(Some(inner)) => walk(inner, depth + 1, out),
            _ => {}
        }
    }
    let value: ron::Value = ron::from_str(text).unwrap_or_else(|e| panic!("not RON: {e}"));
    let mut out = Vec::new();
    walk(&value, 0, &mut out);
    out.sort();
    out
}

/// The end of a cut: [`SETTLE`] after the last scheduled event, or `None` when that is not before the end.
fn cut(l: &Loaded, text: &str) -> Option<SimDuration> {
    let last = scheduled_events(text).last().copied().unwrap_or(SimDuration::ZERO);
    let end = SimDuration(last.0.saturating_add(SETTLE.0));
    (end < l.scenario.duration.0).then_some(end)
}

/// Where and how long a scenario is tested (see the module docs).
fn plan(l: &Loaded, text: &str) -> Plan {
    let nodes = crate::layout_mesh_nodes(l);
    let validators = l.scenario.chain.as_ref().map_or(0, |c| c.validators.len() + c.generated as usize);
    let through = |why: &str| match cut(l, text) {
        Some(end) => {
            let after =
                if scheduled_events(text).is_empty() { "the start (no scheduled events)" } else { "its last event" };
            (Some(end), format!("{why}: cut at {}, {} after {after}", format_duration(end), format_duration(SETTLE)))
        }
        None => (None, format!("{why}, but its last event + settle reaches the end: full duration")),
    };
    if nodes > CITY_MESH_NODES {
        Plan::Excluded(format!("{nodes} mesh nodes: minutes per simulated hour"))
    } else if nodes > LARGE_MESH_NODES {
        let (until, why) = through(&format!("{nodes} mesh nodes"));
        Plan::Large(until, why)
    } else if validators > LARGE_CHAIN_VALIDATORS {
        let (until, why) = through(&format!("{validators} chain validators"));
        Plan::Quick(until, why)
    } else {
        Plan::Quick(None, "full duration".into())
    }
}

/// Every file under `dir` (subdirectories such as `ledger/` included), by path relative to `dir`.
fn read_dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, depth: usize, m: &mut BTreeMap<String, Vec<u8>>) {
        assert!(depth < 16, "{}: nested too deep", dir.display());
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, depth + 1, m);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, dir, 0, &mut m);
    m
}

/// Runs `l` until `until` on a 1-thread and on a 2-thread pool and asserts byte-identical outputs.
fn assert_deterministic(rel: &str, l: &Loaded, text: &str, until: Option<SimDuration>, tmp: &Path) {
    if let Some(end) = until {
        let events = scheduled_events(text);
        assert!(events.iter().all(|t| *t < end), "{rel}: the cut at {end:?} misses an event of {events:?}");
    }
    let until = until.map(format_duration);
    let mut outputs = Vec::new();
    for threads in [1usize, 2] {
        let out = tmp.join(format!("{}-{threads}", rel.replace('/', "_")));
        let g = Global { out: Some(out.clone()), quiet: true, threads: Some(threads), ..Global::default() };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run_to_dir(&g, l, until.as_deref())).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut files = read_dir_files(&out);
        assert!(files.remove("timing.json").is_some(), "{rel}: timing.json missing");
        let summary: serde_json::Value =
            serde_json::from_slice(files.get("summary.json").unwrap_or_else(|| panic!("{rel}: no summary.json")))
                .unwrap();
        let digest = summary["digest"].as_str().unwrap_or_else(|| panic!("{rel}: no digest")).to_string();
        outputs.push((digest, files));
    }
    let ((d1, f1), (d2, f2)) = (&outputs[0], &outputs[1]);
    assert_eq!(d1, d2, "{rel}: digests differ between 1 and 2 threads");
    assert_eq!(f1.keys().collect::<Vec<_>>(), f2.keys().collect::<Vec<_>>(), "{rel}: different output files");
    for (name, bytes) in f1 {
        assert!(bytes == &f2[name], "{rel}: {name} differs between 1 and 2 threads");
    }
}

#[test]
fn scheduled_events_are_read_from_every_kind_of_field() {
    let text = r#"Scenario(
        duration: "24h",
        faults: [Section(section: 9, at: 0.4, onset: "10h")],
        mesh: (events: [FailRelays(fraction: 0.1, at: "12h")], traffic: (start: "1min", report_every: Some("15min"))),
        security: (rotations: [(at: "3min", retire_after: "10s")], removed: [(lmu: 1, at: "200s", rejoin: Some("220s"))]),
        outage: (at: "2h", duration: "5min"),
        power_quality: (frequency: [("13h", 49.3)], sources: [(at: LoadBuses, on: "17h", off: "23h")]),
    )"#;
    let mins = |m: u64| SimDuration::from_mins(m);
    let secs = SimDuration::from_secs;
    let mut want = vec![
        mins(10 * 60),
        mins(12 * 60),
        mins(1),
        mins(3),
        secs(190),
        secs(200),
        secs(220),
        mins(120),
        mins(125),
        mins(13 * 60),
        mins(17 * 60),
        mins(23 * 60),
    ];
    want.sort();
    assert_eq!(scheduled_events(text), want);
}

#[test]
fn every_shipped_scenario_is_deterministic_through_its_events() {
    let tmp = tempfile::tempdir().unwrap();
    let scenarios = shipped("Scenario");
    assert!(scenarios.iter().any(|(rel, ..)| rel == "scenarios/default.ron"), "scenarios/ not found");
    let mut ran = Vec::new();
    for (rel, path, text) in &scenarios {
        let l = load(path, text);
        let p = plan(&l, text);
        eprintln!("{rel}: {p:?}");
        if let Plan::Quick(until, _) = p {
            assert_deterministic(rel, &l, text, until, tmp.path());
            ran.push(rel.clone());
        }
    }
    // The default scenario runs past its 10:00 fault, to the end of its day.
    assert!(ran.iter().any(|r| r == "scenarios/default.ron"), "{ran:?}");
}

/// Meshes of thousands of nodes through their events; in release:
/// `cargo test --release -j1 --test it -- --ignored large_shipped_scenarios`.
#[test]
#[ignore = "minutes in a debug build; run with --release --ignored"]
fn large_shipped_scenarios_are_deterministic_through_their_events() {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, path, text) in &shipped("Scenario") {
        let l = load(path, text);
        let p = plan(&l, text);
        eprintln!("{rel}: {p:?}");
        if let Plan::Large(until, _) = p {
            assert_deterministic(rel, &l, text, until, tmp.path());
        }
    }
}

/// The reduced form of the test above, in `cargo test`: each large mesh scenario with its grid layout shrunk to
/// [`REDUCED_MESH_NODES`] nodes and one coordinator (same radio, traffic, events and cut), so the parallel
/// mesh build, formation, the relay failures and the join still run on 1 and 2 threads.
#[test]
fn large_shipped_scenarios_shrunk_are_deterministic_through_their_events() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (rel, path, text) in &shipped("Scenario") {
        let mut l = load(path, text);
        let Plan::Large(until, _) = plan(&l, text) else { continue };
        let Some(gridtwin::mesh::config::Layout::Grid { nodes, coordinators, .. }) =
            l.scenario.mesh.as_mut().and_then(|m| m.layout.as_mut())
        else {
            panic!("{rel}: a large mesh without a grid layout; give it a reduced form here")
        };
        (*nodes, *coordinators) = (REDUCED_MESH_NODES, 1);
        assert_deterministic(&format!("{rel} (shrunk)"), &l, text, until, tmp.path());
        ran += 1;
    }
    assert!(ran >= 1, "no large scenario was shrunk: is `district-10k.ron` still shipped?");
}

/// Runs the sweep `plan` as `gridtwin --threads N sweep PLAN --out DIR` does, with 1 and 2 threads, and asserts
/// byte-identical output directories (`timing.json` aside).
fn assert_sweep_deterministic(rel: &str, plan: &Path, tmp: &Path, shard: Option<String>) {
    let mut outputs = Vec::new();
    for threads in [1usize, 2] {
        let out = tmp.join(format!("{}-{threads}", rel.replace('/', "_")));
        let g = Global { out: Some(out.clone()), quiet: true, threads: Some(threads), ..Global::default() };
        let a = gridtwin::cli::sweep::ScaleArgs { shard: shard.clone(), ..Default::default() };
        gridtwin::cli::sweep::run(&g, plan, &a).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut files = read_dir_files(&out);
        assert!(files.remove("timing.json").is_some(), "{rel}: timing.json missing");
        outputs.push(files);
    }
    assert_eq!(outputs[0].keys().collect::<Vec<_>>(), outputs[1].keys().collect::<Vec<_>>(), "{rel}");
    for (name, bytes) in &outputs[0] {
        assert!(bytes == &outputs[1][name], "{rel}: {name} differs between 1 and 2 threads");
    }
}

fn sweep_jobs(plan: &Path) -> usize {
    let exp = gridtwin::sweep::load(plan).unwrap_or_else(|e| panic!("{}: {e}", plan.display()));
    exp.points.len() * exp.plan.replications as usize
}

#[test]
fn small_shipped_sweeps_are_byte_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (rel, plan, _) in &shipped("Sweep") {
        if sweep_jobs(plan) <= SMALL_SWEEP_JOBS {
            assert_sweep_deterministic(rel, plan, tmp.path(), None);
            ran += 1;
        }
    }
    assert!(ran >= 1, "no small sweep plan in scenarios/");
}

/// Sweeps of hundreds of jobs; in release: `cargo test --release -j1 --test it -- --ignored large_shipped_sweeps`.
#[test]
#[ignore = "hundreds of runs; run with --release --ignored"]
fn large_shipped_sweeps_are_byte_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, plan, _) in &shipped("Sweep") {
        if sweep_jobs(plan) > SMALL_SWEEP_JOBS {
            assert_sweep_deterministic(rel, plan, tmp.path(), None);
        }
    }
}

/// The reduced form of the test above, in `cargo test`: the first shard of each large plan, about
/// [`REDUCED_SWEEP_JOBS`] jobs, as `gridtwin sweep --shard 0/N` runs it.
#[test]
fn large_shipped_sweeps_first_shard_is_byte_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (rel, plan, _) in &shipped("Sweep") {
        let jobs = sweep_jobs(plan);
        if jobs > SMALL_SWEEP_JOBS {
            assert_sweep_deterministic(rel, plan, tmp.path(), Some(format!("0/{}", jobs.div_ceil(REDUCED_SWEEP_JOBS))));
            ran += 1;
        }
    }
    assert!(ran >= 1, "no large sweep plan found: is `default-sweep-256.ron` still shipped?");
}

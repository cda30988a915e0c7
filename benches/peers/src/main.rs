//! `gridtwin-peers`: PHOLD-ns run side by side on gridtwin's engine, SimCore 0.1, NeXosim 1.0 and (through a
//! Python subprocess) SimPy 4.1.2, all on one thread.
//!
//! Every run must produce the reference event count and checksum of its configuration; the binary exits with
//! an error otherwise. It prints the median events per second of each engine (events divided by the wall time
//! of the run phase, after the model is built and its initial events are scheduled) and gridtwin's speed ratio
//! to each peer.
//!
//! Usage: `gridtwin-peers [--config A|A-short|B|C] [--runs K] [--engines gridtwin,simcore,nexosim,nexosim-router,simpy,bare-heap]
//!                        [--python PYTHON] [--simpy-runs K]`

mod common;
mod nexosim_phold;
mod simcore_phold;

use common::{Named, Stamp, Timing};
use gridtwin::engine::phold::{self, PholdConfig, PholdResult};
use gridtwin::engine::{SimTime, Stop};
use nexosim_phold::Routing::{Direct, Router};
use std::process::{Command, ExitCode};

struct Args {
    config: String,
    runs: usize,
    engines: Vec<String>,
    python: String,
    simpy_runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        config: "A".into(),
        runs: 5,
        engines: ["gridtwin", "simcore", "nexosim", "simpy"].map(String::from).to_vec(),
        python: "python3".into(),
        simpy_runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => a.config = value()?,
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--simpy-runs" => a.simpy_runs = value()?.parse().map_err(|e| format!("--simpy-runs: {e}"))?,
            "--python" => a.python = value()?,
            "--engines" => a.engines = value()?.split(',').map(String::from).collect(),
            "-h" | "--help" => {
                return Err("usage: gridtwin-peers [--config A|A-short|B|C] [--runs K] \
                            [--engines gridtwin,simcore,nexosim,nexosim-router,simpy,bare-heap] [--python PYTHON] [--simpy-runs K]"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if a.runs == 0 || a.simpy_runs == 0 {
        return Err("--runs and --simpy-runs must be at least 1".into());
    }
    for e in &a.engines {
        if !["gridtwin", "simcore", "nexosim", "nexosim-router", "simpy", "bare-heap"].contains(&e.as_str()) {
            return Err(format!("unknown engine {e:?} (gridtwin, simcore, nexosim, nexosim-router, simpy, bare-heap)"));
        }
    }
    Ok(a)
}

/// gridtwin's engine through its real agent API: `phold::build` + `Simulation::run`, as `phold::run_engine` does.
fn run_gridtwin(cfg: &PholdConfig) -> (PholdResult, Timing) {
    let t0 = Stamp::now();
    let mut sim = phold::build(cfg).expect("PHOLD builds");
    let t1 = Stamp::now();
    sim.run(Stop::at(SimTime(cfg.end_ns))).expect("PHOLD runs");
    let t2 = Stamp::now();
    (phold::collect(&sim, cfg), Timing::from_stamps(t0, t1, t2))
}

/// The oracle loop `phold::run_reference` (a `BinaryHeap<Reverse<(t, seq, lp)>>` and nothing else): the
/// practical ceiling for a heap-based engine. Its setup (16k initial pushes) is timed with the run.
fn run_bare_heap(cfg: &PholdConfig) -> (PholdResult, Timing) {
    let t0 = Stamp::now();
    let r = phold::run_reference(cfg);
    (r, Timing::from_stamps(t0, t0, Stamp::now()))
}

/// Runs the SimPy script once per requested run; it prints one JSON object per run.
fn run_simpy(python: &str, cfg: &PholdConfig, runs: usize) -> Result<Vec<(PholdResult, Timing)>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/phold_simpy.py");
    let out = Command::new(python)
        .arg(script)
        .args(["--lps", &cfg.lps.to_string(), "--events-per-lp", &cfg.events_per_lp.to_string()])
        .args(["--seed", &cfg.seed.to_string(), "--lookahead-ns", &cfg.lookahead_ns.to_string()])
        .args(["--mean-ns", &cfg.mean_ns.to_string(), "--end-ns", &cfg.end_ns.to_string()])
        .args(["--runs", &runs.to_string()])
        .output()
        .map_err(|e| format!("cannot start {python} {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("SimPy script failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let j: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("SimPy output {line:?}: {e}"))?;
        let field = |k: &str| j.get(k).ok_or_else(|| format!("SimPy output lacks {k:?}: {line}"));
        let checksum = u64::from_str_radix(field("checksum")?.as_str().unwrap_or(""), 16)
            .map_err(|e| format!("SimPy checksum: {e}"))?;
        let events = field("events")?.as_u64().ok_or("SimPy events is not an integer")?;
        let setup_s = field("setup_s")?.as_f64().ok_or("SimPy setup_s is not a number")?;
        let run_s = field("run_s")?.as_f64().ok_or("SimPy run_s is not a number")?;
        let run_cpu_s = field("run_cpu_s")?.as_f64().ok_or("SimPy run_cpu_s is not a number")?;
        v.push((PholdResult { events, checksum }, Timing { setup_s, run_s, run_cpu_s }));
    }
    if v.len() != runs {
        return Err(format!("SimPy printed {} results, expected {runs}", v.len()));
    }
    Ok(v)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

struct Row {
    engine: &'static str,
    /// Median over runs of events / run wall time, and of events / run CPU time (process-wide, so a peer that
    /// keeps helper threads busy shows more CPU than wall time).
    events_per_s: f64,
    events_per_cpu_s: f64,
    setup_s: f64,
    run_s: f64,
}

fn measure(engine: &str, named: &Named, args: &Args) -> Result<Row, String> {
    let cfg = &named.cfg;
    let (label, runs): (&'static str, Vec<(PholdResult, Timing)>) = match engine {
        "gridtwin" => ("gridtwin", (0..args.runs).map(|_| run_gridtwin(cfg)).collect()),
        "simcore" => ("SimCore 0.1", (0..args.runs).map(|_| simcore_phold::run(cfg)).collect()),
        "nexosim" => {
            ("NeXosim 1.0 (1 thread, direct)", (0..args.runs).map(|_| nexosim_phold::run(cfg, Direct)).collect())
        }
        "nexosim-router" => {
            ("NeXosim 1.0 (1 thread, router)", (0..args.runs).map(|_| nexosim_phold::run(cfg, Router)).collect())
        }
        "bare-heap" => ("bare BinaryHeap loop (no engine)", (0..args.runs).map(|_| run_bare_heap(cfg)).collect()),
        _ => ("SimPy 4.1.2", run_simpy(&args.python, cfg, args.simpy_runs)?),
    };
    for (r, t) in &runs {
        eprintln!(
            "{label:>32}: {} events, checksum {}, setup {:.3} s, run {:.3} s (CPU {:.3} s), {:.3} M events/s",
            r.events,
            r.checksum_hex(),
            t.setup_s,
            t.run_s,
            t.run_cpu_s,
            r.events as f64 / t.run_s / 1e6
        );
        if (r.events, r.checksum) != (named.events, named.checksum) {
            return Err(format!(
                "{label} on config {}: {} events, checksum {}; the reference is {} events, checksum {:016x}",
                named.name,
                r.events,
                r.checksum_hex(),
                named.events,
                named.checksum
            ));
        }
    }
    Ok(Row {
        engine: label,
        events_per_s: median(runs.iter().map(|(r, t)| r.events as f64 / t.run_s).collect()),
        events_per_cpu_s: median(runs.iter().map(|(r, t)| r.events as f64 / t.run_cpu_s).collect()),
        setup_s: median(runs.iter().map(|(_, t)| t.setup_s).collect()),
        run_s: median(runs.iter().map(|(_, t)| t.run_s).collect()),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(named) = common::named(&args.config) else {
        eprintln!("unknown config {:?} (A, A-short, B, C)", args.config);
        return ExitCode::from(2);
    };
    let mut rows = Vec::new();
    for e in &args.engines {
        match measure(e, &named, &args) {
            Ok(r) => rows.push(r),
            Err(msg) => {
                eprintln!("MISMATCH or failure: {msg}");
                return ExitCode::FAILURE;
            }
        }
    }
    let c = &named.cfg;
    println!(
        "PHOLD-ns config {} (N={} M={} T_END={} s): every engine gave {} events, checksum {:016x}",
        named.name,
        c.lps,
        c.events_per_lp,
        c.end_ns / 1_000_000_000,
        named.events,
        named.checksum
    );
    // Wall time is what a user waits; CPU time (process-wide) is what the run costs when other work shares the
    // cores. They agree on an idle machine, except for a peer that keeps helper threads busy.
    println!(
        "| engine | events/s (wall) | events/s (CPU) | run s (wall) | setup s | gridtwin / engine (wall) | gridtwin / engine (CPU) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let ours = rows.iter().find(|r| r.engine == "gridtwin").map(|r| (r.events_per_s, r.events_per_cpu_s));
    for r in &rows {
        let (wall, cpu) = ours.map_or(("-".into(), "-".into()), |(w, c)| {
            (format!("{:.2}x", w / r.events_per_s), format!("{:.2}x", c / r.events_per_cpu_s))
        });
        println!(
            "| {} | {:.3} M | {:.3} M | {:.3} | {:.3} | {wall} | {cpu} |",
            r.engine,
            r.events_per_s / 1e6,
            r.events_per_cpu_s / 1e6,
            r.run_s,
            r.setup_s
        );
    }
    ExitCode::SUCCESS
}

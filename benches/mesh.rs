//! Mesh benchmarks.
//!
//! - `cargo bench --bench mesh`: criterion timing of a 1,000-LMU district over 1 simulated hour.
//! - `MESH_SCENARIO=scenarios/district-10k.ron cargo bench --bench mesh`: one full run of the scenario's mesh
//!   section (for the 10,000-LMU, 24-hour district), printing wall time, events/s and the mesh KPIs.

use criterion::Criterion;
use gridtwin::agents::Msg;
use gridtwin::engine::{SimTime, Simulation, Stop, parse_duration};
use gridtwin::mesh::{self, Layout, MeshConfig, RadioModel, Traffic};
use std::time::Instant;

/// The allocator the `gridtwin` binary runs with (see `src/main.rs`), so the bench times what users run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn radio(name: &str) -> RadioModel {
    let path = format!("{}/models/radio-{name}.ron", env!("CARGO_MANIFEST_DIR"));
    ron::from_str(&std::fs::read_to_string(&path).expect("radio model")).expect("radio model parses")
}

/// The parts of a scenario file this bench needs (other top-level sections are ignored).
#[derive(serde::Deserialize)]
struct Scenario {
    seed: u64,
    duration: String,
    mesh: MeshConfig,
}

fn run(cfg: &MeshConfig, seed: u64, until: SimTime) -> (Simulation<Msg>, mesh::MeshHandle) {
    let mut sim = Simulation::new(seed);
    let h = mesh::build(&mut sim, cfg, &radio(&cfg.radio), &[], &[]).expect("mesh builds");
    sim.run(Stop::at(until)).expect("run");
    (sim, h)
}

fn full(path: &str) {
    let sc: Scenario = ron::from_str(&std::fs::read_to_string(path).expect("scenario")).expect("scenario parses");
    let until = SimTime(parse_duration(&sc.duration).expect("duration").0);
    let t0 = Instant::now();
    let (sim, h) = run(&sc.mesh, sc.seed, until);
    let wall = t0.elapsed().as_secs_f64();
    let r = h.report(&sim);
    let ev = sim.stats().delivered;
    println!(
        "{path}: {} nodes, {:.1} s wall, {} events, {:.2} M events/s, digest {:?}",
        r.nodes,
        wall,
        ev,
        ev as f64 / wall / 1e6,
        sim.digest()
    );
    let mut j = serde_json::to_value(&r).expect("json");
    j.as_object_mut().expect("object").remove("warnings");
    println!("{}", serde_json::to_string_pretty(&j).expect("json"));
    for w in h.warnings.iter().take(5) {
        println!("warning: {w}");
    }
}

fn main() {
    if let Ok(path) = std::env::var("MESH_SCENARIO") {
        full(&path);
        return;
    }
    let cfg = MeshConfig {
        layout: Some(Layout::Grid { nodes: 1000, spacing_m: 100.0, jitter_m: 30.0, coordinators: 2 }),
        traffic: Traffic {
            report_every: Some("15min".into()),
            report_bytes: 40,
            start: "1min".into(),
            command_every: None,
        },
        ..MeshConfig::default()
    };
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    c.bench_function("mesh/district-1000-lmus-1h", |b| {
        b.iter(|| run(&cfg, 1, SimTime::from_secs(3600)).0.stats().delivered)
    });
    c.final_summary();
}

//! Instruction-count benchmarks (gungraun, under Valgrind's Callgrind): exact, noise-free counts of the hot
//! paths, for regressions that wall-clock timing on a shared machine cannot see.
//!
//! - `engine::phold_a_short`: PHOLD config A-short (323,005 events) through the engine's agent API, next to the
//!   bare `BinaryHeap` loop that is the ceiling for a heap-based engine (`engine::bare_heap_a_short`).
//! - `powerflow::{balanced,unbalanced}`: one solve of the IEEE European LV feeder from a flat start on the
//!   reused factorisation (the set-up, loading and factorising, is not counted).
//! - `mesh::district_200_lmus_10min`: a 200-LMU grid mesh with two coordinators over 10 simulated minutes
//!   (joining, routing, reports every minute).
//!
//! Needs Valgrind and the runner of the same version as the library:
//! `cargo install gungraun-runner --version 0.20.0`, then `cargo bench --bench instructions`.
//! Counts are per call; divide the PHOLD count by 323,005 for instructions per event.
//! `.ci/instructions [BASE_REF]` is the regression gate on these counts (fails above +2 % Ir against the base;
//! docs/benchmarks.md). The inputs come from the copies embedded in the library, not from the checkout, so the
//! same code gives the same counts wherever the repository lies.

use gridtwin::agents::Msg;
use gridtwin::engine::phold::{PholdConfig, PholdResult, run_engine, run_reference};
use gridtwin::engine::{SimTime, Simulation, Stop};
use gridtwin::grid::model::GridModel;
use gridtwin::grid::network::Network;
use gridtwin::grid::powerflow::PowerFlow;
use gridtwin::mesh::{self, Layout, MeshConfig, RadioModel, Traffic};
use gridtwin::scenario::assets;
use gungraun::{library_benchmark, library_benchmark_group, main};
use std::hint::black_box;

#[library_benchmark]
fn phold_a_short() -> PholdResult {
    black_box(run_engine(&PholdConfig::A_SHORT).expect("PHOLD runs"))
}

#[library_benchmark]
fn bare_heap_a_short() -> PholdResult {
    black_box(run_reference(&PholdConfig::A_SHORT))
}

library_benchmark_group!(name = engine; benchmarks = phold_a_short, bare_heap_a_short);

/// The IEEE European LV feeder, solved once so that the factorisation is reused by the measured solve.
fn ieee_eu(unbalanced: bool) -> PowerFlow {
    let text = assets::embedded("scenarios/networks/ieee_european_lv_on_peak_566.json").expect("shipped network");
    let net = Network::from_json_str(text).expect("shipped network loads");
    let mut model = GridModel::new(net);
    model.unbalanced = unbalanced;
    model.solve().expect("reference feeder solves");
    let mut pf = model.power_flow().cloned().expect("solver state");
    pf.reset_flat();
    pf
}

#[library_benchmark]
#[bench::ieee_eu(setup = ieee_eu, args = (false))]
fn balanced(mut pf: PowerFlow) -> PowerFlow {
    black_box(pf.solve_balanced().expect("solves"));
    pf
}

#[library_benchmark]
#[bench::ieee_eu(setup = ieee_eu, args = (true))]
fn unbalanced(mut pf: PowerFlow) -> PowerFlow {
    black_box(pf.solve_unbalanced().expect("solves"));
    pf
}

library_benchmark_group!(name = powerflow; benchmarks = balanced, unbalanced);

fn district_200() -> (MeshConfig, RadioModel) {
    let cfg = MeshConfig {
        layout: Some(Layout::Grid { nodes: 200, spacing_m: 100.0, jitter_m: 30.0, coordinators: 2 }),
        traffic: Traffic {
            report_every: Some("1min".into()),
            report_bytes: 40,
            start: "10s".into(),
            command_every: None,
        },
        ..MeshConfig::default()
    };
    let text = assets::embedded(&format!("models/radio-{}.ron", cfg.radio)).expect("shipped radio model");
    let radio = ron::from_str(text).expect("radio model parses");
    (cfg, radio)
}

#[library_benchmark]
#[bench::district_200_lmus_10min(setup = district_200)]
fn mesh_run((cfg, radio): (MeshConfig, RadioModel)) -> u64 {
    let mut sim: Simulation<Msg> = Simulation::new(1);
    mesh::build(&mut sim, &cfg, &radio, &[], &[]).expect("mesh builds");
    sim.run(Stop::at(SimTime::from_secs(600))).expect("run");
    black_box(sim.stats().delivered)
}

library_benchmark_group!(name = mesh_group; benchmarks = mesh_run);

main!(library_benchmark_groups = engine, powerflow, mesh_group);

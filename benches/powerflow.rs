//! Criterion benchmarks of the grid physics on the shipped reference feeders.
//!
//! - `powerflow/<feeder>/balanced`, `/unbalanced`: one solve from a flat start on the reused factorisation
//!   (what `gridtwin grid solve --repeat K` times; pandapower's figures for the same feeders are in the
//!   reference `peer_timings.json`: 48 ms balanced and 221 ms unbalanced for the IEEE European LV feeder).
//! - `powerflow/<feeder>/compile+factorise+solve`: the same from the network file's data, topology included.
//! - `powerflow/ieee_eu/day_1440_steps`: a day of the IEEE European LV feeder at 1-minute steps, every load
//!   following the BDEW H0 profile with a per-household phase shift and 20 PV systems following a clear-sky
//!   day; each step sets every load and generator and re-solves warm-started (1,440 solves per iteration).
//! - `shortcircuit/<feeder>`: IEC 60909 max and min currents of every type at every bus, on the two feeders
//!   above and on three reference networks of growing size from `tests/data/grid`: `vorstadt_290`
//!   (Kerber Vorstadtnetz Kabel 2, 290 buses), `ieee_on_peak_907` (907 buses) and `schutterwald_2940`
//!   (2,940 buses, 14 transformers), to show how the cost grows with the network.
//!
//! `cargo bench --bench powerflow`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gridtwin::grid::model::GridModel;
use gridtwin::grid::network::Network;
use gridtwin::grid::powerflow::PowerFlow;
use gridtwin::grid::profiles::{clear_sky_ghi, cos_zenith, h0_kw};
use gridtwin::grid::shortcircuit::short_circuit;
use gridtwin::grid::topology::{Purpose, Topology};
use std::hint::black_box;

const FEEDERS: [(&str, &str); 2] =
    [("ieee_eu", "ieee_european_lv_on_peak_566"), ("kerber", "kerber_landnetz_freileitung_1")];

/// Reference networks of growing size for the short-circuit scaling (`tests/data/grid/<folder>`).
const SC_SIZES: [(&str, &str); 3] = [
    ("vorstadt_290", "kerber_vorstadtnetz_kabel_2"),
    ("ieee_on_peak_907", "ieee_european_lv_on_peak_566"),
    ("schutterwald_2940", "lv_schutterwald"),
];

fn network(file: &str) -> Network {
    let path = format!("{}/scenarios/networks/{file}.json", env!("CARGO_MANIFEST_DIR"));
    Network::from_json_file(std::path::Path::new(&path)).expect("shipped network loads")
}

/// A solved model's power flow (loads of the file applied), ready to be re-solved.
fn prepared(net: &Network, unbalanced: bool) -> PowerFlow {
    let mut model = GridModel::new(net.clone());
    model.unbalanced = unbalanced;
    model.solve().expect("reference feeder solves");
    model.power_flow().cloned().expect("solver state")
}

fn solves(c: &mut Criterion) {
    let mut g = c.benchmark_group("powerflow");
    for (short, file) in FEEDERS {
        let net = network(file);
        for unbalanced in [false, true] {
            let mut pf = prepared(&net, unbalanced);
            let what = if unbalanced { "unbalanced" } else { "balanced" };
            g.bench_function(format!("{short}/{what}"), |b| {
                b.iter(|| {
                    pf.reset_flat();
                    let st = if unbalanced { pf.solve_unbalanced() } else { pf.solve_balanced() };
                    black_box(st.expect("solves"))
                })
            });
        }
        let pf = prepared(&net, false);
        let names: Vec<String> = (0..net.buses.len()).map(|b| net.bus_label(b)).collect();
        let closed: Vec<bool> = net.switches.iter().map(|s| s.closed).collect();
        let lis: Vec<bool> = net.lines.iter().map(|l| l.in_service).collect();
        g.bench_function(format!("{short}/compile+factorise+solve"), |b| {
            b.iter(|| {
                let topo = Topology::build(&net, &closed, &lis, Purpose::PowerFlow).expect("compiles");
                let mut p = PowerFlow::new(topo, names.clone()).expect("factorises");
                p.loads = pf.loads.clone();
                black_box(p.solve_balanced().expect("solves"))
            })
        });
    }
    g.finish();
}

/// One day of the IEEE feeder at 1-minute steps with H0 loads and PV; returns the energy drawn (for black_box).
fn day(model: &mut GridModel, loads: &[(gridtwin::grid::model::LoadId, i64)], pv: &[usize]) -> f64 {
    let mut e = 0.0;
    for minute in 0..1440u32 {
        let t_s = minute as f64 * 60.0 + 30.0;
        for (k, (id, _)) in loads.iter().enumerate() {
            // Households shifted by up to +-40 minutes so peaks do not coincide.
            let shift_s = ((k * 37) % 81) as f64 * 60.0 - 2400.0;
            let p_mw = h0_kw(3500.0, 172, t_s + shift_s) * 1e-3;
            model.set_load(*id, p_mw, p_mw * 0.2).expect("load id");
        }
        let ghi = clear_sky_ghi(cos_zenith(52.5, -1.5, 172, t_s));
        for &s in pv {
            model.set_sgen(s, 4.0e-3 * ghi / 1000.0 * 0.85, 0.0).expect("sgen");
        }
        e += model.solve().expect("day step solves").v1_pu(0).re;
    }
    e
}

fn time_series(c: &mut Criterion) {
    let net = network("ieee_european_lv_on_peak_566");
    let mut model = GridModel::new(net);
    model.unbalanced = false;
    let loads = model.load_ids();
    let pv: Vec<usize> = loads
        .iter()
        .step_by(loads.len().div_ceil(20).max(1))
        .map(|(_, bus)| model.add_sgen(*bus, 0.0, 0.0, "PV").expect("PV on a load bus"))
        .collect();
    model.solve().expect("initial solve");
    let mut g = c.benchmark_group("powerflow");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1440));
    g.bench_function("ieee_eu/day_1440_steps", |b| b.iter(|| black_box(day(&mut model, &loads, &pv))));
    g.finish();
}

fn short_circuits(c: &mut Criterion) {
    let mut g = c.benchmark_group("shortcircuit");
    g.sample_size(20);
    for (short, file) in FEEDERS {
        let net = network(file);
        g.bench_function(short, |b| b.iter(|| black_box(short_circuit(&net).expect("short circuit"))));
    }
    for (short, folder) in SC_SIZES {
        let path = format!("{}/tests/data/grid/{folder}/network.json", env!("CARGO_MANIFEST_DIR"));
        let net = Network::from_json_file(std::path::Path::new(&path)).expect("reference network loads");
        g.bench_function(short, |b| b.iter(|| black_box(short_circuit(&net).expect("short circuit"))));
    }
    g.finish();
}

criterion_group!(benches, solves, time_series, short_circuits);
criterion_main!(benches);

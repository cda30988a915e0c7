//! A planner's sweep from Rust: candidate gateway positions x radio models x k (disjoint paths wanted), each
//! planned with `gridtwin::plan` (relays proposed for k disjoint paths), each plan simulated for two hours of
//! meter reporting, and the designs ranked by cost against simulated delivery, with the Pareto front marked.
//!
//! ```text
//! cargo run --release --example planner_sweep [POLES.csv] [--hours H]
//! ```
//! Without a poles file it plans a generated village: 150 poles along streets on a 3 km x 2 km area. Cost is
//! in abstract units: 1 per LMU, 3 per relay, 20 per gateway site. Runs are in parallel (rayon), results in
//! design order, so the table is the same for any thread count.

use gridtwin::engine::derive_seed;
use gridtwin::mesh::RadioModel;
use gridtwin::plan::{self, RangeRule, sites};
use gridtwin::scenario::Loaded;
use rayon::prelude::*;

fn village() -> String {
    // Poles every ~40 m along six streets, jittered by a seeded hash.
    let mut text = String::from("id,x_m,y_m\n");
    let u = |k: u64| (derive_seed(2024, &[k]) >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    let mut k = 0u64;
    for street in 0..6u64 {
        let horizontal = street % 2 == 0;
        let offset = 300.0 + 450.0 * (street / 2) as f64 + if horizontal { 0.0 } else { 200.0 };
        for j in 0..25u64 {
            let along = 40.0 + 110.0 * j as f64 + 20.0 * u(k);
            let (x, y) = if horizontal {
                (along, offset + 8.0 * u(k + 1))
            } else {
                (offset * 1.4 + 8.0 * u(k + 1), along * 0.7)
            };
            text.push_str(&format!("pole{k},{x:.1},{y:.1}\n"));
            k += 2;
        }
    }
    text
}

struct Design {
    gateway: String,
    radio: String,
    k: u32,
    relays: usize,
    cost: f64,
    pdr: f64,
    p99_ms: f64,
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hours: u32 = args
        .iter()
        .position(|a| a == "--hours")
        .and_then(|i| args.get(i + 1))
        .and_then(|h| h.parse().ok())
        .unwrap_or(2);
    let (file, text) = match args.iter().find(|a| !a.starts_with("--") && a.parse::<u32>().is_err()) {
        Some(p) => (p.clone(), std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?),
        None => ("generated village".to_string(), village()),
    };
    let base = sites::parse(&file, &text).map_err(|e| e.to_string())?;
    // Gateway candidates: the site nearest the centre, and the ones nearest the middle of each side.
    let (cx, cy) = {
        let n = base.sites.len() as f64;
        (base.sites.iter().map(|s| s.x_m).sum::<f64>() / n, base.sites.iter().map(|s| s.y_m).sum::<f64>() / n)
    };
    let nearest = |x: f64, y: f64| {
        base.sites
            .iter()
            .min_by(|a, b| (a.x_m - x).hypot(a.y_m - y).total_cmp(&(b.x_m - x).hypot(b.y_m - y)))
            .map(|s| s.id.clone())
    };
    let (x0, x1) = base.sites.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, s| (a.0.min(s.x_m), a.1.max(s.x_m)));
    let mut gateways: Vec<String> = [(cx, cy), (x0, cy), (x1, cy)].iter().filter_map(|&(x, y)| nearest(x, y)).collect();
    gateways.dedup();
    let radios = ["sun-fsk-868", "oqpsk-2450-pa"];
    let embedded = Loaded::default_embedded();
    let mut designs = Vec::new();
    for gw in &gateways {
        for radio in radios {
            let (model, _) = embedded.model::<RadioModel>(&format!("radio-{radio}")).map_err(|e| e.to_string())?;
            for k in [1u32, 2] {
                designs.push((gw.clone(), radio.to_string(), model.clone(), k));
            }
        }
    }
    eprintln!("{} designs over {} poles ({file}), {hours} h simulated each", designs.len(), base.sites.len());
    let results: Vec<Result<Design, String>> = designs
        .par_iter()
        .map(|(gw, radio, model, k)| {
            let gi = base.index_of(gw).ok_or("gateway vanished")?;
            let rule = RangeRule::Radio {
                model: radio.clone(),
                max_path_loss_db: model.max_path_loss_db(),
                frequency_mhz: model.frequency_mhz,
                exponent: 3.0,
                fade_margin_db: 5.0,
            };
            let p = plan::plan(base.clone(), gi, rule, *k, true)?;
            let name = format!("plan-{gw}-{radio}-k{k}");
            let text = p.scenario_ron(radio, &name).replace("duration: \"2h\"", &format!("duration: \"{hours}h\""));
            let loaded = Loaded::from_text(name, text, None).map_err(|e| e.to_string())?;
            let summary = gridtwin::sweep::run_one(&loaded, 7)?;
            let mesh = &summary["mesh"];
            let relays = p.placement.relays.len();
            Ok(Design {
                gateway: gw.clone(),
                radio: radio.clone(),
                k: *k,
                relays,
                cost: base.sites.len() as f64 + 3.0 * relays as f64 + 20.0,
                pdr: mesh["pdr"].as_f64().unwrap_or(f64::NAN),
                p99_ms: mesh["latency_ms_p99"].as_f64().unwrap_or(f64::NAN),
            })
        })
        .collect();
    let mut ds: Vec<Design> = results.into_iter().collect::<Result<_, _>>()?;
    ds.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(b.pdr.total_cmp(&a.pdr)));
    println!(
        "{:<10} {:<14} {:>2} {:>6} {:>7} {:>9} {:>9}  pareto",
        "gateway", "radio", "k", "relays", "cost", "pdr_%", "p99_ms"
    );
    let mut best_pdr = f64::NEG_INFINITY;
    for d in &ds {
        let front = d.pdr > best_pdr;
        if front {
            best_pdr = d.pdr;
        }
        println!(
            "{:<10} {:<14} {:>2} {:>6} {:>7.0} {:>9.3} {:>9.0}  {}",
            d.gateway,
            d.radio,
            d.k,
            d.relays,
            d.cost,
            100.0 * d.pdr,
            d.p99_ms,
            if front { "*" } else { "" }
        );
    }
    Ok(())
}

//! Placement planning from pole data (`gridtwin mesh plan`): which candidate sites hear each other, how many
//! hops and node-disjoint paths each has to the gateway, which single failures cut sites off, where extra
//! relays make every site reach the gateway over `k` disjoint paths, and a scenario ready to simulate.
//!
//! Links: two sites are neighbours when their distance is within the range: either a plain `range_m`, or the
//! distance at which the radio model's median path loss (log-distance, given exponent) reaches its link budget
//! less a fade margin. Distances are metres; lat/lon inputs use great-circle distances ([`sites`]).
//!
//! Parts: [`sites`] (the CSV), [`graph`] (spatial index, BFS, max-flow, articulation points), [`place`] (relay
//! placement, lower bound, exhaustive search for small cases). The planner is not on the simulation path; it
//! is deterministic all the same (index order, no hash-map iteration), and parallel over sites on rayon with
//! results in site order.

pub mod graph;
pub mod place;
pub mod sites;

use graph::{FlowNet, Graph};
use rayon::prelude::*;
use serde::Serialize;
use sites::Sites;

/// How the radio range is decided.
#[derive(Clone, Debug, PartialEq)]
pub enum RangeRule {
    /// A plain range, m.
    Plain { range_m: f64 },
    /// From a radio model: median log-distance path loss (`exponent`, 1 m free-space reference) equal to the
    /// model's maximum path loss less `fade_margin_db`.
    Radio { model: String, max_path_loss_db: f64, frequency_mhz: f64, exponent: f64, fade_margin_db: f64 },
}

impl RangeRule {
    pub fn range_m(&self) -> f64 {
        match self {
            RangeRule::Plain { range_m } => *range_m,
            RangeRule::Radio { max_path_loss_db, frequency_mhz, exponent, fade_margin_db, .. } => {
                let p = crate::mesh::Propagation::LogDistance {
                    exponent: *exponent,
                    ref_distance_m: 1.0,
                    shadowing_db: 0.0,
                    asymmetric: false,
                };
                p.range_for_loss_m(max_path_loss_db - fade_margin_db, *frequency_mhz)
            }
        }
    }
}

/// Per-site results.
#[derive(Clone, Debug, Serialize)]
pub struct SiteResult {
    pub id: String,
    /// Sites within range.
    pub neighbours: u32,
    /// Hops to the gateway; `None` when unreachable.
    pub hops: Option<u32>,
    /// Node-disjoint paths to the gateway (direct link counts as one); `None` for the gateway itself.
    pub disjoint_paths: Option<u32>,
    /// Other sites cut off from the gateway if this site fails.
    pub cuts_off: u32,
    /// The nearest site whose single failure cuts this one off, if any.
    pub cut_by: Option<String>,
    /// Number of distinct sites whose single failure cuts this one off.
    pub single_points_of_failure: u32,
}

/// A finished plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub sites: Sites,
    pub gateway: usize,
    pub range_m: f64,
    pub rule: RangeRule,
    pub k: u32,
    pub graph: Graph,
    pub results: Vec<SiteResult>,
    /// Per site, the index of the nearest site whose single failure cuts it off.
    pub cut_by_idx: Vec<Option<u32>>,
    pub placement: place::Placement,
}

/// Plans `sites` around the gateway at index `gateway`.
pub fn plan(sites: Sites, gateway: usize, rule: RangeRule, k: u32, place_relays: bool) -> Result<Plan, String> {
    let range_m = rule.range_m();
    if !(range_m > 0.0 && range_m.is_finite()) {
        return Err(format!(
            "radio range {range_m} m is not positive; check --range-m or the radio model and fade margin"
        ));
    }
    if !(1..=16).contains(&k) {
        return Err(format!("--k {k} must be within 1..=16"));
    }
    let pts: Vec<(f64, f64)> = sites.sites.iter().map(|s| (s.x_m, s.y_m)).collect();
    let dist = |a: usize, b: usize| sites.distance_m(a, b);
    let graph = graph::unit_disc(&pts, range_m, sites.projection_slack(), dist);
    let hops = graph::hops(&graph, gateway);
    let net = FlowNet::new(&graph, Some(gateway));
    let n = pts.len();
    let paths: Vec<Option<u32>> = (0..n)
        .into_par_iter()
        .map_init(
            || net.scratch(),
            |sc, s| {
                if s == gateway {
                    None
                } else if hops[s].is_none() {
                    Some(0)
                } else {
                    Some(net.disjoint_paths(sc, s, gateway, u32::MAX))
                }
            },
        )
        .collect();
    let cuts = graph::cuts(&graph, gateway);
    let results = (0..n)
        .map(|s| SiteResult {
            id: sites.sites[s].id.clone(),
            neighbours: graph.degree(s) as u32,
            hops: hops[s],
            disjoint_paths: paths[s],
            cuts_off: cuts.cuts_off[s],
            cut_by: if hops[s].is_some() { cuts.cut_by[s].map(|c| sites.sites[c as usize].id.clone()) } else { None },
            single_points_of_failure: if hops[s].is_some() { cuts.spof_count[s] } else { 0 },
        })
        .collect();
    let placement = if place_relays {
        place::place(&pts, &graph, gateway, range_m, k, &dist)
    } else {
        place::Placement {
            relays: Vec::new(),
            lower_bound: place::lower_bound(&pts, &graph, gateway, range_m, k, &dist),
            paths_after: Vec::new(),
            unresolved: Vec::new(),
        }
    };
    let cut_by_idx = (0..n).map(|s| if hops[s].is_some() { cuts.cut_by[s] } else { None }).collect();
    Ok(Plan { sites, gateway, range_m, rule, k, graph, results, cut_by_idx, placement })
}

impl Plan {
    /// The summary object (`plan.json`, and the head of `--json`).
    pub fn summary(&self) -> serde_json::Value {
        let reach = self.results.iter().filter(|r| r.hops.is_some()).count();
        let below_k = self
            .results
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != self.gateway && r.disjoint_paths.unwrap_or(0) < self.k)
            .count();
        let arts = self.results.iter().filter(|r| r.cuts_off > 0).count();
        let relays = self.placement.relays.len() as u32;
        let lb = self.placement.lower_bound;
        serde_json::json!({
            "sites": self.results.len(),
            "links": self.graph.edges(),
            "gateway": self.sites.sites[self.gateway].id,
            "range_m": self.range_m,
            "range_from": match &self.rule {
                RangeRule::Plain { .. } => "plain range".to_string(),
                RangeRule::Radio { model, exponent, fade_margin_db, .. } =>
                    format!("radio model {model}, log-distance exponent {exponent}, fade margin {fade_margin_db} dB"),
            },
            "k": self.k,
            "reachable": reach,
            "unreachable": self.results.len() - reach,
            "below_k": below_k,
            "articulation_points": arts,
            "relays": relays,
            "relays_by_phase": {
                "connect": self.placement.relays.iter().filter(|r| r.1 == place::Phase::Connect).count(),
                "strengthen": self.placement.relays.iter().filter(|r| r.1 == place::Phase::Strengthen).count(),
                "chain_to_gateway": self.placement.relays.iter().filter(|r| r.1 == place::Phase::Chain).count(),
            },
            "relays_lower_bound": lb,
            "relays_over_bound": if lb > 0 { Some(relays as f64 / lb as f64) } else { None },
            "unresolved_after_relays": self.placement.unresolved.iter().map(|&s| self.sites.sites[s].id.clone()).collect::<Vec<_>>(),
        })
    }

    /// Node ids of the written scenario: the gateway is 1 (the coordinator), the other sites follow in file
    /// order, relays after them.
    pub fn node_ids(&self) -> Vec<u32> {
        let mut next = 2u32;
        (0..self.sites.sites.len())
            .map(|s| {
                if s == self.gateway {
                    1
                } else {
                    next += 1;
                    next - 1
                }
            })
            .collect()
    }

    /// A mesh-only scenario over the sites and relays (explicit layout), ready for `gridtwin run`.
    pub fn scenario_ron(&self, radio: &str, name: &str) -> String {
        use std::fmt::Write;
        let ids = self.node_ids();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// Written by `gridtwin mesh plan`: {} sites and {} relays around gateway `{}`, range {:.1} m, k = {}.",
            self.sites.sites.len(),
            self.placement.relays.len(),
            self.sites.sites[self.gateway].id,
            self.range_m,
            self.k
        );
        let _ = writeln!(
            s,
            "// Node ids: the gateway's coordinator is 1, sites follow in file order (sites.csv maps them), relays after."
        );
        let _ = writeln!(
            s,
            "Scenario(\n    name: {name:?},\n    seed: 1,\n    duration: \"2h\",\n    mesh: (\n        radio: {radio:?},"
        );
        let _ = writeln!(s, "        propagation: LogDistance(exponent: 3.0, shadowing_db: 4.0),");
        let _ = writeln!(s, "        traffic: (report_every: Some(\"15min\"), report_bytes: 40, start: \"1min\"),");
        let _ = writeln!(s, "        layout: Some(Sites([");
        let mut order: Vec<usize> = (0..self.sites.sites.len()).collect();
        order.sort_by_key(|&i| ids[i]);
        for i in order {
            let st = &self.sites.sites[i];
            let _ = writeln!(
                s,
                "            (id: {}, x_m: {:.2}, y_m: {:.2}, coordinator: {}),",
                ids[i],
                st.x_m,
                st.y_m,
                i == self.gateway
            );
        }
        let base = self.sites.sites.len() as u32 + 1;
        for (j, ((x, y), _)) in self.placement.relays.iter().enumerate() {
            let _ =
                writeln!(s, "            (id: {}, x_m: {:.2}, y_m: {:.2}, coordinator: false),", base + j as u32, x, y);
        }
        let _ = writeln!(s, "        ])),\n    ),\n)");
        s
    }
}

//! The grid part of a world: the [`GridAgent`] (network, loads, generators) and the [`WeatherAgent`] from the
//! scenario's `grid` section, a recorder of every solved state for the report, and a pole layout of the
//! feeder (metres) for the radio mesh. Units: MW and Mvar in the model, kW/kWh and p.u. in the report.

use super::Part;
use super::grid_detail::Sampler;
use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimTime, Simulation};
use crate::grid::agents::{GridAgent, WeatherAgent};
use crate::grid::config::{LoadConfig, NetworkSource};
use crate::grid::network::Network;
use crate::grid::{GridConfig, GridMsg};
use crate::report::{Report, Series};
use crate::scenario::{InputError, Loaded};
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The grid as built: agent ids and the network it runs.
pub struct GridPart {
    pub grid: AgentId,
    pub weather: AgentId,
    pub recorder: AgentId,
    pub network: Network,
}

/// Loads the scenario's network: a file beside the scenario (or embedded) or inline. Errors name the file.
pub fn load_network(loaded: &Loaded, cfg: &GridConfig) -> Result<Network, InputError> {
    let net = match &cfg.network {
        NetworkSource::File(rel) => {
            let r = loaded.resolve(rel).map_err(|e| loaded.error_at("grid.network", e, None))?;
            Network::from_json_str(&r.text).map_err(|e| crate::scenario::json_path::error(&r.file, &r.text, &e))?
        }
        NetworkSource::Inline(d) => {
            Network::from_data((**d).clone()).map_err(|e| loaded.error_at("grid.network", e, None))?
        }
    };
    for w in &net.warnings {
        tracing::warn!("{}: grid.network: {w}", loaded.file);
    }
    for (k, g) in cfg.generators.iter().enumerate() {
        if net.bus(g.bus).is_none() {
            return Err(loaded.error_at(
                &format!("grid.generators[{k}].bus"),
                format!("no bus {} in the network", g.bus),
                None,
            ));
        }
    }
    Ok(net)
}

/// Adds the grid, weather and recorder agents.
pub fn add(sim: &mut Simulation<Msg>, loaded: &Loaded, cfg: &GridConfig) -> Result<GridPart, InputError> {
    let net = load_network(loaded, cfg)?;
    let (model, gens) = cfg.build_model(net.clone()).map_err(|e| loaded.error_in("grid", e))?;
    let households = match cfg.loads {
        LoadConfig::H0 { annual_kwh, jitter } => Some((annual_kwh, jitter)),
        LoadConfig::FromNetwork => None,
    };
    let step = cfg.profile_step().map_err(|e| loaded.error_in("grid", e))?;
    let engine = |e: crate::engine::EngineError| loaded.error_at("grid", e.to_string(), None);
    let mut agent = GridAgent::new(model, gens, households, step, cfg.day_of_year);
    agent.plan_broken_neutrals(cfg).map_err(|e| loaded.error_in("grid", e))?;
    agent.plan_anti_islanding(cfg);
    let grid = sim.next_agent_id();
    let weather = AgentId(grid.0 + 1);
    let recorder = AgentId(grid.0 + 2);
    agent.subscribe(recorder);
    let w = WeatherAgent::from_config(cfg, grid).map_err(|e| loaded.error_in("grid", e))?;
    sim.add_agent(Box::new(agent)).map_err(engine)?;
    sim.add_agent(Box::new(w)).map_err(engine)?;
    let max_rows = loaded.scenario.outputs.max_log_rows;
    let lv: Vec<bool> = net.buses.iter().map(|b| b.vn_kv < 1.0).collect();
    let detail = loaded.scenario.outputs.grid_detail.as_ref().map(|d| Sampler::new(&net, d.every.0.as_nanos()));
    let nb = lv.len();
    sim.add_agent(Box::new(GridRecorder {
        lv,
        max_rows,
        rows: VecDeque::new(),
        dropped: 0,
        failed: 0,
        detail,
        bus_lo: vec![f64::INFINITY; nb],
        bus_hi: vec![f64::NEG_INFINITY; nb],
    }))
    .map_err(engine)?;
    Ok(GridPart { grid, weather, recorder, network: net })
}

/// One solved state, condensed.
#[derive(Clone, Copy, Debug)]
struct Row {
    t: SimTime,
    p_mw: f64,
    q_mvar: f64,
    v_min_pu: f64,
    v_max_pu: f64,
    energised_pct: f64,
}

/// Keeps a condensed row per solved state (bounded: the oldest rows go first when full, counted).
struct GridRecorder {
    lv: Vec<bool>,
    max_rows: usize,
    rows: VecDeque<Row>,
    dropped: u64,
    failed: u64,
    /// Per-element samples (`outputs.grid_detail`).
    detail: Option<Sampler>,
    /// Lowest and highest phase voltage per bus over the energised states, p.u. (for the voltage profile).
    bus_lo: Vec<f64>,
    bus_hi: Vec<f64>,
}

impl Agent<Msg> for GridRecorder {
    fn handle(&mut self, e: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match e.msg {
            Msg::Grid(GridMsg::Solved(s)) => {
                if let Some(d) = &mut self.detail {
                    d.solved(ctx.now().as_nanos(), s.clone());
                }
                let (mut lo, mut hi, mut on, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0usize, 0usize);
                for (b, v) in s.v_pu.iter().enumerate() {
                    if !self.lv.get(b).copied().unwrap_or(false) {
                        continue;
                    }
                    n += 1;
                    if !s.energised.get(b).copied().unwrap_or(false) {
                        continue;
                    }
                    on += 1;
                    for ph in v {
                        lo = lo.min(ph.norm());
                        hi = hi.max(ph.norm());
                        if let (Some(l), Some(h)) = (self.bus_lo.get_mut(b), self.bus_hi.get_mut(b)) {
                            *l = l.min(ph.norm());
                            *h = h.max(ph.norm());
                        }
                    }
                }
                if self.rows.len() >= self.max_rows {
                    self.rows.pop_front();
                    self.dropped += 1;
                }
                self.rows.push_back(Row {
                    t: ctx.now(),
                    p_mw: s.slack_s_mva.re,
                    q_mvar: s.slack_s_mva.im,
                    v_min_pu: if on > 0 { lo } else { 0.0 },
                    v_max_pu: if on > 0 { hi } else { 0.0 },
                    energised_pct: if n > 0 { 100.0 * on as f64 / n as f64 } else { 0.0 },
                });
            }
            Msg::Grid(GridMsg::SolveFailed(_)) => self.failed += 1,
            _ => {}
        }
    }
    fn kind(&self) -> &'static str {
        "grid-recorder"
    }
}

impl Part for GridPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let (Some(g), Some(rec), Some(w)) = (
            sim.agent::<GridAgent>(self.grid),
            sim.agent::<GridRecorder>(self.recorder),
            sim.agent::<WeatherAgent>(self.weather),
        ) else {
            return;
        };
        // Energy from the slack: each state holds until the next (or the end of the run).
        let end = sim.now();
        let (mut import_kwh, mut export_kwh) = (0.0, 0.0);
        let rows: Vec<Row> = rec.rows.iter().copied().collect();
        for (k, row) in rows.iter().enumerate() {
            let until = rows.get(k + 1).map_or(end, |n| n.t);
            let h = until.as_secs_f64() - row.t.as_secs_f64();
            let kwh = row.p_mw * 1000.0 * h / 3600.0;
            if kwh >= 0.0 {
                import_kwh += kwh;
            } else {
                export_kwh -= kwh;
            }
        }
        let fold = |f: fn(&Row) -> f64, init: f64, m: fn(f64, f64) -> f64| {
            rows.iter().filter(|x| x.energised_pct > 0.0).map(f).fold(init, m)
        };
        let v_min = fold(|x| x.v_min_pu, f64::INFINITY, f64::min);
        let v_max = fold(|x| x.v_max_pu, f64::NEG_INFINITY, f64::max);
        let p_peak = rows.iter().map(|x| x.p_mw).fold(f64::NEG_INFINITY, f64::max);
        let fin = |x: f64| if x.is_finite() { json!(x) } else { serde_json::Value::Null };
        let net = &self.network;
        r.summary.insert(
            "grid".into(),
            json!({
                "buses": net.buses.len(),
                "lines": net.lines.len(),
                "loads": net.loads.len() + net.asym_loads.len(),
                "unbalanced": g.model.unbalanced,
                "solves": g.solves,
                "solve_failures": g.failures,
                "last_error": g.last_error,
                "anti_islanding_trips": g.lom.as_ref().map(|l| l.trips),
                "anti_islanding_reconnections": g.lom.as_ref().map(|l| l.reconnections),
                "energy_import_kwh": import_kwh,
                "energy_export_kwh": export_kwh,
                "p_peak_kw": fin(p_peak * 1000.0),
                "v_min_pu": fin(v_min),
                "v_max_pu": fin(v_max),
                "ghi_last_w_m2": w.last.ghi_w_m2,
                "rows_dropped": rec.dropped,
                "warnings": net.warnings,
            }),
        );
        if g.model.four_wire
            && let Some(serde_json::Value::Object(o)) = r.summary.get_mut("grid")
        {
            // The 4-wire model's view: open neutrals, the largest neutral-point shift of the run (where and
            // when) and the largest at the end (after any isolation of the part beyond a break).
            let end = g.last.as_ref().map_or(0.0, |s| s.v_n_pu.iter().map(|v| v.norm()).fold(0.0, f64::max));
            let (max, bus, at) = g.neutral_shift_max.unwrap_or((0.0, 0, crate::engine::SimTime::ZERO));
            let bus = net.buses.get(bus).map(|b| b.index);
            o.insert(
                "four_wire".into(),
                json!({
                    "broken_neutral_lines": g.model.broken_neutrals(),
                    "neutral_shift_max_pu": fin(max),
                    "neutral_shift_max_bus": bus,
                    "neutral_shift_max_at_s": at.as_secs_f64(),
                    "neutral_shift_end_pu": fin(end),
                }),
            );
            r.human.push(format!(
                "grid: 4-wire, neutral open on line(s) {:?}, neutral shift max {:.3} p.u. (bus {}, {:.3} s), {:.3} p.u. at the end",
                g.model.broken_neutrals(),
                max,
                bus.map_or("-".to_string(), |b| b.to_string()),
                at.as_secs_f64(),
                end
            ));
        }
        if !net.warnings.is_empty() {
            r.human.push(format!(
                "grid: {} network warning(s), e.g. {} (all in summary.json grid.warnings)",
                net.warnings.len(),
                net.warnings[0]
            ));
        }
        r.human.push(format!(
            "grid: {} solves ({} failed), import {:.1} kWh, export {:.1} kWh, V {:.3}..{:.3} p.u.",
            g.solves, g.failures, import_kwh, export_kwh, v_min, v_max
        ));
        if !rows.is_empty() {
            let t_s: Vec<f64> = rows.iter().map(|x| x.t.as_secs_f64()).collect();
            let mut p = Series {
                name: "grid_power".into(),
                y_label: "kW / kvar".into(),
                t_s: t_s.clone(),
                ..Default::default()
            };
            p.columns.push(("p_slack_kw".into(), rows.iter().map(|x| x.p_mw * 1000.0).collect()));
            p.columns.push(("q_slack_kvar".into(), rows.iter().map(|x| x.q_mvar * 1000.0).collect()));
            r.series.push(p);
            let mut v = Series { name: "grid_voltage".into(), y_label: "p.u.".into(), t_s, ..Default::default() };
            v.columns.push(("v_min_pu".into(), rows.iter().map(|x| x.v_min_pu).collect()));
            v.columns.push(("v_max_pu".into(), rows.iter().map(|x| x.v_max_pu).collect()));
            r.series.push(v);
        }
        if let Some(d) = &rec.detail {
            r.tables.extend(d.tables(end.as_nanos()));
        }
        // Voltage range per LV bus against its distance from the transformer along the lines.
        let dist = distance_from_slack_m(net);
        let mut t = crate::report::Table::new(&["bus", "name", "distance_m", "v_min_pu", "v_max_pu"]);
        for (k, b) in net.buses.iter().enumerate() {
            if !rec.lv.get(k).copied().unwrap_or(false) || !rec.bus_lo[k].is_finite() {
                continue;
            }
            t.push(vec![
                b.index.to_string(),
                b.name.clone().unwrap_or_default(),
                crate::report::num(dist[k]),
                crate::report::num(rec.bus_lo[k]),
                crate::report::num(rec.bus_hi[k]),
            ]);
        }
        if !t.rows.is_empty() {
            r.tables.push(("grid_buses".into(), t));
        }
    }
}

/// Distance of every bus from the nearest external-grid bus along the lines as switched (transformers and closed
/// bus-bus switches count 0 m), m; NaN where no such path leads (Dijkstra over line lengths). Out-of-service
/// elements and lines or transformers with an open switch at either end carry no path, so a bus behind an
/// open tie is as far as its supplied route, not the tie's.
pub fn distance_from_slack_m(net: &Network) -> Vec<f64> {
    let adj = adjacency_m(net, 0.0, true);
    let mut d = vec![f64::INFINITY; adj.len()];
    // Keys are the distances' bits: for non-negative floats (line lengths are validated positive) their
    // order is the numeric one, and the bus index breaks ties, so the order of settling is fixed.
    let mut heap = BinaryHeap::new();
    for e in net.ext_grids.iter().filter(|e| e.in_service) {
        if let Some(s) = net.bus(e.bus) {
            d[s] = 0.0;
            heap.push(Reverse((0f64.to_bits(), s)));
        }
    }
    while let Some(Reverse((bits, u))) = heap.pop() {
        if f64::from_bits(bits) > d[u] {
            continue; // settled by a shorter path already
        }
        for &(v, w_m) in &adj[u] {
            let through = d[u] + w_m;
            if through < d[v] {
                d[v] = through;
                heap.push(Reverse((through.to_bits(), v)));
            }
        }
    }
    d.into_iter().map(|x| if x.is_finite() { x } else { f64::NAN }).collect()
}

/// Who is wired to whom, with the length between them (m): each line both ways at its length, each
/// transformer both ways at `trafo_m`. `as_switched`: only what is in service and not behind an open switch,
/// with closed bus-bus switches at 0 m; otherwise every line and transformer as built (a drawing's poles).
fn adjacency_m(net: &Network, trafo_m: f64, as_switched: bool) -> Vec<Vec<(usize, f64)>> {
    let mut adj: Vec<Vec<(usize, f64)>> = vec![Vec::new(); net.buses.len()];
    // (element type, element index) of every open switch, looked up once per line and transformer.
    let open: std::collections::BTreeSet<(&str, i64)> =
        net.switches.iter().filter(|s| !s.closed).map(|s| (s.et.as_str(), s.element)).collect();
    let open_at = |et: &str, element: i64| open.contains(&(et, element));
    let live = |a: usize, b: usize| net.buses[a].in_service && net.buses[b].in_service;
    let mut join = |a: usize, b: usize, m: f64| {
        adj[a].push((b, m));
        adj[b].push((a, m));
    };
    for l in &net.lines {
        if let (Some(a), Some(b)) = (net.bus(l.from_bus), net.bus(l.to_bus))
            && (!as_switched || (l.in_service && live(a, b) && !open_at("l", l.index)))
        {
            join(a, b, l.length_km * 1000.0);
        }
    }
    for t in &net.trafos {
        if let (Some(a), Some(b)) = (net.bus(t.hv_bus), net.bus(t.lv_bus))
            && (!as_switched || (t.in_service && live(a, b) && !open_at("t", t.index)))
        {
            join(a, b, trafo_m);
        }
    }
    if as_switched {
        for s in net.switches.iter().filter(|s| s.et == "b" && s.closed) {
            if let (Some(a), Some(b)) = (net.bus(s.bus), net.bus(s.element))
                && live(a, b)
            {
                join(a, b, 0.0);
            }
        }
    }
    adj
}

/// A drawing of the feeder on the ground (metres): the slack bus at the origin, each line laid out at its
/// length, children fanned out around their parent's direction. Pole positions for the radio mesh, since the
/// network files carry no geodata. Buses not reached from a slack sit at the origin.
pub fn bus_positions(net: &Network) -> Vec<(f64, f64)> {
    let adj = adjacency_m(net, 10.0, false);
    let nb = adj.len();
    let mut pos = vec![(0.0, 0.0); nb];
    let mut dir = vec![0.0f64; nb];
    let mut seen = vec![false; nb];
    let mut queue = VecDeque::new();
    for e in &net.ext_grids {
        if let Some(s) = net.bus(e.bus)
            && !seen[s]
        {
            seen[s] = true;
            queue.push_back(s);
        }
    }
    while let Some(u) = queue.pop_front() {
        let kids: Vec<(usize, f64)> = adj[u].iter().copied().filter(|&(v, _)| !seen[v]).collect();
        let n = kids.len();
        for (k, (v, len_m)) in kids.into_iter().enumerate() {
            if seen[v] {
                continue;
            }
            seen[v] = true;
            // The first child continues straight on; others branch off at alternating angles.
            let turn = if k == 0 { 0.0 } else { (if k % 2 == 1 { 1.0 } else { -1.0 }) * (0.6 + 0.2 * (k / 2) as f64) };
            let a = dir[u] + if n > 1 { turn } else { 0.0 };
            dir[v] = a;
            pos[v] = (pos[u].0 + len_m * a.cos(), pos[u].1 + len_m * a.sin());
            queue.push_back(v);
        }
    }
    pos
}

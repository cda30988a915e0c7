//! The world builder: turns a validated scenario into agents on one [`Simulation`], runs it, and gathers
//! every subsystem's report. Subsystems plug in as [`Part`]s: each adds its agents and later reports on them.

use crate::agents::Msg;
use crate::agents::gateway::{Cloud, Coordinator, Gateway};
use crate::engine::{AgentId, SimDuration, SimTime, Simulation, Stop};
use crate::mesh::NodeSpec;
use crate::report::{Report, Series, Table, num, secs_from_ns};
use crate::scenario::{InputError, Loaded};
use serde_json::{Value, json};

pub mod grid;
pub mod grid_detail;
pub mod lmu;
pub mod mesh;

/// A subsystem in a built world: reports on its agents after the run.
pub trait Part {
    /// Adds this part's summary object, tables and series to the report.
    fn report(&self, sim: &Simulation<Msg>, report: &mut Report);
}

/// A scenario turned into agents, ready to run.
pub struct World {
    pub sim: Simulation<Msg>,
    pub until: SimTime,
    pub seed: u64,
    pub name: String,
    parts: Vec<Box<dyn Part>>,
}

/// Builds the world for `loaded` with master seed `seed` (which overrides the scenario's when given).
///
/// Order of agents (their ids follow it): the upstream path (coordinator, gateway, cloud), the grid (grid,
/// weather, recorder), the LMUs, then the mesh, whose nodes are the LMU poles plus the coordinator (or, with
/// no LMUs, the mesh's own layout).
pub fn build(loaded: &Loaded, seed: u64, until: Option<SimDuration>) -> Result<World, InputError> {
    loaded.validate()?;
    let s = &loaded.scenario;
    let mut sim: Simulation<Msg> = Simulation::new(seed);
    let mut parts: Vec<Box<dyn Part>> = Vec::new();
    let engine_err = |e: crate::engine::EngineError| loaded.error_at("name", e.to_string(), None);
    let mut upstream = None;
    if let Some(g) = &s.gateway {
        let coordinator = sim.next_agent_id();
        let gateway = AgentId(coordinator.0 + 1);
        let cloud = AgentId(coordinator.0 + 2);
        sim.add_agent(Box::new(Coordinator::new(g, gateway))).map_err(engine_err)?;
        sim.add_agent(Box::new(Gateway::new(g, cloud, 0))).map_err(engine_err)?;
        sim.add_agent(Box::new(Cloud::with_log(s.outputs.max_log_rows))).map_err(engine_err)?;
        upstream = Some(UpstreamPart { coordinator, gateway, cloud });
    }
    let coordinator = upstream.as_ref().map(|u| u.coordinator);
    let mut lmus = None;
    let mut source_xy_m = (0.0, 0.0);
    if let Some(g) = &s.grid {
        let part = grid::add(&mut sim, loaded, g)?;
        let xy = grid::bus_positions(&part.network);
        if let Some(e) = part.network.ext_grids.first()
            && let Some(b) = part.network.bus(e.bus)
        {
            source_xy_m = xy[b];
        }
        let cx = lmu::LmuContext { loaded, seed, sim: &mut sim, grid: part.grid, bus_xy_m: &xy, uplink: coordinator };
        lmus = lmu::attach(cx)?;
        let market = match &s.market {
            Some(m) => Some(crate::market::world::add(
                &mut sim,
                loaded,
                m,
                part.grid,
                &part.network,
                &g.generators,
                seed,
                until,
            )?),
            None => None,
        };
        parts.push(Box::new(part));
        if let Some(m) = market {
            parts.push(Box::new(m));
        }
    } else if s.lmus.is_some() || !s.faults.is_empty() {
        return Err(loaded.error_at("lmus", "LMUs and faults need a `grid` section", None));
    }
    if let Some(m) = &s.mesh {
        let mut nodes = Vec::new();
        if let Some(l) = &lmus {
            for &(agent, id, (x_m, y_m)) in &l.lmus {
                nodes.push(NodeSpec { app: Some(agent), ..NodeSpec::lmu(id, x_m, y_m) });
            }
            // The coordinator sits at the substation, a few metres from the source bus.
            let id = l.lmus.iter().map(|n| n.1).max().map_or(0, |m| m + 1).max(COORDINATOR_NODE_ID);
            nodes.push(NodeSpec {
                id,
                x_m: source_xy_m.0 - 5.0,
                y_m: source_xy_m.1,
                coordinator: true,
                app: coordinator,
                join_at: None,
            });
        }
        let part = mesh::add(&mut sim, loaded, m, &nodes)?;
        if let Some(l) = &lmus {
            l.use_mesh(&mut sim, part.handle.agent());
        }
        parts.push(Box::new(part));
    }
    if let Some(u) = upstream {
        let n = lmus.as_ref().map_or(0, |l| l.lmus.len());
        if let Some(g) = sim.agent_mut::<Gateway>(u.gateway) {
            g.set_expected(n);
        }
        parts.insert(0, Box::new(u));
    }
    if let Some(l) = lmus {
        parts.push(Box::new(l));
    }
    if let Some(c) = &s.chain {
        parts.push(Box::new(crate::chain::add(&mut sim, loaded, c, seed)?));
    }
    let until = SimTime::ZERO + until.unwrap_or(s.duration.0);
    Ok(World { sim, until, seed, name: s.name.clone(), parts })
}

/// Mesh node id of the coordinator when the world supplies the nodes (LMU ids stay below it).
pub const COORDINATOR_NODE_ID: u32 = 1_000_000;

/// Wall-clock figures of a run (kept apart from everything deterministic).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub build_s: f64,
    pub run_s: f64,
    pub report_s: f64,
}

impl World {
    /// Runs to the end time in `chunks` equal steps of simulated time, calling `progress(fraction)` after each.
    /// Chunking never changes the result: events at a chunk's end are delivered before the next chunk starts.
    pub fn run(&mut self, chunks: u32, mut progress: impl FnMut(f64)) -> Result<(), String> {
        let chunks = chunks.max(1) as u64;
        let end = self.until.0;
        for k in 1..=chunks {
            let t = SimTime(((end as u128 * k as u128) / chunks as u128) as u64);
            self.sim.run(Stop::at(t)).map_err(|e| format!("simulation stopped at {}: {e}", self.sim.now()))?;
            progress(k as f64 / chunks as f64);
        }
        Ok(())
    }

    /// The run's report: identity, digest and counters first, then each part's objects.
    pub fn report(&self) -> Report {
        let mut r = Report::default();
        let st = self.sim.stats();
        r.summary.insert("scenario".into(), json!(self.name));
        r.summary.insert("seed".into(), json!(self.seed));
        r.summary.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
        r.summary.insert("digest".into(), json!(self.sim.digest().hex()));
        r.summary.insert("events".into(), json!(st.delivered));
        r.summary.insert("sim_time_s".into(), json!(self.sim.now().as_secs_f64()));
        r.summary.insert("agents".into(), json!(self.sim.agent_count()));
        r.summary.insert("engine".into(), json!({"scheduled": st.scheduled, "cancelled": st.cancelled, "pending_at_end": st.pending, "pending_max": st.pending_max}));
        for p in &self.parts {
            p.report(&self.sim, &mut r);
        }
        r
    }
}

struct UpstreamPart {
    coordinator: AgentId,
    gateway: AgentId,
    cloud: AgentId,
}

impl Part for UpstreamPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let (Some(c), Some(g), Some(k)) = (
            sim.agent::<Coordinator>(self.coordinator),
            sim.agent::<Gateway>(self.gateway),
            sim.agent::<Cloud>(self.cloud),
        ) else {
            return;
        };
        let mut lat = k.latency_ms.clone();
        lat.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            if lat.is_empty() { Value::Null } else { json!(lat[((lat.len() - 1) as f64 * q).round() as usize]) }
        };
        r.summary.insert(
            "gateway".into(),
            json!({
                "uart_frames_sent": c.frames_sent,
                "uart_frames_dropped": c.frames_dropped,
                "uart_busy_s": c.uart_busy_ns as f64 * 1e-9,
                "frames_bad": g.frames_bad,
                "batches": g.batches,
                "batches_complete": g.batches_complete,
                "readings_stored": k.readings,
                "readings_logged_dropped": k.stored_dropped,
                "latency_ms_p50": pct(0.5),
                "latency_ms_p99": pct(0.99),
            }),
        );
        r.human.push(format!(
            "gateway: {} batches ({} complete), {} readings stored",
            g.batches, g.batches_complete, k.readings
        ));
        if !k.batches.is_empty() {
            let mut s =
                Series { name: "cloud_batches".into(), y_label: "readings per batch".into(), ..Default::default() };
            s.t_s = k.batches.iter().map(|b| b.0.as_secs_f64()).collect();
            s.columns.push(("readings".into(), k.batches.iter().map(|b| b.2 as f64).collect()));
            s.columns.push(("v_a_mean_v".into(), k.batches.iter().map(|b| b.3).collect()));
            r.series.push(s);
        }
        // The readings the cloud stored, per LMU (grouped by LMU, in measurement order).
        let mut rows: Vec<&(SimTime, gridtwin_firmware::report::ReportRepr)> = k.stored.iter().collect();
        rows.sort_by_key(|(t, x)| (x.lmu_id, x.taken_at_ms, x.seq, *t));
        if !rows.is_empty() {
            let mut t = Table::new(&[
                "lmu",
                "seq",
                "taken_at_s",
                "stored_at_s",
                "v_a_v",
                "v_b_v",
                "v_c_v",
                "i_a_a",
                "i_b_a",
                "i_c_a",
                "p_w",
                "q_var",
                "flags",
            ]);
            for (at, x) in rows {
                let mut row = vec![
                    x.lmu_id.to_string(),
                    x.seq.to_string(),
                    secs_from_ns(x.taken_at_ms.saturating_mul(1_000_000)),
                    secs_from_ns(at.as_nanos()),
                ];
                row.extend(x.v_cv.iter().map(|v| num(*v as f64 / 100.0)));
                row.extend(x.i_ma.iter().map(|i| num(*i as f64 / 1000.0)));
                row.extend([x.p_w.to_string(), x.q_var.to_string(), x.flags.to_string()]);
                t.push(row);
            }
            r.tables.push(("cloud_readings".into(), t));
        }
    }
}

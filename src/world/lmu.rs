//! The LMU part of a world: LMU agents on the feeder's poles (sensor and contactor twins around the
//! firmware), the scenario's faults on the grid agent, periodic readings to the coordinator, and the
//! `faults` report.
//!
//! The LMUs are built by [`crate::twin::build::attach`], the same code the FLISR case runner uses. With
//! `ties` in the `lmus` section the grid model is rebuilt on the network with the tie lines added (same
//! generators, same order), before anything runs.

use super::Part;
use crate::agents::Msg;
use crate::engine::{AgentId, SimTime, Simulation, parse_duration};
use crate::grid::agents::GridAgent;
use crate::report::{Report, Table, num};
use crate::scenario::{InputError, Loaded};
use crate::twin::agent::{LmuAgent, Uplink};
use crate::twin::build::{self, AttachOptions, Commissioning, LmuBuild, LmuHardware, grid_fault, score};
use crate::twin::contactor::ContactorModel;
use crate::twin::feeder_head::FeederDeviceModel;
use crate::twin::scenario::FaultSpec;
use crate::twin::sensor::SensorModel;
use crate::twin::study::ProtectionFile;
use serde_json::json;

/// What the LMU part needs from the world.
pub struct LmuContext<'a> {
    pub loaded: &'a Loaded,
    pub seed: u64,
    pub sim: &'a mut Simulation<Msg>,
    /// The grid agent (a `GridAgent`; reach it with `sim.agent_mut` to add switches and subscribers).
    pub grid: AgentId,
    /// The network's buses laid out on the ground (metres), by bus position.
    pub bus_xy_m: &'a [(f64, f64)],
    /// The coordinator, which takes `Msg::Gw(GwMsg::Uplink(frame))` report frames, if the scenario has one.
    pub uplink: Option<AgentId>,
}

/// The LMUs as built.
pub struct LmuPart {
    /// One entry per LMU: its agent, its id (as in report frames and mesh node ids) and its pole (metres).
    pub lmus: Vec<(AgentId, u32, (f64, f64))>,
    build: LmuBuild,
}

impl LmuPart {
    /// Routes the LMUs' report frames through the mesh agent `mesh` (node id = LMU id) instead of straight
    /// to the coordinator.
    pub fn use_mesh(&self, sim: &mut Simulation<Msg>, mesh: AgentId) {
        for &(agent, _, _) in &self.lmus {
            if let Some(a) = sim.agent_mut::<LmuAgent>(agent) {
                a.reroute_uplink(Uplink::Mesh(mesh));
            }
        }
    }
}

/// Adds the LMUs of `scenario.lmus` and schedules `scenario.faults` (no LMUs: line faults still reach the
/// grid, nothing clears them, `Ok(None)`).
pub fn attach(cx: LmuContext<'_>) -> Result<Option<LmuPart>, InputError> {
    let loaded = cx.loaded;
    let s = &loaded.scenario;
    let mut plans = Vec::new();
    let mut contactor = Vec::new();
    for (k, f) in s.faults.iter().enumerate() {
        let at = format!("faults[{k}]");
        match f {
            FaultSpec::Contactor { bus, failure, onset } => {
                let onset = parse_duration(onset).map_err(|e| loaded.error_at(&format!("{at}.onset"), e, None))?;
                contactor.push((*bus, *failure, onset));
            }
            _ => {
                if let Some(p) = f.plan().map_err(|e| loaded.error_in(&at, e))? {
                    plans.push((k, p));
                }
            }
        }
    }
    let Some(sec) = &s.lmus else {
        // Faults without LMUs: the grid sees them, nothing clears them.
        if let Some(&(k, _)) = plans.iter().find(|(_, p)| p.section.is_some()) {
            return Err(loaded.error_at(
                &format!("faults[{k}]"),
                "a fault by section needs an `lmus` section",
                Some("use Line(line: ..) or add `lmus`".into()),
            ));
        }
        if !contactor.is_empty() {
            return Err(loaded.error_at("faults", "contactor failures need an `lmus` section", None));
        }
        for (_, p) in &plans {
            let on = SimTime::ZERO + p.onset;
            let f = grid_fault(p);
            let sched = |sim: &mut Simulation<Msg>, t: SimTime, m: crate::grid::GridMsg| {
                sim.schedule(cx.grid, cx.grid, t, crate::engine::class::GRID, Msg::Grid(m))
                    .map(|_| ())
                    .map_err(|e| loaded.error_at("faults", e.to_string(), None))
            };
            sched(cx.sim, on, crate::grid::GridMsg::FaultOn(f))?;
            if let Some(d) = p.duration {
                sched(cx.sim, on.saturating_add(d), crate::grid::GridMsg::FaultOff(f))?;
            }
        }
        return Ok(None);
    };
    let Some(gcfg) = &s.grid else {
        return Err(loaded.error_at("lmus", "LMUs need a `grid` section to sit on", None));
    };
    let (sensor, _) = loaded.model::<SensorModel>(&sec.model)?;
    let (contactor_model, _) = loaded.model::<ContactorModel>(&sec.contactor)?;
    let (protection, _) = loaded.model::<ProtectionFile>(&sec.protection)?;
    let hw = LmuHardware {
        sensor,
        contactor: contactor_model,
        protection,
        link: sec.link,
        fidelity: sec.fidelity,
        temperature_c: sec.temperature_c,
        feeder_head: match &sec.feeder_head {
            Some(name) => {
                let (m, _) = loaded.model::<FeederDeviceModel>(name)?;
                m.validate().map_err(|e| {
                    loaded.error_at("lmus.feeder_head", format!("feeder-head model `{name}`: {e}"), None)
                })?;
                Some(m)
            }
            None => None,
        },
    };
    hw.sensor
        .validate()
        .map_err(|e| loaded.error_at("lmus.model", format!("sensor model `{}`: {e}", sec.model), None))?;
    hw.contactor
        .validate()
        .map_err(|e| loaded.error_at("lmus.contactor", format!("contactor model `{}`: {e}", sec.contactor), None))?;
    hw.protection
        .validate()
        .map_err(|e| loaded.error_at("lmus.protection", format!("protection `{}`: {e}", sec.protection), None))?;
    let every = parse_duration(&sec.report_every).map_err(|e| loaded.error_at("lmus.report_every", e, None))?;
    let spread = parse_duration(&sec.report_spread).map_err(|e| loaded.error_at("lmus.report_spread", e, None))?;
    let net = super::grid::load_network(loaded, gcfg)?;
    let c = Commissioning::new(&net, &sec.at, &sec.ties).map_err(|e| loaded.error_at("lmus.at", e, None))?;
    if c.sections() == 0 {
        return Err(loaded.error_at("lmus.at", "places no LMU on this feeder", None));
    }
    let mut resolved = Vec::new();
    for (k, p) in &plans {
        let r = c.resolve(p).map_err(|e| loaded.error_at(&format!("faults[{k}]"), e, None))?;
        resolved.push(r);
    }
    if !c.ties.is_empty() {
        let (model, _) = gcfg.build_model(c.network.clone()).map_err(|e| loaded.error_in("grid", e))?;
        let g = cx
            .sim
            .agent_mut::<GridAgent>(cx.grid)
            .ok_or_else(|| loaded.error_at("grid", "the grid agent is missing", None))?;
        g.model = model;
    }
    let positions: Vec<(u32, usize)> = c.lmus.iter().map(|l| (l.peer as u32, l.bus_pos)).collect();
    let o = AttachOptions {
        hw: &hw,
        faults: &resolved,
        contactor_faults: &contactor,
        seed: cx.seed,
        uplink: cx.uplink.map(|u| (u, every, spread)),
    };
    let build = build::attach(cx.sim, cx.grid, c, &o).map_err(|e| loaded.error_at("lmus", e, None))?;
    let lmus = build
        .agents
        .iter()
        .zip(&positions)
        .map(|(&a, &(id, b))| (a, id, cx.bus_xy_m.get(b).copied().unwrap_or((0.0, 0.0))))
        .collect();
    Ok(Some(LmuPart { lmus, build }))
}

impl Part for LmuPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let f = score(sim, &self.build, sim.now());
        let (mut frames, mut readings) = (0u64, 0u64);
        for &(a, _, _) in &self.lmus {
            if let Some(l) = sim.agent::<LmuAgent>(a) {
                frames += l.frames_sent;
                readings += l.readings_sent as u64;
            }
        }
        let c = &self.build.commissioning;
        r.summary.insert(
            "lmus".into(),
            json!({
                "count": c.lmus.len(),
                "sections": c.sections(),
                "ties": c.ties.len(),
                "flisr_frames_sent": frames,
                "readings_sent": readings,
            }),
        );
        let mut t = Table::new(&[
            "kind",
            "line",
            "r_ohm",
            "true_section",
            "located_section",
            "onset_s",
            "detection_ms",
            "trip_ms",
            "selective",
            "isolation_s",
            "restore_s",
            "healthy_trips",
            "customers_interrupted",
            "customer_minutes_lost",
            "energy_not_supplied_kwh",
        ]);
        // Not applicable / did not happen within the run: an empty cell, as `null` in summary.json.
        let opt = |x: Option<f64>| x.map_or(String::new(), num);
        for e in &f.events {
            t.rows.push(vec![
                e.kind.clone(),
                e.line.to_string(),
                num(e.r_ohm),
                e.true_section.clone(),
                e.located_section.clone(),
                num(e.onset_s),
                opt(e.detection_ms),
                opt(e.trip_ms),
                e.selective.to_string(),
                opt(e.isolation_s),
                opt(e.restore_s),
                e.healthy_trips.to_string(),
                e.customers_interrupted.to_string(),
                num(e.customer_minutes_lost),
                num(e.energy_not_supplied_kwh),
            ]);
        }
        if !f.events.is_empty() {
            r.tables.push(("faults".into(), t));
        }
        if !f.events.is_empty() || f.scheduled_after_end > 0 {
            r.human.push(f.human());
        }
        r.summary.insert("faults".into(), serde_json::to_value(&f).unwrap_or(serde_json::Value::Null));
    }
}

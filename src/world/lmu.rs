//! The LMU part of a world: LMU agents on the feeder's poles (sensor and contactor twins around the
//! firmware), the scenario's faults on the grid agent, periodic readings to the coordinator, and the
//! `faults` report, with the LMUs that saw a lost phase or a displaced neutral (`lmus.loss_of_phase`) and a
//! broken neutral's detection and isolation (`lmus.broken_neutral`). Times in seconds of the run.
//!
//! The LMUs are built by [`crate::twin::build::attach`], the same code the FLISR case runner uses. With
//! `ties` in the `lmus` section the grid model is rebuilt on the network with the tie lines added (same
//! generators, same order), before anything runs.

use super::Part;
use crate::agents::Msg;
use crate::engine::{AgentId, SimDuration, SimTime, Simulation, parse_duration};
use crate::grid::agents::GridAgent;
use crate::report::{Report, Table, num};
use crate::scenario::{InputError, Loaded};
use crate::twin::LmuMsg;
use crate::twin::agent::{LmuAgent, Uplink};
use crate::twin::build::{self, AttachOptions, Commissioning, LmuBuild, LmuHardware, grid_fault, score};
use crate::twin::contactor::ContactorModel;
use crate::twin::feeder_head::FeederDeviceModel;
use crate::twin::scenario::{FaultSpec, HarmonicAt, PowerQualitySection};
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
    /// The LMUs as built (commissioning, agents, supply recorder, faults).
    pub fn build(&self) -> &LmuBuild {
        &self.build
    }

    /// Routes the LMUs' report frames through the mesh agent `mesh` (node id = LMU id) instead of straight
    /// to the coordinator, and, with `peer_frames: Mesh`, their FLISR frames as neighbour frames over the
    /// same mesh instead of the `lmus.link` stand-in.
    pub fn use_mesh(&self, sim: &mut Simulation<Msg>, mesh: AgentId, peer_frames: crate::twin::scenario::PeerFrames) {
        // Each LMU's peers that its radio reaches only over relays (commissioned with the mesh).
        let relayed: std::collections::BTreeMap<u32, Vec<u32>> = sim
            .agent::<crate::mesh::medium::MeshAgent>(mesh)
            .map(|m| self.lmus.iter().map(|&(_, id, _)| (id, m.relayed_peers(id))).collect())
            .unwrap_or_default();
        for &(agent, id, _) in &self.lmus {
            if let Some(a) = sim.agent_mut::<LmuAgent>(agent) {
                a.reroute_uplink(Uplink::Mesh(mesh));
                if peer_frames == crate::twin::scenario::PeerFrames::Mesh {
                    let relayed = relayed.get(&id).cloned().unwrap_or_default();
                    a.carry_peer_frames_on_mesh(mesh, &relayed);
                }
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
    if let Some(pq) = &s.power_quality {
        attach_power_quality(loaded, cx.sim, &build, pq)?;
    }
    let lmus = build
        .agents
        .iter()
        .zip(&positions)
        .map(|(&a, &(id, b))| (a, id, cx.bus_xy_m.get(b).copied().unwrap_or((0.0, 0.0))))
        .collect();
    Ok(Some(LmuPart { lmus, build }))
}

/// Schedules the scenario's power-quality disturbances on the LMUs: every frequency step as
/// `LmuMsg::Frequency`, and, at the start and at every switching time of a harmonic source group, the
/// harmonic voltages the active groups cause at each LMU's bus ([`crate::grid::harmonics`], on the feeder
/// as built with its ties open) as `LmuMsg::Harmonics`.
fn attach_power_quality(
    loaded: &Loaded,
    sim: &mut Simulation<Msg>,
    build: &LmuBuild,
    pq: &PowerQualitySection,
) -> Result<(), InputError> {
    use crate::grid::harmonics::{HarmonicModel, HarmonicSource, harmonic_voltages};
    let plan = pq.plan().map_err(|e| loaded.error_in("power_quality", e))?;
    let c = &build.commissioning;
    let mut net = c.network.clone();
    for &(tie, _) in &c.ties {
        net.lines[tie].in_service = false;
    }
    // Device models and bus positions per source group.
    let mut groups: Vec<(HarmonicModel, Vec<usize>, u32)> = Vec::new();
    for (k, h) in pq.harmonic_sources.iter().enumerate() {
        let at = format!("power_quality.harmonic_sources[{k}]");
        let (m, _) = loaded.model::<HarmonicModel>(&h.model)?;
        m.validate()
            .map_err(|e| loaded.error_at(&format!("{at}.model"), format!("harmonic model `{}`: {e}", h.model), None))?;
        let buses: Vec<usize> = match &h.at {
            HarmonicAt::Buses(b) => {
                let mut v = Vec::with_capacity(b.len());
                for idx in b {
                    v.push(net.bus(*idx).ok_or_else(|| {
                        loaded.error_at(&format!("{at}.at"), format!("no bus {idx} in the network"), None)
                    })?);
                }
                v
            }
            HarmonicAt::LoadBuses => {
                let mut v: Vec<usize> = net.loads.iter().filter_map(|l| net.bus(l.bus)).collect();
                v.extend(net.asym_loads.iter().filter_map(|l| net.bus(l.bus)));
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        groups.push((m, buses, h.count));
    }
    let lmu_buses: Vec<usize> = c.lmus.iter().map(|l| l.bus_pos).collect();
    let mut times: Vec<SimDuration> = vec![SimDuration::ZERO];
    for &(on, off) in &plan.windows {
        times.push(on);
        times.extend(off);
    }
    times.sort_unstable();
    times.dedup();
    let mut last: Option<Vec<Vec<(u32, f64)>>> = Some(vec![Vec::new(); lmu_buses.len()]);
    for t in times {
        let active: Vec<HarmonicSource<'_>> = groups
            .iter()
            .zip(&plan.windows)
            .filter(|(_, (on, off))| *on <= t && off.is_none_or(|off| t < off))
            .flat_map(|((m, buses, count), _)| {
                buses.iter().map(move |&bus| HarmonicSource { bus, model: m, count: *count })
            })
            .collect();
        let levels = if active.is_empty() {
            vec![Vec::new(); lmu_buses.len()]
        } else {
            harmonic_voltages(&net, &active, &lmu_buses).map_err(|e| loaded.error_in("power_quality", e))?
        };
        if last.as_ref() == Some(&levels) {
            continue;
        }
        for (&a, l) in build.agents.iter().zip(&levels) {
            let h: Vec<(u32, f64, f64)> = l.iter().map(|&(o, p)| (o, p, 0.0)).collect();
            sim.schedule(a, a, SimTime::ZERO + t, crate::engine::class::GRID, Msg::Lmu(LmuMsg::Harmonics(h)))
                .map_err(|e| loaded.error_at("power_quality", e.to_string(), None))?;
        }
        last = Some(levels);
    }
    for &(t, hz) in &plan.frequency {
        for &a in &build.agents {
            sim.schedule(a, a, SimTime::ZERO + t, crate::engine::class::GRID, Msg::Lmu(LmuMsg::Frequency(hz)))
                .map_err(|e| loaded.error_at("power_quality", e.to_string(), None))?;
        }
    }
    Ok(())
}

impl Part for LmuPart {
    fn report(&self, sim: &Simulation<Msg>, r: &mut Report) {
        let f = score(sim, &self.build, sim.now());
        let (mut frames, mut readings, mut orphan_opens) = (0u64, 0u64, 0u64);
        let mut by_kind = [0u64; gridtwin_firmware::lmu::flisr::PeerMsg::NAMES.len()];
        for &(a, _, _) in &self.lmus {
            if let Some(l) = sim.agent::<LmuAgent>(a) {
                frames += l.frames_sent;
                for (k, n) in l.frames_by_kind.iter().enumerate() {
                    by_kind[k] += n;
                }
                readings += l.readings_sent as u64;
                orphan_opens += l.firmware().flisr().orphan_opens;
            }
        }
        let c = &self.build.commissioning;
        let mut lmus = json!({
            "count": c.lmus.len(),
            "sections": c.sections(),
            "ties": c.ties.len(),
            "flisr_frames_sent": frames,
            "flisr_frames_by_kind": gridtwin_firmware::lmu::flisr::PeerMsg::NAMES
                .iter()
                .zip(by_kind)
                .filter(|(name, n)| !name.is_empty() && *n > 0)
                .map(|(name, n)| (name.to_string(), json!(n)))
                .collect::<serde_json::Map<_, _>>(),
            "readings_sent": readings,
        });
        // LMUs that opened as the far end of a section whose upstream end stayed silent (its radio dead), on
        // their own evidence: listed only when there are any.
        if orphan_opens > 0 {
            lmus["orphan_opens"] = json!(orphan_opens);
        }
        // LMUs whose firmware reported a lost phase or a displaced neutral (open conductor, broken neutral):
        // listed only when there are any.
        let lost: Vec<serde_json::Value> = self
            .lmus
            .iter()
            .filter_map(|&(a, id, _)| {
                let l = sim.agent::<LmuAgent>(a)?;
                let at = l.loss_of_phase_at?;
                let cause = if l.neutral_displaced_at.is_some() { "broken_neutral" } else { "lost_phase" };
                Some(json!({"lmu": id, "at_s": at.as_secs_f64(), "cause": cause}))
            })
            .collect();
        if !lost.is_empty() {
            lmus["loss_of_phase"] = json!(lost);
        }
        if let Some((bn, human)) = broken_neutral(sim, &self.build) {
            lmus["broken_neutral"] = bn;
            r.human.push(human);
        }
        r.summary.insert("lmus".into(), lmus);
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
        if !f.en50160.is_empty() {
            r.human.push(crate::twin::metrics::en50160_human(&f.en50160));
        }
        r.summary.insert("faults".into(), serde_json::to_value(&f).unwrap_or(serde_json::Value::Null));
    }
}

/// A broken neutral as the LMUs saw and handled it, for `lmus.broken_neutral` and the console, or `None`
/// when no LMU saw a displaced star point and none located a broken neutral: `detected`, the LMUs whose
/// star point was displaced (first time, zero-sequence voltage they measured, p.u.), and `operations`, what
/// FLISR did about it: the LMU that located the broken neutral in its own section (role `primary`) and the
/// boundaries that opened for that section, with when each was commanded, confirmed and the isolation done.
fn broken_neutral(sim: &Simulation<Msg>, b: &LmuBuild) -> Option<(serde_json::Value, String)> {
    use gridtwin_firmware::lmu::flisr::Role;
    use gridtwin_firmware::lmu::protection::FaultKind;
    let secs = |t: Option<gridtwin_firmware::Instant>| t.map(|t| t.as_nanos() as f64 * 1e-9);
    let agents: Vec<(&crate::twin::placement::Commissioned, &LmuAgent)> =
        b.commissioning.lmus.iter().zip(&b.agents).filter_map(|(c, &a)| Some((c, sim.agent::<LmuAgent>(a)?))).collect();
    let mut detected = Vec::new();
    for (c, l) in &agents {
        if let Some((t, u0)) = l.neutral_displaced_at {
            detected.push((t, c.peer, c.line, u0));
        }
    }
    detected.sort_by_key(|d| (d.0, d.1));
    // Sections located as broken neutral, then every operation of the LMUs on them (primary and boundaries).
    let mut sections: Vec<u16> = Vec::new();
    for (_, l) in &agents {
        for r in l.firmware().flisr().reports() {
            if r.role == Role::Primary
                && r.kind == FaultKind::BrokenNeutral
                && let Some(s) = r.section
                && !sections.contains(&s)
            {
                sections.push(s);
            }
        }
    }
    sections.sort_unstable();
    if detected.is_empty() && sections.is_empty() {
        return None;
    }
    let mut ops = Vec::new();
    for (c, l) in &agents {
        for r in l.firmware().flisr().reports() {
            let Some(s) = r.section.filter(|s| sections.contains(s)) else { continue };
            let role = match r.role {
                Role::Primary if r.kind == FaultKind::BrokenNeutral => "primary",
                Role::Boundary => "boundary",
                Role::Tie => "tie",
                _ => continue,
            };
            ops.push((secs(r.commanded), c.peer, role, s, c.line, r));
        }
    }
    ops.sort_by(|a, b| a.0.unwrap_or(f64::INFINITY).total_cmp(&b.0.unwrap_or(f64::INFINITY)).then(a.1.cmp(&b.1)));
    let json_detected: Vec<serde_json::Value> = detected
        .iter()
        .map(|&(t, peer, line, u0)| json!({"lmu": peer, "line": line, "at_s": t.as_secs_f64(), "shift_pu": u0}))
        .collect();
    let json_ops: Vec<serde_json::Value> = ops
        .iter()
        .map(|(cmd, peer, role, s, line, r)| {
            json!({
                "lmu": peer,
                "line": line,
                "role": role,
                "section": s,
                "detected_s": secs(r.detected),
                "commanded_s": cmd,
                "confirmed_s": secs(r.confirmed),
                "isolated_s": secs(r.isolated),
                "restored_s": secs(r.restored),
                "failed": r.failed,
            })
        })
        .collect();
    let mut human = String::from("broken neutral:");
    if let Some(first) = detected.first() {
        let ids: Vec<String> = detected.iter().map(|d| d.1.to_string()).collect();
        let u0 = detected.iter().map(|d| d.3).fold(0.0, f64::max);
        human.push_str(&format!(
            " star point displaced at LMU(s) {} (first at {:.3} s, up to {:.3} p.u.)",
            ids.join(", "),
            first.0.as_secs_f64(),
            u0
        ));
    } else {
        human.push_str(" no LMU saw a displaced star point");
    }
    let when = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.3} s"));
    for (cmd, peer, role, s, _, r) in &ops {
        human.push_str(&match *role {
            "primary" => format!(
                "; LMU {peer} located it in its section {s} and opened ({}, isolated {})",
                when(*cmd),
                when(secs(r.isolated))
            ),
            "boundary" => format!("; LMU {peer} opened as the section's boundary ({})", when(*cmd)),
            _ => format!("; tie LMU {peer} closed ({}), supply restored {}", when(*cmd), when(secs(r.restored))),
        });
    }
    Some((json!({"detected": json_detected, "operations": json_ops}), human))
}

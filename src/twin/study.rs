//! The FLISR study: one fault case end to end (feeder, LMUs, fault, PV penetration) on the event queue, and
//! the protection-settings file format (`models/protection-*.ron`).
//!
//! [`GridHost`] is the stand-in for the grid agent while the case runs: it owns the [`GridModel`], applies
//! fault onsets and clearings and the LMUs' switch commands, re-solves, and sends each solved snapshot to the
//! LMUs at class SENSE. [`run_flisr_case`] builds the world, runs it and scores the fault as
//! [`FaultEvent`]; [`CaseRow`] is the study CSV row. Units: ms and s as named, ohm, percent.

use super::LmuMsg;
use super::agent::{LmuAgent, Placement};
use super::contactor::{ContactorModel, ContactorTwin};
use super::link::{LinkModel, LossyLink};
use super::metrics::FaultEvent;
use super::placement::{Commissioned, Feeder, PlacementRule, commission, farthest_below, section_of_line};
use super::scenario::{FaultPlan, FaultType, TieRule};
use super::sensor::{Fidelity, SensorModel, SensorTwin};
use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimTime, Simulation, Stop, class, stream};
use crate::grid::model::{Fault, FaultKind, FaultLocation, GridModel, GridSnapshot, LoadId, Phase};
use crate::grid::network::Network;
use gridtwin_firmware::lmu::flisr::{FlisrSettings, Role};
use gridtwin_firmware::lmu::pq::PqSettings;
use gridtwin_firmware::lmu::protection::{Curve, OvercurrentStage, ProtectionSettings};
use gridtwin_firmware::lmu::{Lmu, LmuSettings};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Characteristic names in settings files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CurveName {
    DT,
    SI,
    VI,
    EI,
    LTI,
}

/// One overcurrent stage in a settings file.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub enabled: bool,
    pub curve: CurveName,
    pub pickup_a: f64,
    pub tms: f64,
    pub delay_ms: u32,
}

impl StageFile {
    fn to_fw(self) -> OvercurrentStage {
        OvercurrentStage {
            enabled: self.enabled,
            curve: match self.curve {
                CurveName::DT => Curve::DefiniteTime,
                CurveName::SI => Curve::StandardInverse,
                CurveName::VI => Curve::VeryInverse,
                CurveName::EI => Curve::ExtremelyInverse,
                CurveName::LTI => Curve::LongTimeInverse,
            },
            pickup_a: self.pickup_a,
            tms: self.tms,
            delay_ms: self.delay_ms,
        }
    }
}

/// `models/protection-<name>.ron`: protection and FLISR settings of an LMU.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionFile {
    pub phase: StageFile,
    pub phase_high: StageFile,
    pub earth: StageFile,
    pub delta_phase_a: f64,
    pub delta_earth_a: f64,
    pub delta_power_w: f64,
    pub directional: bool,
    pub char_angle_deg: f64,
    pub open_conductor: bool,
    pub loss_pu: f64,
    pub healthy_pu: f64,
    pub neutral_shift_pu: f64,
    pub open_conductor_delay_ms: u32,
    pub current_drop_ratio: f64,
    pub current_drop_min_a: f64,
    pub logic_delay_ms: u32,
    pub backup_delay_ms: u32,
    pub block_repeat_ms: u32,
    pub block_hold_ms: u32,
    pub contactor_confirm_ms: u32,
    pub open_conductor_logic_ms: u32,
    pub retry_ms: u32,
    pub retries: u8,
    pub sotf_current_a: f64,
}

impl ProtectionFile {
    /// The firmware's protection settings at nominal phase voltage `u_nominal_v`.
    pub fn protection(&self, u_nominal_v: f64) -> ProtectionSettings {
        ProtectionSettings {
            u_nominal_v,
            phase: self.phase.to_fw(),
            phase_high: self.phase_high.to_fw(),
            earth: self.earth.to_fw(),
            delta_phase_a: self.delta_phase_a,
            delta_earth_a: self.delta_earth_a,
            delta_power_w: self.delta_power_w,
            directional: self.directional,
            char_angle_deg: self.char_angle_deg,
            open_conductor: self.open_conductor,
            loss_pu: self.loss_pu,
            healthy_pu: self.healthy_pu,
            neutral_shift_pu: self.neutral_shift_pu,
            open_conductor_delay_ms: self.open_conductor_delay_ms,
            current_drop_ratio: self.current_drop_ratio,
            current_drop_min_a: self.current_drop_min_a,
        }
    }

    /// The FLISR timing applied to commissioning data.
    pub fn flisr(&self, me: u16) -> FlisrSettings {
        let mut f = FlisrSettings::new(me);
        f.logic_delay_ms = self.logic_delay_ms;
        f.backup_delay_ms = self.backup_delay_ms;
        f.block_repeat_ms = self.block_repeat_ms;
        f.block_hold_ms = self.block_hold_ms;
        f.contactor_confirm_ms = self.contactor_confirm_ms;
        f.open_conductor_logic_ms = self.open_conductor_logic_ms;
        f.retry_ms = self.retry_ms;
        f.retries = self.retries;
        f.sotf_current_a = self.sotf_current_a;
        f
    }

    /// Checks every field through the firmware's validation; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.protection(230.0).validate().map_err(|e| format!("{}: {}", e.field, e.reason))?;
        let mut f = self.flisr(1);
        f.upstream = Some(2);
        f.validate().map_err(|e| format!("{}: {}", e.field, e.reason))
    }
}

/// Stand-in for the grid agent during a case.
pub struct GridHost {
    model: GridModel,
    subscribers: Vec<AgentId>,
    /// (onset, fault, clearing).
    faults: Vec<(SimTime, Fault, Option<SimTime>)>,
    /// Every solved state with its time.
    pub history: Vec<(SimTime, Arc<GridSnapshot>)>,
    pub solve_errors: Vec<String>,
}

impl GridHost {
    pub fn new(model: GridModel, subscribers: Vec<AgentId>, faults: Vec<(SimTime, Fault, Option<SimTime>)>) -> Self {
        GridHost { model, subscribers, faults, history: Vec::new(), solve_errors: Vec::new() }
    }

    pub fn model(&self) -> &GridModel {
        &self.model
    }

    fn solve_and_publish(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self.model.solve() {
            Ok(snap) => {
                ctx.digest(snap.slack_s_mva.re.to_bits());
                self.history.push((ctx.now(), snap.clone()));
                for &s in &self.subscribers {
                    ctx.send_at(s, ctx.now(), class::SENSE, Msg::Lmu(LmuMsg::Snapshot(snap.clone())));
                }
            }
            Err(e) => self.solve_errors.push(format!("{:?}", e)),
        }
    }
}

impl Agent<Msg> for GridHost {
    fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        for (k, (on, _, off)) in self.faults.iter().enumerate() {
            ctx.schedule_at(*on, class::GRID, Msg::Timer(2 * k as u64));
            if let Some(off) = off {
                ctx.schedule_at(*off, class::GRID, Msg::Timer(2 * k as u64 + 1));
            }
        }
        self.solve_and_publish(ctx);
    }

    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        match ev.msg {
            Msg::Timer(tag) => {
                let Some(&(_, f, _)) = self.faults.get((tag / 2) as usize) else { return };
                if tag % 2 == 0 {
                    if let Err(e) = self.model.add_fault(f) {
                        self.solve_errors.push(e);
                        return;
                    }
                } else {
                    self.model.clear_fault(&f);
                }
                self.solve_and_publish(ctx);
            }
            Msg::Lmu(LmuMsg::SetSwitch { switch, closed, .. }) => {
                if let Ok(true) = self.model.set_switch(switch, closed) {
                    self.solve_and_publish(ctx);
                }
            }
            _ => {}
        }
    }

    fn kind(&self) -> &'static str {
        "grid-host"
    }
}

/// Everything one FLISR case needs.
#[derive(Clone, Debug)]
pub struct CaseInput {
    pub feeder: String,
    pub network: Network,
    pub placement: PlacementRule,
    pub ties: TieRule,
    pub sensor: SensorModel,
    pub contactor: ContactorModel,
    pub protection: ProtectionFile,
    pub link: LinkModel,
    pub fidelity: Fidelity,
    pub fault: FaultPlan,
    /// PV at every load bus as a share of that bus's load (percent).
    pub pv_pct: f64,
    pub seed: u64,
    /// How long to watch after the onset.
    pub observe: SimDuration,
}

/// The study CSV row.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CaseRow {
    pub feeder: String,
    pub true_section: String,
    pub located_section: String,
    pub kind: String,
    pub r_ohm: f64,
    pub pv_pct: f64,
    /// `inf` when no trip happened.
    pub trip_ms: String,
    pub isolation_s: String,
    pub restore_s: String,
}

fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "inf".into(),
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub row: CaseRow,
    pub event: FaultEvent,
    pub digest: u64,
    pub solve_errors: Vec<String>,
    /// Events the run delivered.
    pub events: u64,
}

/// Adds the ties of `rule` to `net`; returns (tie line position, bus position where its LMU sits).
pub fn add_ties(net: &mut Network, placement: &PlacementRule, rule: &TieRule) -> Result<Vec<(usize, usize)>, String> {
    let TieRule::LeafEnds { length_m } = rule else { return Ok(Vec::new()) };
    let lmus = commission(net, placement, &[])?;
    let f = Feeder::new(net, &BTreeSet::new())?;
    let src_index = net.buses[f.source_bus_pos].index;
    let mut ties = Vec::new();
    let mut used = BTreeSet::new();
    for c in lmus.iter().filter(|c| c.downstream.is_empty()) {
        let first_child = if c.end == 0 { net.lines[c.line_pos].to_bus } else { net.lines[c.line_pos].from_bus };
        let Some(cb) = net.bus(first_child) else { continue };
        let far = farthest_below(&f, cb);
        if far == f.source_bus_pos || !used.insert(far) {
            continue;
        }
        let mut line = net.lines[c.line_pos].clone();
        line.index = net.lines.iter().map(|l| l.index).max().unwrap_or(-1) + 1;
        line.name = Some(format!("tie-{}", net.buses[far].index));
        line.from_bus = src_index;
        line.to_bus = net.buses[far].index;
        line.length_km = length_m / 1000.0;
        line.r_ohm = None;
        line.in_service = true;
        net.lines.push(line);
        ties.push((net.lines.len() - 1, far));
    }
    Ok(ties)
}

fn grid_fault(p: &FaultPlan) -> Fault {
    let kind = match p.kind {
        FaultType::ThreePhase => FaultKind::ThreePhase,
        FaultType::TwoPhase => FaultKind::LineToLine(Phase::A, Phase::B),
        FaultType::LineToEarth => FaultKind::LineToEarth(Phase::A),
        FaultType::OpenConductor => FaultKind::OpenConductor(Phase::A),
    };
    Fault { location: FaultLocation::Line { line: p.line, fraction: p.at }, kind, r_ohm: p.r_ohm }
}

/// Builds the LMU agents' firmware settings from commissioning.
fn lmu_settings(c: &Commissioned, input: &CaseInput, u_nominal_v: f64) -> LmuSettings {
    let mut f = input.protection.flisr(c.peer);
    f.upstream = c.upstream;
    f.downstream = c.downstream.clone();
    f.tie = c.tie;
    f.is_tie = c.is_tie;
    f.tie_requesters = c.tie_requesters.clone();
    f.breaking_capacity_a = input.contactor.breaking_capacity_a;
    f.x_loop_ohm_per_km = c.x_ohm_per_km;
    f.section_length_m = c.first_line_len_m;
    LmuSettings {
        front_end: (input.fidelity == Fidelity::Waveform).then(|| input.sensor.front_end()),
        pq: PqSettings { u_din_v: u_nominal_v, ..PqSettings::default() },
        protection: input.protection.protection(u_nominal_v),
        flisr: f,
    }
}

/// Runs one fault case end to end.
pub fn run_flisr_case(input: &CaseInput) -> Result<CaseResult, String> {
    input.sensor.validate().map_err(|e| format!("sensor model: {e}"))?;
    input.contactor.validate().map_err(|e| format!("contactor model: {e}"))?;
    input.protection.validate().map_err(|e| format!("protection: {e}"))?;
    input.link.validate()?;
    let mut net = input.network.clone();
    let ties = add_ties(&mut net, &input.placement, &input.ties)?;
    let lmus = commission(&net, &input.placement, &ties)?;
    let fault_line_pos = net
        .lines
        .iter()
        .position(|l| l.index == input.fault.line)
        .ok_or(format!("fault: line {} does not exist", input.fault.line))?;
    let true_section = section_of_line(&lmus, fault_line_pos);
    let mut model = GridModel::new(net.clone());
    model.unbalanced = true;
    // PV at load buses.
    let loads = model.load_ids();
    let mut load_info: Vec<(usize, f64)> = Vec::new(); // (bus position, p_mw)
    for (id, bus) in &loads {
        let (p, _) = model.load_base(*id).unwrap_or((0.0, 0.0));
        let bpos = net.bus(*bus).ok_or(format!("load at missing bus {bus}"))?;
        load_info.push((bpos, p));
        if input.pv_pct > 0.0 && p > 0.0 {
            model.add_sgen(*bus, p * input.pv_pct / 100.0, 0.0, "pv")?;
        }
    }
    let _ = LoadId::Balanced(0);
    let mut switches = Vec::new();
    for c in &lmus {
        switches.push(model.add_line_switch(c.line, c.bus, !c.is_tie, &format!("lmu-{}", c.peer))?);
    }
    let mut sim: Simulation<Msg> = Simulation::new(input.seed);
    let host_id = AgentId(0);
    let peers: BTreeMap<u16, AgentId> = lmus.iter().map(|c| (c.peer, AgentId(c.peer as u32))).collect();
    let onset = SimTime::from_nanos(input.fault.onset.as_nanos());
    let clear = input.fault.duration.map(|d| onset.saturating_add(d));
    let subscribers: Vec<AgentId> = peers.values().copied().collect();
    sim.add_agent(Box::new(GridHost::new(model, subscribers, vec![(onset, grid_fault(&input.fault), clear)])))
        .map_err(|e| e.to_string())?;
    for (k, c) in lmus.iter().enumerate() {
        let u_nom = net.buses[c.bus_pos].vn_kv * 1000.0 / 3f64.sqrt();
        let fw = Lmu::new(lmu_settings(c, input, u_nom)).map_err(|(part, e)| format!("LMU {}: {part}.{e}", c.peer))?;
        let agent = c.peer as u64;
        let sensor =
            SensorTwin::new(input.sensor.clone(), input.fidelity, 25.0, stream(input.seed, agent, "sensor-noise"))?;
        let contactor = ContactorTwin::new(input.contactor.clone(), !c.is_tie)?;
        let link = Box::new(LossyLink::new(input.link, stream(input.seed, agent, "link")));
        let pl = Placement { bus: c.bus_pos, line: c.line_pos, end: c.end, switch: switches[k] };
        let a = LmuAgent::new(c.peer, pl, fw, sensor, contactor, host_id, peers.clone(), link);
        sim.add_agent(Box::new(a)).map_err(|e| e.to_string())?;
    }
    let end = onset.saturating_add(input.observe);
    // A generous event budget: a case that exceeds it is reported, never left spinning.
    let budget = 200_000 + 20_000 * lmus.len() as u64 * (1 + input.observe.as_nanos() / 1_000_000_000);
    let stats = sim.run(Stop { until: end, max_events: budget }).map_err(|e| e.to_string())?;
    if stats.delivered >= budget {
        return Err(format!("case exceeded its event budget of {budget} at {:?}", sim.now()));
    }

    // Score.
    let host = sim.agent::<GridHost>(host_id).ok_or("grid host missing")?;
    let agents: Vec<&LmuAgent> = lmus.iter().filter_map(|c| sim.agent::<LmuAgent>(AgentId(c.peer as u32))).collect();
    let onset_s = onset.as_secs_f64();
    let rel = |t: SimTime| t.as_secs_f64() - onset_s;
    let mut primaries: Vec<(f64, u16, Option<f64>, Option<f64>)> = Vec::new();
    let mut detection: Option<f64> = None;
    for a in &agents {
        for r in a.firmware().flisr().reports() {
            if let Some(d) = r.detected {
                let d = d.as_nanos() as f64 * 1e-9 - onset_s;
                if d >= 0.0 {
                    detection = Some(detection.map_or(d, |x: f64| x.min(d)));
                }
            }
            if r.role == Role::Primary {
                let t = r.commanded.map(|c| c.as_nanos() as f64 * 1e-9).unwrap_or(f64::INFINITY);
                let iso = r.isolated.map(|c| c.as_nanos() as f64 * 1e-9 - onset_s);
                primaries.push((t, r.section.unwrap_or(0), iso, r.distance_m));
            }
        }
    }
    primaries.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let located = primaries.first().map(|p| p.1);
    let true_c = true_section.and_then(|s| lmus.iter().find(|c| c.peer == s));
    let allowed: BTreeSet<u16> =
        true_c.map(|c| std::iter::once(c.peer).chain(c.downstream.iter().copied()).collect()).unwrap_or_default();
    let mut first_open: Option<(f64, u16)> = None;
    let mut healthy_trips = 0;
    let mut open_at: BTreeMap<u16, f64> = BTreeMap::new();
    for (a, c) in agents.iter().zip(&lmus) {
        if c.is_tie {
            continue;
        }
        if let Some(&(t, _)) = a.switching.iter().find(|(t, closed)| !closed && *t >= onset) {
            let r = rel(t);
            open_at.insert(c.peer, r);
            if first_open.is_none_or(|(ft, _)| r < ft) {
                first_open = Some((r, c.peer));
            }
            if !allowed.contains(&c.peer) {
                healthy_trips += 1;
            }
        }
    }
    let isolation = if allowed.is_empty() {
        None
    } else if allowed.iter().all(|p| open_at.contains_key(p)) {
        allowed.iter().map(|p| open_at[p]).fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    } else {
        primaries.first().and_then(|p| p.2)
    };
    // Customers: supplied when the bus is energised with every phase above 0.5 p.u.
    let supplied = |snap: &GridSnapshot, b: usize| {
        snap.energised.get(b).copied().unwrap_or(false) && snap.v_pu[b].iter().all(|v| v.norm() > 0.5)
    };
    let section_buses: BTreeSet<usize> = true_c.map(|c| c.section_buses.iter().copied().collect()).unwrap_or_default();
    let mut interrupted = 0u32;
    let mut not_restored = 0u32;
    let mut restore_max: f64 = 0.0;
    let mut minutes = 0.0;
    let mut ens_kwh = 0.0;
    let end_s = rel(end);
    for &(b, p_mw) in &load_info {
        let mut out_since: Option<f64> = None;
        let mut outage_s = 0.0;
        let mut was_out = false;
        let mut restored_at: Option<f64> = None;
        for (t, snap) in &host.history {
            let r = rel(*t);
            if r < 0.0 {
                continue;
            }
            let ok = supplied(snap, b);
            match (ok, out_since) {
                (false, None) => {
                    out_since = Some(r);
                    was_out = true;
                }
                (true, Some(s)) => {
                    outage_s += r - s;
                    out_since = None;
                    restored_at = Some(r);
                }
                _ => {}
            }
        }
        if !was_out {
            continue;
        }
        interrupted += 1;
        if let Some(s) = out_since {
            outage_s += end_s - s;
        }
        minutes += outage_s / 60.0;
        ens_kwh += p_mw * 1000.0 * outage_s / 3600.0;
        if !section_buses.contains(&b) {
            match (out_since, restored_at) {
                (None, Some(r)) => restore_max = restore_max.max(r),
                _ => not_restored += 1,
            }
        }
    }
    let restore = if not_restored > 0 { None } else { Some(restore_max) };
    let name = |s: Option<u16>| s.map_or("none".to_string(), |p| format!("S{p}"));
    let event = FaultEvent {
        kind: input.fault.kind.label().into(),
        line: input.fault.line,
        r_ohm: input.fault.r_ohm,
        true_section: name(true_section),
        located_section: name(located),
        onset_s,
        detection_ms: detection.map(|d| d * 1e3),
        trip_ms: first_open.map(|f| f.0 * 1e3),
        selective: first_open.is_some_and(|f| Some(f.1) == true_section),
        isolation_s: isolation,
        restore_s: restore,
        distance_m: primaries.first().and_then(|p| p.3),
        healthy_trips,
        customers_interrupted: interrupted,
        healthy_customers_not_restored: not_restored,
        customer_minutes_lost: minutes,
        energy_not_supplied_kwh: ens_kwh,
    };
    let row = CaseRow {
        feeder: input.feeder.clone(),
        true_section: event.true_section.clone(),
        located_section: event.located_section.clone(),
        kind: event.kind.clone(),
        r_ohm: input.fault.r_ohm,
        pv_pct: input.pv_pct,
        trip_ms: fmt_opt(event.trip_ms, 1),
        isolation_s: fmt_opt(event.isolation_s, 3),
        restore_s: fmt_opt(event.restore_s, 3),
    };
    if std::env::var_os("GRIDTWIN_CASE_DEBUG").is_some() {
        for (a, c) in agents.iter().zip(&lmus) {
            eprintln!(
                "S{} up {:?} down {:?} tie {:?} is_tie {} switching {:?} reports {:?}",
                c.peer,
                c.upstream,
                c.downstream,
                c.tie,
                c.is_tie,
                a.switching,
                a.firmware().flisr().reports().collect::<Vec<_>>()
            );
        }
        for (t, s) in &host.history {
            eprintln!("t {t:?} energised {:?}", s.energised);
        }
    }
    Ok(CaseResult {
        row,
        event,
        digest: sim.digest().value(),
        solve_errors: host.solve_errors.clone(),
        events: sim.stats().delivered,
    })
}

/// All cases of the study for one feeder: every section (a fault halfway along its first line) x
/// `kinds` x `r_ohm` x `pv_pct`, in a fixed order.
pub fn study_cases(
    base: &CaseInput,
    kinds: &[FaultType],
    r_ohm: &[f64],
    pv_pct: &[f64],
) -> Result<Vec<CaseInput>, String> {
    let mut net = base.network.clone();
    let ties = add_ties(&mut net, &base.placement, &base.ties)?;
    let lmus = commission(&net, &base.placement, &ties)?;
    let mut out = Vec::new();
    for c in lmus.iter().filter(|c| !c.is_tie) {
        let line = net.lines[c.section_lines[0]].index;
        for &kind in kinds {
            for &r in r_ohm {
                for &pv in pv_pct {
                    let mut ci = base.clone();
                    ci.fault = FaultPlan { line, at: 0.5, kind, r_ohm: r, ..base.fault };
                    ci.pv_pct = pv;
                    out.push(ci);
                }
            }
        }
    }
    Ok(out)
}

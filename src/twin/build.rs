//! Builds the LMUs of a feeder around a grid agent, and scores the faults of the run.
//!
//! One code path for every use: the world builder (`src/world/lmu.rs`) and the FLISR case runner
//! ([`super::study::run_flisr_case`]) both commission the feeder ([`Commissioning`]), put the LMU agents,
//! their switches and a supply recorder around a [`GridAgent`] with [`attach`], schedule the faults on the
//! grid agent, and score the run with [`score`]. Units: s and ms as named, MW in the model, kWh in reports.

use super::LmuMsg;
use super::agent::{ContinuityReceiver, LmuAgent, Placement, Uplink};
use super::contactor::{ContactorFailure, ContactorModel, ContactorTwin, DeviceKind};
use super::feeder_head::{FeederDeviceModel, FeederHead, FeederHeadAgent, FeederOperation};
use super::link::{LinkModel, LossyLink};
use super::metrics::{
    Coordination, FaultEvent, FaultsReport, HeadCoordination, HealthyThreshold, LmuCompliance, SagThreshold,
};
use super::placement::{Commissioned, Feeder, PlacementRule, commission, farthest_below, section_of_line};
use super::scenario::{FaultPlan, FaultType, TieRule};
use super::sensor::{Fidelity, SensorModel, SensorTwin};
use super::study::ProtectionFile;
use crate::agents::Msg;
use crate::engine::{Agent, AgentId, Ctx, Event, SimDuration, SimTime, Simulation, class, stream};
use crate::grid::GridMsg;
use crate::grid::agents::GridAgent;
use crate::grid::model::{Fault, FaultKind, FaultLocation, GridSnapshot, Phase};
use crate::grid::network::Network;
use gridtwin_firmware::lmu::flisr::Role;
use gridtwin_firmware::lmu::pq::PqSettings;
use gridtwin_firmware::lmu::protection::{HEALTHY_ABOVE_LOSS_MIN_PU, SAG_SWING_MAX_PU};
use gridtwin_firmware::lmu::{Lmu, LmuSettings};
use num_complex::Complex64 as C64;
use std::collections::{BTreeMap, BTreeSet};

/// The hardware and settings every LMU of a feeder gets.
#[derive(Clone, Debug)]
pub struct LmuHardware {
    pub sensor: SensorModel,
    pub contactor: ContactorModel,
    pub protection: ProtectionFile,
    pub link: LinkModel,
    pub fidelity: Fidelity,
    /// Ambient temperature of the sensor electronics (degC).
    pub temperature_c: f64,
    /// Fuse or breaker at the head of every outgoing feeder line, if any.
    pub feeder_head: Option<FeederDeviceModel>,
}

impl LmuHardware {
    /// Checks every model; the error names the part and field.
    pub fn validate(&self) -> Result<(), String> {
        self.sensor.validate().map_err(|e| format!("sensor model: {e}"))?;
        self.contactor.validate().map_err(|e| format!("contactor model: {e}"))?;
        self.protection.validate().map_err(|e| format!("protection: {e}"))?;
        if let Some(m) = &self.feeder_head {
            m.validate().map_err(|e| format!("feeder-head model: {e}"))?;
        }
        self.link.validate()
    }
}

/// A feeder with its normally-open ties added and its LMUs commissioned.
#[derive(Clone, Debug)]
pub struct Commissioning {
    /// The network with the tie lines appended.
    pub network: Network,
    /// (tie line position, bus position of its LMU).
    pub ties: Vec<(usize, usize)>,
    /// Line LMUs first (peers 1..=sections), then the tie LMUs.
    pub lmus: Vec<Commissioned>,
}

impl Commissioning {
    pub fn new(net: &Network, placement: &PlacementRule, ties: &TieRule) -> Result<Self, String> {
        let mut network = net.clone();
        let ties = add_ties(&mut network, placement, ties)?;
        let lmus = commission(&network, placement, &ties)?;
        Ok(Commissioning { network, ties, lmus })
    }

    /// Number of sections (line LMUs).
    pub fn sections(&self) -> usize {
        self.lmus.iter().filter(|c| !c.is_tie).count()
    }

    /// Resolves a fault named by section to the first line of that section (halfway unless `at` says).
    pub fn resolve(&self, p: &FaultPlan) -> Result<FaultPlan, String> {
        let Some(s) = p.section else {
            if !self.network.lines.iter().any(|l| l.index == p.line) {
                return Err(format!("faults: line {} does not exist", p.line));
            }
            return Ok(*p);
        };
        let c = self
            .lmus
            .iter()
            .find(|c| c.peer == s && !c.is_tie)
            .ok_or(format!("faults: section {s} does not exist (the feeder has sections 1..={})", self.sections()))?;
        let line = c.section_lines.first().map(|&l| self.network.lines[l].index).ok_or("section without lines")?;
        Ok(FaultPlan { line, ..*p })
    }

    /// The section (peer id of its LMU) holding line `line` (file index).
    pub fn section_of(&self, line: i64) -> Option<u16> {
        let pos = self.network.lines.iter().position(|l| l.index == line)?;
        section_of_line(&self.lmus, pos)
    }
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

/// The grid's fault state for a plan (phase A, or A and B).
pub fn grid_fault(p: &FaultPlan) -> Fault {
    let kind = match p.kind {
        FaultType::ThreePhase => FaultKind::ThreePhase,
        FaultType::TwoPhase => FaultKind::LineToLine(Phase::A, Phase::B),
        FaultType::LineToEarth => FaultKind::LineToEarth(Phase::A),
        FaultType::OpenConductor => FaultKind::OpenConductor(Phase::A),
    };
    Fault { location: FaultLocation::Line { line: p.line, fraction: p.at }, kind, r_ohm: p.r_ohm }
}

/// What [`attach`] needs besides the feeder.
pub struct AttachOptions<'a> {
    pub hw: &'a LmuHardware,
    /// Line faults, resolved (see [`Commissioning::resolve`]).
    pub faults: &'a [FaultPlan],
    /// Contactor failures: (bus file index, failure, onset); every LMU at that bus gets it.
    pub contactor_faults: &'a [(i64, ContactorFailure, SimDuration)],
    pub seed: u64,
    /// Periodic readings: where to and how often.
    /// Readings go to this agent: (agent, interval, spread of the per-LMU send offsets).
    pub uplink: Option<(AgentId, SimDuration, SimDuration)>,
}

/// The LMUs as built, with what scoring needs.
pub struct LmuBuild {
    pub commissioning: Commissioning,
    /// Agent of each LMU, in the order of `commissioning.lmus`.
    pub agents: Vec<AgentId>,
    pub recorder: AgentId,
    /// Customers: (bus position, base active power MW) per load.
    pub loads: Vec<(usize, f64)>,
    pub faults: Vec<FaultPlan>,
    /// The feeder-head devices' agent, if any.
    pub feeder_head: Option<AgentId>,
    /// The switching devices' coordination as commissioning computed it.
    pub coordination: Coordination,
}

/// Each LMU's height for time grading: the LMUs below it on its longest downstream path (0 for ties and at
/// the feeder's ends; capped at 255).
fn heights(lmus: &[Commissioned]) -> Vec<u8> {
    let pos: BTreeMap<u16, usize> = lmus.iter().enumerate().map(|(k, l)| (l.peer, k)).collect();
    let mut h: Vec<Option<u8>> = vec![None; lmus.len()];
    // Children before parents: repeat until every height is known (at most one round per level; a cycle,
    // which commissioning never builds, would leave the rest at 0).
    for _round in 0..=lmus.len() {
        let mut progress = false;
        for (k, l) in lmus.iter().enumerate() {
            if h[k].is_some() {
                continue;
            }
            let kids: Vec<Option<u8>> = l.downstream.iter().filter_map(|d| pos.get(d)).map(|&j| h[j]).collect();
            if kids.iter().all(|x| x.is_some()) {
                h[k] = Some(kids.iter().map(|x| x.unwrap_or(0).saturating_add(1)).max().unwrap_or(0));
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    h.into_iter().map(|x| x.unwrap_or(0)).collect()
}

/// Each LMU's converters below it: the sum of `k` x rated current (A RMS) of the in-service static
/// generators (the network's and the scenario's rooftop PV) at the buses of its own section and of every
/// section below it.
fn converters_below(lmus: &[Commissioned], net: &Network) -> Vec<f64> {
    let mut at_bus = vec![0.0; net.buses.len()];
    for g in net.sgens.iter().filter(|g| g.in_service) {
        if let Some(b) = net.bus(g.bus) {
            let v_ll = net.buses[b].vn_kv * 1000.0;
            if v_ll > 0.0 {
                at_bus[b] += g.k_factor() * g.rating_mva() * 1e6 / (3f64.sqrt() * v_ll);
            }
        }
    }
    let own: BTreeMap<u16, f64> = lmus
        .iter()
        .map(|c| (c.peer, c.section_buses.iter().map(|&b| at_bus.get(b).copied().unwrap_or(0.0)).sum()))
        .collect();
    let below: BTreeMap<u16, &[u16]> = lmus.iter().map(|c| (c.peer, &c.downstream[..])).collect();
    lmus.iter()
        .map(|c| {
            let (mut total, mut seen, mut stack) = (0.0, BTreeSet::new(), vec![c.peer]);
            // Each LMU at most once: a malformed (cyclic) commissioning cannot loop.
            while let Some(p) = stack.pop() {
                if seen.insert(p) {
                    total += own.get(&p).copied().unwrap_or(0.0);
                    stack.extend(below.get(&p).copied().unwrap_or(&[]).iter().copied());
                }
            }
            total
        })
        .collect()
}

/// Each LMU's depth: the LMUs above it up to the source (capped at 255; the upstream chain is followed at most
/// once per LMU, so a cycle cannot loop).
fn depths(lmus: &[Commissioned]) -> Vec<u8> {
    let pos: BTreeMap<u16, usize> = lmus.iter().enumerate().map(|(k, l)| (l.peer, k)).collect();
    lmus.iter()
        .map(|l| {
            let (mut d, mut up) = (0usize, l.upstream);
            while let Some(u) = up
                && d < lmus.len()
            {
                d += 1;
                up = pos.get(&u).and_then(|&j| lmus[j].upstream);
            }
            d.min(255) as u8
        })
        .collect()
}

/// IEC 60909 maximum initial short-circuit current at each bus (A RMS, the larger of three-phase and
/// line-to-earth; 0 where it cannot be computed), with the normally-open ties out of service.
fn prospective_at_buses(c: &Commissioning) -> Vec<f64> {
    let mut net = c.network.clone();
    for t in &c.ties {
        if let Some(l) = net.lines.get_mut(t.0) {
            l.in_service = false;
        }
    }
    match crate::grid::shortcircuit::short_circuit(&net) {
        Ok(sc) => sc
            .iter()
            .map(|b| {
                let ka = b.ikss_ka_3ph_max.max(b.ikss_ka_1ph_max);
                if ka.is_finite() { ka * 1000.0 } else { 0.0 }
            })
            .collect(),
        Err(_) => vec![0.0; c.network.buses.len()],
    }
}

/// Margin below the lowest normal phase voltage at an LMU's bus that still counts as healthy supply, p.u.
pub const HEALTHY_MARGIN_PU: f64 = 0.05;

/// The lowest phase voltage at each bus in normal operation at its heaviest: the network's loads at their set
/// points, no generation, ties open (p.u. of the phase base, by bus position; NaN where the solve fails or
/// the bus is not energised). What commissioning sets the LMUs' healthy-voltage threshold from.
fn normal_min_pu_at_buses(c: &Commissioning, normal: Option<&GridSnapshot>) -> Vec<f64> {
    let nb = c.network.buses.len();
    match normal {
        Some(snap) => (0..nb)
            .map(|b| match (snap.energised.get(b), snap.v_pu.get(b)) {
                (Some(true), Some(v)) => v.iter().map(|x| x.norm()).fold(f64::INFINITY, f64::min),
                _ => f64::NAN,
            })
            .collect(),
        None => vec![f64::NAN; nb],
    }
}

/// The feeder in normal operation at its heaviest: the network's loads at their set points, no generation,
/// ties open. `None` where it does not solve.
pub fn normal_state(c: &Commissioning) -> Option<std::sync::Arc<GridSnapshot>> {
    let mut net = c.network.clone();
    for t in &c.ties {
        if let Some(l) = net.lines.get_mut(t.0) {
            l.in_service = false;
        }
    }
    for g in &mut net.sgens {
        g.in_service = false;
    }
    crate::grid::model::GridModel::new(net).solve().ok()
}

/// The healthy-voltage threshold commissioning gives an LMU whose bus runs at `normal_min_pu` at its heaviest
/// normal load: the file's `healthy_pu`, lowered to [`HEALTHY_MARGIN_PU`] below that voltage where the bus
/// normally runs lower (a long, weak feeder's far end), and never below `loss_pu` +
/// [`HEALTHY_ABOVE_LOSS_MIN_PU`] (the settings' own bound). Without it such an LMU never has "healthy"
/// supply, so it can neither detect a lost phase (the other two phases must be healthy) nor bound a break
/// from upstream.
pub fn commissioned_healthy_pu(file_healthy_pu: f64, loss_pu: f64, normal_min_pu: f64) -> f64 {
    if !normal_min_pu.is_finite() {
        return file_healthy_pu;
    }
    file_healthy_pu.min(normal_min_pu - HEALTHY_MARGIN_PU).max(loss_pu + HEALTHY_ABOVE_LOSS_MIN_PU).min(file_healthy_pu)
}

/// How far above the estimated largest swing a break gives an LMU its sag threshold goes: load above the set
/// points (profiles peak over them) and generation exporting through the break move the other phases
/// further. The estimate itself lies 15-51 % above the fault-state solves on the shipped feeders.
pub const SAG_SWING_MARGIN: f64 = 1.25;

/// The sag threshold commissioning gives an LMU whose healthy phases swing by at most `break_swing_pu` when a
/// break upstream takes one of its phases: the file's `sag_swing_pu`, raised to [`SAG_SWING_MARGIN`] times
/// that swing where that is higher (a weak line's breaks move the other phases as a stiff cable's shunt
/// faults do), and never above the settings' bound. Without it such breaks are taken for sags and wait out
/// the hold before they are reported.
pub fn commissioned_sag_swing_pu(file_sag_swing_pu: f64, break_swing_pu: f64) -> f64 {
    if !break_swing_pu.is_finite() {
        return file_sag_swing_pu;
    }
    file_sag_swing_pu.max(SAG_SWING_MARGIN * break_swing_pu).min(SAG_SWING_MAX_PU)
}

/// The largest swing of the healthy phases at each LMU (by commissioning order, p.u. of the phase base) over
/// the breaks upstream of it, on any line and any phase, at the heaviest normal load (`normal`: the intact
/// network solved with its loads at their set points, no generation, ties open), by superposition: a break
/// of phase `p` in line `s` takes away phase `p`'s current in `s` and in every line below it, and through
/// each line's coupling between phases, (Z0 - Z1) / 3 in the sequence model, that moves the other phases at
/// an LMU beyond the break by the sum, over the lines from the source to the LMU, of the coupling times the
/// current each line loses (the broken line's current on the lines above the break, each line's own current
/// below it). Left out: the loads' response to the swing and the transformer's coupling (a Dyn
/// transformer's Z0 is close to its Z1). Against full fault-state solves (a break halfway along the first
/// line of every section, each phase) the estimate lies above at every LMU, by 15-25 % on stiff feeders and up
/// to 51 % at the far end of a weak branch running at 0.78 p.u. (Kerber overhead line and Kabel 2, Dickert's
/// long cable and overhead line; test `the_break_swing_estimate_lies_above_the_fault_state_solve`): one
/// power-flow solve instead of three per line, which on a long feeder took 10 s per commissioning. 0 at LMUs
/// that no break reaches or on lines without zero-sequence data.
pub fn break_swing_pu_at_lmus(c: &Commissioning, normal: &GridSnapshot) -> Vec<f64> {
    let tie_lines: BTreeSet<usize> = c.ties.iter().map(|t| t.0).collect();
    let Ok(tree) = Feeder::new(&c.network, &tie_lines) else { return vec![0.0; c.lmus.len()] };
    let net = &c.network;
    c.lmus
        .iter()
        .map(|l| {
            // The path from the LMU's bus up to the source: (mutual impedance, the three phase currents
            // flowing down the line, A), nearest the LMU first.
            let mut path: Vec<(C64, [C64; 3])> = Vec::new();
            let mut b = l.bus_pos;
            // A tree path has fewer lines than the network has buses.
            for _ in 0..net.buses.len() {
                let Some(Some((line, up))) = tree.parent.get(b).copied() else { break };
                let ln = &net.lines[line];
                let zm = match (ln.r0_ohm_per_km, ln.x0_ohm_per_km) {
                    (Some(r0), Some(x0)) => {
                        C64::new(r0 - ln.r_ohm_per_km, x0 - ln.x_ohm_per_km) * ln.length_km / ln.parallel / 3.0
                    }
                    _ => C64::new(0.0, 0.0),
                };
                let down_end = if net.bus(ln.from_bus) == Some(up) { 0 } else { 1 };
                let i_ka = normal.line_i_ka.get(line).map_or([C64::new(0.0, 0.0); 3], |i| i[down_end]);
                path.push((zm, i_ka.map(|i| i * 1000.0)));
                b = up;
            }
            if path.is_empty() || normal.energised.get(l.bus_pos) != Some(&true) {
                return 0.0;
            }
            let u_phase_v = net.buses[l.bus_pos].vn_kv * 1000.0 / 3f64.sqrt();
            let zm_total: C64 = path.iter().map(|e| e.0).sum();
            let mut worst = 0.0f64;
            for p in 0..3 {
                // From the LMU up: `below` sums the coupling times the own current of the lines between the
                // break and the LMU; `zm_above` the coupling of the lines from the source to the break.
                let mut zm_above = zm_total;
                let mut below = C64::new(0.0, 0.0);
                for &(zm, i) in &path {
                    let swing_v = (zm_above * i[p] + below).norm();
                    worst = worst.max(swing_v / u_phase_v);
                    zm_above -= zm;
                    below += zm * i[p];
                }
            }
            worst
        })
        .collect()
}

/// Longest time LMU `k` takes to clear a fault in its own section with no message arriving (ms): its graded
/// time, the logic delay, one cycle to measure, the release time and the arc up to the last current zero.
fn lmu_clear_ms(hw: &LmuHardware, height: u8) -> f64 {
    let p = &hw.protection;
    let half_cycle_ms = 10.0;
    height as f64 * p.grading_ms as f64
        + p.logic_delay_ms as f64
        + 20.0
        + hw.contactor.release_ms
        + hw.contactor.arcing_min_ms
        + half_cycle_ms
}

/// The feeder-head line each LMU's feeder leaves the source by (index into `heads`), from the feeder tree.
fn head_of_lmus(c: &Commissioning, f: &Feeder, heads: &[FeederHead]) -> Vec<Option<usize>> {
    let by_line: BTreeMap<usize, usize> = heads.iter().enumerate().map(|(k, h)| (h.line_pos, k)).collect();
    c.lmus
        .iter()
        .map(|l| {
            // Start below the LMU's line (its bus may be the source bus itself) and walk up to the source.
            let line = c.network.lines.get(l.line_pos)?;
            let ends = [c.network.bus(line.from_bus)?, c.network.bus(line.to_bus)?];
            let mut b =
                *ends.iter().find(|&&b| f.parent.get(b).copied().flatten().is_some_and(|p| p.0 == l.line_pos))?;
            for _ in 0..f.parent.len() {
                let (pl, pb) = f.parent.get(b).copied().flatten()?;
                if pb == f.source_bus_pos {
                    return by_line.get(&pl).copied();
                }
                b = pb;
            }
            None
        })
        .collect()
}

/// Coordination from the feeder's own short-circuit currents: each LMU's prospective current against its
/// switch's breaking capacity, each breaker head's instantaneous pickup set above the currents its feeder's
/// LMUs must clear themselves, and whether each head leaves those faults to them.
fn coordinate(
    c: &Commissioning,
    hw: &LmuHardware,
    tree: Option<&Feeder>,
    heads: &mut [FeederHead],
    prospective_a: &[f64],
    heights: &[u8],
) -> Coordination {
    let lmu_a: Vec<f64> = c.lmus.iter().map(|l| prospective_a.get(l.bus_pos).copied().unwrap_or(0.0)).collect();
    let clear_ms: Vec<f64> = heights.iter().map(|&h| lmu_clear_ms(hw, h)).collect();
    let cap = hw.contactor.ultimate_breaking_a();
    let mut out = Coordination {
        lmu_device: match hw.contactor.kind {
            DeviceKind::Contactor => "contactor",
            DeviceKind::Breaker => "breaker",
        },
        lmu_breaking_a: cap,
        lmu_prospective_max_a: lmu_a.iter().copied().fold(0.0, f64::max),
        lmus_beyond_capacity: c.lmus.iter().zip(&lmu_a).filter(|(_, a)| **a > cap).map(|(l, _)| l.peer).collect(),
        lmu_clear_ms_max: clear_ms.iter().copied().fold(0.0, f64::max),
        heads: Vec::new(),
        healthy_pu_lowered: Vec::new(),
        sag_swing_raised: Vec::new(),
    };
    let (Some(model), Some(f)) = (&hw.feeder_head, tree) else { return out };
    let head_of = head_of_lmus(c, f, heads);
    let head_fault_a = prospective_a.get(f.source_bus_pos).copied().unwrap_or(0.0);
    for (k, h) in heads.iter_mut().enumerate() {
        // The LMUs of this feeder that clear faults themselves (ties never carry fault current).
        let mine: Vec<usize> = (0..c.lmus.len()).filter(|&j| head_of[j] == Some(k) && !c.lmus[j].is_tie).collect();
        // What the LMUs interrupt themselves: their prospective currents up to their switch's capacity (above
        // it they hold, and the head must clear at once).
        let through_a = mine.iter().map(|&j| lmu_a[j].min(cap)).fold(0.0, f64::max);
        if !mine.is_empty() {
            h.instantaneous_a = model.coordinated_instantaneous_a(through_a);
        }
        let op_ms = |i: f64| model.operate_s_with(i, h.instantaneous_a).map(|t| t * 1e3);
        let selective = mine.iter().all(|&j| lmu_a[j] <= cap && op_ms(lmu_a[j]).is_none_or(|t| t > clear_ms[j] + 50.0));
        let ii = match model {
            FeederDeviceModel::Breaker { instantaneous_a, .. } => {
                Some(h.instantaneous_a.unwrap_or(*instantaneous_a)).filter(|x| x.is_finite())
            }
            FeederDeviceModel::GgFuse { .. } => None,
        };
        out.heads.push(HeadCoordination {
            line: h.line,
            device: model.label(),
            head_fault_max_a: head_fault_a,
            through_fault_max_a: through_a,
            instantaneous_a: ii,
            operate_ms_at_through_fault: op_ms(through_a),
            selective_without_messages: selective,
        });
    }
    out
}

/// Builds the firmware settings of one LMU from commissioning.
/// `all` is every commissioned LMU of the feeder (for the second neighbours, see
/// [`gridtwin_firmware::lmu::flisr::FlisrSettings::downstream_next`]).
fn lmu_settings(
    c: &Commissioned,
    all: &[Commissioned],
    hw: &LmuHardware,
    u_nominal_v: f64,
    grading: (u8, u8, f64),
) -> LmuSettings {
    let (height, depth, der_downstream_a) = grading;
    let mut f = hw.protection.flisr(c.peer);
    f.height = height;
    f.depth = depth;
    f.der_downstream_a = der_downstream_a;
    f.upstream = c.upstream;
    f.downstream = c.downstream.clone();
    f.tie = c.tie;
    f.is_tie = c.is_tie;
    f.tie_requesters = c.tie_requesters.clone();
    let by_peer = |p: u16| all.iter().find(|l| l.peer == p);
    f.upstream_next = c.upstream.and_then(by_peer).and_then(|u| u.upstream);
    f.downstream_next = c
        .downstream
        .iter()
        .filter_map(|&d| by_peer(d))
        .flat_map(|d| d.downstream.iter().map(move |&n| (d.peer, n)))
        .filter(|&(_, n)| by_peer(n).is_some_and(|l| !l.is_tie))
        .collect();
    // Every LMU below, nearest first (breadth first, bounded), with the downstream neighbour on the way.
    let mut below: Vec<(u16, u16)> = Vec::new();
    let mut frontier: Vec<(u16, u16)> = c.downstream.iter().map(|&d| (d, d)).collect();
    while !frontier.is_empty() && below.len() < gridtwin_firmware::lmu::flisr::MAX_DESCENDANTS {
        let mut next = Vec::new();
        for (n, via) in frontier {
            let Some(l) = by_peer(n).filter(|l| !l.is_tie) else { continue };
            if n == c.peer || below.iter().any(|b| b.0 == n) {
                continue;
            }
            if below.len() < gridtwin_firmware::lmu::flisr::MAX_DESCENDANTS {
                below.push((n, via));
            }
            next.extend(l.downstream.iter().map(|&m| (m, via)));
        }
        frontier = next;
    }
    below.sort_unstable();
    f.descendants = below;
    f.sibling_index = c
        .upstream
        .and_then(by_peer)
        .and_then(|u| u.downstream.iter().position(|&d| d == c.peer))
        .map_or(0, |k| k.min(u8::MAX as usize) as u8);
    f.breaking_capacity_a = hw.contactor.ultimate_breaking_a();
    f.measuring_range_a = hw.sensor.current_range_a_rms();
    f.x_loop_ohm_per_km = c.x_ohm_per_km;
    f.section_length_m = c.first_line_len_m;
    LmuSettings {
        front_end: (hw.fidelity == Fidelity::Waveform).then(|| hw.sensor.front_end()),
        pq: PqSettings { u_din_v: u_nominal_v, ..PqSettings::default() },
        protection: hw.protection.protection(u_nominal_v),
        flisr: f,
    }
}

/// Adds the LMUs of `c` around the grid agent `grid` (already in `sim`, its model built on `c.network`): a
/// switch per LMU in the grid model, the LMU agents (subscribed to the grid's snapshots), a supply recorder,
/// the feeder-head fuses or breakers (one agent for every line leaving the source bus, ties excluded), and
/// the faults as grid commands at their onsets. Agent ids follow: LMUs in commissioning order, the
/// recorder, then the feeder-head agent.
pub fn attach(
    sim: &mut Simulation<Msg>,
    grid: AgentId,
    c: Commissioning,
    o: &AttachOptions,
) -> Result<LmuBuild, String> {
    o.hw.validate()?;
    let first = sim.next_agent_id().0;
    let n = c.lmus.len() as u32;
    let ids: Vec<AgentId> = (0..n).map(|k| AgentId(first + k)).collect();
    let recorder = AgentId(first + n);
    let peers: BTreeMap<u16, AgentId> = c.lmus.iter().zip(&ids).map(|(l, &a)| (l.peer, a)).collect();
    let g = sim.agent_mut::<GridAgent>(grid).ok_or("the grid agent is missing")?;
    let mut loads = Vec::new();
    for (id, bus) in g.model.load_ids() {
        let (p, _) = g.model.load_base(id).unwrap_or((0.0, 0.0));
        loads.push((c.network.bus(bus).ok_or(format!("load at missing bus {bus}"))?, p));
    }
    let mut heads = Vec::new();
    // The feeder tree without its ties: where the heads sit, and (in `coordinate`) which feeder an LMU is on.
    let mut tree = None;
    if o.hw.feeder_head.is_some() {
        let tie_lines: BTreeSet<usize> = c.ties.iter().map(|t| t.0).collect();
        let f = tree.insert(Feeder::new(&c.network, &tie_lines)?);
        let src = c.network.buses[f.source_bus_pos].index;
        for (k, l) in c.network.lines.iter().enumerate() {
            if tie_lines.contains(&k) || !l.in_service || (l.from_bus != src && l.to_bus != src) {
                continue;
            }
            let end = if l.from_bus == src { 0 } else { 1 };
            let sw = g.model.add_line_switch(l.index, src, true, &format!("feeder-head-{}", l.index))?;
            heads.push(FeederHead::new(k, l.index, end, sw));
        }
    }
    let head_agent = (!heads.is_empty()).then_some(AgentId(first + n + 1));
    if let Some(a) = head_agent {
        g.subscribe(a);
    }
    let mut switches = Vec::new();
    for l in &c.lmus {
        switches.push(g.model.add_line_switch(l.line, l.bus, !l.is_tie, &format!("lmu-{}", l.peer))?);
    }
    for &a in &ids {
        g.subscribe(a);
    }
    g.subscribe(recorder);
    let heights = heights(&c.lmus);
    let depths = depths(&c.lmus);
    let der = converters_below(&c.lmus, g.model.network());
    let prospective_a = prospective_at_buses(&c);
    let normal = normal_state(&c);
    let normal_min_pu = normal_min_pu_at_buses(&c, normal.as_deref());
    let mut coordination = coordinate(&c, o.hw, tree.as_ref(), &mut heads, &prospective_a, &heights);
    let break_swing = match (&normal, o.hw.protection.open_conductor) {
        (Some(n), true) => break_swing_pu_at_lmus(&c, n),
        _ => vec![f64::NAN; c.lmus.len()],
    };
    let (mut lowered, mut raised) = (Vec::new(), Vec::new());
    for (k, l) in c.lmus.iter().enumerate() {
        let u_nom = c.network.buses[l.bus_pos].vn_kv * 1000.0 / 3f64.sqrt();
        let mut settings = lmu_settings(l, &c.lmus, o.hw, u_nom, (heights[k], depths[k], der[k]));
        settings.flisr.prospective_max_a = prospective_a.get(l.bus_pos).copied().unwrap_or(0.0);
        let normal_min = normal_min_pu.get(l.bus_pos).copied().unwrap_or(f64::NAN);
        let p = &mut settings.protection;
        let healthy_pu = commissioned_healthy_pu(p.healthy_pu, p.loss_pu, normal_min);
        if healthy_pu < p.healthy_pu {
            lowered.push(HealthyThreshold { lmu: l.peer, normal_min_pu: normal_min, healthy_pu });
        }
        p.healthy_pu = healthy_pu;
        let sag_swing_pu = commissioned_sag_swing_pu(p.sag_swing_pu, break_swing[k]);
        if sag_swing_pu > p.sag_swing_pu {
            raised.push(SagThreshold { lmu: l.peer, break_swing_pu: break_swing[k], sag_swing_pu });
        }
        p.sag_swing_pu = sag_swing_pu;
        let fw = Lmu::new(settings).map_err(|(part, e)| format!("LMU {}: {part}.{e}", l.peer))?;
        let key = l.peer as u64;
        let sensor = SensorTwin::new(
            o.hw.sensor.clone(),
            o.hw.fidelity,
            o.hw.temperature_c,
            stream(o.seed, key, "sensor-noise"),
        )?;
        let contactor = ContactorTwin::new(o.hw.contactor.clone(), !l.is_tie)?;
        let link = Box::new(LossyLink::new(o.hw.link, stream(o.seed, key, "link")));
        let pl = Placement { bus: l.bus_pos, line: l.line_pos, end: l.end, switch: switches[k] };
        let mut a = LmuAgent::new(l.peer, pl, fw, sensor, contactor, grid, peers.clone(), link);
        a.grid_agent_protocol = true;
        if let Some(c) = o.hw.protection.continuity_signal {
            a.continuity = Some(ContinuityReceiver::new(SimDuration::from_millis(c.decode_ms as u64)));
        }
        if let Some((to, every, spread)) = o.uplink {
            a.set_uplink(Uplink::Direct(to), every, spread);
        }
        let id = sim.add_agent(Box::new(a)).map_err(|e| e.to_string())?;
        debug_assert_eq!(id, ids[k]);
    }
    let buses: Vec<usize> = loads.iter().map(|l| l.0).collect();
    sim.add_agent(Box::new(SupplyRecorder { buses, history: Vec::new(), dropped: 0 })).map_err(|e| e.to_string())?;
    if let (Some(expect), Some(m)) = (head_agent, &o.hw.feeder_head) {
        let id = sim.add_agent(Box::new(FeederHeadAgent::new(m.clone(), grid, heads)?)).map_err(|e| e.to_string())?;
        debug_assert_eq!(id, expect);
    }
    for f in o.faults {
        let on = SimTime::ZERO + f.onset;
        let gf = grid_fault(f);
        sim.schedule(grid, grid, on, class::GRID, Msg::Grid(GridMsg::FaultOn(gf))).map_err(|e| e.to_string())?;
        if let Some(d) = f.duration {
            let off = on.saturating_add(d);
            sim.schedule(grid, grid, off, class::GRID, Msg::Grid(GridMsg::FaultOff(gf))).map_err(|e| e.to_string())?;
        }
    }
    for &(bus, failure, onset) in o.contactor_faults {
        let at: Vec<usize> = (0..c.lmus.len()).filter(|&k| c.lmus[k].bus == bus).collect();
        if at.is_empty() {
            return Err(format!("faults: no LMU at bus {bus} for the contactor failure"));
        }
        for k in at {
            let a = ids[k];
            let msg = Msg::Lmu(LmuMsg::InjectContactor(failure));
            sim.schedule(a, a, SimTime::ZERO + onset, class::GRID, msg).map_err(|e| e.to_string())?;
        }
    }
    coordination.healthy_pu_lowered = lowered;
    coordination.sag_swing_raised = raised;
    Ok(LmuBuild {
        commissioning: c,
        agents: ids,
        recorder,
        loads,
        faults: o.faults.to_vec(),
        feeder_head: head_agent,
        coordination,
    })
}

/// Most supply states the recorder keeps (a state is kept only when it changes).
pub const SUPPLY_HISTORY_MAX: usize = 100_000;

/// Records, per solved grid state that changed it, which customers are supplied: bus energised and every
/// phase above 0.5 p.u.
pub struct SupplyRecorder {
    buses: Vec<usize>,
    /// (time, supplied per customer).
    pub history: Vec<(SimTime, Vec<bool>)>,
    pub dropped: u64,
}

fn supplied(snap: &GridSnapshot, b: usize) -> bool {
    snap.energised.get(b).copied().unwrap_or(false)
        && snap.v_pu.get(b).is_some_and(|v| v.iter().all(|p| p.norm().is_finite() && p.norm() > 0.5))
}

impl Agent<Msg> for SupplyRecorder {
    fn handle(&mut self, ev: Event<Msg>, ctx: &mut Ctx<'_, Msg>) {
        if let Msg::Grid(GridMsg::Solved(snap)) = ev.msg {
            let bits: Vec<bool> = self.buses.iter().map(|&b| supplied(&snap, b)).collect();
            if self.history.last().is_some_and(|h| h.1 == bits) {
                return;
            }
            if self.history.len() >= SUPPLY_HISTORY_MAX {
                self.dropped += 1;
                return;
            }
            self.history.push((ctx.now(), bits));
        }
    }
    fn kind(&self) -> &'static str {
        "supply-recorder"
    }
}

/// Scores every fault of the run up to `end`: each fault is judged over its own window (its onset to the
/// next fault's onset or `end`).
pub fn score(sim: &Simulation<Msg>, b: &LmuBuild, end: SimTime) -> FaultsReport {
    let lmus = &b.commissioning.lmus;
    let agents: Vec<Option<&LmuAgent>> = b.agents.iter().map(|&a| sim.agent::<LmuAgent>(a)).collect();
    let history: &[(SimTime, Vec<bool>)] = sim.agent::<SupplyRecorder>(b.recorder).map_or(&[], |r| &r.history);
    let head_ops: &[FeederOperation] =
        b.feeder_head.and_then(|a| sim.agent::<FeederHeadAgent>(a)).map_or(&[], |h| &h.operations);
    // A fault whose onset is at or after the end never happened in this run: it is not scored.
    let mut order: Vec<usize> = (0..b.faults.len()).filter(|&k| SimTime::ZERO + b.faults[k].onset < end).collect();
    let after_end = (b.faults.len() - order.len()) as u32;
    order.sort_by_key(|&k| (b.faults[k].onset, k));
    let mut events = Vec::new();
    for (j, &k) in order.iter().enumerate() {
        let f = &b.faults[k];
        let onset = SimTime::ZERO + f.onset;
        let until = order.get(j + 1).map_or(end, |&n| SimTime::ZERO + b.faults[n].onset).max(onset);
        events.push(score_one(f, onset, until, lmus, &agents, &b.loads, history, head_ops, &b.commissioning));
    }
    let mut en = Vec::new();
    for (l, a) in lmus.iter().zip(&agents) {
        if let Some(a) = a {
            en.push(LmuCompliance::from_counters(l.peer, l.bus, a.firmware().pq().counters()));
        }
    }
    let mut r = FaultsReport::aggregate(events, b.loads.len() as u32, en);
    r.scheduled_after_end = after_end;
    r.coordination = Some(b.coordination.clone());
    r
}

#[allow(clippy::too_many_arguments)]
fn score_one(
    f: &FaultPlan,
    onset: SimTime,
    until: SimTime,
    lmus: &[Commissioned],
    agents: &[Option<&LmuAgent>],
    loads: &[(usize, f64)],
    history: &[(SimTime, Vec<bool>)],
    head_ops: &[FeederOperation],
    c: &Commissioning,
) -> FaultEvent {
    let onset_s = onset.as_secs_f64();
    let rel = |t: SimTime| t.as_secs_f64() - onset_s;
    let ns = |t: SimTime| t.as_nanos();
    let in_window = |t: u64| t >= ns(onset) && t < ns(until);
    let true_section = c.section_of(f.line);
    let mut primaries: Vec<(u64, u16, Option<f64>, Option<f64>)> = Vec::new();
    let mut detection: Option<f64> = None;
    for a in agents.iter().flatten() {
        for r in a.firmware().flisr().reports() {
            if let Some(d) = r.detected
                && in_window(d.as_nanos())
            {
                let d = d.as_nanos() as f64 * 1e-9 - onset_s;
                detection = Some(detection.map_or(d, |x: f64| x.min(d)));
            }
            if r.role == Role::Primary {
                let Some(cmd) = r.commanded.map(|c| c.as_nanos()) else { continue };
                if !in_window(cmd) {
                    continue;
                }
                let iso = r.isolated.map(|c| c.as_nanos() as f64 * 1e-9 - onset_s);
                primaries.push((cmd, r.section.unwrap_or(0), iso, r.distance_m));
            }
        }
    }
    primaries.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let located = primaries.first().map(|p| p.1);
    let by_peer = |p: u16| lmus.iter().find(|c| c.peer == p);
    let true_c = true_section.and_then(by_peer);
    let mut first_open: Option<(f64, u16)> = None;
    let mut open_at: BTreeMap<u16, f64> = BTreeMap::new();
    for (a, l) in agents.iter().zip(lmus) {
        let Some(a) = a else { continue };
        if l.is_tie {
            continue;
        }
        if let Some(&(t, _)) = a.switching.iter().find(|(t, closed)| !closed && *t >= onset && *t < until) {
            let r = rel(t);
            open_at.insert(l.peer, r);
            if first_open.is_none_or(|(ft, _)| r < ft) {
                first_open = Some((r, l.peer));
            }
        }
    }
    // The faulted section's boundaries may open; so may the LMUs one section beyond a downstream boundary that
    // did not open (its radio or controller down: the isolation is extended past it, and its own section
    // joins the isolated zone, its customers out until repair like the faulted section's).
    let mut allowed: BTreeSet<u16> =
        true_c.map(|c| std::iter::once(c.peer).chain(c.downstream.iter().copied()).collect()).unwrap_or_default();
    let mut zone_buses: Vec<usize> = Vec::new();
    for &d in true_c.map(|c| c.downstream.as_slice()).unwrap_or_default() {
        let Some(dc) = by_peer(d).filter(|dc| !dc.is_tie && !open_at.contains_key(&d)) else { continue };
        let beyond: Vec<u16> = dc.downstream.iter().copied().filter(|n| open_at.contains_key(n)).collect();
        if !beyond.is_empty() {
            // `d` is no boundary any more: the isolation time is that of the LMUs that did open.
            allowed.remove(&d);
            allowed.extend(beyond);
            zone_buses.extend(dc.section_buses.iter().copied());
            zone_buses.push(dc.bus_pos);
        }
    }
    let mut healthy_trips = open_at.keys().filter(|p| !allowed.contains(p)).count() as u32;
    // Feeder-head fuse or breaker operations: the first interruption counts as the trip. It is selective
    // when the faulted section is the first of its feeder (no LMU upstream of it): the device is then the
    // section's upstream boundary; anywhere else it took out healthy sections (a healthy trip).
    let head_op = head_ops
        .iter()
        .filter(|o| o.interrupted_ns >= ns(onset) && o.interrupted_ns < ns(until))
        .min_by_key(|o| (o.interrupted_ns, o.line));
    let head_first = head_op.map(|o| o.interrupted_ns as f64 * 1e-9 - onset_s);
    let head_section = true_c.is_some_and(|c| c.upstream.is_none());
    if let Some(h) = head_first {
        if !head_section {
            healthy_trips += 1;
        }
        if first_open.is_none_or(|(ft, _)| h < ft) {
            first_open = Some((h, if head_section { true_section.unwrap_or(0) } else { 0 }));
        }
    }
    let isolation = if allowed.is_empty() {
        None
    } else if allowed.iter().all(|p| open_at.contains_key(p)) {
        allowed.iter().map(|p| open_at[p]).fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    } else {
        primaries.first().and_then(|p| p.2)
    };
    // Customers: out from the first state after the onset that does not supply them.
    let section_buses: BTreeSet<usize> =
        true_c.map(|c| c.section_buses.iter().copied().chain(zone_buses.iter().copied()).collect()).unwrap_or_default();
    let end_s = rel(until);
    let (mut interrupted, mut not_restored) = (0u32, 0u32);
    let (mut restore_max, mut minutes, mut ens_kwh) = (0.0f64, 0.0, 0.0);
    for (k, &(b, p_mw)) in loads.iter().enumerate() {
        let mut out_since: Option<f64> = None;
        let mut outage_s = 0.0;
        let mut was_out = false;
        let mut restored_at: Option<f64> = None;
        for (t, bits) in history {
            if *t < onset || *t >= until {
                continue;
            }
            let r = rel(*t);
            match (bits.get(k).copied().unwrap_or(true), out_since) {
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
    let name = |s: Option<u16>| s.map_or("none".to_string(), |p| format!("S{p}"));
    FaultEvent {
        kind: f.kind.label().into(),
        line: f.line,
        r_ohm: f.r_ohm,
        true_section: name(true_section),
        located_section: name(located),
        onset_s,
        detection_ms: detection.map(|d| d * 1e3),
        trip_ms: first_open.map(|f| f.0 * 1e3),
        selective: first_open.is_some_and(|f| Some(f.1) == true_section),
        isolation_s: isolation,
        restore_s: if not_restored > 0 { None } else { Some(restore_max) },
        distance_m: primaries.first().and_then(|p| p.3),
        healthy_trips,
        feeder_head_ms: head_first.map(|h| h * 1e3),
        feeder_head_line: head_op.map(|o| o.line),
        feeder_head_current_a: head_op.map(|o| o.current_a),
        customers_interrupted: interrupted,
        healthy_customers_not_restored: not_restored,
        customer_minutes_lost: minutes,
        energy_not_supplied_kwh: ens_kwh,
    }
}

#[cfg(test)]
mod tests {
    use super::{
        Commissioning, HEALTHY_MARGIN_PU, SAG_SWING_MARGIN, break_swing_pu_at_lmus, commissioned_healthy_pu,
        commissioned_sag_swing_pu, normal_state,
    };
    use crate::grid::model::{Fault, FaultKind, FaultLocation, GridModel, Phase};

    /// The superposition estimate of a break's swing at the LMUs beyond it against the fault-state solve it
    /// stands in for, on the Kerber overhead line: a break halfway along the feeder's first line on each
    /// phase (the worst break for every LMU), loads at their set points, no generation. The estimate must lie
    /// above the solve (the threshold is raised from it) and not far above (it would give away the sag rule).
    #[test]
    fn the_break_swing_estimate_lies_above_the_fault_state_solve() {
        let net = crate::grid::network::Network::from_json_file(std::path::Path::new(
            "scenarios/networks/kerber_landnetz_freileitung_1.json",
        ))
        .unwrap();
        let c =
            Commissioning::new(&net, &crate::twin::placement::PlacementRule::EveryLine, &Default::default()).unwrap();
        let normal = normal_state(&c).expect("solves");
        let est = break_swing_pu_at_lmus(&c, &normal);
        let mut intact_net = c.network.clone();
        for g in &mut intact_net.sgens {
            g.in_service = false;
        }
        let mut model = GridModel::new(intact_net);
        let intact = model.solve().unwrap();
        let first = c.lmus.iter().find(|l| l.peer == 1).unwrap();
        let line = c.network.lines[first.section_lines[0]].index;
        let mut solved = vec![0.0f64; c.lmus.len()];
        for ph in [Phase::A, Phase::B, Phase::C] {
            let f = Fault {
                location: FaultLocation::Line { line, fraction: 0.5 },
                kind: FaultKind::OpenConductor(ph),
                r_ohm: 0.0,
            };
            model.add_fault(f).unwrap();
            let snap = model.solve().unwrap();
            for (k, l) in c.lmus.iter().enumerate() {
                let (v, pre) = (snap.v_pu[l.bus_pos], intact.v_pu[l.bus_pos]);
                let lost = v.iter().position(|x| x.norm() < 0.6);
                if let Some(p) = lost {
                    let d = (0..3).filter(|&q| q != p).map(|q| (v[q] - pre[q]).norm()).fold(0.0, f64::max);
                    solved[k] = solved[k].max(d);
                }
            }
            model.clear_fault(&f);
        }
        let beyond = solved.iter().filter(|&&x| x > 0.0).count();
        assert!(beyond >= c.lmus.len() - 1, "every LMU below the first lost a phase: {solved:?}");
        for (k, l) in c.lmus.iter().enumerate() {
            if solved[k] > 0.005 {
                let r = est[k] / solved[k];
                assert!((1.0..1.6).contains(&r), "LMU {}: estimate {} solve {}", l.peer, est[k], solved[k]);
            }
        }
    }

    #[test]
    fn the_sag_threshold_rises_above_what_breaks_give_and_stays_within_its_bounds() {
        assert_eq!(commissioned_sag_swing_pu(0.08, 0.0), 0.08);
        assert_eq!(commissioned_sag_swing_pu(0.08, 0.038), 0.08);
        assert_eq!(commissioned_sag_swing_pu(0.08, 0.1), SAG_SWING_MARGIN * 0.1);
        assert_eq!(commissioned_sag_swing_pu(0.08, 0.9), 0.5);
        assert_eq!(commissioned_sag_swing_pu(0.08, f64::NAN), 0.08);
    }

    /// The file's threshold where the bus normally runs well above it; a margin below the normal minimum where
    /// it does not; never below `loss_pu + 0.05`; the file's when the commissioning solve gave nothing.
    #[test]
    fn the_healthy_threshold_follows_the_bus_normal_minimum_within_bounds() {
        assert_eq!(commissioned_healthy_pu(0.8, 0.6, 0.97), 0.8);
        assert_eq!(commissioned_healthy_pu(0.8, 0.6, 0.8 + HEALTHY_MARGIN_PU), 0.8);
        let h = commissioned_healthy_pu(0.8, 0.6, 0.78);
        assert!((h - (0.78 - HEALTHY_MARGIN_PU)).abs() < 1e-12, "{h}");
        assert_eq!(commissioned_healthy_pu(0.8, 0.6, 0.5), 0.65);
        assert_eq!(commissioned_healthy_pu(0.8, 0.6, f64::NAN), 0.8);
    }
}

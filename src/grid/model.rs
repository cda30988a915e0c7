//! [`GridModel`]: the network plus its changing state (load and generation set points, switch states,
//! faults), solved on demand with warm start, and the [`GridSnapshot`] each solve produces.
//!
//! Topology changes (switching, fault onset or clearing) recompile and refactorise the network; set-point
//! changes only change the right-hand side. Voltages are phasors in per unit of the bus phase base
//! (`vn_kv / sqrt(3)`), angles in radians including transformer phase shifts; currents are phasors in kA.
//! A fault at a fraction along a line splits that line at a new internal bus (named after the line).

use super::fourwire::{FourWire, NeutralFaults};
use super::network::{Line, Network, Sgen};
use super::powerflow::{Converters, K_FRT, NodeLoad, PfError, Port, PowerFlow, phase_to_seq, seq_to_phase};
use super::topology::{Element, Purpose, S_BASE_MVA, Topology};
use num_complex::Complex64 as C64;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A conductor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    A,
    B,
    C,
}

impl Phase {
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// Kind of fault (shunt faults through `r_ohm` per faulted conductor; open conductor interrupts one phase).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FaultKind {
    /// All three phases to earth.
    ThreePhase,
    /// Two phases to each other (through `r_ohm`).
    LineToLine(Phase, Phase),
    /// Two phases to earth.
    TwoLineToEarth(Phase, Phase),
    /// One phase to earth.
    LineToEarth(Phase),
    /// One conductor of a line interrupted (location must be a line; the fraction is ignored).
    OpenConductor(Phase),
}

/// Where a fault is.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FaultLocation {
    /// At a bus (file index).
    Bus(i64),
    /// On a line (file index), `fraction` of its length from the from-bus (0..=1).
    Line { line: i64, fraction: f64 },
}

/// The smallest fault resistance a fault state uses (ohm per faulted conductor): a bolted fault is this.
pub const MIN_FAULT_R_OHM: f64 = 1e-4;

/// A fault state.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub location: FaultLocation,
    pub kind: FaultKind,
    /// Fault resistance per faulted conductor (ohm); values below 0.1 milliohm count as 0.1 milliohm.
    pub r_ohm: f64,
}

/// A load of the network file: balanced (`loads`) or per phase (`asymmetric_loads`), by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoadId {
    Balanced(usize),
    Asym(usize),
}

/// The solved state, shared with observers as `Arc<GridSnapshot>`.
#[derive(Clone, Debug)]
pub struct GridSnapshot {
    /// Bus file indices (position = bus position in the network file).
    pub bus_index: Vec<i64>,
    pub bus_vn_kv: Vec<f64>,
    /// Phase voltages (p.u. of the phase base); zero when de-energised.
    pub v_pu: Vec<[C64; 3]>,
    pub energised: Vec<bool>,
    /// Line file indices (position = line position).
    pub line_index: Vec<i64>,
    /// Phase currents into the line at its from end and at its to end (kA); zero when out of service.
    pub line_i_ka: Vec<[[C64; 3]; 2]>,
    /// Phase currents into each transformer (position = trafo position) at its HV and LV ends (kA); zero
    /// when de-energised.
    pub trafo_i_ka: Vec<[[C64; 3]; 2]>,
    /// Per active fault (in the order given): current flowing from the network into the fault (kA).
    pub fault_i_ka: Vec<[C64; 3]>,
    /// Power drawn from the slack(s), MW + j Mvar (three-phase total).
    pub slack_s_mva: C64,
    /// Active power of each load as set for this solve (MW, three-phase total; balanced loads first, then
    /// per-phase loads, as in `GridModel::load_ids`), zero where its bus is de-energised: what meters integrate.
    pub load_p_mw: Vec<f64>,
    /// Active power of each static generator as set for this solve (MW, generation positive; zero where its
    /// bus is de-energised).
    pub sgen_p_mw: Vec<f64>,
    pub iterations: usize,
    pub unbalanced: bool,
    /// Neutral-to-earth voltage of each bus (p.u. of the phase base): the 4-wire model's neutral-point shift
    /// ([`GridModel::four_wire`]); zero in the sequence model, whose neutral is ideal.
    pub v_n_pu: Vec<C64>,
    /// Per bus, the phases an open conductor leaves islanded ([`GridModel::islanded_phases`]); empty when no
    /// open conductor is applied.
    pub islanded: Vec<[bool; 3]>,
    /// Neutral current into each line at its from and to end (kA); zero in the sequence model.
    pub line_in_ka: Vec<[C64; 2]>,
}

impl GridSnapshot {
    /// Positive-sequence voltage of a bus (p.u.).
    pub fn v1_pu(&self, bus: usize) -> C64 {
        phase_to_seq(self.v_pu[bus])[1]
    }
    /// Phase-to-neutral voltage magnitudes in volts.
    pub fn v_volts(&self, bus: usize) -> [f64; 3] {
        let base = self.bus_vn_kv[bus] * 1000.0 / 3f64.sqrt();
        let v = self.v_pu[bus];
        [v[0].norm() * base, v[1].norm() * base, v[2].norm() * base]
    }
    /// The phases of a bus that an open conductor leaves islanded (none where no open conductor is applied).
    pub fn islanded_phases(&self, bus: usize) -> [bool; 3] {
        self.islanded.get(bus).copied().unwrap_or([false; 3])
    }
}

/// The network with its state, solved on demand.
#[derive(Clone, Debug)]
pub struct GridModel {
    base: Network,
    /// Switch states by switch position (switches of the file plus added ones).
    closed: Vec<bool>,
    line_in_service: Vec<bool>,
    /// Balanced loads: (p_mw, q_mvar) three-phase total.
    load_set: Vec<(f64, f64)>,
    /// Per-phase loads: [p, q] per phase (MW, Mvar).
    asym_set: Vec<[(f64, f64); 3]>,
    sgen_set: Vec<(f64, f64)>,
    faults: Vec<Fault>,
    /// Solve with per-phase detail (forced while a fault is active).
    pub unbalanced: bool,
    pf: Option<PowerFlow>,
    /// Compiled network for the current faults: (network with split lines, line map to base, fault nodes).
    work: Option<Work>,
    /// Last solved phase voltages per bus, for warm starts across refactorisations.
    last_v: Vec<Option<[C64; 3]>>,
    /// Admittance ports of the active faults (for fault currents).
    fault_dy: Vec<Option<Port>>,
    /// Phase voltages per bus of the last healthy state before the active faults (the converters' reference).
    prefault_v: Vec<Option<[C64; 3]>>,
    /// Per external grid (file position): the positive-sequence EMF behind its source impedance that the last
    /// healthy solve before a fault or topology change implies (`V + Zq I`, p.u.), which drives fault states; `None` before any healthy solve
    /// (the set point is used) or for a grid without short-circuit power (an ideal source in every state).
    source_emf: Vec<Option<C64>>,
    /// What the compiled state (`pf`) models.
    state: FaultState,
    /// Solve the LV part with the 4-wire model (explicit neutral, [`super::fourwire`]) as well: the snapshot's
    /// LV phase voltages become that model's phase-to-neutral voltages, its line currents that model's, with
    /// neutral voltages and currents. Used while no shunt fault or open conductor is on (those states stay the
    /// sequence model's). Off by default (the sequence model is the fast path).
    pub four_wire: bool,
    /// Lines (positions) whose neutral conductor is open: the 4-wire model's broken neutral.
    broken_neutral: Vec<usize>,
    fw: Option<FourWire>,
}

/// What the compiled state models, from the faults on energised elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
enum FaultState {
    /// No fault, or only faults on elements isolated from every source: a power flow.
    #[default]
    Healthy,
    /// Open conductors only: no fault current, the source behind its impedance.
    OpenOnly,
    /// At least one shunt fault: a short-circuit state.
    Shunt,
}

#[derive(Clone, Debug)]
struct Work {
    net: Network,
    /// For each base line: (first part position, second part position if split).
    line_parts: Vec<(usize, Option<usize>)>,
    /// Bus position in `net` where each fault sits (for shunt faults).
    fault_bus: Vec<Option<usize>>,
}

fn bus_names(net: &Network) -> Vec<String> {
    (0..net.buses.len()).map(|k| net.bus_label(k)).collect()
}

impl GridModel {
    /// A model of `net` with the loads and generators of the file, switches as in the file.
    pub fn new(net: Network) -> GridModel {
        let closed = net.switches.iter().map(|s| s.closed).collect();
        let line_in_service = net.lines.iter().map(|l| l.in_service).collect();
        let (load_set, asym_set, sgen_set) = (net.load_set_points(), net.asym_set_points(), net.sgen_set_points());
        let unbalanced = !net.asym_loads.is_empty();
        let nb = net.buses.len();
        GridModel {
            base: net,
            closed,
            line_in_service,
            load_set,
            asym_set,
            sgen_set,
            faults: Vec::new(),
            unbalanced,
            pf: None,
            work: None,
            last_v: vec![None; nb],
            fault_dy: Vec::new(),
            prefault_v: Vec::new(),
            source_emf: Vec::new(),
            state: FaultState::Healthy,
            four_wire: false,
            broken_neutral: Vec::new(),
            fw: None,
        }
    }

    /// Opens (`broken`) or restores the neutral conductor of line `line` (file index); only the 4-wire model
    /// sees it. Returns whether the state changed.
    pub fn set_broken_neutral(&mut self, line: i64, broken: bool) -> Result<bool, String> {
        let k = self.base.lines.iter().position(|l| l.index == line).ok_or_else(|| format!("no line {line}"))?;
        let was = self.broken_neutral.contains(&k);
        if was == broken {
            return Ok(false);
        }
        if broken {
            self.broken_neutral.push(k);
            self.broken_neutral.sort_unstable();
        } else {
            self.broken_neutral.retain(|&x| x != k);
        }
        self.fw = None;
        Ok(true)
    }

    /// Lines (file indices) with an open neutral.
    pub fn broken_neutrals(&self) -> Vec<i64> {
        self.broken_neutral.iter().map(|&k| self.base.lines[k].index).collect()
    }

    /// Replaces the LV results of a healthy snapshot by the 4-wire model's.
    fn apply_four_wire(&mut self, snap: &mut GridSnapshot) -> Result<(), PfError> {
        if self.fw.is_none() {
            let faults = NeutralFaults { open_neutral: self.broken_neutral.clone(), neutral_earth: Vec::new() };
            self.fw = Some(FourWire::with_states(&self.base, &self.closed, &self.line_in_service, &faults)?);
        }
        let fw = self.fw.as_mut().expect("built");
        let inj = fw.injections(&self.base, &self.load_set, &self.asym_set, &self.sgen_set);
        fw.solve(&inj)?;
        for b in 0..snap.v_pu.len() {
            if !snap.energised[b] {
                continue;
            }
            if let (Some(v), Some(base)) = (fw.bus_voltages(b), fw.bus_v_base(b)) {
                snap.v_pu[b] = [0, 1, 2].map(|p| (v[p] - v[3]) / base);
                snap.v_n_pu[b] = v[3] / base;
            }
        }
        for k in 0..snap.line_i_ka.len() {
            if let Some((f, t)) = fw.line_currents(k) {
                snap.line_i_ka[k] = [[f[0], f[1], f[2]].map(|i| i / 1000.0), [t[0], t[1], t[2]].map(|i| i / 1000.0)];
                snap.line_in_ka[k] = [f[3] / 1000.0, t[3] / 1000.0];
            }
        }
        Ok(())
    }

    pub fn network(&self) -> &Network {
        &self.base
    }

    fn invalidate(&mut self) {
        if self.faults.is_empty() || self.state == FaultState::Healthy {
            self.update_source_emf();
        }
        self.pf = None;
        self.work = None;
        self.fw = None;
    }

    /// Adds a switch (contactor) at the `bus` end of line `line` (file indices); returns its position.
    pub fn add_line_switch(&mut self, line: i64, bus: i64, closed: bool, name: &str) -> Result<usize, String> {
        let l = self.base.lines.iter().find(|l| l.index == line).ok_or_else(|| format!("no line {line}"))?;
        if l.from_bus != bus && l.to_bus != bus {
            return Err(format!("bus {bus} is not an end of line {line}"));
        }
        let index = self.base.switches.iter().map(|s| s.index).max().unwrap_or(-1) + 1;
        self.base.switches.push(super::network::Switch {
            index,
            name: Some(name.to_string()),
            bus,
            element: line,
            et: "l".into(),
            closed,
            kind: Some("CB".into()),
            z_ohm: None,
        });
        self.closed.push(closed);
        self.invalidate();
        Ok(self.closed.len() - 1)
    }

    /// Opens or closes switch at position `k`. Returns whether the state changed.
    pub fn set_switch(&mut self, k: usize, closed: bool) -> Result<bool, String> {
        let s = self.closed.get_mut(k).ok_or_else(|| format!("no switch at position {k}"))?;
        if *s == closed {
            return Ok(false);
        }
        *s = closed;
        self.invalidate();
        Ok(true)
    }

    pub fn switch_closed(&self, k: usize) -> Option<bool> {
        self.closed.get(k).copied()
    }

    /// Takes line (position) in or out of service.
    pub fn set_line_in_service(&mut self, k: usize, on: bool) -> Result<(), String> {
        let s = self.line_in_service.get_mut(k).ok_or_else(|| format!("no line at position {k}"))?;
        if *s != on {
            *s = on;
            self.invalidate();
        }
        Ok(())
    }

    /// Sets a load's power (MW, Mvar; three-phase total). A per-phase load keeps its phase shares.
    pub fn set_load(&mut self, id: LoadId, p_mw: f64, q_mvar: f64) -> Result<(), String> {
        if !p_mw.is_finite() || !q_mvar.is_finite() {
            return Err(format!("load {id:?}: power must be finite"));
        }
        match id {
            LoadId::Balanced(k) => *self.load_set.get_mut(k).ok_or_else(|| format!("no load {k}"))? = (p_mw, q_mvar),
            LoadId::Asym(k) => {
                let base = self.base.asym_loads.get(k).ok_or_else(|| format!("no asymmetric load {k}"))?;
                let bp = [base.p_a_mw, base.p_b_mw, base.p_c_mw];
                let tot: f64 = bp.iter().sum();
                let share: [f64; 3] =
                    if tot.abs() > 0.0 { [bp[0] / tot, bp[1] / tot, bp[2] / tot] } else { [1.0 / 3.0; 3] };
                self.asym_set[k] = [
                    (p_mw * share[0], q_mvar * share[0]),
                    (p_mw * share[1], q_mvar * share[1]),
                    (p_mw * share[2], q_mvar * share[2]),
                ];
            }
        }
        Ok(())
    }

    /// Base (file) power of a load: (p_mw, q_mvar), three-phase total.
    pub fn load_base(&self, id: LoadId) -> Option<(f64, f64)> {
        match id {
            LoadId::Balanced(k) => self.base.loads.get(k).map(|l| (l.p_mw * l.scaling, l.q_mvar * l.scaling)),
            LoadId::Asym(k) => self.base.asym_loads.get(k).map(|l| {
                let s = l.scaling;
                ((l.p_a_mw + l.p_b_mw + l.p_c_mw) * s, (l.q_a_mvar + l.q_b_mvar + l.q_c_mvar) * s)
            }),
        }
    }

    /// All loads of the file with their bus file index.
    pub fn load_ids(&self) -> Vec<(LoadId, i64)> {
        let mut v: Vec<(LoadId, i64)> =
            self.base.loads.iter().enumerate().map(|(k, l)| (LoadId::Balanced(k), l.bus)).collect();
        v.extend(self.base.asym_loads.iter().enumerate().map(|(k, l)| (LoadId::Asym(k), l.bus)));
        v
    }

    /// Adds a balanced static generator (PV, wind, hydro, biogas) at bus `bus`; returns its position.
    pub fn add_sgen(&mut self, bus: i64, p_mw: f64, q_mvar: f64, kind: &str) -> Result<usize, String> {
        self.add_sgen_rated(bus, p_mw, q_mvar, kind, None)
    }

    /// As [`GridModel::add_sgen`], with the inverter's (or machine's) rated apparent power in MVA, which sets
    /// its short-circuit contribution (`k` = [`super::network::DEFAULT_SGEN_K`] times rated current).
    pub fn add_sgen_rated(
        &mut self,
        bus: i64,
        p_mw: f64,
        q_mvar: f64,
        kind: &str,
        sn_mva: Option<f64>,
    ) -> Result<usize, String> {
        if self.base.bus(bus).is_none() {
            return Err(format!("generator '{kind}': bus {bus} does not exist"));
        }
        let index = self.base.sgens.iter().map(|s| s.index).max().unwrap_or(-1) + 1;
        self.base.sgens.push(Sgen {
            index,
            name: Some(kind.to_string()),
            bus,
            p_mw,
            q_mvar,
            sn_mva,
            k: None,
            scaling: 1.0,
            in_service: true,
            kind: Some(kind.to_string()),
        });
        self.sgen_set.push((p_mw, q_mvar));
        Ok(self.sgen_set.len() - 1)
    }

    /// Sets a generator's output (MW, Mvar; generation positive).
    pub fn set_sgen(&mut self, k: usize, p_mw: f64, q_mvar: f64) -> Result<(), String> {
        if !p_mw.is_finite() || !q_mvar.is_finite() {
            return Err(format!("sgen {k}: power must be finite"));
        }
        *self.sgen_set.get_mut(k).ok_or_else(|| format!("no sgen {k}"))? = (p_mw, q_mvar);
        Ok(())
    }

    /// Applies a fault; returns its id (position in the active fault list at the time).
    pub fn add_fault(&mut self, fault: Fault) -> Result<usize, String> {
        match fault.location {
            FaultLocation::Bus(b) => {
                if self.base.bus(b).is_none() {
                    return Err(format!("fault at bus {b}: no such bus"));
                }
                if matches!(fault.kind, FaultKind::OpenConductor(_)) {
                    return Err(format!("fault at bus {b}: an open conductor needs a line location"));
                }
            }
            FaultLocation::Line { line, fraction } => {
                if !self.base.lines.iter().any(|l| l.index == line) {
                    return Err(format!("fault on line {line}: no such line"));
                }
                if !(0.0..=1.0).contains(&fraction) {
                    return Err(format!("fault on line {line}: fraction = {fraction} must be within 0..=1"));
                }
            }
        }
        if !(fault.r_ohm.is_finite() && fault.r_ohm >= 0.0) {
            return Err(format!("fault: r_ohm = {} must be >= 0", fault.r_ohm));
        }
        if let FaultKind::LineToLine(p, q) | FaultKind::TwoLineToEarth(p, q) = fault.kind
            && p == q
        {
            return Err("fault: the two phases must differ".into());
        }
        if self.faults.is_empty() || self.state == FaultState::Healthy {
            // The healthy state the converters refer their currents to, and the sources' EMFs.
            self.prefault_v = self.last_v.clone();
            self.update_source_emf();
        }
        self.faults.push(fault);
        self.unbalanced_invalidate();
        Ok(self.faults.len() - 1)
    }

    fn unbalanced_invalidate(&mut self) {
        self.invalidate();
    }

    /// Removes all faults equal to `fault`; returns how many.
    pub fn clear_fault(&mut self, fault: &Fault) -> usize {
        let before = self.faults.len();
        self.faults.retain(|f| f != fault);
        let n = before - self.faults.len();
        if n > 0 {
            self.invalidate();
        }
        n
    }

    pub fn clear_faults(&mut self) {
        if !self.faults.is_empty() {
            self.faults.clear();
            self.invalidate();
        }
    }

    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Buses an open conductor leaves without a full three-phase path to a source: energised over the closed,
    /// in-service network, but not once every line with an open conductor is taken out (positions in
    /// `network().buses`, ascending; both from [`Topology::build`]'s energised nodes). Their generators see one
    /// phase islanded, which their loss-of-mains protection detects (EN 50549-1); a bus cut off entirely is
    /// de-energised by the solver.
    pub fn half_islanded_buses(&self) -> Vec<usize> {
        let open = self.open_lines(None);
        if open.is_empty() {
            return Vec::new();
        }
        let all = self.energised_without(&BTreeSet::new());
        let full = self.energised_without(&open);
        (0..all.len()).filter(|&b| all[b] && !full[b]).collect()
    }

    /// Per bus (positions in `network().buses`), the phases an open conductor cuts from every source while the
    /// bus stays energised over its other phases: what generators alone hold up, and what a signal injected
    /// at the source on each phase conductor no longer reaches. Empty when no open conductor is applied.
    pub fn islanded_phases(&self) -> Vec<[bool; 3]> {
        if self.open_lines(None).is_empty() {
            return Vec::new();
        }
        let all = self.energised_without(&BTreeSet::new());
        let mut out = vec![[false; 3]; all.len()];
        for ph in [Phase::A, Phase::B, Phase::C] {
            let open = self.open_lines(Some(ph));
            if open.is_empty() {
                continue;
            }
            let reached = self.energised_without(&open);
            for (b, o) in out.iter_mut().enumerate() {
                o[ph.idx()] = all[b] && !reached[b];
            }
        }
        out
    }

    /// File indices of the lines with an open conductor (on `phase`, or on any).
    fn open_lines(&self, phase: Option<Phase>) -> BTreeSet<i64> {
        self.faults
            .iter()
            .filter_map(|f| match (f.kind, f.location) {
                (FaultKind::OpenConductor(p), FaultLocation::Line { line, .. }) if phase.is_none_or(|x| x == p) => {
                    Some(line)
                }
                _ => None,
            })
            .collect()
    }

    /// Which buses the closed, in-service network energises with the lines in `open` (file indices) out.
    fn energised_without(&self, open: &BTreeSet<i64>) -> Vec<bool> {
        let nb = self.base.buses.len();
        let in_service: Vec<bool> =
            self.base.lines.iter().zip(&self.line_in_service).map(|(l, &on)| on && !open.contains(&l.index)).collect();
        match Topology::build(&self.base, &self.closed, &in_service, Purpose::PowerFlow) {
            Ok(t) => (0..nb).map(|b| t.bus_node[b].is_some_and(|n| t.energised[n])).collect(),
            Err(_) => vec![false; nb],
        }
    }

    /// A generator's set point (MW, Mvar; generation positive), by position.
    pub fn sgen_set_point(&self, k: usize) -> Option<(f64, f64)> {
        self.sgen_set.get(k).copied()
    }

    /// Generators' buses (positions in `network().buses`), by generator position.
    pub fn sgen_buses(&self) -> Vec<Option<usize>> {
        self.base.sgens.iter().map(|g| self.base.bus(g.bus)).collect()
    }

    /// Builds the working network: lines with faults at a fraction are split at a new bus.
    fn build_work(&self) -> Work {
        let mut net = self.base.clone();
        for (k, l) in net.lines.iter_mut().enumerate() {
            l.in_service = self.line_in_service[k];
        }
        for (k, s) in net.switches.iter_mut().enumerate() {
            s.closed = self.closed[k];
        }
        let mut line_parts: Vec<(usize, Option<usize>)> = (0..net.lines.len()).map(|k| (k, None)).collect();
        let mut fault_bus = Vec::new();
        let mut next_bus = net.buses.iter().map(|b| b.index).max().unwrap_or(0) + 1;
        let mut next_line = net.lines.iter().map(|l| l.index).max().unwrap_or(0) + 1;
        for f in &self.faults {
            let fb = match (f.location, f.kind) {
                (_, FaultKind::OpenConductor(_)) => None,
                (FaultLocation::Bus(b), _) => net.bus(b),
                (FaultLocation::Line { line, fraction }, _) => {
                    let pos = net.lines.iter().position(|l| l.index == line).expect("validated");
                    // Find the current part holding the base line (a line may already be split).
                    let li = if line_parts[pos].1.is_some() { line_parts[pos].1.unwrap_or(pos) } else { pos };
                    let l = net.lines[li].clone();
                    let frac = fraction.clamp(0.0, 1.0);
                    if frac <= 1e-9 {
                        net.bus(l.from_bus)
                    } else if frac >= 1.0 - 1e-9 {
                        net.bus(l.to_bus)
                    } else {
                        let vn = net.buses[net.bus(l.from_bus).unwrap_or(0)].vn_kv;
                        let nb = super::network::Bus {
                            index: next_bus,
                            name: Some(format!("fault on line {line} at {:.3}", frac)),
                            vn_kv: vn,
                            in_service: true,
                            x: None,
                            y: None,
                        };
                        next_bus += 1;
                        net.bus_pos.insert(nb.index, net.buses.len());
                        net.buses.push(nb);
                        let bpos = net.buses.len() - 1;
                        let mut second: Line = l.clone();
                        second.index = next_line;
                        next_line += 1;
                        second.from_bus = net.buses[bpos].index;
                        second.length_km = l.length_km * (1.0 - frac);
                        second.r_ohm = None;
                        net.lines[li].to_bus = net.buses[bpos].index;
                        net.lines[li].length_km = l.length_km * frac;
                        net.lines[li].r_ohm = None;
                        // Switches at the original to-end now sit on the second part.
                        for s in net.switches.iter_mut() {
                            if s.et == "l" && s.element == l.index && s.bus == l.to_bus {
                                s.element = second.index;
                            }
                        }
                        net.lines.push(second);
                        line_parts[pos].1 = Some(net.lines.len() - 1);
                        Some(bpos)
                    }
                }
            };
            fault_bus.push(fb);
        }
        Work { net, line_parts, fault_bus }
    }

    /// Loads per node. In a fault state, static generators are not negative loads but current-controlled
    /// full-converter sources ([`Converters`]): their pre-fault current plus reactive support in proportion to
    /// the voltage dip, limited to `k` x rated current (IEC 60909-0:2016), referred to the pre-fault voltage.
    fn node_loads(&self, topo: &Topology, net: &Network, state: FaultState) -> Vec<NodeLoad> {
        let mut loads = vec![NodeLoad::default(); topo.n_nodes];
        let node_of = |bus: i64| net.bus(bus).and_then(|b| topo.bus_node[b]);
        for (k, l) in net.loads.iter().enumerate() {
            if !l.in_service {
                continue;
            }
            let Some(n) = node_of(l.bus) else { continue };
            let (p, q) = self.load_set[k];
            let (zp, ip, zq, iq) = l.zip_percent();
            let (zp, ip, zq, iq) = (zp / 100.0, ip / 100.0, zq / 100.0, iq / 100.0);
            let nl = &mut loads[n];
            let s_p = C64::new(p * (1.0 - zp - ip), q * (1.0 - zq - iq)) / S_BASE_MVA;
            if l.is_delta() {
                // A third across each phase pair, on the per-phase base (3 x pair MVA / S_BASE): `s_p` each.
                nl.delta.iter_mut().for_each(|d| *d += s_p);
            } else {
                nl.s_p += s_p;
            }
            nl.s_i += C64::new(p * ip, q * iq) / S_BASE_MVA;
            nl.s_z += C64::new(p * zp, q * zq) / S_BASE_MVA;
        }
        for (k, l) in net.asym_loads.iter().enumerate() {
            if !l.in_service {
                continue;
            }
            let Some(n) = node_of(l.bus) else { continue };
            let set = self.asym_set[k];
            for ph in 0..3 {
                // Per-phase per unit: phase MW over S_BASE/3.
                let s = C64::new(set[ph].0, set[ph].1) * 3.0 / S_BASE_MVA;
                if l.kind == "delta" {
                    loads[n].delta[ph] += s;
                } else {
                    loads[n].wye[ph] += s;
                }
            }
        }
        for (k, g) in net.sgens.iter().enumerate() {
            if !g.in_service {
                continue;
            }
            let Some(n) = node_of(g.bus) else { continue };
            let (p, q) = self.sgen_set[k];
            if state != FaultState::Healthy {
                let in_pu = g.rating_mva() / S_BASE_MVA;
                let v1 = net
                    .bus(g.bus)
                    .and_then(|b| self.prefault_v.get(b).copied().flatten())
                    .map(|v| phase_to_seq(v)[1])
                    .filter(|v1| v1.norm() > 1e-3)
                    .unwrap_or(C64::new(1.0, 0.0));
                let c = &mut loads[n].conv;
                c.dir = v1 / v1.norm();
                c.v0_pu = v1.norm();
                c.s_pu += C64::new(p, q) / S_BASE_MVA;
                c.in_pu += in_pu;
                c.imax_pu += in_pu * g.k_factor();
                c.frt_gain = if state == FaultState::Shunt { K_FRT } else { 0.0 };
                continue;
            }
            let s = C64::new(p, q) / S_BASE_MVA;
            if g.is_delta() {
                loads[n].delta.iter_mut().for_each(|d| *d -= s);
            } else {
                loads[n].s_p -= s;
            }
        }
        loads
    }

    /// One port per fault (`None` when the faulted element is de-energised), in fault order.
    fn fault_ports(&self, work: &Work, topo: &Topology) -> Result<Vec<Option<Port>>, String> {
        let net = &work.net;
        let mut ports = Vec::new();
        for (fi, f) in self.faults.iter().enumerate() {
            ports.push(None);
            if let FaultKind::OpenConductor(ph) = f.kind {
                let FaultLocation::Line { line, .. } = f.location else { continue };
                let pos = self.base.lines.iter().position(|l| l.index == line).unwrap_or(0);
                let part = work.line_parts[pos].0;
                let Some(bi) = topo.branches.iter().position(|b| b.element == Element::Line(part)) else { continue };
                let br = &topo.branches[bi];
                if !topo.energised[br.f] || !topo.energised[br.t] {
                    continue;
                }
                let y1s = -br.y1[1];
                let y0s = if br.y0[1].re.is_finite() && br.y0[1] != C64::new(0.0, 0.0) { -br.y0[1] } else { y1s };
                let (z1, z0) = (y1s.inv(), y0s.inv());
                let zs = (z0 + z1 * 2.0) / 3.0;
                let zm = (z0 - z1) / 3.0;
                let ys = (y0s + y1s * 2.0) / 3.0;
                let ym = (y0s - y1s) / 3.0;
                let mut d = [[C64::new(0.0, 0.0); 3]; 3];
                let p = ph.idx();
                let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
                let det = zs * zs - zm * zm;
                for i in 0..3 {
                    for j in 0..3 {
                        let full = if i == j { ys } else { ym };
                        let open = if i == p || j == p {
                            C64::new(0.0, 0.0)
                        } else if i == j {
                            zs / det
                        } else {
                            -zm / det
                        };
                        d[i][j] = open - full;
                    }
                }
                let _ = others;
                let mut dy = vec![C64::new(0.0, 0.0); 36];
                for i in 0..3 {
                    for j in 0..3 {
                        dy[i * 6 + j] = d[i][j];
                        dy[i * 6 + 3 + j] = -d[i][j];
                        dy[(3 + i) * 6 + j] = -d[i][j];
                        dy[(3 + i) * 6 + 3 + j] = d[i][j];
                    }
                }
                *ports.last_mut().expect("pushed") = Some(Port { nodes: vec![br.f, br.t], dy });
                continue;
            }
            let Some(b) = work.fault_bus[fi] else { continue };
            let Some(node) = topo.bus_node[b] else { continue };
            if !topo.energised[node] {
                continue;
            }
            let vn = net.buses[b].vn_kv;
            let zb = vn * vn / S_BASE_MVA;
            let y = C64::new(zb / f.r_ohm.max(MIN_FAULT_R_OHM), 0.0);
            let z = C64::new(0.0, 0.0);
            let mut m = [[z; 3]; 3];
            match f.kind {
                FaultKind::ThreePhase => {
                    for (i, row) in m.iter_mut().enumerate() {
                        row[i] = y;
                    }
                }
                FaultKind::LineToEarth(p) => m[p.idx()][p.idx()] = y,
                FaultKind::TwoLineToEarth(p, q) => {
                    m[p.idx()][p.idx()] = y;
                    m[q.idx()][q.idx()] = y;
                }
                FaultKind::LineToLine(p, q) => {
                    let (p, q) = (p.idx(), q.idx());
                    m[p][p] = y;
                    m[q][q] = y;
                    m[p][q] = -y;
                    m[q][p] = -y;
                }
                FaultKind::OpenConductor(_) => {}
            }
            *ports.last_mut().expect("pushed") =
                Some(Port { nodes: vec![node], dy: m.iter().flat_map(|r| r.iter().copied()).collect() });
        }
        Ok(ports)
    }

    /// Loads as constant admittances (used while a fault is active), each drawing at its node's pre-fault
    /// voltage `v_pre` (per unit, per phase; nominal where the node had none) the current it drew just before
    /// the fault: the admittance of a constant-power part is its power over the pre-fault |V|^2, of a
    /// constant-current part its power over |V|. Taken at nominal voltage instead, every load on a weak feeder
    /// (0.85 p.u. at its end) would drop a quarter of its current the instant any fault strikes, a
    /// superimposed current of its own that masks a high-resistance fault's.
    fn load_ports(loads: &[NodeLoad], v_pre: &[Option<[C64; 3]>]) -> Vec<Port> {
        let z = C64::new(0.0, 0.0);
        // |V| of a pre-fault voltage, within a plausible band (a collapsed or missing one counts as nominal).
        let mag = |v: C64| {
            let m = v.norm();
            if m.is_finite() && (0.5..=1.5).contains(&m) { m } else { 1.0 }
        };
        let mut ports = Vec::new();
        for (k, l) in loads.iter().enumerate() {
            if (NodeLoad { conv: Converters::default(), ..*l }).is_zero() {
                continue;
            }
            let v = v_pre.get(k).copied().flatten();
            let vph = |ph: usize| v.map_or(1.0, |v| mag(v[ph]));
            let mut m = [[z; 3]; 3];
            for (ph, row) in m.iter_mut().enumerate() {
                let u = vph(ph);
                row[ph] = ((l.s_p + l.wye[ph]) / (u * u) + l.s_i / u + l.s_z).conj();
            }
            // Delta: admittance between two phases at their pre-fault line voltage (sqrt(3) p.u. nominal).
            for (d, (p, q)) in [(0usize, 1usize), (1, 2), (2, 0)].into_iter().enumerate() {
                let u2 = v.map_or(3.0, |v| {
                    let u = (v[p] - v[q]).norm();
                    if u.is_finite() && (0.5..=2.6).contains(&u) { u * u } else { 3.0 }
                });
                let y = l.delta[d].conj() / u2;
                m[p][p] += y;
                m[q][q] += y;
                m[p][q] -= y;
                m[q][p] -= y;
            }
            ports.push(Port { nodes: vec![k], dy: m.iter().flat_map(|r| r.iter().copied()).collect() });
        }
        ports
    }

    /// Solves the current state (warm-started) and returns the snapshot.
    pub fn solve(&mut self) -> Result<Arc<GridSnapshot>, PfError> {
        if self.pf.is_none() {
            let work = self.build_work();
            let closed: Vec<bool> = work.net.switches.iter().map(|s| s.closed).collect();
            let lis: Vec<bool> = work.net.lines.iter().map(|l| l.in_service).collect();
            let emf = &self.source_emf;
            let compile = |state: FaultState| -> Result<Topology, PfError> {
                Ok(match state {
                    FaultState::Healthy => {
                        Topology::build(&work.net, &closed, &lis, Purpose::PowerFlow).map_err(PfError::Model)?
                    }
                    // A fault state sees the upstream grid's short-circuit strength (its EMF behind `Zq`) and
                    // the transformers' zero-sequence short-circuit impedances (open conductors alone keep the
                    // power-flow zero-sequence model).
                    FaultState::OpenOnly | FaultState::Shunt => {
                        let purpose = if state == FaultState::Shunt { Purpose::FaultState } else { Purpose::PowerFlow };
                        Topology::build(&work.net, &closed, &lis, purpose)
                            .map_err(PfError::Model)?
                            .with_source_impedances(&|e| emf.get(e).copied().flatten())
                    }
                })
            };
            let open = |f: &Fault| matches!(f.kind, FaultKind::OpenConductor(_));
            let state_of = |live: &mut dyn Iterator<Item = &Fault>| {
                live.fold(FaultState::Healthy, |st, f| {
                    st.max(if open(f) { FaultState::OpenOnly } else { FaultState::Shunt })
                })
            };
            let mut state = state_of(&mut self.faults.iter());
            let mut topo = compile(state)?;
            if state != FaultState::Healthy {
                // Only faults on energised elements shape the state: one that a switching device has isolated
                // draws no current, and what remains energised is a healthy network again (loads back at
                // their power, converters at their set points, the ideal source), as it is physically once
                // the fault current is interrupted.
                let ports = self.fault_ports(&work, &topo).map_err(PfError::Model)?;
                let live = state_of(&mut self.faults.iter().zip(&ports).filter(|(_, p)| p.is_some()).map(|(f, _)| f));
                if live != state {
                    state = live;
                    topo = compile(state)?;
                }
            }
            self.state = state;
            let mut pf = PowerFlow::new(topo, bus_names(&work.net))?;
            // Warm start from the last solution of the same buses.
            for (b, last) in self.last_v.iter().enumerate() {
                if let (Some(v), Some(n)) = (last, pf.topo.bus_node.get(b).copied().flatten())
                    && pf.topo.energised[n]
                    && !pf.topo.slacks.iter().any(|s| s.0 == n)
                    && v[0].norm() > 0.5
                {
                    let s = phase_to_seq(*v);
                    pf.v1[n] = s[1];
                    pf.v2[n] = s[2];
                    pf.v0[n] = s[0];
                }
            }
            if self.unbalanced || self.state != FaultState::Healthy {
                pf.prepare_unbalanced()?;
            }
            self.pf = Some(pf);
            self.work = Some(work);
        }
        let (loads, fault_ports) = {
            let pf = self.pf.as_ref().expect("built");
            let work = self.work.as_ref().expect("built");
            (
                // Converters act as current sources in every fault state. Behind an open conductor this is
                // what decides the half-islanded phase's voltage: as negative admittances, a generator that
                // matches its bus's load would cancel it and leave the phase floating, solved to an
                // arbitrary voltage (steps of several percent where physically nothing changes); as current
                // sources at their pre-fault current into the loads' pre-fault admittances, the phase keeps
                // its pre-fault voltage where generation matches load (the non-detection zone that
                // loss-of-mains protection covers) and sags or swells in proportion to the mismatch.
                self.node_loads(&pf.topo, &work.net, self.state),
                if self.state == FaultState::Healthy {
                    vec![None; self.faults.len()]
                } else {
                    self.fault_ports(work, &pf.topo).map_err(PfError::Model)?
                },
            )
        };
        let unbalanced = self.unbalanced || self.state != FaultState::Healthy;
        let pf = self.pf.as_mut().expect("built");
        if self.state != FaultState::Healthy || !pf.port_nodes().is_empty() {
            pf.set_ports(Vec::new())?;
        }
        if self.state == FaultState::Healthy {
            pf.loads = loads;
        } else {
            // Fault state: loads become constant admittances (their nominal-voltage power), so the state is
            // linear and well posed even where the fault collapses the voltage or floats a conductor.
            // Converter generators stay current sources (fixed injections) beside the ports.
            let mut ports: Vec<Port> = fault_ports.iter().flatten().cloned().collect();
            // The pre-fault voltage of each node (from the healthy state before the first fault).
            let mut v_pre: Vec<Option<[C64; 3]>> = vec![None; pf.topo.n_nodes];
            for (b, v) in self.prefault_v.iter().enumerate() {
                if let (Some(v), Some(Some(n))) = (v, pf.topo.bus_node.get(b)) {
                    v_pre[*n] = Some(*v);
                }
            }
            ports.extend(Self::load_ports(&loads, &v_pre));
            pf.set_ports(ports)?;
            pf.loads = loads.iter().map(|l| NodeLoad { conv: l.conv, ..NodeLoad::default() }).collect();
        }
        self.fault_dy = fault_ports;
        let pf = self.pf.as_mut().expect("built");
        let stats = if unbalanced { pf.solve_unbalanced()? } else { pf.solve_balanced()? };
        let mut snap = self.snapshot(stats.iterations, unbalanced);
        if self.four_wire && self.faults.is_empty() {
            self.apply_four_wire(&mut snap)?;
        }
        for (b, v) in snap.v_pu.iter().enumerate() {
            self.last_v[b] = if snap.energised[b] { Some(*v) } else { None };
        }
        Ok(Arc::new(snap))
    }

    /// From the last healthy solve (while it is still at hand: when a fault strikes or the topology changes;
    /// not after every solve, which would cost a pass over the branches each time): the EMF behind each
    /// external grid's source impedance that keeps its bus at the solved voltage while it supplies the solved
    /// current (`E = V + Zq I`). External grids at one bus share that bus's supply in inverse proportion to
    /// their impedances, so they all get the same EMF. Without a solve since the last change the previous
    /// EMFs stay.
    fn update_source_emf(&mut self) {
        let Some(pf) = self.pf.as_ref() else { return };
        if pf.stats.iterations == 0 {
            return;
        }
        let topo = &pf.topo;
        self.source_emf = vec![None; self.base.ext_grids.len()];
        for src in &topo.sources {
            if src.slack.is_none() || src.shunt.is_none() {
                continue;
            }
            let node = src.node;
            let y_node: C64 = topo
                .sources
                .iter()
                .filter(|s| s.node == node && s.slack.is_some())
                .filter_map(|s| s.shunt.map(|h| topo.shunts[h].1))
                .sum();
            if y_node.norm() == 0.0 || !y_node.re.is_finite() {
                continue;
            }
            let e = pf.v1[node] + pf.node_supply_current_pu(node) / y_node;
            if !(e.re.is_finite() && e.im.is_finite()) {
                continue;
            }
            if let Some(slot) = self.source_emf.get_mut(src.ext_grid) {
                *slot = Some(e);
            }
        }
    }

    fn snapshot(&self, iterations: usize, unbalanced: bool) -> GridSnapshot {
        let pf = self.pf.as_ref().expect("built");
        let work = self.work.as_ref().expect("built");
        let topo = &pf.topo;
        let zero = C64::new(0.0, 0.0);
        let nb = self.base.buses.len();
        let mut v_pu = vec![[zero; 3]; nb];
        let mut energised = vec![false; nb];
        for b in 0..nb {
            if let Some(n) = topo.bus_node[b]
                && topo.energised[n]
            {
                energised[b] = true;
                v_pu[b] = if unbalanced { pf.phase_voltages(n) } else { seq_to_phase(zero, pf.v1[n], zero) };
            }
        }
        let mut branch_of_line = vec![usize::MAX; work.net.lines.len()];
        for (bi, br) in topo.branches.iter().enumerate() {
            if let Element::Line(k) = br.element {
                branch_of_line[k] = bi;
            }
        }
        let cur = |k: usize, end: usize| -> [C64; 3] {
            let bi = branch_of_line[k];
            if bi == usize::MAX {
                return [zero; 3];
            }
            let br = &topo.branches[bi];
            if !topo.energised[br.f] {
                return [zero; 3];
            }
            let (a, b) = pf.branch_currents(bi);
            let mut c = if end == 0 { a } else { b };
            // An open conductor modifies this line: add its admittance change times the end voltages.
            for (fi, f) in self.faults.iter().enumerate() {
                if let (FaultKind::OpenConductor(_), FaultLocation::Line { line, .. }) = (f.kind, f.location) {
                    let pos = self.base.lines.iter().position(|l| l.index == line).unwrap_or(usize::MAX);
                    if work.line_parts.get(pos).map(|p| p.0) != Some(k) {
                        continue;
                    }
                    if let Some(Some(port)) = self.fault_dy.get(fi) {
                        let v = [pf.phase_voltages(br.f), pf.phase_voltages(br.t)];
                        for (r, cr) in c.iter_mut().enumerate() {
                            let row = 3 * end + r;
                            for col in 0..6 {
                                *cr += port.dy[row * 6 + col] * v[col / 3][col % 3];
                            }
                        }
                    }
                }
            }
            let base = br.i_base_ka[end];
            [c[0] * base, c[1] * base, c[2] * base]
        };
        let line_i_ka =
            work.line_parts.iter().map(|&(first, second)| [cur(first, 0), cur(second.unwrap_or(first), 1)]).collect();
        let mut trafo_i_ka = vec![[[zero; 3]; 2]; self.base.trafos.len()];
        for (bi, br) in topo.branches.iter().enumerate() {
            if let Element::Trafo(k) = br.element
                && k < trafo_i_ka.len()
                && topo.energised[br.f]
            {
                let (a, b) = pf.branch_currents(bi);
                trafo_i_ka[k] = [a.map(|c| c * br.i_base_ka[0]), b.map(|c| c * br.i_base_ka[1])];
            }
        }
        // Fault currents from the fault admittance and the solved voltages (shunt faults; for an open
        // conductor, the current that would have flowed in the opened phase is zero by construction).
        let mut fault_i_ka = Vec::new();
        for (fi, f) in self.faults.iter().enumerate() {
            let mut i = [zero; 3];
            if !matches!(f.kind, FaultKind::OpenConductor(_))
                && let Some(Some(port)) = self.fault_dy.get(fi)
            {
                let n = port.nodes[0];
                let v = pf.phase_voltages(n);
                let base = S_BASE_MVA / (3f64.sqrt() * topo.node_vn_kv[n]);
                for (r, ir) in i.iter_mut().enumerate() {
                    let mut s = zero;
                    for (c, vc) in v.iter().enumerate() {
                        s += port.dy[3 * r + c] * vc;
                    }
                    *ir = s * base;
                }
            }
            fault_i_ka.push(i);
        }
        let on = |bus: i64| self.base.bus(bus).is_some_and(|b| energised[b]);
        let mut load_p_mw: Vec<f64> = self
            .base
            .loads
            .iter()
            .zip(&self.load_set)
            .map(|(l, s)| if on(l.bus) && l.in_service { s.0 } else { 0.0 })
            .collect();
        load_p_mw.extend(
            self.base
                .asym_loads
                .iter()
                .zip(&self.asym_set)
                .map(|(l, s)| if on(l.bus) && l.in_service { s[0].0 + s[1].0 + s[2].0 } else { 0.0 }),
        );
        let sgen_p_mw: Vec<f64> = self
            .base
            .sgens
            .iter()
            .zip(&self.sgen_set)
            .map(|(g, s)| if on(g.bus) && g.in_service { s.0 } else { 0.0 })
            .collect();
        GridSnapshot {
            bus_index: self.base.buses.iter().map(|b| b.index).collect(),
            bus_vn_kv: self.base.buses.iter().map(|b| b.vn_kv).collect(),
            v_pu,
            energised,
            line_index: self.base.lines.iter().map(|l| l.index).collect(),
            line_i_ka,
            trafo_i_ka,
            fault_i_ka,
            slack_s_mva: pf.slack_power_mva(),
            load_p_mw,
            sgen_p_mw,
            iterations,
            unbalanced,
            v_n_pu: vec![zero; nb],
            islanded: self.islanded_phases(),
            line_in_ka: vec![[zero; 2]; self.base.lines.len()],
        }
    }

    /// Node loads and topology of the last build, for diagnostics (e.g. property tests).
    pub fn power_flow(&self) -> Option<&PowerFlow> {
        self.pf.as_ref()
    }
}

//! Power flow on a compiled [`Topology`]: balanced (positive sequence) and unbalanced (three sequence networks
//! coupled through the per-phase loads and any fault ports).
//!
//! Method: fixed-point current injection on factorised admittance matrices ("implicit Z-bus"). The matrices
//! do not depend on the loads, so they are factorised once per topology (switching or fault onset) and every
//! later solve, warm-started from the previous voltages, costs only sparse triangular solves. Load currents
//! are `I = conj(S(V) / V)` with ZIP voltage dependence; per-phase loads are wye (phase to neutral) or delta.
//! In the unbalanced solve each iteration computes phase voltages from the sequence voltages, the per-phase
//! load currents, their sequence components, and solves the positive, negative and zero sequence networks.
//! Faults and open conductors enter as dense admittance changes at a few "ports", handled exactly every
//! iteration by compensation (the Thevenin matrix of the ports comes from the factorisations).
//!
//! Where few nodes carry load (a feeder's junctions and cable runs outnumber its customers), the iteration
//! runs on the Thevenin reduction of each sequence network onto the loaded nodes: a dense `m x m` product per
//! iteration instead of two dependent triangular sweeps over every node, then one full solve at the end for
//! the other nodes. Same fixed point, same iterates at the loaded nodes; `PfOptions::reduce` turns it off.
//!
//! All quantities are per unit: voltages on the node's `vn_kv / sqrt(3)` phase base, powers on
//! `S_BASE_MVA / 3` per phase (equal to the three-phase total on `S_BASE_MVA`).

use super::sparse::{Lu, Slot, Symbolic};
use super::topology::{NO_ZERO_SEQUENCE, S_BASE_MVA, Topology};
use num_complex::Complex64 as C64;
use std::sync::Arc;

const ZERO: C64 = C64 { re: 0.0, im: 0.0 };
/// a = exp(j 120 deg).
pub const A: C64 = C64 { re: -0.5, im: 0.866_025_403_784_438_6 };
/// a^2 = exp(j 240 deg).
pub const A2: C64 = C64 { re: -0.5, im: -0.866_025_403_784_438_6 };

/// Phase (a, b, c) from sequence (0, 1, 2) components.
#[inline]
pub fn seq_to_phase(v0: C64, v1: C64, v2: C64) -> [C64; 3] {
    [v0 + v1 + v2, v0 + A2 * v1 + A * v2, v0 + A * v1 + A2 * v2]
}

/// Sequence (0, 1, 2) from phase (a, b, c) components.
#[inline]
pub fn phase_to_seq(p: [C64; 3]) -> [C64; 3] {
    let third = 1.0 / 3.0;
    [(p[0] + p[1] + p[2]) * third, (p[0] + A * p[1] + A2 * p[2]) * third, (p[0] + A2 * p[1] + A * p[2]) * third]
}

/// Loads at one node (per unit on the three-phase base; sign: consumption positive).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeLoad {
    /// Balanced constant-power, constant-current and constant-impedance parts (three-phase total).
    pub s_p: C64,
    pub s_i: C64,
    pub s_z: C64,
    /// Per-phase wye constant power, each on the per-phase base (3 x phase MVA / S_BASE).
    pub wye: [C64; 3],
    /// Per-phase delta constant power (a-b, b-c, c-a).
    pub delta: [C64; 3],
    /// Full-converter generators at the node while a fault is on (current-controlled; see [`Converters`]).
    pub conv: Converters,
}

/// Gain of the dynamic voltage support of converters during faults: extra reactive current per unit of
/// positive-sequence voltage dip, in rated currents (ENTSO-E RfG / VDE-AR-N 4110 default k = 2).
pub const K_FRT: f64 = 2.0;

/// Full-converter generators (inverters) at one node in a fault state: current-controlled sources that keep
/// their pre-fault current (their set point at the pre-fault voltage), add reactive current `K_FRT` x dip x
/// rated current to support the voltage, and never exceed `k` x rated current (IEC 60909-0:2016: a bolted
/// fault at their terminals draws exactly `k` x rated, reactive). The current's angle reference is the
/// pre-fault positive-sequence voltage; it is injected in the positive sequence only.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Converters {
    /// Unit phasor of the pre-fault positive-sequence voltage.
    pub dir: C64,
    /// Pre-fault |V1|, p.u.
    pub v0_pu: f64,
    /// Output set point (generation positive), p.u. of the three-phase base.
    pub s_pu: C64,
    /// Rated current and the limit `k` x rated, p.u.
    pub in_pu: f64,
    pub imax_pu: f64,
    /// Extra reactive current per unit of voltage dip, in rated currents: [`K_FRT`] while a short circuit is
    /// on; 0 behind an open conductor, where there is no fault to ride through and the converters simply keep
    /// their pre-fault current (a dip there is a mismatch of the half-islanded phase, which their loss-of-mains
    /// protection ends).
    pub frt_gain: f64,
}

impl Converters {
    /// The injected positive-sequence current (p.u., generation positive) at positive-sequence voltage `v1`.
    #[inline]
    pub fn current(&self, v1: C64) -> C64 {
        if self.imax_pu <= 0.0 {
            return ZERO;
        }
        let v0 = self.v0_pu.max(1e-6);
        let dip = (1.0 - v1.norm() / v0).clamp(0.0, 1.0);
        let i_p = self.s_pu.re / v0;
        let i_q = (self.s_pu.im / v0 + self.frt_gain * dip * self.in_pu).clamp(-self.imax_pu, self.imax_pu);
        // Reactive current has priority; the active part takes what the limit leaves.
        let room = (self.imax_pu * self.imax_pu - i_q * i_q).max(0.0).sqrt();
        let i_p = i_p.clamp(-room, room);
        C64::new(i_p, -i_q) * self.dir
    }
}

impl NodeLoad {
    pub fn is_zero(&self) -> bool {
        *self == NodeLoad::default()
    }
}

/// A dense admittance change at a few nodes (phase frame, per unit): faults and open conductors.
#[derive(Clone, Debug)]
pub struct Port {
    /// Nodes involved (1 for shunt faults, 2 for series changes).
    pub nodes: Vec<usize>,
    /// Row-major (3m x 3m) admittance change, node-major then phase.
    pub dy: Vec<C64>,
}

/// Why a solve failed. The buses are named.
#[derive(Clone, Debug, PartialEq)]
pub enum PfError {
    /// The matrix is singular (e.g. a floating part of the network).
    Singular { bus: String },
    /// Fixed-point iteration did not converge: voltage collapse or an impossible load.
    NotConverged { iterations: usize, max_dv_pu: f64, buses: Vec<String> },
    /// Model data missing for the requested calculation.
    Model(String),
}

impl std::fmt::Display for PfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PfError::Singular { bus } => {
                write!(f, "singular network matrix at {bus} (floating or zero-impedance part)")
            }
            PfError::NotConverged { iterations, max_dv_pu, buses } => write!(
                f,
                "power flow did not converge after {iterations} iterations (last voltage change {max_dv_pu:.3e} p.u.); \
                 load too high for the network at: {}",
                buses.join(", ")
            ),
            PfError::Model(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for PfError {}

/// One factorised sequence network over a subset of nodes.
#[derive(Clone, Debug)]
struct SeqSys {
    /// node -> unknown index (u32::MAX if fixed).
    idx: Vec<u32>,
    /// unknown -> node.
    nodes: Vec<usize>,
    lu: Lu,
    /// Constant right-hand side from fixed (slack) voltages, per unknown.
    fixed_rhs: Vec<C64>,
    rhs: Vec<C64>,
    /// Current solution per unknown (elimination order).
    x: Vec<C64>,
    /// Thevenin reduction onto the loaded unknowns (empty until a solve asks for it).
    red: Reduced,
}

/// One sequence network reduced onto a few unknowns (the loaded ones): column-major `m x m` matrix whose column
/// `b` is the voltage response at every reduced unknown to a unit current injected at unknown `units[b]`.
/// Between topology changes the loaded set rarely changes, so the reduction is computed once and every
/// fixed-point iteration costs one dense `m x m` product instead of two latency-bound triangular sweeps over
/// the whole feeder.
#[derive(Clone, Debug, Default)]
struct Reduced {
    units: Vec<u32>,
    z: Vec<C64>,
    /// Voltages at the reduced unknowns with no load current (the sources alone; they never change after
    /// the system is built).
    v_nl: Vec<C64>,
}

/// Reduce onto the loaded unknowns when the dense product is cheaper than the sparse sweeps: `m^2` multiply-adds
/// (independent, vectorisable) against `2 n` dependent steps of the triangular solves.
const REDUCE_MAX_M2_PER_UNKNOWN: usize = 8;

impl SeqSys {
    fn load_from(&mut self, v: &[C64]) {
        for (x, &k) in self.x.iter_mut().zip(&self.nodes) {
            *x = v[k];
        }
    }
    fn store_to(&self, v: &mut [C64]) {
        for (x, &k) in self.x.iter().zip(&self.nodes) {
            v[k] = *x;
        }
    }
    /// Voltage of node `k` in this sequence (zero if not part of it).
    #[inline]
    fn get(&self, k: usize) -> C64 {
        let u = self.idx[k];
        if u == u32::MAX { ZERO } else { self.x[u as usize] }
    }
}

impl SeqSys {
    /// Builds and factorises the system for sequence `seq` (0, 1, 2) over `member` nodes; `fixed` gives the
    /// nodes whose voltage is imposed (positive-sequence slacks).
    fn build(
        topo: &Topology,
        seq: usize,
        member: &[bool],
        fixed: &[(usize, C64)],
        names: &dyn Fn(usize) -> String,
    ) -> Result<SeqSys, PfError> {
        let n = topo.n_nodes;
        let mut idx = vec![u32::MAX; n];
        let mut nodes = Vec::new();
        let is_fixed = |k: usize| fixed.iter().any(|f| f.0 == k);
        for k in 0..n {
            if member[k] && !is_fixed(k) {
                idx[k] = nodes.len() as u32;
                nodes.push(k);
            }
        }
        let prim = |b: &super::topology::Branch| match seq {
            0 => b.y0,
            1 => b.y1,
            _ => b.y2,
        };
        let mut edges = Vec::new();
        for b in &topo.branches {
            let y = prim(b);
            if y[1] != ZERO || y[2] != ZERO {
                let (i, j) = (idx[b.f], idx[b.t]);
                if i != u32::MAX && j != u32::MAX {
                    edges.push((i as usize, j as usize));
                }
            }
        }
        let sym = Arc::new(Symbolic::new(nodes.len(), &edges));
        let mut entries: Vec<(Slot, C64)> = Vec::new();
        let mut fixed_rhs = vec![ZERO; nodes.len()];
        let fixed_v = |k: usize| fixed.iter().find(|f| f.0 == k).map(|f| f.1);
        for b in &topo.branches {
            let y = prim(b);
            if y.iter().any(|v| !v.re.is_finite()) {
                if member[b.f] || member[b.t] {
                    return Err(PfError::Model(format!(
                        "{}: {NO_ZERO_SEQUENCE} (needed for unbalanced calculations)",
                        b.element
                    )));
                }
                continue;
            }
            let ends = [(b.f, b.f, y[0]), (b.f, b.t, y[1]), (b.t, b.f, y[2]), (b.t, b.t, y[3])];
            for (r, c, v) in ends {
                if v == ZERO || idx[r] == u32::MAX {
                    continue;
                }
                let ri = idx[r] as usize;
                if idx[c] != u32::MAX {
                    if let Some(s) = sym.slot(ri, idx[c] as usize) {
                        entries.push((s, v));
                    }
                } else if let Some(vf) = fixed_v(c) {
                    fixed_rhs[ri] -= v * vf;
                }
            }
        }
        for &(k, y1, y2, y0) in &topo.shunts {
            if idx[k] != u32::MAX {
                let y = match seq {
                    0 => y0,
                    1 => y1,
                    _ => y2,
                };
                if let Some(s) = sym.slot(idx[k] as usize, idx[k] as usize) {
                    entries.push((s, y));
                }
            }
        }
        let mut lu = Lu::new(sym);
        lu.refactor(&entries).map_err(|e| PfError::Singular { bus: names(nodes[e.0]) })?;
        // Keep unknowns in elimination order so solves need no permutation.
        let perm = lu.perm().to_vec();
        let nodes: Vec<usize> = perm.iter().map(|&o| nodes[o]).collect();
        let fixed_rhs: Vec<C64> = perm.iter().map(|&o| fixed_rhs[o]).collect();
        for (u, &k) in nodes.iter().enumerate() {
            idx[k] = u as u32;
        }
        let rhs = vec![ZERO; nodes.len()];
        let x = vec![ZERO; nodes.len()];
        Ok(SeqSys { idx, nodes, lu, fixed_rhs, rhs, x, red: Reduced::default() })
    }

    /// Whether a reduction onto `m` unknowns pays off.
    fn reduction_pays(&self, m: usize) -> bool {
        m > 0 && m * m <= REDUCE_MAX_M2_PER_UNKNOWN * self.nodes.len()
    }

    /// Makes `self.red` the reduction onto `units` (unknown indices), recomputing only if the set changed.
    fn reduce_onto(&mut self, units: &[u32]) {
        if self.red.units == units {
            return;
        }
        let m = units.len();
        let mut z = vec![ZERO; m * m];
        let mut col = vec![ZERO; self.nodes.len()];
        for (b, &ub) in units.iter().enumerate() {
            col.iter_mut().for_each(|v| *v = ZERO);
            col[ub as usize] = C64::new(1.0, 0.0);
            self.lu.solve_ordered(&mut col);
            for (za, &ua) in z[b * m..(b + 1) * m].iter_mut().zip(units) {
                *za = col[ua as usize];
            }
        }
        self.rhs.copy_from_slice(&self.fixed_rhs);
        self.lu.solve_ordered(&mut self.rhs);
        let v_nl = units.iter().map(|&u| self.rhs[u as usize]).collect();
        self.red = Reduced { units: units.to_vec(), z, v_nl };
    }

    /// `out = v_nl + Z i` at the reduced unknowns; returns the largest `|out - prev|^2` (infinite on NaN).
    fn reduced_apply(&self, i: &[C64], prev: &[C64], out: &mut [C64]) -> f64 {
        let m = self.red.units.len();
        out.copy_from_slice(&self.red.v_nl);
        for (col, &ib) in self.red.z.chunks_exact(m).zip(i) {
            if ib == ZERO {
                continue;
            }
            for (o, z) in out.iter_mut().zip(col) {
                *o += z * ib;
            }
        }
        let mut dv = 0.0f64;
        for (a, b) in out.iter().zip(prev) {
            let d = (a - b).norm_sqr();
            if d.is_nan() {
                return f64::INFINITY;
            }
            dv = dv.max(d);
        }
        dv
    }

    /// The full solution from load currents at the reduced unknowns: `x = A^-1 (fixed + i)`.
    fn expand(&mut self, i: &[C64]) {
        self.x.copy_from_slice(&self.fixed_rhs);
        for (&u, &iu) in self.red.units.iter().zip(i) {
            self.x[u as usize] += iu;
        }
        self.lu.solve_ordered(&mut self.x);
    }
}

/// Current injected by a node's loads (three-phase total folded into `s_p`, `s_i`, `s_z`) at positive-sequence
/// voltage `v` (p.u.; consumption draws current).
#[inline]
fn balanced_load_current(l: &NodeLoad, v: C64) -> C64 {
    let vm2 = v.norm_sqr();
    let s = l.s_p + l.s_i * vm2.sqrt() + l.s_z * vm2;
    let i = l.conv.current(v);
    if s == ZERO { i } else { i - (s / v).conj() }
}

/// Phase currents injected by the loads of one node at phase voltages `vp` (p.u.; consumption draws current).
#[inline]
fn load_phase_currents(l: &NodeLoad, vp: [C64; 3]) -> [C64; 3] {
    let mut ip =
        if l.conv.imax_pu > 0.0 { seq_to_phase(ZERO, l.conv.current(phase_to_seq(vp)[1]), ZERO) } else { [ZERO; 3] };
    for ph in 0..3 {
        let v = vp[ph];
        let vm = v.norm_sqr().sqrt();
        let s = l.s_p + l.s_i * vm + l.s_z * vm * vm + l.wye[ph];
        if s != ZERO {
            ip[ph] -= (s / v).conj();
        }
    }
    for (d, (p, q)) in [(0usize, 1usize), (1, 2), (2, 0)].into_iter().enumerate() {
        if l.delta[d] != ZERO {
            let vd = vp[p] - vp[q];
            let i = (l.delta[d] / vd).conj();
            ip[p] -= i;
            ip[q] += i;
        }
    }
    ip
}

/// Statistics of the last solve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SolveStats {
    pub iterations: usize,
    pub max_dv_pu: f64,
}

/// Options of the iteration.
#[derive(Clone, Copy, Debug)]
pub struct PfOptions {
    /// Stop when no node voltage changes by more than this between iterations (p.u.).
    pub tol_pu: f64,
    pub max_iter: usize,
    /// Iterate on the Thevenin reduction onto the loaded nodes where that is cheaper (same iterates at the
    /// loaded nodes; off only to cross-check the two paths).
    pub reduce: bool,
}

impl Default for PfOptions {
    fn default() -> Self {
        PfOptions { tol_pu: 1e-11, max_iter: 300, reduce: true }
    }
}

/// A factorised network with its current state (voltages per sequence and node).
#[derive(Clone, Debug)]
pub struct PowerFlow {
    pub topo: Topology,
    names: Vec<String>,
    s1: SeqSys,
    s2: Option<SeqSys>,
    s0: Option<SeqSys>,
    pub loads: Vec<NodeLoad>,
    /// Per-node sequence voltages (p.u.).
    pub v1: Vec<C64>,
    pub v2: Vec<C64>,
    pub v0: Vec<C64>,
    ports: Vec<Port>,
    /// Thevenin data of the ports: per sequence, per port node k, the Z column (by node) of a unit injection.
    port_z: Vec<[Vec<C64>; 3]>,
    port_nodes: Vec<usize>,
    /// Per port node: the fault current injected in the last solve (phase frame, per unit).
    pub port_current: Vec<[C64; 3]>,
    pub options: PfOptions,
    pub stats: SolveStats,
    unbalanced_ready: bool,
    /// The flat-start positive-sequence voltages (slack carried through transformer shifts).
    v1_flat: Vec<C64>,
}

impl PowerFlow {
    /// Factorises the positive-sequence network. `bus_names[k]` names bus position k.
    pub fn new(topo: Topology, bus_names: Vec<String>) -> Result<PowerFlow, PfError> {
        if topo.slacks.is_empty() {
            return Err(PfError::Model("no slack (ext_grid) in service".into()));
        }
        let names: Vec<String> = topo.node_bus.iter().map(|&b| bus_names.get(b).cloned().unwrap_or_default()).collect();
        let namef = |k: usize| names[k].clone();
        let s1 = SeqSys::build(&topo, 1, &topo.energised, &topo.slacks, &namef)?;
        let n = topo.n_nodes;
        let mut v1 = vec![ZERO; n];
        // Flat start: slack voltage carried through transformer shifts by a breadth-first walk.
        let mut seen = vec![false; n];
        let mut adj: Vec<Vec<(usize, C64)>> = vec![Vec::new(); n];
        for b in &topo.branches {
            // Voltage ratio from the coupling: V_t / V_f ~ -y_tf / y_tt.
            let r = if b.y1[3] != ZERO { -b.y1[2] / b.y1[3] } else { C64::new(1.0, 0.0) };
            let r = if r.norm() > 0.0 && r.re.is_finite() { r / r.norm() } else { C64::new(1.0, 0.0) };
            adj[b.f].push((b.t, r));
            adj[b.t].push((b.f, r.inv()));
        }
        let mut queue = std::collections::VecDeque::new();
        for &(k, v) in &topo.slacks {
            v1[k] = v;
            seen[k] = true;
            queue.push_back(k);
        }
        while let Some(k) = queue.pop_front() {
            for &(m, r) in &adj[k] {
                if !seen[m] && topo.energised[m] {
                    seen[m] = true;
                    v1[m] = v1[k] * r;
                    queue.push_back(m);
                }
            }
        }
        Ok(PowerFlow {
            loads: vec![NodeLoad::default(); n],
            v2: vec![ZERO; n],
            v0: vec![ZERO; n],
            v1_flat: v1.clone(),
            v1,
            names,
            s1,
            s2: None,
            s0: None,
            topo,
            ports: Vec::new(),
            port_z: Vec::new(),
            port_nodes: Vec::new(),
            port_current: Vec::new(),
            options: PfOptions::default(),
            stats: SolveStats::default(),
            unbalanced_ready: false,
        })
    }

    /// (unknowns, factor off-diagonal entries) of the positive-sequence system.
    pub fn factor_size(&self) -> (usize, usize) {
        (self.s1.nodes.len(), self.s1.lu.symbolic().factor_nnz())
    }

    pub fn node_name(&self, k: usize) -> &str {
        &self.names[k]
    }

    /// Factorises the negative and zero sequence networks (once).
    pub fn prepare_unbalanced(&mut self) -> Result<(), PfError> {
        if self.unbalanced_ready {
            return Ok(());
        }
        let topo = &self.topo;
        let namef = |k: usize| self.names[k].clone();
        // Slacks without a source impedance are ideal in every sequence.
        let ideal: Vec<(usize, C64)> =
            topo.slacks.iter().filter(|s| !topo.shunts.iter().any(|h| h.0 == s.0)).map(|s| (s.0, ZERO)).collect();
        let s2 = SeqSys::build(topo, 2, &topo.energised, &ideal, &namef)?;
        // Zero sequence: only parts with a path to ground (through a shunt or an ideal slack) carry current.
        let n = topo.n_nodes;
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut grounded = vec![false; n];
        for b in &topo.branches {
            if b.y0.iter().any(|v| !v.re.is_finite()) {
                if topo.energised[b.f] {
                    return Err(PfError::Model(format!("{}: {NO_ZERO_SEQUENCE}", b.element)));
                }
                continue;
            }
            if b.y0[1] != ZERO {
                adj[b.f].push(b.t);
                adj[b.t].push(b.f);
            }
            let self_f = b.y0[0] + b.y0[1];
            let self_t = b.y0[3] + b.y0[2];
            if self_f.norm() > 1e-12 * b.y0[0].norm().max(1e-300) && b.y0[0] != ZERO {
                grounded[b.f] = true;
            }
            if self_t.norm() > 1e-12 * b.y0[3].norm().max(1e-300) && b.y0[3] != ZERO {
                grounded[b.t] = true;
            }
        }
        for &(k, _, _, y0) in &topo.shunts {
            if y0 != ZERO {
                grounded[k] = true;
            }
        }
        for &(k, _) in &ideal {
            grounded[k] = true;
        }
        let mut member = vec![false; n];
        let mut comp_seen = vec![false; n];
        for start in 0..n {
            if comp_seen[start] || !topo.energised[start] {
                continue;
            }
            let mut comp = vec![start];
            comp_seen[start] = true;
            let mut i = 0;
            while i < comp.len() {
                let k = comp[i];
                i += 1;
                for &m in &adj[k] {
                    if !comp_seen[m] {
                        comp_seen[m] = true;
                        comp.push(m);
                    }
                }
            }
            if comp.iter().any(|&k| grounded[k]) {
                for k in comp {
                    member[k] = true;
                }
            }
        }
        let s0 = SeqSys::build(topo, 0, &member, &ideal, &namef)?;
        self.s2 = Some(s2);
        self.s0 = Some(s0);
        self.unbalanced_ready = true;
        self.refresh_ports();
        Ok(())
    }

    /// Sets the fault/open-conductor ports (replaces previous ones).
    pub fn set_ports(&mut self, ports: Vec<Port>) -> Result<(), PfError> {
        self.ports = ports;
        self.prepare_unbalanced()?;
        self.refresh_ports();
        Ok(())
    }

    fn refresh_ports(&mut self) {
        let mut nodes: Vec<usize> = self.ports.iter().flat_map(|p| p.nodes.iter().copied()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let n = self.topo.n_nodes;
        let mut port_z = Vec::new();
        for &k in &nodes {
            let mut cols: [Vec<C64>; 3] = [vec![ZERO; n], vec![ZERO; n], vec![ZERO; n]];
            for (s, col) in cols.iter_mut().enumerate() {
                let sys = match s {
                    0 => self.s0.as_mut(),
                    1 => Some(&mut self.s1),
                    _ => self.s2.as_mut(),
                };
                let Some(sys) = sys else { continue };
                if sys.idx[k] == u32::MAX {
                    continue;
                }
                let mut rhs = vec![ZERO; sys.nodes.len()];
                rhs[sys.idx[k] as usize] = C64::new(1.0, 0.0);
                sys.lu.solve_ordered(&mut rhs);
                for (u, &node) in sys.nodes.iter().enumerate() {
                    col[node] = rhs[u];
                }
            }
            port_z.push(cols);
        }
        self.port_current = vec![[ZERO; 3]; nodes.len()];
        self.port_nodes = nodes;
        self.port_z = port_z;
    }

    fn not_converged(&self, iterations: usize, dv: f64, worst: &[(f64, usize)]) -> PfError {
        let mut w: Vec<(f64, usize)> = worst.to_vec();
        w.sort_by(|a, b| a.0.total_cmp(&b.0));
        let buses: Vec<String> =
            w.iter().take(5).map(|&(vm, k)| format!("{} (|V| {:.3} p.u.)", self.names[k], vm)).collect();
        PfError::NotConverged { iterations, max_dv_pu: dv, buses }
    }

    /// The error of a balanced solve that did not converge (voltages stored), naming the lowest buses; resets
    /// to the flat start so the next solve does not start from garbage.
    fn balanced_failure(&mut self, dv: f64) -> PfError {
        let worst: Vec<(f64, usize)> = self.s1.nodes.iter().map(|&k| (self.v1[k].norm(), k)).collect();
        let e = self.not_converged(self.options.max_iter, dv, &worst);
        self.reset_flat();
        e
    }

    /// The unbalanced counterpart of [`Self::balanced_failure`]: the lowest phase voltage per energised node.
    fn unbalanced_failure(&mut self, dv: f64) -> PfError {
        let worst: Vec<(f64, usize)> = (0..self.topo.n_nodes)
            .filter(|&k| self.topo.energised[k])
            .map(|k| (self.phase_voltages(k).iter().map(|v| v.norm()).fold(f64::INFINITY, f64::min), k))
            .collect();
        let e = self.not_converged(self.options.max_iter, dv, &worst);
        self.reset_flat();
        e
    }

    /// Balanced solve: every load as its three-phase total, positive sequence only.
    pub fn solve_balanced(&mut self) -> Result<SolveStats, PfError> {
        let opt = self.options;
        let s1 = &mut self.s1;
        s1.load_from(&self.v1);
        // Loaded unknowns only: most nodes of a feeder carry no load.
        let loaded: Vec<(usize, NodeLoad)> = s1
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, k)| !self.loads[**k].is_zero())
            .map(|(u, &k)| {
                let mut l = self.loads[k];
                // Per-phase loads enter as their three-phase total (per-phase p.u. sum / 3).
                l.s_p += (l.wye[0] + l.wye[1] + l.wye[2] + l.delta[0] + l.delta[1] + l.delta[2]) / 3.0;
                (u, l)
            })
            .collect();
        if opt.reduce && s1.reduction_pays(loaded.len()) {
            return self.solve_balanced_reduced(&loaded);
        }
        let mut dv = f64::INFINITY;
        for it in 1..=opt.max_iter {
            s1.rhs.copy_from_slice(&s1.fixed_rhs);
            for (u, l) in &loaded {
                s1.rhs[*u] += balanced_load_current(l, s1.x[*u]);
            }
            s1.lu.solve_ordered(&mut s1.rhs);
            dv = 0.0;
            for (a, b) in s1.rhs.iter().zip(&s1.x) {
                let d = (a - b).norm_sqr();
                if d > dv || d.is_nan() {
                    dv = if d.is_nan() { f64::INFINITY } else { d };
                }
            }
            dv = dv.sqrt();
            std::mem::swap(&mut s1.rhs, &mut s1.x);
            if dv < opt.tol_pu {
                s1.store_to(&mut self.v1);
                self.stats = SolveStats { iterations: it, max_dv_pu: dv };
                return Ok(self.stats);
            }
            if !dv.is_finite() || dv > 10.0 {
                break;
            }
        }
        s1.store_to(&mut self.v1);
        Err(self.balanced_failure(dv))
    }

    /// The balanced iteration on the Thevenin reduction onto the loaded unknowns `loaded` (unknown index, load).
    /// Same fixed point, same iterates at the loaded nodes as the full sweep; the other nodes follow from one
    /// full solve at the end.
    fn solve_balanced_reduced(&mut self, loaded: &[(usize, NodeLoad)]) -> Result<SolveStats, PfError> {
        let opt = self.options;
        let s1 = &mut self.s1;
        let units: Vec<u32> = loaded.iter().map(|(u, _)| *u as u32).collect();
        s1.reduce_onto(&units);
        let m = units.len();
        let mut v: Vec<C64> = units.iter().map(|&u| s1.x[u as usize]).collect();
        let mut v_new = vec![ZERO; m];
        let mut i = vec![ZERO; m];
        let mut dv = f64::INFINITY;
        for it in 1..=opt.max_iter {
            for ((ij, vj), (_, l)) in i.iter_mut().zip(&v).zip(loaded) {
                *ij = balanced_load_current(l, *vj);
            }
            dv = s1.reduced_apply(&i, &v, &mut v_new).sqrt();
            std::mem::swap(&mut v, &mut v_new);
            if dv < opt.tol_pu {
                s1.expand(&i);
                s1.store_to(&mut self.v1);
                self.stats = SolveStats { iterations: it, max_dv_pu: dv };
                return Ok(self.stats);
            }
            if !dv.is_finite() || dv > 10.0 {
                break;
            }
        }
        s1.expand(&i);
        s1.store_to(&mut self.v1);
        Err(self.balanced_failure(dv))
    }

    /// The unbalanced iteration on the Thevenin reductions of the three sequence networks onto the loaded nodes
    /// (no ports). Same iterates at the loaded nodes as the full sweeps.
    fn solve_unbalanced_reduced(&mut self, loaded: &[(usize, NodeLoad)]) -> Result<SolveStats, PfError> {
        let opt = self.options;
        let s1 = &mut self.s1;
        let s2 = self.s2.as_mut().expect("prepared");
        let s0 = self.s0.as_mut().expect("prepared");
        // Per sequence: the reduced unknowns and, per loaded node, its position among them.
        let mut pos = vec![[u32::MAX; 3]; loaded.len()];
        let mut v: [Vec<C64>; 3] = Default::default();
        for (q, sys) in [&mut *s0, &mut *s1, &mut *s2].into_iter().enumerate() {
            let mut units = Vec::with_capacity(loaded.len());
            for (j, (k, _)) in loaded.iter().enumerate() {
                let u = sys.idx[*k];
                if u != u32::MAX {
                    pos[j][q] = units.len() as u32;
                    units.push(u);
                }
            }
            sys.reduce_onto(&units);
            v[q] = units.iter().map(|&u| sys.x[u as usize]).collect();
        }
        let mut v_new: [Vec<C64>; 3] = [vec![ZERO; v[0].len()], vec![ZERO; v[1].len()], vec![ZERO; v[2].len()]];
        let mut i: [Vec<C64>; 3] = [vec![ZERO; v[0].len()], vec![ZERO; v[1].len()], vec![ZERO; v[2].len()]];
        let at = |v: &[C64], p: u32| if p == u32::MAX { ZERO } else { v[p as usize] };
        let mut dv = f64::INFINITY;
        let mut converged_at = None;
        for it in 1..=opt.max_iter {
            i.iter_mut().for_each(|c| c.iter_mut().for_each(|x| *x = ZERO));
            for ((_, l), p) in loaded.iter().zip(&pos) {
                let vp = seq_to_phase(at(&v[0], p[0]), at(&v[1], p[1]), at(&v[2], p[2]));
                let is = phase_to_seq(load_phase_currents(l, vp));
                for q in 0..3 {
                    if p[q] != u32::MAX {
                        i[q][p[q] as usize] += is[q];
                    }
                }
            }
            dv = 0.0;
            for (q, sys) in [&*s0, &*s1, &*s2].into_iter().enumerate() {
                dv = dv.max(sys.reduced_apply(&i[q], &v[q], &mut v_new[q]));
            }
            dv = dv.sqrt();
            std::mem::swap(&mut v, &mut v_new);
            if dv < opt.tol_pu {
                converged_at = Some(it);
                break;
            }
            if !dv.is_finite() || dv > 10.0 {
                break;
            }
        }
        for (q, sys) in [&mut *s0, &mut *s1, &mut *s2].into_iter().enumerate() {
            sys.expand(&i[q]);
        }
        s1.store_to(&mut self.v1);
        s2.store_to(&mut self.v2);
        s0.store_to(&mut self.v0);
        if let Some(it) = converged_at {
            self.stats = SolveStats { iterations: it, max_dv_pu: dv };
            return Ok(self.stats);
        }
        Err(self.unbalanced_failure(dv))
    }

    /// Resets voltages to the flat start (after a failure, so the next solve does not start from garbage).
    pub fn reset_flat(&mut self) {
        self.v1.copy_from_slice(&self.v1_flat);
        self.v2.iter_mut().for_each(|v| *v = ZERO);
        self.v0.iter_mut().for_each(|v| *v = ZERO);
    }

    /// Phase voltages of node `k` (p.u. of the phase base).
    #[inline]
    pub fn phase_voltages(&self, k: usize) -> [C64; 3] {
        seq_to_phase(self.v0[k], self.v1[k], self.v2[k])
    }

    /// Unbalanced solve: per-phase loads, sequence networks coupled through loads and ports.
    pub fn solve_unbalanced(&mut self) -> Result<SolveStats, PfError> {
        self.prepare_unbalanced()?;
        let opt = self.options;
        let n = self.topo.n_nodes;
        let np = self.port_nodes.len();
        let loaded: Vec<(usize, NodeLoad)> = (0..n)
            .filter(|&k| self.topo.energised[k] && !self.loads[k].is_zero())
            .map(|k| (k, self.loads[k]))
            .collect();
        let mut dv = f64::INFINITY;
        {
            let s2 = self.s2.as_mut().expect("prepared");
            let s0 = self.s0.as_mut().expect("prepared");
            self.s1.load_from(&self.v1);
            s2.load_from(&self.v2);
            s0.load_from(&self.v0);
        }
        if np == 0 && opt.reduce && self.s1.reduction_pays(loaded.len()) {
            return self.solve_unbalanced_reduced(&loaded);
        }
        for it in 1..=opt.max_iter {
            let s1 = &mut self.s1;
            let s2 = self.s2.as_mut().expect("prepared");
            let s0 = self.s0.as_mut().expect("prepared");
            s1.rhs.copy_from_slice(&s1.fixed_rhs);
            s2.rhs.iter_mut().for_each(|v| *v = ZERO);
            s0.rhs.iter_mut().for_each(|v| *v = ZERO);
            // Load currents in the phase frame, then sequence injections.
            for (k, l) in &loaded {
                let k = *k;
                let vp = seq_to_phase(s0.get(k), s1.get(k), s2.get(k));
                let is = phase_to_seq(load_phase_currents(l, vp));
                for (sys, i) in [(&mut *s0, is[0]), (&mut *s1, is[1]), (&mut *s2, is[2])] {
                    let u = sys.idx[k];
                    if u != u32::MAX {
                        sys.rhs[u as usize] += i;
                    }
                }
            }
            s1.lu.solve_ordered(&mut s1.rhs);
            s2.lu.solve_ordered(&mut s2.rhs);
            s0.lu.solve_ordered(&mut s0.rhs);
            if np > 0 {
                // Open-circuit (no-port) voltages in node order, exact port currents by compensation.
                let mut new1 = self.v1.clone();
                let mut new2 = vec![ZERO; n];
                let mut new0 = vec![ZERO; n];
                for (u, &k) in s1.nodes.iter().enumerate() {
                    new1[k] = s1.rhs[u];
                }
                for (u, &k) in s2.nodes.iter().enumerate() {
                    new2[k] = s2.rhs[u];
                }
                for (u, &k) in s0.nodes.iter().enumerate() {
                    new0[k] = s0.rhs[u];
                }
                self.apply_ports(&mut new0, &mut new1, &mut new2)?;
                let s1 = &mut self.s1;
                let s2 = self.s2.as_mut().expect("prepared");
                let s0 = self.s0.as_mut().expect("prepared");
                for (sys, v) in [(&mut *s1, &new1), (&mut *s2, &new2), (&mut *s0, &new0)] {
                    for (u, &k) in sys.nodes.iter().enumerate() {
                        sys.rhs[u] = v[k];
                    }
                }
            }
            let s1 = &mut self.s1;
            let s2 = self.s2.as_mut().expect("prepared");
            let s0 = self.s0.as_mut().expect("prepared");
            dv = 0.0;
            for sys in [&mut *s1, &mut *s2, &mut *s0] {
                for (a, b) in sys.rhs.iter().zip(&sys.x) {
                    let d = (a - b).norm_sqr();
                    if d > dv || d.is_nan() {
                        dv = if d.is_nan() { f64::INFINITY } else { d };
                    }
                }
                std::mem::swap(&mut sys.rhs, &mut sys.x);
            }
            dv = dv.sqrt();
            if dv < opt.tol_pu || !dv.is_finite() || dv > 10.0 || it == opt.max_iter {
                s1.store_to(&mut self.v1);
                s2.store_to(&mut self.v2);
                s0.store_to(&mut self.v0);
                if dv < opt.tol_pu {
                    self.stats = SolveStats { iterations: it, max_dv_pu: dv };
                    return Ok(self.stats);
                }
                break;
            }
        }
        Err(self.unbalanced_failure(dv))
    }

    /// Given open-circuit sequence voltages, solves the port currents and superposes their effect.
    fn apply_ports(&mut self, v0: &mut [C64], v1: &mut [C64], v2: &mut [C64]) -> Result<(), PfError> {
        let m = self.port_nodes.len();
        let dim = 3 * m;
        // Phase-frame Thevenin matrix Z (dim x dim) and open-circuit phase voltages.
        let mut z = vec![ZERO; dim * dim];
        let mut voc = vec![ZERO; dim];
        for (p, &kp) in self.port_nodes.iter().enumerate() {
            let vp = seq_to_phase(v0[kp], v1[kp], v2[kp]);
            voc[3 * p..3 * p + 3].copy_from_slice(&vp);
            for q in 0..m {
                let cols = &self.port_z[q];
                let zs = [cols[0][kp], cols[1][kp], cols[2][kp]];
                // Z_abc = A diag(z0, z1, z2) A^-1, column j: phase response to a unit phase-j injection.
                for j in 0..3 {
                    let mut e = [ZERO; 3];
                    e[j] = C64::new(1.0, 0.0);
                    let s = phase_to_seq(e);
                    let r = seq_to_phase(zs[0] * s[0], zs[1] * s[1], zs[2] * s[2]);
                    for i in 0..3 {
                        z[(3 * p + i) * dim + 3 * q + j] = r[i];
                    }
                }
            }
        }
        // Total admittance change over port nodes.
        let mut dy = vec![ZERO; dim * dim];
        for port in &self.ports {
            let pos: Vec<usize> = port.nodes.iter().map(|k| self.port_nodes.binary_search(k).unwrap_or(0)).collect();
            let pm = port.nodes.len();
            for a in 0..pm {
                for b in 0..pm {
                    for i in 0..3 {
                        for j in 0..3 {
                            dy[(3 * pos[a] + i) * dim + 3 * pos[b] + j] += port.dy[(3 * a + i) * (3 * pm) + 3 * b + j];
                        }
                    }
                }
            }
        }
        // (I + dY Z) i_f = -dY v_oc, where i_f is the current injected into the network at the ports.
        let mut mat = vec![ZERO; dim * dim];
        let mut rhs = vec![ZERO; dim];
        for i in 0..dim {
            for j in 0..dim {
                let mut s = if i == j { C64::new(1.0, 0.0) } else { ZERO };
                for k in 0..dim {
                    s += dy[i * dim + k] * z[k * dim + j];
                }
                mat[i * dim + j] = s;
            }
            let mut s = ZERO;
            for k in 0..dim {
                s -= dy[i * dim + k] * voc[k];
            }
            rhs[i] = s;
        }
        let i_f = dense_solve(&mut mat, &mut rhs, dim).ok_or_else(|| PfError::Singular {
            bus: self.port_nodes.first().map(|&k| self.names[k].clone()).unwrap_or_default(),
        })?;
        for (q, &kq) in self.port_nodes.iter().enumerate() {
            let ip = [i_f[3 * q], i_f[3 * q + 1], i_f[3 * q + 2]];
            self.port_current[q] = ip;
            let is = phase_to_seq(ip);
            let cols = &self.port_z[q];
            if is[0] != ZERO {
                for (k, v) in v0.iter_mut().enumerate() {
                    *v += cols[0][k] * is[0];
                }
            }
            for (k, v) in v1.iter_mut().enumerate() {
                *v += cols[1][k] * is[1];
            }
            for (k, v) in v2.iter_mut().enumerate() {
                *v += cols[2][k] * is[2];
            }
            let _ = kq;
        }
        Ok(())
    }

    /// Nodes of the ports in the order of [`PowerFlow::port_current`].
    pub fn port_nodes(&self) -> &[usize] {
        &self.port_nodes
    }

    /// Branch end currents per phase (p.u.), from (`from`) and to (`to`) end, flowing into the branch.
    pub fn branch_currents(&self, b: usize) -> ([C64; 3], [C64; 3]) {
        let br = &self.topo.branches[b];
        let (f, t) = (br.f, br.t);
        let y0 = if br.y0.iter().any(|v| !v.re.is_finite()) { [ZERO; 4] } else { br.y0 };
        let i1f = br.y1[0] * self.v1[f] + br.y1[1] * self.v1[t];
        let i1t = br.y1[2] * self.v1[f] + br.y1[3] * self.v1[t];
        let i2f = br.y2[0] * self.v2[f] + br.y2[1] * self.v2[t];
        let i2t = br.y2[2] * self.v2[f] + br.y2[3] * self.v2[t];
        let i0f = y0[0] * self.v0[f] + y0[1] * self.v0[t];
        let i0t = y0[2] * self.v0[f] + y0[3] * self.v0[t];
        (seq_to_phase(i0f, i1f, i2f), seq_to_phase(i0t, i1t, i2t))
    }

    /// Positive-sequence current (p.u.) that node `k` (a slack) supplies: the currents into its branches
    /// plus what its own loads draw.
    pub fn node_supply_current_pu(&self, k: usize) -> C64 {
        let mut i = ZERO;
        for br in &self.topo.branches {
            if br.f == k {
                i += br.y1[0] * self.v1[br.f] + br.y1[1] * self.v1[br.t];
            } else if br.t == k {
                i += br.y1[2] * self.v1[br.f] + br.y1[3] * self.v1[br.t];
            }
        }
        if let Some(l) = self.loads.get(k)
            && !l.is_zero()
        {
            i -= phase_to_seq(load_phase_currents(l, self.phase_voltages(k)))[1];
        }
        i
    }

    /// Complex power drawn from the slacks (three-phase total, MW + j Mvar).
    pub fn slack_power_mva(&self) -> C64 {
        let mut s = ZERO;
        for &(k, _) in &self.topo.slacks {
            let mut i = [ZERO; 3];
            for (bi, br) in self.topo.branches.iter().enumerate() {
                if br.f == k || br.t == k {
                    let (a, b) = self.branch_currents(bi);
                    let c = if br.f == k { a } else { b };
                    for p in 0..3 {
                        i[p] += c[p];
                    }
                }
            }
            let v = self.phase_voltages(k);
            for p in 0..3 {
                s += v[p] * i[p].conj();
            }
        }
        s * (S_BASE_MVA / 3.0)
    }
}

/// Gaussian elimination with partial pivoting on a small dense system; `None` if singular.
pub fn dense_solve(a: &mut [C64], b: &mut [C64], n: usize) -> Option<Vec<C64>> {
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].norm().total_cmp(&a[j * n + c].norm()))?;
        if a[p * n + c].norm() == 0.0 || !a[p * n + c].re.is_finite() {
            return None;
        }
        if p != c {
            for j in 0..n {
                a.swap(p * n + j, c * n + j);
            }
            b.swap(p, c);
        }
        let inv = a[c * n + c].inv();
        for r in c + 1..n {
            let f = a[r * n + c] * inv;
            if f == ZERO {
                continue;
            }
            for j in c..n {
                let d = f * a[c * n + j];
                a[r * n + j] -= d;
            }
            let d = f * b[c];
            b[r] -= d;
        }
    }
    let mut x = vec![ZERO; n];
    for r in (0..n).rev() {
        let mut s = b[r];
        for j in r + 1..n {
            s -= a[r * n + j] * x[j];
        }
        x[r] = s / a[r * n + r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_transform_round_trips() {
        let p = [C64::new(1.0, 0.2), C64::new(-0.3, 0.9), C64::new(0.1, -0.7)];
        let s = phase_to_seq(p);
        let q = seq_to_phase(s[0], s[1], s[2]);
        for i in 0..3 {
            assert!((p[i] - q[i]).norm() < 1e-14);
        }
        let bal = seq_to_phase(ZERO, C64::new(1.0, 0.0), ZERO);
        assert!((bal[1] - C64::from_polar(1.0, -120f64.to_radians())).norm() < 1e-14);
    }
}

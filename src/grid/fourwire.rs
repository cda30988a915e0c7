//! Phase-domain power flow of 3-phase 4-wire LV networks: every bus has the nodes a, b, c and n (neutral),
//! remote earth is the reference, lines carry a full 4x4 series impedance (phases and neutral with their
//! mutual coupling), single-phase loads sit between a phase and their bus's neutral, and the neutral is
//! earthed where the network's [`Earthing`](super::network::Earthing) says. What this adds over the sequence model of
//! [`super::powerflow`]: neutral current, the neutral-point shift customers see, and neutral faults (an open
//! neutral conductor, a neutral-to-earth path at a bus).
//!
//! Scope: the LV part of the network (buses below 1 kV). Each in-service transformer into it is a balanced
//! source at its LV terminal: an EMF (the HV bus taken as an ideal source at its external grid's set point,
//! through the rated ratio, tap and phase shift) behind the transformer's short-circuit impedance, the same in
//! every phase with no mutual coupling (so its zero-sequence impedance equals its positive-sequence one, as a
//! Dyn unit's does), with its star point on the LV bus's neutral. The magnetising branch and the MV network's
//! impedance are left out. An external grid directly on an LV bus is a source behind its short-circuit
//! impedance (`c = 1.1`, `s_sc_max_mva`, `rx_max`).
//!
//! Method: Newton-Raphson on the nodal current balance in rectangular coordinates. Constant-power loads make
//! the load current depend on the conjugate of the voltage, so the Jacobian is only real-linear: it is built
//! as a real matrix (two unknowns per node) and factorised by the project's sparse LU ([`super::sparse`]),
//! whose pattern (one 8x8 block per bus, coupled along lines) is computed once per topology. Newton keeps the
//! solve exact where a fixed-point iteration stalls: behind a broken neutral the neutral floats and its
//! voltage is set by the loads alone. Every node also has a 1 Mohm leakage to earth so an isolated neutral
//! (an open neutral with nothing beyond it) stays determined; it moves results by less than 1e-8 p.u.
//!
//! Units: volts (phase-to-earth phasors), amperes, ohms, siemens, volt-amperes inside; results also in per
//! unit of the bus's nominal phase voltage `vn_kv / sqrt(3)`.
//!
//! Line data ([`line_z4_ohm_per_km`]): an explicit 4x4 matrix (`r4_ohm_per_km`, `x4_ohm_per_km`), else one
//! derived from the sequence data such that the neutral-return reduction (phase-to-neutral loop impedances,
//! [`loop_sequence_impedances`]) reproduces `r/x_ohm_per_km` and `r0/x0_ohm_per_km` exactly. That reduction,
//! not Kron's elimination of the neutral at earth potential, is what the zero-sequence data of LV 4-core
//! cables describe (the zero-sequence current returns in the neutral), and it makes this model equal the
//! sequence model when the neutral is earthed at the source only.

use super::network::{EarthingSystem, Line, Network};
use super::powerflow::PfError;
use super::sparse::{Lu, Slot, Symbolic};
use super::topology::{Element, Purpose, Topology};
use num_complex::Complex64 as C64;
use std::sync::Arc;

const ZERO: C64 = C64 { re: 0.0, im: 0.0 };
/// Leakage of every neutral node to earth, siemens (100 Mohm).
const LEAKAGE_S: f64 = 1e-8;
/// Newton iteration limit.
pub const MAX_ITERATIONS: usize = 40;
/// Convergence: largest voltage update, per unit of the nominal phase voltage.
pub const TOLERANCE_PU: f64 = 1e-11;
/// IEC 60909 voltage factor used for an LV external grid's source impedance.
const C_MAX: f64 = 1.1;

/// A 4x4 complex matrix, rows and columns a, b, c, n.
pub type M4 = [[C64; 4]; 4];

/// Terminal names for messages.
const TERMINAL: [&str; 4] = ["a", "b", "c", "n"];

/// The series impedance of a line per km (ohm/km), phases a, b, c and neutral n.
///
/// - `r4_ohm_per_km`/`x4_ohm_per_km` given: used as they are.
/// - Otherwise a symmetric 4-core cable: phase self impedance `Zs`, the same mutual impedance `Zm` between
///   any two conductors (phase-phase and phase-neutral), neutral self impedance `Zn`, chosen so that the
///   neutral-return reduction gives `Z1 = Zs - Zm` and `Z0 = Zs - 4 Zm + 3 Zn` exactly:
///   - with the neutral given (`rn/xn_ohm_per_km`): `Zm = (Z1 + 3 Zn - Z0) / 3`, `Zs = Z1 + Zm`;
///   - without it: no mutual coupling, `Zs = Z1`, `Zn = (Z0 - Z1) / 3` (the neutral the zero-sequence data
///     imply), as long as that neutral's resistance is at least half a phase's (a neutral of up to twice the
///     phase cross-section); otherwise (`r0` close to or below `r`, as two-core service cables are often
///     given) a neutral equal to a phase conductor, `Zn = Z1`, and `Zm = (4 Z1 - Z0) / 3`;
///   - without zero-sequence data: a neutral equal to a phase conductor, `Zs = Zn = Z1`, `Zm = 0`
///     (`Z0 = 4 Z1`).
///
/// Errors name the line when the data imply a phase conductor with no resistance.
pub fn line_z4_ohm_per_km(l: &Line, what: &str) -> Result<M4, String> {
    if let (Some(r), Some(x)) = (&l.r4_ohm_per_km, &l.x4_ohm_per_km) {
        let mut z = [[ZERO; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                z[i][j] = C64::new(r[i][j], x[i][j]);
            }
        }
        return Ok(z);
    }
    let z1 = C64::new(l.r_ohm_per_km, l.x_ohm_per_km);
    let z0 = match (l.r0_ohm_per_km, l.x0_ohm_per_km) {
        (Some(r0), Some(x0)) if r0 > 0.0 || x0 > 0.0 => Some(C64::new(r0, x0)),
        _ => None,
    };
    let neutral = match (l.rn_ohm_per_km, l.xn_ohm_per_km) {
        (Some(r), Some(x)) => Some(C64::new(r, x)),
        _ => None,
    };
    let (zs, zm, zn) = match (z0, neutral) {
        (Some(z0), Some(zn)) => {
            let zm = (z1 + zn * 3.0 - z0) / 3.0;
            (z1 + zm, zm, zn)
        }
        (Some(z0), None) => {
            let zn = (z0 - z1) / 3.0;
            if zn.re >= 0.5 * z1.re {
                (z1, ZERO, zn)
            } else {
                // The zero-sequence data do not describe a neutral return of a plausible conductor (at most twice
                // the phase cross-section): e.g. two-core service cables given with Z0 = Z1. Take a neutral
                // equal to a phase conductor and let the mutual coupling carry the difference.
                let zm = (z1 * 4.0 - z0) / 3.0;
                (z1 + zm, zm, z1)
            }
        }
        (None, Some(zn)) => (z1, ZERO, zn),
        (None, None) => (z1, ZERO, z1),
    };
    let mut z = [[zm; 4]; 4];
    for i in 0..3 {
        z[i][i] = zs;
    }
    z[3][3] = zn;
    if zs.re <= 0.0 {
        return Err(format!(
            "{what}: the neutral data give a phase self resistance of {:.6} ohm/km (<= 0); check rn_ohm_per_km",
            zs.re
        ));
    }
    Ok(z)
}

/// The phase-to-neutral loop impedances of a 4x4 series impedance (the neutral as the return conductor:
/// `Z'_ij = Z_ij - Z_in - Z_nj + Z_nn`), averaged into sequence impedances `(Z1, Z0)` (exact for a
/// symmetric matrix).
pub fn loop_sequence_impedances(z: &M4) -> (C64, C64) {
    let mut self_sum = ZERO;
    let mut mut_sum = ZERO;
    for i in 0..3 {
        for j in 0..3 {
            let zl = z[i][j] - z[i][3] - z[3][j] + z[3][3];
            if i == j {
                self_sum += zl;
            } else {
                mut_sum += zl;
            }
        }
    }
    let (zs, zm) = (self_sum / 3.0, mut_sum / 6.0);
    (zs - zm, zs + zm * 2.0)
}

/// Inverse of a small dense complex matrix (Gauss-Jordan with partial pivoting); `None` if singular.
fn invert<const N: usize>(m: &[[C64; N]; N]) -> Option<[[C64; N]; N]> {
    let mut a = *m;
    let mut inv = [[ZERO; N]; N];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = C64::new(1.0, 0.0);
    }
    let scale = m.iter().flatten().fold(0.0f64, |s, v| s.max(v.norm()));
    for c in 0..N {
        let p = (c..N).max_by(|&i, &j| a[i][c].norm().total_cmp(&a[j][c].norm()))?;
        let piv = a[p][c].norm();
        if piv.is_nan() || piv <= 1e-14 * scale {
            return None;
        }
        a.swap(p, c);
        inv.swap(p, c);
        let d = a[c][c].inv();
        for j in 0..N {
            a[c][j] *= d;
            inv[c][j] *= d;
        }
        for r in 0..N {
            if r != c {
                let f = a[r][c];
                if f != ZERO {
                    for j in 0..N {
                        let (ac, ic) = (a[c][j], inv[c][j]);
                        a[r][j] -= f * ac;
                        inv[r][j] -= f * ic;
                    }
                }
            }
        }
    }
    Some(inv)
}

/// Neutral fault states of a 4-wire solve.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NeutralFaults {
    /// Lines (positions in `Network::lines`) whose neutral conductor is open (broken neutral).
    pub open_neutral: Vec<usize>,
    /// Neutral-to-earth faults: (bus position, resistance in ohm > 0), an extra earth path at the bus.
    pub neutral_earth: Vec<(usize, f64)>,
}

/// A load or generator between two terminals of one bus (0..=2 phases a..c, 3 the neutral), with ZIP
/// voltage dependence on the voltage across it. Powers in VA, consumption positive (a generator is
/// negative); `v_nom` is the voltage across it at which the Z and I parts take their nominal power.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Injection {
    /// Bus position in `Network::buses`.
    pub bus: usize,
    pub from: u8,
    pub to: u8,
    pub s_p: C64,
    pub s_i: C64,
    pub s_z: C64,
    pub v_nom: f64,
}

/// A line as compiled: its nodes and its admittance primitive (siemens).
#[derive(Clone, Debug)]
struct LineBlock {
    line: usize,
    f: usize,
    t: usize,
    /// Series admittance (4x4) and half the shunt admittance at each end.
    y: M4,
    ysh: M4,
}

/// Iteration count and final update of a solve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FwStats {
    pub iterations: usize,
    pub max_dv_pu: f64,
}

/// A compiled 4-wire network and its last solution.
#[derive(Clone, Debug)]
pub struct FourWire {
    /// Local node of each bus position (LV, in service, after merging closed bus-bus switches).
    bus_node: Vec<Option<usize>>,
    /// Bus label and nominal phase voltage (V) of each local node.
    node_name: Vec<String>,
    v_base: Vec<f64>,
    /// Per electrical node (4 per local node): held at 0 V (solidly earthed star point, or unsupplied).
    fixed: Vec<bool>,
    /// Complex admittance entries (row, column, value) of the linear network, electrical nodes.
    y: Vec<(usize, usize, C64)>,
    /// Norton currents of the sources (A), per electrical node.
    j_src: Vec<C64>,
    lines: Vec<LineBlock>,
    sym: Arc<Symbolic>,
    lu: Lu,
    /// The constant part of the Jacobian in the factor's slots.
    jac_const: Vec<(Slot, C64)>,
    /// Voltages to earth (V), per electrical node.
    v: Vec<C64>,
    /// Flat start (source EMFs on the phases, 0 on the neutral).
    v_flat: Vec<C64>,
    solved: bool,
}

fn label(net: &Network, b: usize) -> String {
    net.bus_label(b)
}

impl FourWire {
    /// Compiles the LV part of `net` with the file's switch states and line service.
    pub fn new(net: &Network, faults: &NeutralFaults) -> Result<FourWire, PfError> {
        let closed: Vec<bool> = net.switches.iter().map(|s| s.closed).collect();
        let in_service: Vec<bool> = net.lines.iter().map(|l| l.in_service).collect();
        FourWire::with_states(net, &closed, &in_service, faults)
    }

    /// Compiles the LV part of `net` with switch states `closed[k]` and line service `line_in_service[k]`.
    pub fn with_states(
        net: &Network,
        closed: &[bool],
        line_in_service: &[bool],
        faults: &NeutralFaults,
    ) -> Result<FourWire, PfError> {
        let topo = Topology::build(net, closed, line_in_service, Purpose::PowerFlow).map_err(PfError::Model)?;
        let model = |m: String| PfError::Model(format!("4-wire model: {m}"));
        // Local nodes: the topology's nodes below 1 kV.
        let mut local = vec![usize::MAX; topo.n_nodes];
        let mut node_name = Vec::new();
        let mut v_base = Vec::new();
        for k in 0..topo.n_nodes {
            if topo.node_vn_kv[k] < 1.0 {
                local[k] = node_name.len();
                node_name.push(label(net, topo.node_bus[k]));
                v_base.push(topo.node_vn_kv[k] * 1000.0 / 3f64.sqrt());
            }
        }
        let n = node_name.len();
        if n == 0 {
            return Err(model("the network has no LV bus (below 1 kV)".into()));
        }
        let bus_node: Vec<Option<usize>> =
            topo.bus_node.iter().map(|o| o.and_then(|k| (local[k] != usize::MAX).then_some(local[k]))).collect();
        let earthing = net.earthing.clone().unwrap_or_default();
        let ne = 4 * n;
        let mut y: Vec<(usize, usize, C64)> = Vec::new();
        let mut j_src = vec![ZERO; ne];
        let mut fixed = vec![false; ne];
        let mut v_flat = vec![ZERO; ne];
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut sources: Vec<usize> = Vec::new();
        let w = 2.0 * std::f64::consts::PI * net.f_hz;
        let mut lines = Vec::new();
        for br in &topo.branches {
            match br.element {
                Element::Line(k) => {
                    let (f, t) = (local[br.f], local[br.t]);
                    if f == usize::MAX || t == usize::MAX {
                        continue;
                    }
                    let l = &net.lines[k];
                    let what = format!("lines[{k}] (index {})", l.index);
                    let z = line_z4_ohm_per_km(l, &what).map_err(model)?;
                    let len = l.length_km / l.parallel;
                    let mut zl = [[ZERO; 4]; 4];
                    for i in 0..4 {
                        for j in 0..4 {
                            zl[i][j] = z[i][j] * len;
                        }
                    }
                    let singular = || model(format!("{what}: singular series impedance matrix"));
                    let ys = if faults.open_neutral.contains(&k) {
                        // No neutral current: the phases see their 3x3 block, the neutral ends are apart.
                        let z3 = [
                            [zl[0][0], zl[0][1], zl[0][2]],
                            [zl[1][0], zl[1][1], zl[1][2]],
                            [zl[2][0], zl[2][1], zl[2][2]],
                        ];
                        let y3 = invert(&z3).ok_or_else(singular)?;
                        let mut y4 = [[ZERO; 4]; 4];
                        for i in 0..3 {
                            for j in 0..3 {
                                y4[i][j] = y3[i][j];
                            }
                        }
                        y4
                    } else {
                        invert(&zl).ok_or_else(singular)?
                    };
                    // Shunt capacitance of the phases (nodal matrix from C1 and C0; the neutral's is left out):
                    // self (C0 + 2 C1) / 3, mutual (C0 - C1) / 3, half at each end.
                    let c1 = l.c_nf_per_km * 1e-9 * l.length_km * l.parallel;
                    let c0 = l.c0_nf_per_km.unwrap_or(0.0) * 1e-9 * l.length_km * l.parallel;
                    let mut ysh = [[ZERO; 4]; 4];
                    if c1 > 0.0 || c0 > 0.0 {
                        for i in 0..3 {
                            for j in 0..3 {
                                let c = if i == j { (c0 + 2.0 * c1) / 3.0 } else { (c0 - c1) / 3.0 };
                                ysh[i][j] = C64::new(0.0, w * c / 2.0);
                            }
                        }
                    }
                    for i in 0..4 {
                        for j in 0..4 {
                            let (yij, sh) = (ys[i][j], ysh[i][j]);
                            y.push((4 * f + i, 4 * f + j, yij + sh));
                            y.push((4 * t + i, 4 * t + j, yij + sh));
                            y.push((4 * f + i, 4 * t + j, -yij));
                            y.push((4 * t + i, 4 * f + j, -yij));
                        }
                    }
                    adj[f].push(t);
                    adj[t].push(f);
                    lines.push(LineBlock { line: k, f, t, y: ys, ysh });
                }
                Element::Trafo(k) => {
                    let tr = &net.trafos[k];
                    let (hv, lv) = (br.f, local[br.t]);
                    if lv == usize::MAX {
                        continue;
                    }
                    let what = format!("trafos[{k}] (index {})", tr.index);
                    if local[hv] != usize::MAX {
                        return Err(model(format!("{what}: both sides are LV; only MV/LV transformers feed it")));
                    }
                    let vg = tr.windings();
                    if vg != "dyn" && vg != "ynyn" {
                        return Err(model(format!(
                            "{what}: vector group '{}' has no earthed LV star point with a zero-sequence path \
                             equal to its short-circuit impedance (Dyn or YNyn needed)",
                            tr.vector_group
                        )));
                    }
                    let Some(e) = net
                        .ext_grids
                        .iter()
                        .find(|e| e.in_service && net.bus(e.bus).and_then(|b| topo.bus_node[b]) == Some(hv))
                    else {
                        return Err(model(format!(
                            "{what}: its HV bus {} has no in-service ext_grid (the HV side is taken as an ideal \
                             source at the ext_grid's set point)",
                            tr.hv_bus
                        )));
                    };
                    let steps = tr.tap_steps();
                    let (vn_hv, vn_lv) = tr.rated_kv_at_tap(steps);
                    let shift = tr.shift_degree_at_tap(steps);
                    let vh_kv = topo.node_vn_kv[hv];
                    let e_mag = e.vm_pu * vh_kv * 1000.0 / 3f64.sqrt() * vn_lv / vn_hv;
                    let angle = (e.va_degree - shift).to_radians();
                    let zb = vn_lv * vn_lv / tr.sn_mva / tr.parallel;
                    let vkx = (tr.vk_percent.powi(2) - tr.vkr_percent.powi(2)).max(0.0).sqrt();
                    let z = C64::new(tr.vkr_percent, vkx) / 100.0 * zb;
                    add_source(&mut y, &mut j_src, &mut v_flat, lv, e_mag, angle, z);
                    sources.push(lv);
                }
                Element::Switch(k) => {
                    // A four-pole switch: each conductor, the neutral too, through the switch's impedance.
                    let (f, t) = (local[br.f], local[br.t]);
                    if f == usize::MAX || t == usize::MAX {
                        continue;
                    }
                    let ys = net.switches[k].impedance_ohm().inv();
                    for i in 0..4 {
                        y.push((4 * f + i, 4 * f + i, ys));
                        y.push((4 * t + i, 4 * t + i, ys));
                        y.push((4 * f + i, 4 * t + i, -ys));
                        y.push((4 * t + i, 4 * f + i, -ys));
                    }
                    adj[f].push(t);
                    adj[t].push(f);
                }
                Element::Source(_) => {}
            }
        }
        // External grids directly on an LV bus: sources behind their short-circuit impedance.
        for (k, e) in net.ext_grids.iter().enumerate().filter(|(_, e)| e.in_service) {
            let Some(node) = net.bus(e.bus).and_then(|b| bus_node[b]) else { continue };
            let Some(s_sc) = e.s_sc_max_mva else {
                return Err(model(format!(
                    "ext_grid[{k}] (index {}) on LV bus {} has no s_sc_max_mva: the 4-wire model needs its source \
                     impedance",
                    e.index, e.bus
                )));
            };
            let vn_kv = v_base[node] * 3f64.sqrt() / 1000.0;
            let rx = e.rx_max.unwrap_or(0.1);
            let zabs = C_MAX * vn_kv * vn_kv / s_sc;
            let x = zabs / (rx * rx + 1.0).sqrt();
            let e_mag = e.vm_pu * v_base[node];
            add_source(&mut y, &mut j_src, &mut v_flat, node, e_mag, e.va_degree.to_radians(), C64::new(rx * x, x));
            sources.push(node);
        }
        if sources.is_empty() {
            return Err(model("no source feeds the LV network (no transformer or ext_grid at an LV bus)".into()));
        }
        // Energised nodes: reachable from a source along lines; the others are held at 0 V.
        let mut energised = vec![false; n];
        let mut stack = sources.clone();
        let mut guard = 0usize;
        while let Some(k) = stack.pop() {
            guard += 1;
            if guard > 4 * (n + lines.len()) + 16 {
                break;
            }
            if !energised[k] {
                energised[k] = true;
                stack.extend(adj[k].iter().copied().filter(|&m| !energised[m]));
            }
        }
        // Flat start: every energised node at the first source's EMFs.
        let src0 = sources[0];
        for k in 0..n {
            if energised[k] && k != src0 && !sources.contains(&k) {
                for p in 0..3 {
                    v_flat[4 * k + p] = v_flat[4 * src0 + p];
                }
            }
            if !energised[k] {
                for p in 0..4 {
                    fixed[4 * k + p] = true;
                }
            }
        }
        // Earthing.
        let earth = |y: &mut Vec<(usize, usize, C64)>, k: usize, r: f64| {
            y.push((4 * k + 3, 4 * k + 3, C64::new(1.0 / r, 0.0)));
        };
        for &s in &sources {
            if earthing.source_r_ohm > 0.0 {
                earth(&mut y, s, earthing.source_r_ohm);
            } else {
                fixed[4 * s + 3] = true;
            }
        }
        if let (EarthingSystem::TnCS, Some(r)) = (earthing.system, earthing.customer_r_ohm) {
            let mut customer = vec![false; n];
            let buses = net.loads.iter().filter(|l| l.in_service).map(|l| l.bus);
            let buses = buses.chain(net.asym_loads.iter().filter(|l| l.in_service).map(|l| l.bus));
            for b in buses.chain(net.sgens.iter().filter(|s| s.in_service).map(|s| s.bus)) {
                if let Some(k) = net.bus(b).and_then(|p| bus_node[p]) {
                    customer[k] = true;
                }
            }
            for k in (0..n).filter(|&k| customer[k]) {
                earth(&mut y, k, r);
            }
        }
        for el in &earthing.electrodes {
            if let Some(k) = net.bus(el.bus).and_then(|p| bus_node[p]) {
                earth(&mut y, k, el.r_ohm);
            }
        }
        for &(b, r) in &faults.neutral_earth {
            let Some(k) = bus_node.get(b).copied().flatten() else {
                return Err(model(format!("neutral-to-earth fault at bus position {b}: not an LV bus in service")));
            };
            if !(r.is_finite() && r > 0.0) {
                return Err(model(format!("neutral-to-earth fault at {}: r_ohm = {r} must be > 0", node_name[k])));
            }
            earth(&mut y, k, r);
        }
        for &k in &faults.open_neutral {
            if k >= net.lines.len() {
                return Err(model(format!("open neutral on line position {k}: no such line")));
            }
        }
        for k in 0..n {
            y.push((4 * k + 3, 4 * k + 3, C64::new(LEAKAGE_S, 0.0)));
        }
        // Pattern: every bus a clique of its 8 real unknowns, coupled to its line neighbours' 8.
        let mut edges: Vec<(usize, usize)> = Vec::new();
        let mut couple = |a: usize, b: usize| {
            for i in 0..8 {
                for j in 0..8 {
                    edges.push((8 * a + i, 8 * b + j));
                }
            }
        };
        for k in 0..n {
            couple(k, k);
        }
        for lb in &lines {
            couple(lb.f, lb.t);
        }
        let sym = Arc::new(Symbolic::new(2 * ne, &edges));
        let lu = Lu::new(sym.clone());
        let mut jac_const = Vec::with_capacity(4 * y.len() + 2 * ne);
        for &(r, c, v) in &y {
            if fixed[r] {
                continue;
            }
            push_complex(&sym, &mut jac_const, r, c, v);
        }
        for i in (0..ne).filter(|&i| fixed[i]) {
            push_real(&sym, &mut jac_const, i, i, [[1.0, 0.0], [0.0, 1.0]]);
        }
        Ok(FourWire {
            bus_node,
            node_name,
            v_base,
            fixed,
            y,
            j_src,
            lines,
            sym,
            lu,
            jac_const,
            v: v_flat.clone(),
            v_flat,
            solved: false,
        })
    }

    /// The network's own loads, asymmetric loads and static generators (in service, scaled) as injections:
    /// balanced loads and generators as a third per phase, to the bus's neutral (wye, or no `type`) or across
    /// the phase pairs a-b, b-c, c-a (delta); asymmetric wye loads per phase to the neutral, delta ones between
    /// phases.
    pub fn network_injections(&self, net: &Network) -> Vec<Injection> {
        self.injections(net, &net.load_set_points(), &net.asym_set_points(), &net.sgen_set_points())
    }

    /// Injections of the network's in-service elements at the given set points (MW, Mvar, scaling applied):
    /// `loads[k]` three-phase total of `net.loads[k]`, `asym[k]` per phase of `net.asym_loads[k]`, `sgens[k]`
    /// of `net.sgens[k]` (generation positive). Missing entries count as zero.
    pub fn injections(
        &self,
        net: &Network,
        loads: &[(f64, f64)],
        asym: &[[(f64, f64); 3]],
        sgens: &[(f64, f64)],
    ) -> Vec<Injection> {
        let mut out = Vec::new();
        let base = |b: usize| net.buses[b].vn_kv * 1000.0 / 3f64.sqrt();
        // Where phase `p`'s share goes and its rated voltage: to the neutral (3), or across to the next phase.
        let terminal =
            |delta: bool, p: u8, b: usize| if delta { ((p + 1) % 3, base(b) * 3f64.sqrt()) } else { (3, base(b)) };
        for (l, &(p, q)) in net.loads.iter().zip(loads).filter(|(l, _)| l.in_service) {
            let Some(b) = net.bus(l.bus) else { continue };
            let s = C64::new(p, q) * 1e6 / 3.0;
            let (zp, ip, zq, iq) = l.zip_percent();
            let part = |fp: f64, fq: f64| C64::new(s.re * fp / 100.0, s.im * fq / 100.0);
            let (s_z, s_i) = (part(zp, zq), part(ip, iq));
            let s_p = s - s_z - s_i;
            for p in 0..3u8 {
                let (to, v_nom) = terminal(l.is_delta(), p, b);
                out.push(Injection { bus: b, from: p, to, s_p, s_i, s_z, v_nom });
            }
        }
        for (l, set) in net.asym_loads.iter().zip(asym).filter(|(l, _)| l.in_service) {
            let Some(b) = net.bus(l.bus) else { continue };
            let delta = l.kind == "delta";
            for p in 0..3u8 {
                let (pp, qq) = set[p as usize];
                let sp = C64::new(pp, qq) * 1e6;
                if sp == ZERO {
                    continue;
                }
                let (to, v_nom) = terminal(delta, p, b);
                out.push(Injection { bus: b, from: p, to, s_p: sp, s_i: ZERO, s_z: ZERO, v_nom });
            }
        }
        for (g, &(p, q)) in net.sgens.iter().zip(sgens).filter(|(g, _)| g.in_service) {
            let Some(b) = net.bus(g.bus) else { continue };
            let s = -C64::new(p, q) * 1e6 / 3.0;
            for ph in 0..3u8 {
                let (to, v_nom) = terminal(g.is_delta(), ph, b);
                out.push(Injection { bus: b, from: ph, to, s_p: s, s_i: ZERO, s_z: ZERO, v_nom });
            }
        }
        out
    }

    /// Restarts the next solve from the flat start.
    pub fn reset_flat(&mut self) {
        self.v.clone_from(&self.v_flat);
        self.solved = false;
    }

    /// Solves the power flow with these injections (warm start from the last solution). Injections at buses
    /// outside the LV network or not supplied are ignored.
    pub fn solve(&mut self, injections: &[Injection]) -> Result<FwStats, PfError> {
        let ne = self.v.len();
        // Electrical nodes of each injection.
        let inj: Vec<(usize, usize, &Injection)> = injections
            .iter()
            .filter_map(|x| {
                let k = self.bus_node.get(x.bus).copied().flatten()?;
                let (a, b) = (4 * k + x.from.min(3) as usize, 4 * k + x.to.min(3) as usize);
                (a != b && !(self.fixed[a] && self.fixed[b])).then_some((a, b, x))
            })
            .collect();
        let sym = self.sym.clone();
        let mut f = vec![ZERO; ne];
        let mut entries: Vec<(Slot, C64)> = Vec::with_capacity(self.jac_const.len() + 16 * inj.len());
        let mut rhs = vec![ZERO; 2 * ne];
        let mut last_dv = f64::INFINITY;
        for it in 1..=MAX_ITERATIONS {
            // Residual: current leaving each node minus the source currents injected into it.
            for (fi, j) in f.iter_mut().zip(&self.j_src) {
                *fi = -*j;
            }
            for &(r, c, yv) in &self.y {
                f[r] += yv * self.v[c];
            }
            entries.clear();
            entries.extend_from_slice(&self.jac_const);
            for &(a, b, x) in &inj {
                let dv = self.v[a] - self.v[b];
                let (i, da, db) = load_current(x, dv);
                f[a] += i;
                f[b] -= i;
                // dI = da dz + db conj(dz); as a real 2x2 on (Re dz, Im dz).
                let (p, q) = (da + db, da - db);
                let m = [[p.re, -q.im], [p.im, q.re]];
                let neg = [[-m[0][0], -m[0][1]], [-m[1][0], -m[1][1]]];
                for (row, col, mm) in [(a, a, m), (a, b, neg), (b, a, neg), (b, b, m)] {
                    if !self.fixed[row] {
                        push_real(&sym, &mut entries, row, col, mm);
                    }
                }
            }
            for i in 0..ne {
                if self.fixed[i] {
                    f[i] = self.v[i];
                }
                rhs[2 * i] = C64::new(-f[i].re, 0.0);
                rhs[2 * i + 1] = C64::new(-f[i].im, 0.0);
            }
            self.lu.refactor(&entries).map_err(|s| PfError::Singular { bus: self.node_name[s.0 / 8].clone() })?;
            self.lu.solve(&mut rhs);
            let mut worst = (0.0f64, 0usize);
            for i in 0..ne {
                let d = C64::new(rhs[2 * i].re, rhs[2 * i + 1].re);
                if !(d.re.is_finite() && d.im.is_finite()) {
                    return Err(PfError::NotConverged {
                        iterations: it,
                        max_dv_pu: f64::INFINITY,
                        buses: vec![self.node_name[i / 4].clone()],
                    });
                }
                self.v[i] += d;
                let pu = d.norm() / self.v_base[i / 4];
                if pu > worst.0 {
                    worst = (pu, i / 4);
                }
            }
            last_dv = worst.0;
            if worst.0 < TOLERANCE_PU {
                self.solved = true;
                return Ok(FwStats { iterations: it, max_dv_pu: worst.0 });
            }
            if it == MAX_ITERATIONS {
                self.solved = false;
                return Err(PfError::NotConverged {
                    iterations: it,
                    max_dv_pu: last_dv,
                    buses: vec![self.node_name[worst.1].clone()],
                });
            }
        }
        Err(PfError::NotConverged { iterations: MAX_ITERATIONS, max_dv_pu: last_dv, buses: Vec::new() })
    }

    /// Whether the last solve converged.
    pub fn is_solved(&self) -> bool {
        self.solved
    }

    /// Voltages to earth of a bus (V): a, b, c, n. `None` for buses outside the LV network.
    pub fn bus_voltages(&self, bus: usize) -> Option<[C64; 4]> {
        let k = self.bus_node.get(bus).copied().flatten()?;
        Some([self.v[4 * k], self.v[4 * k + 1], self.v[4 * k + 2], self.v[4 * k + 3]])
    }

    /// Nominal phase voltage of a bus (V), the per-unit base.
    pub fn bus_v_base(&self, bus: usize) -> Option<f64> {
        let k = self.bus_node.get(bus).copied().flatten()?;
        Some(self.v_base[k])
    }

    /// Phase-to-neutral voltage magnitudes of a bus, p.u. of the nominal phase voltage (what a customer's
    /// single-phase connection sees).
    pub fn phase_neutral_pu(&self, bus: usize) -> Option<[f64; 3]> {
        let v = self.bus_voltages(bus)?;
        let b = self.bus_v_base(bus)?;
        Some([(v[0] - v[3]).norm() / b, (v[1] - v[3]).norm() / b, (v[2] - v[3]).norm() / b])
    }

    /// Neutral-to-earth voltage of a bus, p.u. of the nominal phase voltage (the neutral-point shift).
    pub fn neutral_shift_pu(&self, bus: usize) -> Option<f64> {
        Some(self.bus_voltages(bus)?[3].norm() / self.bus_v_base(bus)?)
    }

    /// Currents (A) flowing into a line at its from and to ends, conductors a, b, c, n. `None` if the line
    /// is not part of the compiled LV network.
    pub fn line_currents(&self, line: usize) -> Option<([C64; 4], [C64; 4])> {
        let lb = self.lines.iter().find(|l| l.line == line)?;
        let (vf, vt) = (&self.v[4 * lb.f..4 * lb.f + 4], &self.v[4 * lb.t..4 * lb.t + 4]);
        let mut i_f = [ZERO; 4];
        let mut i_t = [ZERO; 4];
        for i in 0..4 {
            for j in 0..4 {
                let ys = lb.y[i][j];
                i_f[i] += ys * (vf[j] - vt[j]) + lb.ysh[i][j] * vf[j];
                i_t[i] += ys * (vt[j] - vf[j]) + lb.ysh[i][j] * vt[j];
            }
        }
        Some((i_f, i_t))
    }

    /// Name of the terminal `p` (0..=3) for messages.
    pub fn terminal_name(p: usize) -> &'static str {
        TERMINAL[p.min(3)]
    }
}

/// A balanced EMF (phase-to-star-point magnitude `e_mag` V at `angle` rad for phase a) behind `z` ohm per
/// phase, star point on node `k`'s neutral: a Norton admittance between each phase and the neutral with
/// its source current.
fn add_source(
    y: &mut Vec<(usize, usize, C64)>,
    j_src: &mut [C64],
    v_flat: &mut [C64],
    k: usize,
    e_mag: f64,
    angle: f64,
    z: C64,
) {
    let ys = z.inv();
    for p in 0..3 {
        let e = C64::from_polar(e_mag, angle - p as f64 * 2.0 * std::f64::consts::PI / 3.0);
        let (a, n) = (4 * k + p, 4 * k + 3);
        y.push((a, a, ys));
        y.push((n, n, ys));
        y.push((a, n, -ys));
        y.push((n, a, -ys));
        j_src[a] += ys * e;
        j_src[n] -= ys * e;
        v_flat[a] = e;
    }
}

/// Current through an injection from its `from` to its `to` terminal at voltage `dv` across it, and its
/// Wirtinger derivatives: `dI = a dV + b conj(dV)`.
fn load_current(x: &Injection, dv: C64) -> (C64, C64, C64) {
    let m2 = dv.norm_sqr().max(1e-12);
    let m = m2.sqrt();
    let vn = x.v_nom.max(1e-9);
    // Constant power: I = conj(S) / conj(V).
    let cv = dv.conj();
    let i_p = x.s_p.conj() / cv;
    let b_p = -x.s_p.conj() / (cv * cv);
    // Constant current: I = conj(S) / vn * V / |V|.
    let k = x.s_i.conj() / vn;
    let i_i = k * dv / m;
    let a_i = k / (2.0 * m);
    let b_i = -k * dv * dv / (2.0 * m2 * m);
    // Constant impedance: I = conj(S) / vn^2 * V.
    let yz = x.s_z.conj() / (vn * vn);
    (i_p + i_i + yz * dv, a_i + yz, b_p + b_i)
}

/// Adds complex admittance `v` at (row, col) of electrical nodes as its real 2x2 block.
fn push_complex(sym: &Symbolic, out: &mut Vec<(Slot, C64)>, row: usize, col: usize, v: C64) {
    push_real(sym, out, row, col, [[v.re, -v.im], [v.im, v.re]]);
}

fn push_real(sym: &Symbolic, out: &mut Vec<(Slot, C64)>, row: usize, col: usize, m: [[f64; 2]; 2]) {
    for (i, mrow) in m.iter().enumerate() {
        for (j, &val) in mrow.iter().enumerate() {
            if val != 0.0
                && let Some(s) = sym.slot(2 * row + i, 2 * col + j)
            {
                out.push((s, C64::new(val, 0.0)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::network::Line;

    fn line(r0: Option<(f64, f64)>, neutral: Option<(f64, f64)>) -> Line {
        let mut v = serde_json::json!({"index": 7, "from_bus": 0, "to_bus": 1, "length_km": 0.2,
            "r_ohm_per_km": 0.206, "x_ohm_per_km": 0.080});
        if let Some((r0, x0)) = r0 {
            v["r0_ohm_per_km"] = r0.into();
            v["x0_ohm_per_km"] = x0.into();
        }
        if let Some((rn, xn)) = neutral {
            v["rn_ohm_per_km"] = rn.into();
            v["xn_ohm_per_km"] = xn.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn derived_matrices_reproduce_the_sequence_impedances_exactly() {
        let z1 = C64::new(0.206, 0.080);
        for (r0, neutral) in [
            (Some((0.824, 0.320)), None),
            (Some((1.505, 0.083)), None),
            (Some((0.95, 0.35)), Some((0.32, 0.09))),
            (Some((0.19, 0.080)), None),
            (None, None),
        ] {
            let l = line(r0, neutral);
            let z = line_z4_ohm_per_km(&l, "line").unwrap();
            let (s1, s0) = loop_sequence_impedances(&z);
            let want0 = r0.map(|(r, x)| C64::new(r, x)).unwrap_or(z1 * 4.0);
            assert!((s1 - z1).norm() < 1e-12, "{r0:?} {neutral:?}: Z1 {s1} != {z1}");
            assert!((s0 - want0).norm() < 1e-12, "{r0:?} {neutral:?}: Z0 {s0} != {want0}");
            if let Some((rn, xn)) = neutral {
                assert_eq!(z[3][3], C64::new(rn, xn));
            }
            for i in 0..4 {
                for j in 0..4 {
                    assert_eq!(z[i][j], z[j][i]);
                }
            }
        }
    }

    #[test]
    fn service_cables_with_z0_equal_to_z1_get_a_phase_sized_neutral() {
        let l = line(Some((0.206, 0.080)), None);
        let z = line_z4_ohm_per_km(&l, "lines[3] (index 7)").unwrap();
        assert_eq!(z[3][3], C64::new(0.206, 0.080));
        let (s1, s0) = loop_sequence_impedances(&z);
        assert!((s1 - C64::new(0.206, 0.080)).norm() < 1e-12 && (s0 - s1).norm() < 1e-12);
        assert!(invert(&z).is_some());
    }

    #[test]
    fn inverse_of_a_4x4() {
        let l = line(Some((0.95, 0.35)), Some((0.32, 0.09)));
        let z = line_z4_ohm_per_km(&l, "line").unwrap();
        let y = invert(&z).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let s: C64 = (0..4).map(|k| z[i][k] * y[k][j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((s - want).norm() < 1e-12);
            }
        }
    }
}

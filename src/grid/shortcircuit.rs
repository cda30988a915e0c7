//! IEC 60909 initial symmetrical short-circuit currents (equivalent voltage source at the fault location).
//!
//! Per bus: the positive- and zero-sequence Thevenin impedances Z_k and Z_k0 (diagonal of the inverse of the
//! sequence admittance matrices without loads), then `Ik3 = c Un / (sqrt(3) |Zk|)`, `Ik2 = c Un / |2 Zk|`,
//! `Ik1 = sqrt(3) c Un / |2 Zk + Zk0|` (kA with Un in kV and Z in ohm). Voltage factors: c_max = 1.1 and
//! c_min = 0.9 on LV buses (10 % tolerance), 1.1 / 1.0 above 1 kV. The source impedance of an external grid
//! is `Zq = c Un^2 / S''kQ` with its R/X (and X0/X, R0/X0 for the zero sequence); transformers carry the
//! correction factor `K_T = 0.95 c_max / (1 + 0.6 x_T)` in the maximum case; the minimum case uses line
//! resistances at the conductor end temperature. Line capacitances, loads and magnetising branches are
//! neglected, as the standard prescribes. Transformers keep their rated ratio (no tap position, no phase
//! shift) in both cases, as IEC 60909-0:2016 6.3.3 prescribes with K_T. Static generators (PV and other
//! full-converter units) add their current-source contributions `k * I_rG` in the maximum case.
//!
//! [`short_circuit_from_prefault`] is the same calculation driven by a known pre-fault voltage instead of the
//! equivalent voltage source (the superposition method): what a fault state of the simulation must draw when
//! the network has no loads or generators, since the simulation's sources are EMFs behind IEC 60909's `Zq`.

use super::network::Network;
use super::sparse::{Lu, Slot, Symbolic};
use super::topology::{Purpose, S_BASE_MVA, Topology, c_factors};
use num_complex::Complex64 as C64;
use std::sync::Arc;

/// Short-circuit results of one bus (currents in kA, impedances in ohm). NaN where the bus has no source.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ScBus {
    pub index: i64,
    pub ikss_ka_3ph_max: f64,
    pub ikss_ka_3ph_min: f64,
    pub ikss_ka_2ph_max: f64,
    pub ikss_ka_2ph_min: f64,
    pub ikss_ka_1ph_max: f64,
    pub ikss_ka_1ph_min: f64,
    pub zk_ohm_max: [f64; 2],
    pub zk_ohm_min: [f64; 2],
    pub zk0_ohm_max: [f64; 2],
    pub zk0_ohm_min: [f64; 2],
}

/// One factorised sequence admittance matrix over the nodes that reach a source in that sequence.
pub(crate) struct SeqSystem {
    lu: Lu,
    /// Position of each node in the factorised system (`usize::MAX`: not part of it).
    idx: Vec<usize>,
    nodes: Vec<usize>,
}

impl SeqSystem {
    /// The node voltages `Z I` (per unit) that the current injections `inj` (node, per-unit current) cause,
    /// by node; `None` outside the system. One solve, however many injections.
    pub(crate) fn response(&mut self, inj: &[(usize, C64)], n: usize) -> Vec<Option<C64>> {
        let mut rhs = vec![C64::new(0.0, 0.0); self.nodes.len()];
        for &(k, i) in inj {
            if let Some(&u) = self.idx.get(k).filter(|u| **u != usize::MAX) {
                rhs[u] += i;
            }
        }
        self.lu.solve(&mut rhs);
        let mut out = vec![None; n];
        for (v, &m) in rhs.iter().zip(&self.nodes) {
            out[m] = Some(*v);
        }
        out
    }
}

/// Diagonal of the inverse of one sequence admittance matrix over the energised nodes (per unit); `None`
/// for nodes with no path to a source in that sequence. Also returns the factorised system (for the
/// converter contributions). The diagonal comes from a sparse selected inversion of the factor
/// ([`Lu::inverse_diagonal`]): its cost follows the factor's fill, linear for radial and weakly meshed feeders,
/// where one triangular solve per node would grow with the square of the node count.
pub(crate) fn thevenin_diagonal(topo: &Topology, seq: usize) -> (Vec<Option<C64>>, Option<SeqSystem>) {
    let n = topo.n_nodes;
    let zero = C64::new(0.0, 0.0);
    let prim = |b: &super::topology::Branch| if seq == 0 { b.y0 } else { b.y1 };
    // Components that reach a shunt (source) in this sequence.
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut grounded = vec![false; n];
    for b in &topo.branches {
        let y = prim(b);
        if y.iter().any(|v| !v.re.is_finite()) {
            continue;
        }
        if y[1] != zero {
            adj[b.f].push(b.t);
            adj[b.t].push(b.f);
        }
        if y[1] == zero {
            if y[0] != zero {
                grounded[b.f] = true;
            }
            if y[3] != zero {
                grounded[b.t] = true;
            }
        }
    }
    for &(k, y1, _, y0) in &topo.shunts {
        if (if seq == 0 { y0 } else { y1 }) != zero {
            grounded[k] = true;
        }
    }
    let mut member = vec![false; n];
    let mut seen = vec![false; n];
    for s in 0..n {
        if seen[s] {
            continue;
        }
        let mut comp = vec![s];
        seen[s] = true;
        let mut i = 0;
        while i < comp.len() {
            let k = comp[i];
            i += 1;
            for &m in &adj[k] {
                if !seen[m] {
                    seen[m] = true;
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
    let mut idx = vec![usize::MAX; n];
    let mut nodes = Vec::new();
    for k in 0..n {
        if member[k] {
            idx[k] = nodes.len();
            nodes.push(k);
        }
    }
    let mut edges = Vec::new();
    for b in &topo.branches {
        let y = prim(b);
        if y[1] != zero && y[1].re.is_finite() && idx[b.f] != usize::MAX && idx[b.t] != usize::MAX {
            edges.push((idx[b.f], idx[b.t]));
        }
    }
    let sym = Arc::new(Symbolic::new(nodes.len(), &edges));
    let mut entries: Vec<(Slot, C64)> = Vec::new();
    for b in &topo.branches {
        let y = prim(b);
        if y.iter().any(|v| !v.re.is_finite()) {
            continue;
        }
        for (r, c, v) in [(b.f, b.f, y[0]), (b.f, b.t, y[1]), (b.t, b.f, y[2]), (b.t, b.t, y[3])] {
            if v != zero
                && idx[r] != usize::MAX
                && idx[c] != usize::MAX
                && let Some(s) = sym.slot(idx[r], idx[c])
            {
                entries.push((s, v));
            }
        }
    }
    for &(k, y1, _, y0) in &topo.shunts {
        if idx[k] != usize::MAX {
            entries.push((sym.slot(idx[k], idx[k]).expect("diagonal"), if seq == 0 { y0 } else { y1 }));
        }
    }
    let mut lu = Lu::new(sym);
    let mut out = vec![None; n];
    if lu.refactor(&entries).is_err() {
        return (out, None);
    }
    for (z, &k) in lu.inverse_diagonal().into_iter().zip(&nodes) {
        out[k] = Some(z);
    }
    (out, Some(SeqSystem { lu, idx, nodes }))
}

/// Short-circuit current contributions of full-converter units (IEC 60909-0:2016, 6.2 and eq. 29 ff.): each
/// in-service static generator is a current source of `k * I_rG` at its bus; at a fault at bus b it adds
/// `|sum_j Z_bj / Z_bb * I_j|` to the initial current of the network (maximum case only; the minimum case
/// neglects them). The source angle is `-arg(Z_jj)` for the three-phase fault and -90 degrees for the
/// unbalanced ones, as pandapower's `calc_sc` takes them. Returns per node: (three-phase, two-phase and
/// single-phase) additions in per unit of current, or zeros where there is no generation.
fn converter_contributions(
    net: &Network,
    topo: &Topology,
    sys: Option<&mut SeqSystem>,
    z1: &[Option<C64>],
) -> Vec<[f64; 2]> {
    let n = topo.n_nodes;
    let mut out = vec![[0.0; 2]; n];
    let Some(sys) = sys else { return out };
    // Per-unit source current per node (rating x k; sums over the node's generators).
    let mut src: Vec<(usize, f64)> = Vec::new();
    for g in net.sgens.iter().filter(|g| g.in_service) {
        let Some(b) = net.bus(g.bus) else { continue };
        let Some(k) = topo.bus_node[b] else { continue };
        let i_pu = g.rating_mva() * g.k_factor() / S_BASE_MVA;
        if i_pu > 0.0 && z1[k].is_some() {
            match src.iter_mut().find(|s| s.0 == k) {
                Some(s) => s.1 += i_pu,
                None => src.push((k, i_pu)),
            }
        }
    }
    if src.is_empty() {
        return out;
    }
    src.sort_by_key(|s| s.0);
    // sum_j Z_bj I_j at every bus b is the vector Z I: one solve per angle convention, not one per source.
    let mut inj3 = Vec::with_capacity(src.len());
    let mut inj90 = Vec::with_capacity(src.len());
    for &(j, i_pu) in &src {
        let Some(zjj) = z1[j] else { continue };
        inj3.push((j, C64::from_polar(i_pu, -zjj.arg())));
        inj90.push((j, C64::new(0.0, -i_pu)));
    }
    let v3 = sys.response(&inj3, n);
    let v90 = sys.response(&inj90, n);
    let acc: Vec<[C64; 2]> = v3.iter().zip(&v90).map(|(a, b)| [a.unwrap_or_default(), b.unwrap_or_default()]).collect();
    for b in 0..n {
        if let Some(zbb) = z1[b] {
            out[b] = [acc[b][0].norm() / zbb.norm(), acc[b][1].norm() / zbb.norm()];
        }
    }
    out
}

/// Initial short-circuit currents of one bus from its pre-fault voltage (kA), with the Thevenin impedances
/// they come from (ohm); NaN where the bus has no source.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ScPrefaultBus {
    pub index: i64,
    pub ikss_ka_3ph: f64,
    pub ikss_ka_2ph: f64,
    pub ikss_ka_1ph: f64,
    pub zk_ohm: [f64; 2],
    pub zk0_ohm: [f64; 2],
}

/// IEC 60909 short-circuit currents at every in-service bus (file order) driven by the pre-fault
/// positive-sequence voltage `v_prefault_pu[b]` (p.u. of the phase base, by bus position) instead of the
/// equivalent voltage source `c Un / sqrt(3)`, through `r_f_ohm` per faulted conductor:
/// `I3 = |V| / |Z1 + Rf|`, `I2 = sqrt(3) |V| / |2 Z1 + Rf|` (two phases through `Rf`),
/// `I1 = 3 |V| / |2 Z1 + Z0 + 3 Rf|`. The impedances are [`Purpose::ScPrefault`]'s: external grids with
/// `Zq = c_max Un^2 / S''kQ`, transformers at their tap position without `K_T`, series impedances only.
/// Loads and generators are neglected, so this is exactly what a network without them draws from EMFs
/// behind `Zq`, up to the line capacitances and magnetising branches the standard neglects.
pub fn short_circuit_from_prefault(
    net: &Network,
    v_prefault_pu: &[C64],
    r_f_ohm: f64,
) -> Result<Vec<ScPrefaultBus>, String> {
    if v_prefault_pu.len() != net.buses.len() {
        return Err(format!("pre-fault voltages: {} given for {} buses", v_prefault_pu.len(), net.buses.len()));
    }
    let closed: Vec<bool> = net.switches.iter().map(|s| s.closed).collect();
    let in_service: Vec<bool> = net.lines.iter().map(|l| l.in_service).collect();
    let topo = Topology::build(net, &closed, &in_service, Purpose::ScPrefault)?;
    let (z1, _) = thevenin_diagonal(&topo, 1);
    let (z0, _) = thevenin_diagonal(&topo, 0);
    let nan = f64::NAN;
    let mut out = Vec::with_capacity(net.buses.len());
    for (b, bus) in net.buses.iter().enumerate() {
        let un = bus.vn_kv;
        let zb = un * un / S_BASE_MVA;
        let get = |z: &[Option<C64>]| topo.bus_node[b].and_then(|k| z[k]).map(|v| v * zb);
        let (z1b, z0b) = (get(&z1), get(&z0));
        let e_kv = v_prefault_pu[b].norm() * un / 3f64.sqrt();
        let rf = C64::new(r_f_ohm, 0.0);
        let pair = |z: Option<C64>| z.map_or([nan, nan], |z| [z.re, z.im]);
        out.push(ScPrefaultBus {
            index: bus.index,
            ikss_ka_3ph: z1b.map_or(nan, |z| e_kv / (z + rf).norm()),
            ikss_ka_2ph: z1b.map_or(nan, |z| 3f64.sqrt() * e_kv / (z * 2.0 + rf).norm()),
            ikss_ka_1ph: match (z1b, z0b) {
                (Some(z), Some(z0)) => 3.0 * e_kv / (z * 2.0 + z0 + rf * 3.0).norm(),
                _ => nan,
            },
            zk_ohm: pair(z1b),
            zk0_ohm: pair(z0b),
        });
    }
    Ok(out)
}

/// Short-circuit currents at every in-service bus (in file order).
pub fn short_circuit(net: &Network) -> Result<Vec<ScBus>, String> {
    let closed: Vec<bool> = net.switches.iter().map(|s| s.closed).collect();
    let in_service: Vec<bool> = net.lines.iter().map(|l| l.in_service).collect();
    let tmax = Topology::build(net, &closed, &in_service, Purpose::ScMax)?;
    let tmin = Topology::build(net, &closed, &in_service, Purpose::ScMin)?;
    let (z1max, mut sys1max) = thevenin_diagonal(&tmax, 1);
    let (z0max, _) = thevenin_diagonal(&tmax, 0);
    let (z1min, _) = thevenin_diagonal(&tmin, 1);
    let (z0min, _) = thevenin_diagonal(&tmin, 0);
    let conv = converter_contributions(net, &tmax, sys1max.as_mut(), &z1max);
    let mut out = Vec::with_capacity(net.buses.len());
    let nan = f64::NAN;
    for (b, bus) in net.buses.iter().enumerate() {
        let un = bus.vn_kv;
        let zb = un * un / S_BASE_MVA;
        let (cmax, cmin) = c_factors(un);
        let get = |t: &Topology, z: &[Option<C64>]| t.bus_node[b].and_then(|k| z[k]).map(|v| v * zb);
        let (z1x, z0x, z1n, z0n) = (get(&tmax, &z1max), get(&tmax, &z0max), get(&tmin, &z1min), get(&tmin, &z0min));
        let ik3 = |c: f64, z: Option<C64>| z.map_or(nan, |z| c * un / (3f64.sqrt() * z.norm()));
        let ik2 = |c: f64, z: Option<C64>| z.map_or(nan, |z| c * un / (2.0 * z.norm()));
        let ik1 = |c: f64, z: Option<C64>, z0: Option<C64>| match (z, z0) {
            (Some(z), Some(z0)) => 3f64.sqrt() * c * un / (z * 2.0 + z0).norm(),
            (Some(_), None) => nan,
            _ => nan,
        };
        let pair = |z: Option<C64>| z.map_or([nan, nan], |z| [z.re, z.im]);
        // Converter contributions (maximum case), per unit of current to kA at this bus.
        let i_base_ka = S_BASE_MVA / (3f64.sqrt() * un);
        let [c3, c90] = tmax.bus_node[b].map_or([0.0; 2], |k| conv[k]).map(|v| v * i_base_ka);
        out.push(ScBus {
            index: bus.index,
            ikss_ka_3ph_max: ik3(cmax, z1x) + c3,
            ikss_ka_3ph_min: ik3(cmin, z1n),
            ikss_ka_2ph_max: ik2(cmax, z1x) + c90,
            ikss_ka_2ph_min: ik2(cmin, z1n),
            ikss_ka_1ph_max: ik1(cmax, z1x, z0x) + c90,
            ikss_ka_1ph_min: ik1(cmin, z1n, z0n),
            zk_ohm_max: pair(z1x),
            zk_ohm_min: pair(z1n),
            zk0_ohm_max: pair(z0x),
            zk0_ohm_min: pair(z0n),
        });
    }
    Ok(out)
}

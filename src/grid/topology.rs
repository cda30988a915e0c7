//! Compiling a [`Network`] (plus switch states) into sequence admittance primitives on nodes.
//!
//! Closed bus-bus switches merge buses into one node; an open switch at a line or transformer terminal gives
//! that terminal its own node (the branch still charges from its other end). Every branch becomes three 2x2
//! per-unit admittance primitives (positive, negative, zero sequence) on the node voltage bases (kV
//! line-to-line, system base 1 MVA). Transformers use the T equivalent circuit (series impedance split in two
//! halves, magnetising branch in the middle), which is pandapower's default `trafo_model="t"`.

use super::network::Network;
use num_complex::Complex64 as C64;

/// Per-unit power base in MVA.
pub const S_BASE_MVA: f64 = 1.0;

/// What the primitives are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Power flow: full line pi models, transformer T model with magnetising branch.
    PowerFlow,
    /// A short-circuit state of the simulation: as `PowerFlow`, except that the zero sequence of transformers with a
    /// delta winding is their zero-sequence short-circuit impedance (`vk0_percent`, what a fault on the
    /// earthed side drives current through, as IEC 60909 takes it) without the T model's zero-sequence
    /// magnetising branch. Compile it, then give the external grids their source impedances
    /// ([`Topology::with_source_impedances`]). A state with only open conductors (no fault current) keeps
    /// `PowerFlow`'s zero-sequence model, with the source impedances.
    FaultState,
    /// IEC 60909 maximum currents: series impedances only, transformer correction factor K_T.
    ScMax,
    /// IEC 60909 minimum currents: series impedances only, line resistance at the end temperature.
    ScMin,
    /// IEC 60909's impedances for a short circuit computed from the actual pre-fault voltage (the
    /// superposition method) instead of the equivalent voltage source `c Un / sqrt(3)`: series impedances
    /// only, external grids with the standard's `Zq`, transformers at their tap position and phase shift and
    /// without `K_T` (which only corrects the equivalent source for the unknown pre-fault state).
    ScPrefault,
}

/// Which element a branch comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    Line(usize),
    Trafo(usize),
    /// The source impedance of an external grid (position in `Network::ext_grids`) between its internal
    /// source node and its bus, in fault states ([`Topology::with_source_impedances`]).
    Source(usize),
    /// A closed bus-bus switch with an impedance (`z_ohm` > 0; position in `Network::switches`).
    Switch(usize),
}

impl std::fmt::Display for Element {
    /// The element as the network file's tables name it: `lines[3]`, `trafos[0]`, `switches[2]`, `ext_grid[0]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Element::Line(k) => write!(f, "lines[{k}]"),
            Element::Trafo(k) => write!(f, "trafos[{k}]"),
            Element::Source(k) => write!(f, "ext_grid[{k}]"),
            Element::Switch(k) => write!(f, "switches[{k}]"),
        }
    }
}

/// What an element without a zero-sequence model lacks (for the unbalanced flow's error).
pub const NO_ZERO_SEQUENCE: &str = "no zero-sequence model: a line needs r0_ohm_per_km and x0_ohm_per_km, a \
     transformer one of the vector groups Dyn, YNd, YNyn, Yyn, YNy, Yzn, Dzn, ZNyn, ZNd, ZNy, Zd, Yy, Yd, Dy, Dd, \
     Yz, Dz";

/// pandapower's factor on a Yzn transformer's zero-sequence shunt (its `1.1547`, not exactly 2/sqrt(3)):
/// kept as written so the two agree to rounding.
const YZN_FACTOR: f64 = 1.1547;

/// An in-service external grid as compiled: its slack entry and, where it has a short-circuit power, its
/// source-impedance shunt.
#[derive(Clone, Copy, Debug)]
pub struct SourceRef {
    /// Position in `Network::ext_grids`.
    pub ext_grid: usize,
    pub node: usize,
    /// Position in `Topology::slacks` (power flow only).
    pub slack: Option<usize>,
    /// Position in `Topology::shunts`.
    pub shunt: Option<usize>,
}

/// A branch's nodal admittance primitive: [y_ff, y_ft, y_tf, y_tt] per sequence (per unit).
#[derive(Clone, Debug)]
pub struct Branch {
    pub element: Element,
    pub f: usize,
    pub t: usize,
    pub y1: [C64; 4],
    pub y2: [C64; 4],
    pub y0: [C64; 4],
    /// Current base in kA at the from and to nodes.
    pub i_base_ka: [f64; 2],
}

/// A compiled network: nodes, branches, slacks and shunts per sequence.
#[derive(Clone, Debug)]
pub struct Topology {
    pub n_nodes: usize,
    /// Node of each bus (by bus position); `None` if the bus is out of service.
    pub bus_node: Vec<Option<usize>>,
    /// A representative bus position of each node (for naming).
    pub node_bus: Vec<usize>,
    pub node_vn_kv: Vec<f64>,
    pub branches: Vec<Branch>,
    /// Slack nodes with their positive-sequence voltage (per unit, angle in radians applied).
    pub slacks: Vec<(usize, C64)>,
    /// Sequence shunts to ground at nodes: (node, y1, y2, y0) per unit (external grid source impedances in
    /// SC; ext grid negative/zero sequence impedances in power flow).
    pub shunts: Vec<(usize, C64, C64, C64)>,
    /// Nodes connected to a slack through in-service branches.
    pub energised: Vec<bool>,
    /// The in-service external grids, in file order.
    pub sources: Vec<SourceRef>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Voltage factor c of IEC 60909 at a bus of `vn_kv` (LV tolerance 10 %): (c_max, c_min).
pub fn c_factors(vn_kv: f64) -> (f64, f64) {
    if vn_kv < 1.0 { (1.1, 0.9) } else { (1.1, 1.0) }
}

/// Resistance factor at the end temperature of a short circuit (copper/aluminium alpha = 0.004 1/K).
pub fn end_temperature_factor(endtemp_degree: f64) -> f64 {
    1.0 + 0.004 * (endtemp_degree - 20.0)
}

impl Topology {
    /// Compiles `net` with the given switch states (`closed[k]` for `net.switches[k]`) and line service
    /// overrides (`line_in_service[k]`).
    pub fn build(
        net: &Network,
        closed: &[bool],
        line_in_service: &[bool],
        purpose: Purpose,
    ) -> Result<Topology, String> {
        // The full network model (line capacitances, magnetising branches, taps, slacks).
        let full = matches!(purpose, Purpose::PowerFlow | Purpose::FaultState);
        let nb = net.buses.len();
        let mut parent: Vec<usize> = (0..nb).collect();
        // Closed bus-bus switches join their buses into one node; those with an impedance become branches.
        for (k, s) in net.switches.iter().enumerate() {
            if s.et == "b"
                && !s.has_impedance()
                && closed.get(k).copied().unwrap_or(s.closed)
                && let (Some(a), Some(b)) = (net.bus(s.bus), net.bus(s.element))
                && net.buses[a].in_service
                && net.buses[b].in_service
            {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                if ra != rb {
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
        }
        let mut bus_node = vec![None; nb];
        let mut node_bus = Vec::new();
        let mut node_vn_kv = Vec::new();
        let mut root_node = vec![usize::MAX; nb];
        for b in 0..nb {
            if !net.buses[b].in_service {
                continue;
            }
            let r = find(&mut parent, b);
            if root_node[r] == usize::MAX {
                root_node[r] = node_bus.len();
                node_bus.push(b);
                node_vn_kv.push(net.buses[r].vn_kv);
            }
            bus_node[b] = Some(root_node[r]);
        }
        // Terminals with an open switch get an auxiliary node.
        let open_terminal = |et: &str, element: i64, bus: i64| -> bool {
            net.switches.iter().enumerate().any(|(k, s)| {
                s.et == et && s.element == element && s.bus == bus && !closed.get(k).copied().unwrap_or(s.closed)
            })
        };
        let mut topo = Topology {
            n_nodes: 0,
            bus_node,
            node_bus,
            node_vn_kv,
            branches: Vec::new(),
            slacks: Vec::new(),
            shunts: Vec::new(),
            energised: Vec::new(),
            sources: Vec::new(),
        };
        let aux = |topo: &mut Topology, bus: usize| -> usize {
            topo.node_bus.push(bus);
            topo.node_vn_kv.push(net.buses[bus].vn_kv);
            topo.node_bus.len() - 1
        };
        let w = 2.0 * std::f64::consts::PI * net.f_hz;
        let zero = C64::new(0.0, 0.0);
        for (k, l) in net.lines.iter().enumerate() {
            if !line_in_service.get(k).copied().unwrap_or(l.in_service) {
                continue;
            }
            let (fb, tb) = (net.bus(l.from_bus).unwrap_or(0), net.bus(l.to_bus).unwrap_or(0));
            // A line at an out-of-service bus stays connected at its other end, open at this one (its
            // capacitance still loads the live end), as pandapower takes it; between two, it is out.
            let (mut f, mut t) = match (topo.bus_node[fb], topo.bus_node[tb]) {
                (Some(f), Some(t)) => (f, t),
                (Some(f), None) => (f, aux(&mut topo, tb)),
                (None, Some(t)) => (aux(&mut topo, fb), t),
                (None, None) => continue,
            };
            if open_terminal("l", l.index, l.from_bus) {
                f = aux(&mut topo, fb);
            }
            if open_terminal("l", l.index, l.to_bus) {
                t = aux(&mut topo, tb);
            }
            if f == t {
                continue;
            }
            let vb = net.buses[fb].vn_kv;
            let zb = vb * vb / S_BASE_MVA;
            let len = l.length_km;
            let par = l.parallel;
            let rfac = if purpose == Purpose::ScMin { end_temperature_factor(l.endtemp_degree) } else { 1.0 };
            let z1 = C64::new(l.r_ohm_per_km * rfac, l.x_ohm_per_km) * len / par / zb;
            let ysh1 =
                if full { C64::new(l.g_us_per_km * 1e-6, w * l.c_nf_per_km * 1e-9) * len * par * zb } else { zero };
            let y1s = z1.inv();
            let y1 = [y1s + ysh1 / 2.0, -y1s, -y1s, y1s + ysh1 / 2.0];
            let y0 = match (l.r0_ohm_per_km, l.x0_ohm_per_km) {
                (Some(r0), Some(x0)) if r0 > 0.0 || x0 > 0.0 => {
                    let z0 = C64::new(r0 * rfac, x0) * len / par / zb;
                    let ysh0 = if full {
                        C64::new(0.0, w * l.c0_nf_per_km.unwrap_or(0.0) * 1e-9) * len * par * zb
                    } else {
                        zero
                    };
                    let y0s = z0.inv();
                    [y0s + ysh0 / 2.0, -y0s, -y0s, y0s + ysh0 / 2.0]
                }
                _ => [C64::new(f64::NAN, 0.0); 4],
            };
            let ib = S_BASE_MVA / (3f64.sqrt() * vb);
            topo.branches.push(Branch { element: Element::Line(k), f, t, y1, y2: y1, y0, i_base_ka: [ib, ib] });
        }
        for (k, s) in net.switches.iter().enumerate() {
            if !(s.has_impedance() && closed.get(k).copied().unwrap_or(s.closed)) {
                continue;
            }
            let (Some(a), Some(b)) = (net.bus(s.bus), net.bus(s.element)) else { continue };
            let (Some(f), Some(t)) = (topo.bus_node[a], topo.bus_node[b]) else { continue };
            if f == t {
                continue; // joined anyway by switches without impedance
            }
            // The same impedance in every sequence, as pandapower takes it.
            let vb = net.buses[a].vn_kv;
            let zb = vb * vb / S_BASE_MVA;
            let y = (s.impedance_ohm() / zb).inv();
            let prim = [y, -y, -y, y];
            let ib = S_BASE_MVA / (3f64.sqrt() * vb);
            topo.branches.push(Branch {
                element: Element::Switch(k),
                f,
                t,
                y1: prim,
                y2: prim,
                y0: prim,
                i_base_ka: [ib, ib],
            });
        }
        for (k, tr) in net.trafos.iter().enumerate() {
            if !tr.in_service {
                continue;
            }
            let (hb, lb) = (net.bus(tr.hv_bus).unwrap_or(0), net.bus(tr.lv_bus).unwrap_or(0));
            let (Some(mut f), Some(mut t)) = (topo.bus_node[hb], topo.bus_node[lb]) else { continue };
            if open_terminal("t", tr.index, tr.hv_bus) {
                f = aux(&mut topo, hb);
            }
            if open_terminal("t", tr.index, tr.lv_bus) {
                t = aux(&mut topo, lb);
            }
            if f == t {
                continue;
            }
            let (vh, vl) = (net.buses[hb].vn_kv, net.buses[lb].vn_kv);
            // Tap changer: scales the rated voltage of its side; phase-shifting taps add to the shift. IEC 60909
            // (equivalent voltage source, 6.3.3) takes transformers at their rated ratio with the correction
            // factor K_T instead, and a balanced short circuit does not depend on the vector group's phase
            // shift, so both are power-flow only (as in pandapower's `calc_sc`).
            let at_tap = full || purpose == Purpose::ScPrefault;
            let steps = if at_tap { tr.tap_steps() } else { 0.0 };
            let (vn_hv, vn_lv) = tr.rated_kv_at_tap(steps);
            let shift_deg = if at_tap { tr.shift_degree_at_tap(steps) } else { 0.0 };
            let shift = shift_deg.to_radians();
            let ratio = (vn_hv / vn_lv) / (vh / vl);
            let t1 = C64::from_polar(ratio, shift);
            let t2 = C64::from_polar(ratio, -shift);
            let scale = (vn_lv / vl).powi(2) * S_BASE_MVA / tr.sn_mva / tr.parallel;
            let vkx = (tr.vk_percent.powi(2) - tr.vkr_percent.powi(2)).max(0.0).sqrt();
            let mut zs = C64::new(tr.vkr_percent, vkx) / 100.0 * scale;
            let (cmax, _) = c_factors(vl);
            let kt = 0.95 * cmax / (1.0 + 0.6 * vkx / 100.0);
            if purpose == Purpose::ScMax {
                zs *= kt;
            }
            let core = if full {
                // T model: halves of the series impedance around the magnetising admittance.
                let vl2 = vn_lv * vn_lv;
                let g = tr.pfe_kw / 1000.0 / vl2;
                let b =
                    ((tr.i0_percent / 100.0 * tr.sn_mva).powi(2) - (tr.pfe_kw / 1000.0).powi(2)).max(0.0).sqrt() / vl2;
                let ym = C64::new(g, -b) * tr.parallel * (vl * vl / S_BASE_MVA);
                let y1 = (zs / 2.0).inv();
                let d = y1 + y1 + ym;
                [y1 - y1 * y1 / d, -y1 * y1 / d]
            } else {
                let ys = zs.inv();
                [ys, -ys]
            };
            let prim = |t: C64| [core[0] / t.norm_sqr(), core[1] / t.conj(), core[1] / t, core[0]];
            // Zero sequence from the vector group (delta windings block zero-sequence current).
            let vk0 = tr.vk0_percent.filter(|v| *v > 0.0).unwrap_or(tr.vk_percent);
            let vkr0 = tr.vkr0_percent.filter(|v| *v > 0.0).unwrap_or(tr.vkr_percent);
            let vkx0 = (vk0 * vk0 - vkr0 * vkr0).max(0.0).sqrt();
            let scale0 = (vn_lv / vl).powi(2) * S_BASE_MVA / tr.sn_mva;
            let mut z0k = C64::new(vkr0, vkx0) / 100.0 * scale0 / tr.parallel;
            if purpose == Purpose::ScMax {
                z0k *= kt;
            }
            // Zero-sequence magnetising impedance: mag0_percent of the zero-sequence short-circuit impedance.
            let zm_abs = vk0 / 100.0 * scale0 * tr.mag0_percent / 100.0;
            let xm = zm_abs / (tr.mag0_rx * tr.mag0_rx + 1.0).sqrt();
            let z_mag = C64::new(xm * tr.mag0_rx, xm) / tr.parallel;
            let z1 = z0k * tr.si0_hv_partial;
            let z2 = z0k * (1.0 - tr.si0_hv_partial);
            // The T of z1, z2 and z_mag as a pi: series 1 / zc = z_mag / tz, shunts 1 / za = z2 / tz at HV and
            // 1 / zb = z1 / tz at LV.
            let tz = z1 * z2 + z2 * z_mag + z1 * z_mag;
            let vg = tr.windings();
            let nan = C64::new(f64::NAN, 0.0);
            let y0 = match vg.as_str() {
                "dyn" => {
                    let y = if purpose == Purpose::PowerFlow {
                        (z2 + if z1.norm() > 0.0 { z1 * z_mag / (z1 + z_mag) } else { zero }).inv()
                    } else {
                        z0k.inv()
                    };
                    [zero, zero, zero, y]
                }
                "ynd" => {
                    let y = if purpose == Purpose::PowerFlow {
                        (z1 + if z2.norm() > 0.0 { z2 * z_mag / (z2 + z_mag) } else { zero }).inv()
                    } else {
                        z0k.inv()
                    };
                    // Referred to the HV side through the ratio.
                    [y / (ratio * ratio), zero, zero, zero]
                }
                "ynyn" => {
                    // Both stars earthed: the T of z1 (HV part), z2 (LV part) and the magnetising z_mag to earth
                    // at its centre, as its equivalent pi (series yc, shunts yan at HV and ybn at LV), in every
                    // calculation, as pandapower takes it (it has no other YNyn zero-sequence model).
                    let (yc, yan, ybn) = (z_mag / tz, z2 / tz, z1 / tz);
                    [(yc + yan) / (ratio * ratio), -yc / ratio, -yc / ratio, yc + ybn]
                }
                // One star earthed, the other not: zero-sequence current flows through the earthed winding and
                // the magnetising path only. IEC 60909 (pandapower's `calc_sc`, pi model): z0k + z_mag; power
                // flow (T model): that winding's part of z0k + z_mag.
                "yyn" => {
                    let z = if purpose == Purpose::PowerFlow { z2 + z_mag } else { z0k + z_mag };
                    [zero, zero, zero, z.inv()]
                }
                "yny" => {
                    let z = if purpose == Purpose::PowerFlow { z1 + z_mag } else { z0k + z_mag };
                    [z.inv() / (ratio * ratio), zero, zero, zero]
                }
                // A zigzag LV winding: its zero sequence is a shunt to earth at the LV side, the HV side
                // decoupled. pandapower's model (pd2ppc_zero, in every calculation): the T above seen from LV
                // with the HV terminal earthed, y = 1 / (zc + za) + 1 / zb, times 1.1547 (about 2/sqrt(3), its
                // constant as written). pandapower also multiplies it by the network's base power (`sn_mva`);
                // gridtwin follows it at 1 MVA, since a model must not depend on its per-unit base.
                // Dzn takes the same shunt, which pandapower does not model: each limb of a zigzag carries the
                // zero-sequence currents of two phases in opposite senses, so they set up no zero-sequence flux
                // and the HV winding, star or delta, carries none. What the LV terminals see is the zigzag's own
                // leakage, which the data's vk0 gives for either group (and the T with its HV terminal earthed,
                // pandapower's reading of it, is exactly what a delta presents to a zero sequence).
                "yzn" | "dzn" => {
                    let y = z_mag * z2 / (tz * (z2 + z_mag)) + z1 / tz;
                    [zero, zero, zero, y * YZN_FACTOR]
                }
                // A zigzag HV winding decouples the two sides' zero sequences: an earthed zigzag is a shunt to
                // earth at HV through its own part of the leakage, and an earthed LV star (ZNyn) one at LV through
                // its part and the magnetising path (pandapower's model, from the T above; it has them in IEC
                // 60909 only, its three-phase flow refuses them). Solidly earthed with no leakage of its own
                // (`si0_hv_partial` 0) the shunt would be infinite: no model then.
                "znyn" | "znd" | "zny" | "zd" if z1.norm() > 0.0 => {
                    let lv = if vg == "znyn" { (z2 + z_mag).inv() } else { zero };
                    [z1.inv(), zero, zero, lv]
                }
                // No earthed star point on either side: no zero-sequence current through the transformer.
                "yy" | "yd" | "dy" | "dd" | "yz" | "dz" => [zero; 4],
                _ => [nan; 4],
            };
            let ibh = S_BASE_MVA / (3f64.sqrt() * vh);
            let ibl = S_BASE_MVA / (3f64.sqrt() * vl);
            topo.branches.push(Branch {
                element: Element::Trafo(k),
                f,
                t,
                y1: prim(t1),
                y2: prim(t2),
                y0,
                i_base_ka: [ibh, ibl],
            });
        }
        topo.n_nodes = topo.node_bus.len();
        for (ei, e) in net.ext_grids.iter().enumerate().filter(|(_, e)| e.in_service) {
            let Some(b) = net.bus(e.bus) else { continue };
            let Some(node) = topo.bus_node[b] else { continue };
            let vn = net.buses[b].vn_kv;
            let (cmax, cmin) = c_factors(vn);
            let (c, s_sc, rx, x0x, r0x0) = match purpose {
                Purpose::ScMin => (cmin, e.s_sc_min_mva, e.rx_min, e.x0x_min, e.r0x0_min),
                // Power flow uses the maximum-case source impedance with c = 1.1 for the negative and zero
                // sequences (as pandapower's three-phase power flow does).
                _ => (cmax, e.s_sc_max_mva, e.rx_max, e.x0x_max, e.r0x0_max),
            };
            let v = C64::from_polar(e.vm_pu, e.va_degree.to_radians());
            let mut source = SourceRef { ext_grid: ei, node, slack: None, shunt: None };
            if full {
                source.slack = Some(topo.slacks.len());
                topo.slacks.push((node, v));
            }
            if let Some(s_sc) = s_sc {
                source.shunt = Some(topo.shunts.len());
                let rx = rx.unwrap_or(0.1);
                let z = c * S_BASE_MVA / s_sc;
                let x = z / (rx * rx + 1.0).sqrt();
                let zq = C64::new(rx * x, x);
                let x0 = x0x.unwrap_or(1.0) * x;
                let zq0 = C64::new(r0x0.unwrap_or(rx) * x0, x0);
                topo.shunts.push((node, zq.inv(), zq.inv(), zq0.inv()));
                topo.sources.push(source);
            } else if !full {
                return Err(format!(
                    "ext_grid {} has no s_sc_{}_mva: needed for short-circuit calculations",
                    e.index,
                    if purpose == Purpose::ScMin { "min" } else { "max" }
                ));
            } else {
                topo.sources.push(source);
            }
        }
        // Energised nodes: reachable from a slack (power flow) or a source (short circuit).
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); topo.n_nodes];
        for br in &topo.branches {
            adj[br.f].push(br.t);
            adj[br.t].push(br.f);
        }
        let mut energised = vec![false; topo.n_nodes];
        let mut stack: Vec<usize> = match purpose {
            Purpose::PowerFlow | Purpose::FaultState => topo.slacks.iter().map(|s| s.0).collect(),
            _ => topo.shunts.iter().map(|s| s.0).collect(),
        };
        while let Some(n) = stack.pop() {
            if energised[n] {
                continue;
            }
            energised[n] = true;
            stack.extend(adj[n].iter().copied().filter(|&m| !energised[m]));
        }
        topo.energised = energised;
        Ok(topo)
    }

    /// The power-flow topology of a fault state: every external grid with a short-circuit power becomes an
    /// EMF behind its source impedance `Zq` (IEC 60909's `c Un^2 / S''kQ` with its R/X; `X0/X`, `R0/X0` in
    /// the zero sequence) instead of an ideal voltage at its bus. Each such grid gets an internal node
    /// holding the slack at `emf(ext_grid)` (per unit, positive sequence; the bus set point where `None`)
    /// and a [`Element::Source`] branch to its bus carrying `Zq` in all three sequences (the internal node is
    /// earthed for the negative and zero sequences, so those see exactly the shunts the power flow uses).
    /// In power flow pandapower and gridtwin keep the ideal source; only a fault state sees `Zq`.
    pub fn with_source_impedances(mut self, emf: &dyn Fn(usize) -> Option<C64>) -> Topology {
        let mut drop_shunts = Vec::new();
        for k in 0..self.sources.len() {
            let src = self.sources[k];
            let (Some(slack), Some(shunt)) = (src.slack, src.shunt) else { continue };
            let (node, y1, y2, y0) = self.shunts[shunt];
            let aux = self.node_bus.len();
            self.node_bus.push(self.node_bus[node]);
            self.node_vn_kv.push(self.node_vn_kv[node]);
            self.energised.push(true);
            let ib = S_BASE_MVA / (3f64.sqrt() * self.node_vn_kv[node]);
            let prim = |y: C64| [y, -y, -y, y];
            self.branches.push(Branch {
                element: Element::Source(src.ext_grid),
                f: aux,
                t: node,
                y1: prim(y1),
                y2: prim(y2),
                y0: prim(y0),
                i_base_ka: [ib, ib],
            });
            let set_point = self.slacks[slack].1;
            self.slacks[slack] = (aux, emf(src.ext_grid).unwrap_or(set_point));
            self.sources[k].node = aux;
            drop_shunts.push(shunt);
        }
        let mut pos = 0;
        self.shunts.retain(|_| {
            pos += 1;
            !drop_shunts.contains(&(pos - 1))
        });
        for s in self.sources.iter_mut() {
            s.shunt = None;
        }
        self.n_nodes = self.node_bus.len();
        self
    }
}

#!/usr/bin/env python3
"""4-wire reference solutions from OpenDSS for gridtwin's phase-domain power flow (src/grid/fourwire.rs).

Builds the feeder cases (a network of the neutral JSON format, modified deterministically: loads on single
phases, single-phase PV, earthing of the neutral, neutral faults), converts each into an OpenDSS circuit with
explicit 4-conductor lines, solves it and writes

    <out>/<case>.network.json   the network as gridtwin reads it (with its `earthing` section)
    <out>/<case>.json           the case (neutral faults) and every LV bus's voltages to earth, V (re, im)
                                for the phases a, b, c and the neutral n

Only the test data are produced here; `cargo test` reads the files and never runs this script.

The model on both sides (so only the solvers differ):
- Lines: 4x4 series impedance per km (phases a, b, c, neutral n). Explicit `r4/x4_ohm_per_km` if given; else
  a symmetric 4-core cable whose phase-to-neutral loop impedances reproduce Z1 = r + jx and Z0 = r0 + jx0:
  with a neutral conductor given (rn/xn), Zm = (Z1 + 3 Zn - Z0) / 3 between any two conductors and
  Zs = Z1 + Zm; without it no mutual coupling, Zs = Z1, Zn = (Z0 - Z1) / 3 if Re Zn >= Re Z1 / 2, else a
  phase-sized neutral Zn = Z1 with Zm = (4 Z1 - Z0) / 3; without Z0, Zn = Zs = Z1.
  Phase capacitances as a nodal matrix: self (C0 + 2 C1) / 3, mutual (C0 - C1) / 3 per km.
- The transformer: a balanced source at its LV bus, EMF = vm_pu(ext_grid) * Vn_hv_bus / sqrt(3) *
  vn_lv / vn_hv (taps applied), phase a at va_degree - shift_degree, behind its short-circuit impedance
  (vk, vkr on vn_lv^2 / sn_mva) in every phase, zero sequence equal to positive, star point on the LV bus's
  neutral (node 4; node 0 itself when solidly earthed).
- Loads and PV: constant P and Q between a phase and the bus's neutral (OpenDSS model=1, with vminpu /
  vlowpu / vmaxpu set so it stays constant power in the range these cases reach).
- Earthing: the source's star point through `source_r_ohm`, electrodes and (TN-C-S) customers' electrodes
  as resistors from node 4 to node 0.
- An open neutral on a line: its to-end neutral conductor ends on a node of its own (node 5).

Run (needs network access once for the venv):
    python3 -m venv /tmp/dssvenv && /tmp/dssvenv/bin/pip install opendssdirect.py
    /tmp/dssvenv/bin/python tools/fourwire-reference/make_reference.py tests/data/fourwire
"""
import cmath
import copy
import json
import math
import os
import sys

import opendssdirect as dss

ALGORITHM = os.environ.get("DSS_ALGORITHM", "normal")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def load(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return json.load(f)


def z4_per_km(line):
    """The 4x4 series impedance per km (complex), as documented in src/grid/fourwire.rs."""
    if line.get("r4_ohm_per_km") is not None:
        r, x = line["r4_ohm_per_km"], line["x4_ohm_per_km"]
        return [[complex(r[i][j], x[i][j]) for j in range(4)] for i in range(4)]
    z1 = complex(line["r_ohm_per_km"], line["x_ohm_per_km"])
    r0, x0 = line.get("r0_ohm_per_km"), line.get("x0_ohm_per_km")
    z0 = complex(r0, x0) if r0 is not None and x0 is not None and (r0 > 0 or x0 > 0) else None
    zn_given = None
    if line.get("rn_ohm_per_km") is not None:
        zn_given = complex(line["rn_ohm_per_km"], line["xn_ohm_per_km"])
    if z0 is not None and zn_given is not None:
        zm = (z1 + 3 * zn_given - z0) / 3
        zs, zn = z1 + zm, zn_given
    elif z0 is not None and ((z0 - z1) / 3).real >= 0.5 * z1.real:
        zs, zm, zn = z1, 0j, (z0 - z1) / 3
    elif z0 is not None:
        zm = (4 * z1 - z0) / 3
        zs, zm, zn = z1 + zm, zm, z1
    elif zn_given is not None:
        zs, zm, zn = z1, 0j, zn_given
    else:
        zs, zm, zn = z1, 0j, z1
    z = [[zm] * 4 for _ in range(4)]
    for i in range(3):
        z[i][i] = zs
    z[3][3] = zn
    return z


def lower(m):
    return " | ".join(" ".join(repr(m[i][j]) for j in range(i + 1)) for i in range(len(m)))


def solve(net, open_neutral=(), neutral_earth=(), load_model=1):
    """Solves the 4-wire model of `net` in OpenDSS; returns {bus index: {a, b, c, n: [re, im]}} in volts."""
    buses = {b["index"]: b for b in net["buses"] if b.get("in_service", True)}
    lv = {i for i, b in buses.items() if b["vn_kv"] < 1.0}
    earthing = net.get("earthing") or {}
    r_src = earthing.get("source_r_ohm", 0.0)
    if any(s.get("et") == "b" for s in net.get("switches", [])):
        raise SystemExit("bus-bus switches are not converted")
    open_line_ends = {(s["element"], s["bus"]) for s in net.get("switches", []) if s["et"] == "l" and not s.get("closed", True)}
    ext = {e["bus"]: e for e in net["ext_grid"] if e.get("in_service", True)}
    sources = []
    for t in net["trafos"]:
        if not t.get("in_service", True) or t["lv_bus"] not in lv:
            continue
        e = ext[t["hv_bus"]]
        steps = 0.0
        if t.get("tap_pos") is not None:
            steps = t["tap_pos"] - (t.get("tap_neutral") or 0.0)
        tap = 1 + steps * (t.get("tap_step_percent") or 0.0) / 100
        vn_hv, vn_lv = t["vn_hv_kv"], t["vn_lv_kv"]
        if t.get("tap_side") == "hv":
            vn_hv *= tap
        elif t.get("tap_side") == "lv":
            vn_lv *= tap
        shift = t.get("shift_degree", 0.0) + steps * (t.get("tap_step_degree") or 0.0)
        e_ph = e.get("vm_pu", 1.0) * buses[t["hv_bus"]]["vn_kv"] * 1000 / math.sqrt(3) * vn_lv / vn_hv
        zb = vn_lv**2 / t["sn_mva"] / t.get("parallel", 1)
        vkx = math.sqrt(max(t["vk_percent"] ** 2 - t["vkr_percent"] ** 2, 0))
        sources.append((t["lv_bus"], e_ph, e.get("va_degree", 0.0) - shift, complex(t["vkr_percent"], vkx) / 100 * zb))
    solid = {s[0] for s in sources} if r_src == 0 else set()

    def n(bus):
        return 0 if bus in solid else 4

    dss.Basic.ClearAll()
    cmds = []
    f = net.get("meta", {}).get("f_hz", 50.0)
    cmds.append(f"set defaultbasefrequency={f}")
    for k, (bus, e_ph, ang, z) in enumerate(sources):
        kv_ll = e_ph * math.sqrt(3) / 1000
        zz = f"[{z.real!r} {z.imag!r}]"
        props = f"phases=3 basekv={kv_ll!r} pu=1 angle={ang!r} bus1=b{bus}.1.2.3 bus2=b{bus}.{n(bus)}.{n(bus)}.{n(bus)} Z1={zz} Z0={zz} Z2={zz}"
        cmds.append(f"new circuit.fourwire {props}" if k == 0 else f"new vsource.src{k} {props}")
        if r_src > 0:
            cmds.append(f"new fault.srcearth{k} phases=1 bus1=b{bus}.4 bus2=b{bus}.0 r={r_src!r}")
    w = 2 * math.pi * f
    for k, l in enumerate(net["lines"]):
        if not l.get("in_service", True) or l["from_bus"] not in lv or l["to_bus"] not in lv:
            continue
        if (l["index"], l["from_bus"]) in open_line_ends or (l["index"], l["to_bus"]) in open_line_ends:
            raise SystemExit(f"line {l['index']}: open line switches are not converted")
        par = l.get("parallel", 1)
        z = z4_per_km(l)
        r = [[z[i][j].real / par for j in range(4)] for i in range(4)]
        x = [[z[i][j].imag / par for j in range(4)] for i in range(4)]
        c1 = l.get("c_nf_per_km", 0.0) * par
        c0 = (l.get("c0_nf_per_km") or 0.0) * par
        c = [[0.0] * 4 for _ in range(4)]
        for i in range(3):
            for j in range(3):
                c[i][j] = (c0 + 2 * c1) / 3 if i == j else (c0 - c1) / 3
        cmds.append(f"new linecode.lc{k} nphases=4 units=km rmatrix=[{lower(r)}] xmatrix=[{lower(x)}] cmatrix=[{lower(c)}]")
        fb, tb = l["from_bus"], l["to_bus"]
        tn = 5 if k in open_neutral else n(tb)
        cmds.append(f"new line.l{k} bus1=b{fb}.1.2.3.{n(fb)} bus2=b{tb}.1.2.3.{tn} linecode=lc{k} length={l['length_km']!r} units=km")
    load_at = set()
    count = 0

    def one_phase(kind, bus, ph, p_w, q_var, vn_ph):
        nonlocal count
        count += 1
        kv = vn_ph / 1000
        common = f"phases=1 bus1=b{bus}.{ph + 1}.{n(bus)} kV={kv!r} model={load_model} vminpu=0.2 vmaxpu=3"
        if p_w >= 0:
            cmds.append(f"new load.x{count} {common} kW={p_w / 1000!r} kvar={q_var / 1000!r} vlowpu=0.1 conn=wye")
        else:
            cmds.append(f"new generator.x{count} {common} kW={-p_w / 1000!r} kvar={-q_var / 1000!r} conn=wye")

    for l in net.get("loads", []):
        if l.get("in_service", True) and l["bus"] in lv:
            vn_ph = buses[l["bus"]]["vn_kv"] * 1000 / math.sqrt(3)
            s = l.get("scaling", 1.0) * 1e6 / 3
            for ph in range(3):
                one_phase("load", l["bus"], ph, l["p_mw"] * s, l.get("q_mvar", 0.0) * s, vn_ph)
            load_at.add(l["bus"])
    for l in net.get("asymmetric_loads", []):
        if l.get("in_service", True) and l["bus"] in lv:
            if l.get("type", "wye") != "wye":
                raise SystemExit("delta loads are not converted")
            vn_ph = buses[l["bus"]]["vn_kv"] * 1000 / math.sqrt(3)
            s = l.get("scaling", 1.0) * 1e6
            for ph, key in enumerate("abc"):
                p, q = l.get(f"p_{key}_mw", 0.0) * s, l.get(f"q_{key}_mvar", 0.0) * s
                if p != 0 or q != 0:
                    one_phase("load", l["bus"], ph, p, q, vn_ph)
            load_at.add(l["bus"])
    for g in net.get("sgens", []):
        if g.get("in_service", True) and g["bus"] in lv:
            vn_ph = buses[g["bus"]]["vn_kv"] * 1000 / math.sqrt(3)
            s = g.get("scaling", 1.0) * 1e6 / 3
            for ph in range(3):
                one_phase("gen", g["bus"], ph, -g["p_mw"] * s, -g.get("q_mvar", 0.0) * s, vn_ph)
            load_at.add(g["bus"])
    earth = []
    if earthing.get("system", "TN-C-S") == "TN-C-S" and earthing.get("customer_r_ohm") is not None:
        earth += [(b, earthing["customer_r_ohm"]) for b in sorted(load_at)]
    earth += [(e["bus"], e["r_ohm"]) for e in earthing.get("electrodes", [])]
    earth += list(neutral_earth)
    for k, (b, r) in enumerate(earth):
        if n(b) == 4:
            cmds.append(f"new fault.earth{k} phases=1 bus1=b{b}.4 bus2=b{b}.0 r={r!r}")
    cmds += ["set voltagebases=[0.4]", "calcvoltagebases", "set mode=snapshot", "set maxiterations=2000",
             "set tolerance=1e-12", f"set algorithm={ALGORITHM}", "solve"]
    for c in cmds:
        dss.Text.Command(c)
        err = dss.Error.Description()
        if err:
            raise SystemExit(f"OpenDSS: {err} in: {c}")
    if not dss.Solution.Converged():
        raise SystemExit(f"OpenDSS did not converge ({dss.Solution.Iterations()} iterations)")
    out = {}
    for name in dss.Circuit.AllBusNames():
        dss.Circuit.SetActiveBus(name)
        idx = int(name[1:])
        nodes = dss.Bus.Nodes()
        v = dss.Bus.Voltages()
        by = {nd: [v[2 * i], v[2 * i + 1]] for i, nd in enumerate(nodes)}
        out[str(idx)] = {"a": by[1], "b": by[2], "c": by[3], "n": by.get(4, [0.0, 0.0])}
    return out, dss.Solution.Iterations()


def ieee_case():
    """The IEEE European LV feeder (on-peak, 55 single-phase loads) with single-phase PV at every fourth
    load's bus on the next phase, TN-C-S with the star point solidly earthed and electrodes at a few buses."""
    net = load("scenarios/networks/ieee_european_lv_on_peak_566.json")
    extra = []
    for k, l in enumerate(net["asymmetric_loads"]):
        if k % 4 == 0:
            ph = next(i for i, key in enumerate("abc") if l[f"p_{key}_mw"] != 0)
            pv = {"index": 1000 + k, "name": f"PV{k}", "bus": l["bus"], "type": "wye"}
            for i, key in enumerate("abc"):
                pv[f"p_{key}_mw"] = -0.004 if i == (ph + 1) % 3 else 0.0
                pv[f"q_{key}_mvar"] = 0.0
            extra.append(pv)
    net["asymmetric_loads"] += extra
    buses = sorted({l["bus"] for l in net["asymmetric_loads"]})
    net["earthing"] = {"system": "TN-C-S", "source_r_ohm": 0.0,
                       "electrodes": [{"bus": b, "r_ohm": 20.0} for b in buses[::10]]}
    net["meta"]["name"] = "ieee_lv_fourwire"
    return net


def kerber_case(rel, name, pv_every=3, source_r=2.0, customer_r=30.0):
    """A Kerber network with its balanced loads moved onto single phases (load k on phase k mod 3 at half its
    power), single-phase PV of 5 kW at every `pv_every`-th load on the following phase, the star point earthed
    through `source_r` ohm and (TN-C-S) customers' electrodes of `customer_r` ohm."""
    net = load(rel)
    asym = []
    for k, l in enumerate(net["loads"]):
        ph = k % 3
        d = {"index": k, "name": f"L{k}", "bus": l["bus"], "type": "wye"}
        for i, key in enumerate("abc"):
            d[f"p_{key}_mw"] = l["p_mw"] * 0.5 if i == ph else 0.0
            d[f"q_{key}_mvar"] = l.get("q_mvar", 0.0) * 0.5 if i == ph else 0.0
        if k % pv_every == 0:
            d["p_" + "abc"[(ph + 1) % 3] + "_mw"] = -0.005
        asym.append(d)
    net["loads"] = []
    net["asymmetric_loads"] = asym
    net["earthing"] = {"system": "TN-C-S", "source_r_ohm": source_r}
    if customer_r is not None:
        net["earthing"]["customer_r_ohm"] = customer_r
    net["meta"]["name"] = name
    return net


def write(out_dir, name, net, open_neutral=(), neutral_earth=(), note="", load_model=1):
    v, iters = solve(net, open_neutral, neutral_earth, load_model)
    net = copy.deepcopy(net)
    net["meta"]["name"] = name
    with open(os.path.join(out_dir, f"{name}.network.json"), "w") as f:
        json.dump(net, f, separators=(",", ":"))
        f.write("\n")
    pos = {l["index"]: k for k, l in enumerate(net["lines"])}
    ref = {
        "case": name,
        "note": note,
        "network": f"{name}.network.json",
        "open_neutral_lines": [net["lines"][k]["index"] for k in open_neutral],
        "neutral_earth": [{"bus": b, "r_ohm": r} for b, r in neutral_earth],
        "load_model": {1: "constant_power", 2: "constant_impedance"}[load_model],
        "solver": f"{dss.Basic.Version().splitlines()[0]}; {iters} iterations; tolerance 1e-12",
        "units": "volts to remote earth, [re, im]",
        "buses": v,
    }
    assert all(k in pos.values() for k in open_neutral)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    vmax = max(math.hypot(*b["n"]) for b in v.values())
    print(f"{name}: {len(v)} buses, {iters} iterations, max |Vn| = {vmax:.3f} V")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "fourwire")
    os.makedirs(out_dir, exist_ok=True)
    write(out_dir, "ieee_lv_fourwire", ieee_case(), note="IEEE European LV feeder, single-phase loads and PV")
    land = kerber_case("scenarios/networks/kerber_landnetz_freileitung_1.json", "kerber_landnetz_fourwire")
    write(out_dir, "kerber_landnetz_fourwire", land, note="Kerber Landnetz (overhead), loads on single phases, PV")
    dorf = kerber_case("tests/data/grid/kerber_dorfnetz/network.json", "kerber_dorfnetz_fourwire", source_r=0.0,
                       customer_r=None)
    write(out_dir, "kerber_dorfnetz_fourwire", dorf, note="Kerber Dorfnetz (cables), TN-C earthed at the source only")
    # Broken neutral: the Landnetz's neutral open on its 6th line (buses 7 to 14 lose the neutral path to the
    # source), TT (star point earthed through 2 ohm, no other electrode): the customers beyond share a floating
    # neutral. Loads at constant impedance here: with constant power behind a floating neutral OpenDSS's
    # fixed-point iteration (and its "newton" variant) does not converge; gridtwin's Newton solves both.
    bn = kerber_case("scenarios/networks/kerber_landnetz_freileitung_1.json", "kerber_landnetz_broken_neutral",
                     source_r=2.0, customer_r=None)
    bn["earthing"]["system"] = "TT"
    write(out_dir, "kerber_landnetz_broken_neutral", bn, open_neutral=(5,), load_model=2,
          note="Landnetz, TT, neutral open on line 5 (bus 6 to 7), constant-impedance loads")
    write(out_dir, "kerber_landnetz_broken_neutral_earth_fault", bn, open_neutral=(5,), neutral_earth=((12, 5.0),),
          load_model=2, note="as kerber_landnetz_broken_neutral, with a 5 ohm neutral-to-earth path at bus 12")


if __name__ == "__main__":
    main()

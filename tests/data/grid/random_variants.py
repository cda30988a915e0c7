#!/usr/bin/env python3
"""Seeded random variants of the public LV networks, for validating `gridtwin grid` on cases nobody chose by
hand. Each variant takes one network that `pandapower-export --list` knows and draws, from its seed:

- every transformer off its neutral tap (HV or LV side, -3..+3 steps of 1.5 or 2.5 %), or left at neutral;
- line lengths scaled (one factor for all, or one per line, 0.5x to 2.5x);
- loads scaled (0.5x to 1.8x);
- rooftop PV at a share of the load buses (3 to 15 kW, 1.25 kVA per kW, k from 1.0 to 1.5; "wye" where the
  network is unbalanced, since pandapower's three-phase flow leaves out generators of no type);
- sometimes a closed tie cable between two load buses (a meshed feeder);
- the source's voltage set point and short-circuit power and R/X;
- sometimes up to four switches opened (buses left unsupplied have no results on either side);
- on a balanced network, sometimes single-phase loads at half its load buses and a third of its three-phase
  loads in delta (the three-phase flow is then compared too).

With `--groups` it also draws the transformers' vector group (Dyn, Yzn, and on balanced networks YNyn, Yyn, YNd,
ZNyn) and their zero-sequence data (vk0, vkr0, the magnetising share and R/X, the HV winding's share).

    venv/bin/python random_variants.py OUTDIR --export-with .../pandapower-export SEED COUNT [--more] [--groups]

writes OUTDIR/rand_SEED_K (neutral format + pandapower's results) for K in 0..COUNT-1 and prints what each
drew (also in the folder's DRAW.txt). A variant pandapower cannot solve is redrawn. Then `../shared/checks/grid-reference OUTDIR/rand_*`
compares gridtwin with them. Needs pandapower 3.5.6 and simbench in a venv of its own; the tests never run it.

Where a variant has per-phase loads it also writes `ref_pf3ph_bus_converged.csv`: pandapower's three-phase
flow run to convergence. `runpp_3ph` ends its outer loop (sequence networks around a positive-sequence
Newton-Raphson) when the positive-sequence power mismatch is under a fixed 3e-8 p.u., whatever
`tolerance_mva` says; on a feeder with heavy single-phase loads and PV that leaves its voltages up to 1e-4 p.u.
short of its own fixed point. The converged file repeats the solve with that bound at 1e-13 (the module's
source, bound replaced, run in a namespace of its own; pandapower itself is not changed), or the next of 1e-12
.. 1e-9 where the loop's measure stalls above the tighter one, and prints how far the exported reference was
from it.
"""
import copy
import importlib.machinery
import importlib.util
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pandapower as pp


def load_exporter(path):
    loader = importlib.machinery.SourceFileLoader("pandapower_export", path)
    spec = importlib.util.spec_from_loader("pandapower_export", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def base_names(exporter):
    return list(exporter.LIBRARY) + ["sb:" + c for c in exporter.SIMBENCH_LV]


def make_base(exporter, name):
    if name.startswith("sb:"):
        sys.path.insert(0, str(Path(__file__).parent))
        import make_variants  # noqa: E402  (the storage-to-load and tap-changer fix SimBench grids need)
        return make_variants.simbench_as_exported(name[3:])()
    return exporter.LIBRARY[name]()


def draw_more(net, rng, log):
    """With --more: parallel lines, a line out of service, voltage-dependent (ZIP) loads, reactive generators,
    an angled source, YNyn transformers."""
    unbalanced = len(net.asymmetric_load) > 0
    if rng.random() < 0.4 and len(net.line):
        par = rng.choice(net.line.index, max(1, len(net.line) // 5), replace=False)
        net.line.loc[par, "parallel"] = 2
        log.append(f"{len(par)} lines doubled")
    if rng.random() < 0.3 and len(net.line) > 2:
        off = int(rng.choice(net.line.index))
        net.line.loc[off, "in_service"] = False
        log.append(f"line {off} out of service")
    if not unbalanced and rng.random() < 0.5 and len(net.load):
        # runpp_3ph takes every load at constant power, so only where no three-phase flow is compared; and only
        # at buses without generators: pandapower applies a bus's mean ZIP shares to everything at the bus,
        # its generators' output included, where gridtwin keeps them per load.
        zp, iq = float(rng.uniform(0, 60)), float(rng.uniform(0, 40))
        zip_loads = ~net.load.bus.isin(set(net.sgen.bus))
        net.load.loc[zip_loads, "const_z_p_percent"] = zp
        net.load.loc[zip_loads, "const_i_q_percent"] = iq
        log.append(f"{int(zip_loads.sum())} loads {zp:.0f} % constant-Z (P), {iq:.0f} % constant-I (Q)")
    if len(net.sgen) and rng.random() < 0.5:
        net.sgen["q_mvar"] = net.sgen.p_mw * rng.uniform(-0.4, 0.4, len(net.sgen))
        log.append("generators with reactive power")
    if rng.random() < 0.3:
        va = float(rng.uniform(-10, 10))
        net.ext_grid["va_degree"] = va
        log.append(f"source angle {va:.1f} deg")
    if not unbalanced and rng.random() < 0.3 and len(net.trafo):
        # (not where the three-phase flow is compared: pandapower's MV slack bus voltages there disagree with its
        # own LV results; docs/validation.md)
        net.trafo["vector_group"] = "YNyn"
        net.trafo["shift_degree"] = 0.0
        log.append("transformers YNyn")
    return net


def draw_groups(net, rng, log):
    """With --groups: the transformers' vector group and zero-sequence data drawn. Per-phase loads keep to the
    groups pandapower's three-phase flow models (Dyn, Yzn); a balanced network may get YNyn, Yyn, YNd or ZNyn
    too (their zero sequence shows in the single-phase short circuits). Yzn only on a 1 MVA base: pandapower
    scales its Yzn model by the network's base power (docs/validation.md)."""
    if not len(net.trafo):
        return net
    unbalanced = len(net.asymmetric_load) > 0
    groups = ["Dyn", "Yzn"] if unbalanced else ["Dyn", "Yzn", "YNyn", "Yyn", "YNd", "ZNyn"]
    if float(net.sn_mva) != 1.0:
        groups.remove("Yzn")
    vg = str(rng.choice(groups))
    net.trafo["vector_group"] = vg
    # the clock number (a star-star or zigzag-star pair at 0 or 150 degrees, delta-star at 150)
    net.trafo["shift_degree"] = 150.0 if vg in ("Dyn", "Yzn", "YNd") else 0.0
    net.trafo["vk0_percent"] = net.trafo.vk_percent * float(rng.uniform(0.8, 1.2))
    net.trafo["vkr0_percent"] = net.trafo.vkr_percent * float(rng.uniform(0.8, 1.2))
    net.trafo["mag0_percent"] = float(rng.uniform(50.0, 400.0))
    net.trafo["mag0_rx"] = float(rng.uniform(0.0, 0.5))
    net.trafo["si0_hv_partial"] = float(rng.uniform(0.6, 0.95))
    log.append(f"transformers {vg}, mag0 {float(net.trafo.mag0_percent.iloc[0]):.0f} %, "
               f"si0_hv_partial {float(net.trafo.si0_hv_partial.iloc[0]):.2f}")
    return net


def draw(net, rng, log):
    unbalanced = len(net.asymmetric_load) > 0
    for t in net.trafo.index:
        if rng.random() < 0.75:
            side = str(rng.choice(["hv", "lv"]))
            pos = int(rng.choice([-3, -2, -1, 1, 2, 3]))
            step = float(rng.choice([1.5, 2.5]))
            net.trafo.loc[t, ["tap_side", "tap_neutral", "tap_pos", "tap_step_percent", "tap_min", "tap_max"]] = [
                side, 0, pos, step, -3, 3]
            net.trafo.loc[t, "tap_changer_type"] = "Ratio"
            if "tap_step_degree" in net.trafo:
                net.trafo.loc[t, "tap_step_degree"] = 0.0
            log.append(f"trafo {t} tap {side} {pos:+d} x {step} %")
    if rng.random() < 0.5:
        f = float(rng.uniform(0.5, 2.5))
        net.line.length_km *= f
        log.append(f"lines x{f:.2f}")
    else:
        f = rng.uniform(0.5, 2.5, len(net.line))
        net.line.length_km *= f
        log.append(f"lines x{f.min():.2f}..{f.max():.2f} each")
    s = float(rng.uniform(0.5, 1.8))
    net.load.scaling = s
    if unbalanced:
        net.asymmetric_load.scaling = s
    log.append(f"loads x{s:.2f}")
    load_buses = sorted(set(int(b) for b in net.load.bus) | set(int(b) for b in net.asymmetric_load.bus))
    share = float(rng.uniform(0.0, 0.6))
    n_pv = 0
    for b in load_buses:
        if rng.random() < share:
            p_kw = float(rng.uniform(3.0, 15.0))
            k = float(rng.choice([1.0, 1.1, 1.2, 1.3, 1.5]))
            pp.create_sgen(net, b, p_mw=p_kw / 1000, q_mvar=0.0, sn_mva=1.25 * p_kw / 1000, k=k,
                           name=f"pv {n_pv}", type="wye" if unbalanced else None)
            n_pv += 1
    log.append(f"{n_pv} PV")
    if rng.random() < 0.3 and len(load_buses) > 4:
        a, b = rng.choice(load_buses, 2, replace=False)
        pp.create_line(net, int(a), int(b), length_km=float(rng.uniform(0.03, 0.2)), std_type="NAYY 4x150 SE",
                       name="random tie")
        log.append(f"tie {a}-{b}")
    e = net.ext_grid
    e["vm_pu"] = float(rng.uniform(0.98, 1.04))
    smax = float(rng.uniform(40.0, 600.0))
    e["s_sc_max_mva"] = smax
    e["s_sc_min_mva"] = smax * float(rng.uniform(0.4, 0.9))
    rx = float(rng.uniform(0.05, 0.5))
    e["rx_max"] = rx
    e["rx_min"] = rx
    log.append(f"source {float(e.vm_pu.iloc[0]):.3f} p.u., {smax:.0f} MVA, R/X {rx:.2f}")
    if not unbalanced and rng.random() < 0.4 and load_buses:
        # Single-phase household loads on a balanced network, so the three-phase flow is compared too (its
        # generators made "wye": runpp_3ph silently leaves out those of no type; gridtwin takes them as wye).
        n_1ph = 0
        for b in load_buses:
            if rng.random() < 0.5:
                ph = int(rng.integers(0, 3))
                p = [0.0, 0.0, 0.0]
                p[ph] = float(rng.uniform(1.0, 8.0)) / 1000
                pp.create_asymmetric_load(net, b, p_a_mw=p[0], p_b_mw=p[1], p_c_mw=p[2], q_a_mvar=0.3 * p[0],
                                          q_b_mvar=0.3 * p[1], q_c_mvar=0.3 * p[2], type="wye")
                n_1ph += 1
        net.sgen["type"] = "wye"
        # runpp_3ph leaves out three-phase loads of no type too; a third of them connected in delta.
        net.load["type"] = ["delta" if rng.random() < 0.3 else "wye" for _ in net.load.index]
        log.append(f"{n_1ph} single-phase loads, {int((net.load.type == 'delta').sum())} delta loads")
    closed = net.switch.index[net.switch.closed] if len(net.switch) else []
    if len(closed) and rng.random() < 0.3:
        # Switches opened: parts of the network may end unsupplied (no voltage, no short-circuit current).
        opened = rng.choice(closed, min(4, len(closed)), replace=False)
        net.switch.loc[opened, "closed"] = False
        log.append(f"switches {sorted(int(i) for i in opened)} opened")
    return net


def converged_runpp_3ph(bound):
    """pandapower's `runpp_3ph` with its outer loop's fixed mismatch bound (3e-8 p.u.) at `bound`."""
    import pandapower.pf.runpp_3ph as r3
    src = Path(r3.__file__).read_text()
    old = "outer_tolerance_mva = 3e-8"
    if src.count(old) != 1:
        sys.exit(f"{r3.__file__}: no single '{old}' to tighten (another pandapower version?)")
    ns = dict(r3.__dict__)
    exec(compile(src.replace(old, f"outer_tolerance_mva = {bound!r}"), r3.__file__, "exec"), ns)
    return ns["runpp_3ph"]


# The tightest bound first: where the loop's mismatch measure stalls above it, the next. (At 1e-11 the loop can
# still be 2e-7 p.u. from its fixed point on the IEEE feeder with PV; 1e-13 brings it to a few 1e-9.)
BOUNDS = (1e-13, 1e-12, 1e-11, 1e-10, 1e-9)


def write_converged_3ph(net, folder, runners):
    """Writes ref_pf3ph_bus_converged.csv; returns (bound reached, gap of the exported reference), or None."""
    for bound, run3ph in zip(BOUNDS, runners):
        n = copy.deepcopy(net)
        try:
            run3ph(n, tolerance_mva=1e-12, calculate_voltage_angles=True, init="auto", max_iteration=500)
        except Exception:
            continue
        b3 = n.res_bus_3ph.copy()
        b3.insert(0, "index", n.bus.index)
        b3.to_csv(folder / "ref_pf3ph_bus_converged.csv", index=False, float_format="%.12g")
        import pandas as pd
        default = pd.read_csv(folder / "ref_pf3ph_bus.csv").set_index("index")
        cols = ["vm_a_pu", "vm_b_pu", "vm_c_pu"]
        return bound, float((default[cols] - b3.set_index("index")[cols]).abs().max().max())
    return None


def build(exporter, seed, k, more=False, groups=False):
    """Variant K of SEED: (pandapower network, solved once, before the exporter's assumptions; what it drew),
    or None when five draws in a row do not solve. `more`: also `draw_more`; `groups`: also `draw_groups`."""
    names = base_names(exporter)
    rng = np.random.default_rng([seed, k])
    # pandapower's Kerber generators pick branch cables with Python's global `random`: seeded, a variant is
    # the same network on every run.
    random.seed(seed * 1_000_003 + k)
    for _attempt in range(5):
        base = str(rng.choice(names))
        log = [base]
        net = draw(make_base(exporter, base), rng, log)
        if more:
            net = draw_more(net, rng, log)
        if groups:
            net = draw_groups(net, rng, log)
        try:
            pp.runpp(net)
            return net, log
        except Exception as e:  # redraw: a variant pandapower cannot solve says nothing about gridtwin
            print(f"rand_{seed}_{k}: redrawn ({type(e).__name__})", file=sys.stderr)
    return None


def main():
    args = sys.argv[1:]
    more, groups = "--more" in args, "--groups" in args
    args = [a for a in args if a not in ("--more", "--groups")]
    if len(args) != 5 or args[1] != "--export-with":
        sys.exit(__doc__)
    out, exporter, seed, count = Path(args[0]), load_exporter(args[2]), int(args[3]), int(args[4])
    out.mkdir(parents=True, exist_ok=True)
    runners = [converged_runpp_3ph(b) for b in BOUNDS]
    for k in range(count):
        built = build(exporter, seed, k, more, groups)
        if built is None:
            continue
        net, log = built
        net, added = exporter.with_sc_assumptions(net)
        name = f"rand_{seed}_{k}" + ("_more" if more else "") + ("_groups" if groups else "")
        try:
            exporter.export(net, name, out, added)
        except Exception as e:  # pandapower's own flows (its three-phase one above all) may not converge
            print(f"{name}: skipped, pandapower failed ({type(e).__name__}: {e})", file=sys.stderr)
            shutil.rmtree(out / name, ignore_errors=True)
            continue
        if len(net.asymmetric_load):
            got = write_converged_3ph(net, out / name, runners)
            if got is None:
                log.append("runpp_3ph does not converge below 1e-9 (no converged reference)")
            else:
                log.append(f"runpp_3ph's default stop {got[1]:.1e} p.u. from converged (bound {got[0]:g})")
        (out / name / "DRAW.txt").write_text("; ".join(log) + "\n")
        print(name + ": " + "; ".join(log))


if __name__ == "__main__":
    main()

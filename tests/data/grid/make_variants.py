#!/usr/bin/env python3
"""Builds the modified networks of tests/data/grid (taps moved on either side and both signs, parallel
transformers, several slacks, lines lengthened, loads scaled, switches opened, PV added) as pandapower JSON
files, for `pandapower-export OUTDIR file:PATH`. Needs pandapower 3.5.6 and simbench in a venv of its own;
the tests never run it (they read the exported copies).

    venv/bin/python make_variants.py OUTDIR [NAME...]     # writes OUTDIR/NAME.json (pandapower JSON)
    venv/bin/python make_variants.py OUTDIR --export-with .../pandapower-export [NAME...]
                                                  # exports them directly (neutral format + references)

Export directly rather than through `file:`: pandapower's JSON round trip changes its own single-phase
short-circuit results on SimBench grids (1-LV-rural1--0-no_sw: 2.93 kA before `to_json`/`from_json`, 2.75 kA
after, with identical tables), so references computed on the reloaded network do not belong to the data.
"""
import random
import sys
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn


def dorf():
    return pn.create_kerber_dorfnetz()


def lv_load_buses(net):
    return sorted(set(int(b) for b in net.load.bus))


def parallel_taps_two_slacks():
    """Kerber Dorfnetz: its transformer at tap +2 (HV side), a second one in parallel tapped on the LV side at
    -1 (circulating current), and a second 10 kV source feeding the far end of a feeder through a third
    transformer at tap -2 (HV side): three transformers, two slacks, a meshed LV network."""
    net = dorf()
    t = net.trafo.index[0]
    net.trafo.loc[t, ["tap_side", "tap_pos", "tap_neutral", "tap_step_percent"]] = ["hv", 2, 0, 2.5]
    net.trafo.loc[t, "tap_changer_type"] = "Ratio"
    row = net.trafo.loc[t].to_dict()
    t2 = pp.create_transformer_from_parameters(
        net, hv_bus=row["hv_bus"], lv_bus=row["lv_bus"], sn_mva=row["sn_mva"], vn_hv_kv=row["vn_hv_kv"],
        vn_lv_kv=row["vn_lv_kv"], vkr_percent=row["vkr_percent"], vk_percent=row["vk_percent"],
        pfe_kw=row["pfe_kw"], i0_percent=row["i0_percent"], shift_degree=row["shift_degree"],
        tap_side="lv", tap_pos=-1, tap_neutral=0, tap_step_percent=2.5, tap_min=-2, tap_max=2,
        tap_changer_type="Ratio", vector_group="Dyn", vk0_percent=row["vk_percent"],
        vkr0_percent=row["vkr_percent"], mag0_percent=100, mag0_rx=0, si0_hv_partial=0.9,
        name="parallel LV-tapped")
    mv = pp.create_bus(net, vn_kv=net.bus.vn_kv[row["hv_bus"]], name="second MV source")
    pp.create_ext_grid(net, mv, vm_pu=1.0, s_sc_max_mva=80.0, s_sc_min_mva=40.0, rx_max=0.1, rx_min=0.1,
                       r0x0_max=0.1, x0x_max=1.0, r0x0_min=0.1, x0x_min=1.0)
    far = lv_load_buses(net)[-1]
    pp.create_transformer_from_parameters(
        net, hv_bus=mv, lv_bus=far, sn_mva=0.25, vn_hv_kv=net.bus.vn_kv[mv], vn_lv_kv=0.4, vkr_percent=1.2,
        vk_percent=4.0, pfe_kw=0.6, i0_percent=0.24, shift_degree=150, tap_side="hv", tap_pos=-2,
        tap_neutral=0, tap_step_percent=2.5, tap_min=-2, tap_max=2, tap_changer_type="Ratio",
        vector_group="Dyn", vk0_percent=4.0, vkr0_percent=1.2, mag0_percent=100, mag0_rx=0, si0_hv_partial=0.9,
        name="second source, HV tap -2")
    return net


def tie_opened():
    """Kerber Dorfnetz with a tie cable between the ends of two feeders and the first cable of one feeder
    opened by a line switch: that feeder is supplied backwards over the tie."""
    net = dorf()
    loads = lv_load_buses(net)
    a, b = loads[len(loads) // 2 - 1], loads[-1]
    pp.create_line(net, a, b, length_km=0.05, std_type="NAYY 4x150 SE", name="tie")
    lv_main = int(net.trafo.lv_bus.iloc[0])
    feeders = net.line.index[(net.line.from_bus == lv_main) | (net.line.to_bus == lv_main)]
    first = int(feeders[-1])
    pp.create_switch(net, bus=lv_main, element=first, et="l", closed=False, name="feeder opened")
    return net


def pv_added():
    """Kerber Dorfnetz with a 6 kW rooftop inverter (8 kVA, k = 1.2; every fifth one k = 1.5) at every load bus."""
    net = dorf()
    for i, b in enumerate(lv_load_buses(net)):
        pp.create_sgen(net, b, p_mw=0.006, q_mvar=0.0, sn_mva=0.008, k=1.5 if i % 5 == 0 else 1.2,
                       name=f"pv {i}")
    return net


def lengthened():
    """Kerber Landnetz Kabel 2 with every cable four times as long."""
    net = pn.create_kerber_landnetz_kabel_2()
    net.line.length_km *= 4.0
    return net


def loads_scaled():
    """Kerber Vorstadtnetz Kabel 1 with every load scaled by 1.6 (scaling column)."""
    net = pn.create_kerber_vorstadtnetz_kabel_1()
    net.load.scaling = 1.6
    return net


def ieee_scaled_pv():
    """IEEE European LV feeder (on-peak): single-phase loads scaled by 1.5, PV (balanced, 4 kW, 5 kVA) at every
    tenth load bus, transformer at tap -2 on the LV side. The PV's type is "wye": pandapower's `runpp_3ph`
    silently leaves out static generators whose type is neither "wye" nor "delta" (its default is None)."""
    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    net.asymmetric_load.scaling = 1.5
    for i, b in enumerate(sorted(set(int(x) for x in net.asymmetric_load.bus))[::10]):
        pp.create_sgen(net, b, p_mw=0.004, q_mvar=0.0, sn_mva=0.005, k=1.2, name=f"pv {i}", type="wye")
    t = net.trafo.index[0]
    net.trafo.loc[t, ["tap_side", "tap_pos", "tap_neutral", "tap_step_percent"]] = ["lv", -2, 0, 2.5]
    net.trafo.loc[t, "tap_changer_type"] = "Ratio"
    return net


def ieee_scaled_pv_only():
    """As `ieee_scaled_pv`, transformer at its neutral tap."""
    net = ieee_scaled_pv()
    net.trafo.tap_pos = 0
    return net


def ieee_lv_tap_only():
    """IEEE European LV feeder (on-peak) with only its transformer moved to tap -2 on the LV side."""
    net = pn.ieee_european_lv_asymmetric("on_peak_566")
    t = net.trafo.index[0]
    net.trafo.loc[t, ["tap_side", "tap_pos", "tap_neutral", "tap_step_percent", "tap_changer_type"]] = [
        "lv", -2, 0, 2.5, "Ratio"]
    return net


def rural_lv_taps():
    """SimBench 1-LV-rural1--0-sw with its transformer tapped on the LV side at +2 and PV doubled."""
    import simbench
    net = simbench.get_simbench_net("1-LV-rural1--0-sw")
    net.trafo["tap_side"] = "lv"
    net.trafo["tap_pos"] = net.trafo.tap_neutral.fillna(0) + 2
    net.trafo["tap_step_percent"] = net.trafo.tap_step_percent.fillna(2.5)
    net.trafo["tap_changer_type"] = "Ratio"
    net.sgen.p_mw *= 2.0
    net.sgen.sn_mva *= 2.0
    return net


def cigre_switch_impedances():
    """CIGRE LV with impedances on its three bus-bus circuit breakers (0.02, 0.05, 0.1 ohm; pandapower takes them
    at R/X = 2 instead of joining the buses)."""
    net = pn.create_cigre_network_lv()
    net.switch.loc[net.switch.et == "b", "z_ohm"] = [0.02, 0.05, 0.1]
    return net


def dorf_switch_impedance():
    """Kerber Dorfnetz with its transformer on a terminal bus of its own, joined to the LV busbar by a 0.01 ohm
    bus-bus switch (about a quarter of the transformer's short-circuit impedance)."""
    net = dorf()
    lv = int(net.trafo.lv_bus.iloc[0])
    nb = pp.create_bus(net, vn_kv=net.bus.vn_kv[lv], name="transformer terminal")
    net.trafo.loc[net.trafo.index[0], "lv_bus"] = nb
    pp.create_switch(net, nb, lv, et="b", closed=True, z_ohm=0.01, name="LV main switch")
    return net


def dorf_bus_out():
    """Kerber Dorfnetz with the far end of its last feeder out of service: the cable to it stays connected at its
    other end, open at this one (pandapower's auxiliary bus), its capacitance still loading the feeder."""
    net = dorf()
    net.bus.loc[lv_load_buses(net)[-1], "in_service"] = False
    return net


def landnetz_vector_group(vg):
    """Kerber Landnetz Freileitung 1 with its transformer's vector group changed (shift 0 for the stars): its
    zero-sequence path, and so the single-phase short circuits, change."""
    def make():
        net = pn.create_kerber_landnetz_freileitung_1()
        for k, v in dict(vk0_percent=net.trafo.vk_percent, vkr0_percent=net.trafo.vkr_percent, mag0_percent=100.0,
                         mag0_rx=0.0, si0_hv_partial=0.9).items():
            net.trafo[k] = v
        net.trafo["vector_group"] = vg
        net.trafo["shift_degree"] = 0.0
        return net
    return make


def yzn_single_phase():
    """Kerber Dorfnetz with pandapower's Yzn5 standard transformer (0.25 MVA 20/0.4 kV, HV at 20 kV) and a
    single-phase household load (1-6 kW, phases in turn) at every other load bus: the zigzag winding's
    zero-sequence shunt in the three-phase flow and in single-phase short circuits. (The Kerber generator picks
    cables with Python's global `random`, seeded here so the variant is the same network on every run.)"""
    random.seed(14)
    net = dorf()
    hv, lv = int(net.trafo.hv_bus.iloc[0]), int(net.trafo.lv_bus.iloc[0])
    net.bus.loc[hv, "vn_kv"] = 20.0
    net.trafo.drop(net.trafo.index, inplace=True)
    pp.create_transformer(net, hv, lv, std_type="0.25 MVA 20/0.4 kV", name="yzn")
    for k, v in dict(vk0_percent=net.trafo.vk_percent, vkr0_percent=net.trafo.vkr_percent, mag0_percent=100.0,
                     mag0_rx=0.0, si0_hv_partial=0.9).items():
        net.trafo[k] = v
    for n, b in enumerate(lv_load_buses(net)[::2]):
        p = [0.0, 0.0, 0.0]
        p[n % 3] = (1.0 + (n * 7 % 11) / 2.0) / 1000
        pp.create_asymmetric_load(net, b, p_a_mw=p[0], p_b_mw=p[1], p_c_mw=p[2], q_a_mvar=0.3 * p[0],
                                  q_b_mvar=0.3 * p[1], q_c_mvar=0.3 * p[2], type="wye")
    net.load["type"] = "wye"
    return net


def delta_single_phase():
    """Kerber Dorfnetz (Dyn5) with a two-phase load connected in delta (1-6 kW between one pair of phases, the
    pairs in turn) at every other load bus, beside wye single-phase loads at the others: pandapower's
    `asymmetric_load` of type "delta", whose p_a/p_b/p_c are the powers across AB, BC and CA."""
    random.seed(15)
    net = dorf()
    for n, b in enumerate(lv_load_buses(net)):
        p = [0.0, 0.0, 0.0]
        p[n % 3] = (1.0 + (n * 7 % 11) / 2.0) / 1000
        pp.create_asymmetric_load(net, b, p_a_mw=p[0], p_b_mw=p[1], p_c_mw=p[2], q_a_mvar=0.3 * p[0],
                                  q_b_mvar=0.3 * p[1], q_c_mvar=0.3 * p[2], type="delta" if n % 2 else "wye")
    net.load["type"] = "wye"
    return net


def simbench_as_exported(code):
    """A SimBench grid as the neutral format can carry it: storage units (in the future scenarios) become the
    loads they are in a power flow (pandapower's storage is a PQ element, consumption positive, with no
    short-circuit contribution), and transformer taps get `tap_changer_type = "Ratio"`, without which
    pandapower 3 ignores SimBench's tap positions (the neutral format has no such field: a tap is a tap)."""
    def make():
        import simbench
        net = simbench.get_simbench_net(code)
        for _, s in net.storage.iterrows():
            pp.create_load(net, int(s.bus), p_mw=float(s.p_mw), q_mvar=float(s.q_mvar),
                           scaling=float(s.scaling), in_service=bool(s.in_service), name=f"storage {s['name']}")
        net.storage.drop(net.storage.index, inplace=True)
        net.trafo["tap_changer_type"] = "Ratio"
        return net
    return make


VARIANTS = {
    "var_dorfnetz_parallel_taps_two_slacks": parallel_taps_two_slacks,
    "var_dorfnetz_tie_opened": tie_opened,
    "var_dorfnetz_pv": pv_added,
    "var_landnetz_kabel_2_lengthened": lengthened,
    "var_vorstadtnetz_kabel_1_loads_x1p6": loads_scaled,
    "var_ieee_on_peak_scaled_pv_lv_tap": ieee_scaled_pv,
    "var_simbench_rural1_lv_tap_pv_x2": rural_lv_taps,
    "var_ieee_on_peak_scaled_pv": ieee_scaled_pv_only,
    "var_ieee_on_peak_lv_tap": ieee_lv_tap_only,
    "var_cigre_lv_switch_impedances": cigre_switch_impedances,
    "var_dorfnetz_switch_impedance": dorf_switch_impedance,
    "var_dorfnetz_bus_out": dorf_bus_out,
    "var_landnetz_freileitung_1_ynyn": landnetz_vector_group("YNyn"),
    "var_landnetz_freileitung_1_yyn": landnetz_vector_group("Yyn"),
    "var_landnetz_freileitung_1_yzn": landnetz_vector_group("Yzn"),
    "var_landnetz_freileitung_1_znyn": landnetz_vector_group("ZNyn"),
    "var_dorfnetz_yzn_single_phase": yzn_single_phase,
    "var_dorfnetz_delta_single_phase": delta_single_phase,
}
# SimBench's other LV variants: the future scenarios 1 and 2 (more PV, storage), and grids without switches.
for _g in ("rural1", "rural2", "rural3", "semiurb4", "semiurb5", "urban6"):
    for _s in ("1-sw", "2-sw"):
        VARIANTS[f"1_LV_{_g}__{_s.replace('-', '_')}"] = simbench_as_exported(f"1-LV-{_g}--{_s}")
VARIANTS["1_LV_rural1__0_no_sw"] = simbench_as_exported("1-LV-rural1--0-no_sw")
VARIANTS["1_LV_urban6__2_no_sw"] = simbench_as_exported("1-LV-urban6--2-no_sw")
# SimBench's MV grids and MV grids with an LV grid below (beyond the LV scope, for the taps off neutral on their
# HV/MV transformers, which pandapower 3 applies only with `tap_changer_type` set, and for a network without LV
# buses, whose export's `meta` carries Python's bare NaN).
for _code in ("1-MV-rural--0-sw", "1-MV-urban--0-sw", "1-MVLV-urban-5.303-0-sw"):
    VARIANTS[_code.replace("-", "_").replace(".", "_")] = simbench_as_exported(_code)

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    args = sys.argv[2:]
    exporter = None
    if args[:1] == ["--export-with"]:
        import importlib.machinery
        import importlib.util
        loader = importlib.machinery.SourceFileLoader("pandapower_export", args[1])
        spec = importlib.util.spec_from_loader("pandapower_export", loader)
        exporter = importlib.util.module_from_spec(spec)
        loader.exec_module(exporter)
        args = args[2:]
    only = set(args)
    for name, make in VARIANTS.items():
        if only and name not in only:
            continue
        net = make()
        pp.runpp(net)  # the variant must solve before it is exported
        if exporter is None:
            pp.to_json(net, str(out / f"{name}.json"))
        else:
            net, added = exporter.with_sc_assumptions(net)
            exporter.export(net, name, out, added)
            if len(net.asymmetric_load):
                # pandapower's three-phase flow run to its fixed point (see random_variants.py).
                import random_variants
                runners = [random_variants.converged_runpp_3ph(b) for b in random_variants.BOUNDS]
                got = random_variants.write_converged_3ph(net, out / name, runners)
                print(name, "converged three-phase reference (bound, exported gap):", got, file=sys.stderr)
        print(name, len(net.bus), "buses", file=sys.stderr)

#!/usr/bin/env python3
"""Solve times and worst errors of gridtwin against pandapower, over every reference network of tests/data/grid.

For each folder with a network.json, one after the other on the same machine:

* pandapower: the network is rebuilt the way it was exported (the exporter's own `make` and
  `with_sc_assumptions`, or `make_variants.py`'s builder for the modified and SimBench-variant folders), then
  `runpp` (Newton-Raphson, the exporter's settings: tolerance 1e-10 MVA, T model, voltage angles, no
  lightsim2grid), `runpp_3ph` where the folder has ref_pf3ph_bus.csv, and `calc_sc` (IEC 60909: the 3-phase
  maximum case alone, and the six cases 3ph/2ph/1ph x max/min that gridtwin computes in one call) are timed:
  one warm-up call, then the median wall time of N calls measured from Python (pandapower's data handling
  included, as a user calls it). As a check that the rebuilt network is the exported one, pandapower's own
  balanced voltages are compared with ref_pf_bus.csv.
* gridtwin: `grid solve [--unbalanced] --repeat K --timing-out` and `grid short-circuit --repeat K
  --timing-out` give the median of K solves: `full_median_us` (cold: topology compile + factorisation +
  flat-start solve) and `median_us_per_solve` (warm: flat-start re-solve on the reused factorisation); for
  short circuits the median of K complete calculations (all six cases). One plain CLI call per command is also
  timed end to end (process start, JSON parse, solve, CSV write).
* errors: the CSV the same gridtwin calls write is compared bus by bus with pandapower's reference results
  (balanced |dV| and |d angle|, per-phase |dV|, IEC 60909 relative error over all six cases), as the test
  `every_reference_network_matches_pandapower` does (a bus both sides leave unsupplied is skipped; a bus only
  one side supplies counts as an infinite error).

Needs a venv with `pandapower==3.5.6 simbench` (never the project's tests) and a release build of gridtwin:

    tools/pp-timing.sh                      # builds nothing; see the wrapper for the defaults
    PY tools/pp-timing.py --gridtwin target/release/gridtwin --exporter ../shared/tools/pandapower-export \
        --json out/pp-timing.json --doc docs/validation.md [NAME ...]

`--doc` replaces the table between the `<!-- pp-timing:begin -->` and `<!-- pp-timing:end -->` markers.
"""
import argparse
import csv
import importlib.machinery
import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "grid"


def load_module(name, path):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def build_net(name, exporter, variants):
    """The pandapower network of folder `name`, built as it was exported."""
    if name in variants.VARIANTS:
        net = variants.VARIANTS[name]()
        exporter.pp.runpp(net)  # make_variants.py solves each variant once before exporting it
    elif name in exporter.LIBRARY:
        net, _ = exporter.make(name)
    elif name.startswith("1_LV_") and name.endswith("__0_sw"):
        # SimBench's base LV grids, exported by name: sb:1-LV-rural1--0-sw -> 1_LV_rural1__0_sw
        code = name.replace("__", "--").replace("_", "-")
        net, _ = exporter.make("sb:" + code)
    elif name.startswith("rand_"):
        # random_variants.py's variant K of SEED: rand_SEED_K, rand_SEED_K_more (drawn with --more) or
        # rand_SEED_K_groups (--groups)
        seed, k = map(int, name.split("_")[1:3])
        more, groups = "_more" in name, name.endswith("_groups")
        net, _ = load_module("random_variants", DATA / "random_variants.py").build(exporter, seed, k, more, groups)
    else:
        raise KeyError(f"{name}: neither pandapower-export, make_variants.py nor random_variants.py knows how to build it")
    net, _ = exporter.with_sc_assumptions(net)
    return net


def timed(fn, n, budget=5.0):
    """Median wall time (s) of n calls after one warm-up call; fewer (at least one) where n calls would take
    longer than `budget` seconds."""
    t0 = time.perf_counter()
    fn()
    n = max(1, min(n, int(budget / max(time.perf_counter() - t0, 1e-9))))
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def read_table(path):
    with open(path, newline="") as f:
        return {int(r["index"]): r for r in csv.DictReader(f)}


def num(s):
    s = (s or "").strip()
    return float("nan") if s == "" or s.lower() == "nan" else float(s)


def diff(got, want, relative):
    """As the Rust test: None where both are NaN, inf where only one is."""
    if math.isnan(got) and math.isnan(want):
        return None
    if math.isnan(got) or math.isnan(want):
        return math.inf
    d = abs(got - want)
    return d / abs(want) if relative else d


def wrap(d):
    x = (d + 180.0) % 360.0 - 180.0
    return 180.0 if x == -180.0 else x


def worst(pairs):
    w = 0.0
    for d in pairs:
        if d is not None:
            w = max(w, d)
    return w


def run_gridtwin(gt, args, k, tmp, budget=5.0):
    """Runs `gridtwin grid ARGS --repeat K`, returns (timing JSON, CSV table, wall s of a plain call). K is
    lowered (to no less than 5) where K solves would take longer than `budget` seconds."""
    out = Path(tmp) / "out.csv"
    tj = Path(tmp) / "timing.json"
    for p in (out, tj):
        if p.exists():
            p.unlink()
    plain = [gt, "-q", "grid"] + args + ["--out", str(out)]
    # One plain call first (warms the file cache), timed end to end on the second one.
    subprocess.run(plain, check=True, capture_output=True)
    t0 = time.perf_counter()
    subprocess.run(plain, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    k = max(5, min(k, int(budget / wall)))
    subprocess.run([gt, "-q", "grid"] + args + ["--out", str(out), "--repeat", str(k), "--timing-out", str(tj)],
                   check=True, capture_output=True)
    t = json.loads(tj.read_text())
    t["repeat"] = k
    return t, read_table(out), wall


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def measure(name, exporter, variants, gt, k, n, n3):
    import pandapower as pp
    import pandapower.shortcircuit as sc

    d = DATA / name
    row = {"network": name, "load_before": loadavg()}
    net = build_net(name, exporter, variants)
    row["buses"] = int(len(net.bus))
    tol = exporter.TOL

    # ---- pandapower ----
    def runpp():
        pp.runpp(net, algorithm="nr", tolerance_mva=tol, trafo_model="t", calculate_voltage_angles=True,
                 init="auto", max_iteration=30, lightsim2grid=False)

    row["pp_runpp_ms"] = timed(runpp, n) * 1e3
    ref = read_table(d / "ref_pf_bus.csv")
    row["pp_rebuild_dv"] = worst(diff(float(v), num(ref[int(i)]["vm_pu_t"]), False)
                                 for i, v in zip(net.bus.index, net.res_bus.vm_pu.values))
    row["has_3ph"] = (d / "ref_pf3ph_bus.csv").exists()
    if row["has_3ph"]:
        row["pp_runpp_3ph_ms"] = timed(
            lambda: pp.runpp_3ph(net, tolerance_mva=tol, calculate_voltage_angles=True, init="auto"), n3) * 1e3
    row["pp_sc_3ph_max_ms"] = timed(lambda: sc.calc_sc(net, fault="3ph", case="max", lv_tol_percent=10), n) * 1e3

    def all_six():
        for fault in ("3ph", "2ph", "1ph"):
            for case in ("max", "min"):
                sc.calc_sc(net, fault=fault, case=case, lv_tol_percent=10)

    # The code paths are warm from the 3-phase timing: no warm-up call of its own, median of up to n // 2.
    samples = []
    spent = 0.0
    while len(samples) < max(1, n // 2) and spent < 10.0:
        t0 = time.perf_counter()
        all_six()
        samples.append(time.perf_counter() - t0)
        spent += samples[-1]
    row["pp_sc_all6_ms"] = statistics.median(samples) * 1e3
    row["pp_sc_all6_calls"] = len(samples)

    # ---- gridtwin ----
    nj = str(d / "network.json")
    with tempfile.TemporaryDirectory() as tmp:
        tj, out, wall = run_gridtwin(gt, ["solve", nj], k, tmp)
        row["gt_cold_us"] = tj["full_median_us"]
        row["gt_warm_us"] = tj["median_us_per_solve"]
        row["gt_iterations"] = tj["iterations"]
        row["gt_cli_ms"] = wall * 1e3
        dv, da = [], []
        for i, r in out.items():
            rr = ref[i]
            dv.append(diff(num(r["vm_pu"]), num(rr["vm_pu_t"]), False))
            a = diff(num(r["va_degree"]), num(rr["va_degree_t"]), False)
            da.append(a if a is None or math.isinf(a) else abs(wrap(num(r["va_degree"]) - num(rr["va_degree_t"]))))
        if set(out) != set(ref):
            raise ValueError(f"{name}: gridtwin's buses differ from ref_pf_bus.csv's")
        row["err_dv"], row["err_da"] = worst(dv), worst(da)
        if row["has_3ph"]:
            tj, out, wall = run_gridtwin(gt, ["solve", nj, "--unbalanced"], k, tmp)
            row["gt3_cold_us"] = tj["full_median_us"]
            row["gt3_warm_us"] = tj["median_us_per_solve"]
            row["gt3_cli_ms"] = wall * 1e3
            # pandapower run to convergence where the folder has it (random_variants.py says why)
            conv = d / "ref_pf3ph_bus_converged.csv"
            ref3 = read_table(conv if conv.exists() else d / "ref_pf3ph_bus.csv")
            row["err_dv3"] = worst(diff(num(r[f"vm_{p}_pu"]), num(ref3[i][f"vm_{p}_pu"]), False)
                                   for i, r in out.items() for p in "abc")
        tj, out, wall = run_gridtwin(gt, ["short-circuit", nj], k, tmp)
        row["gt_sc_us"] = tj["median_us_per_solve"]
        row["gt_sc_repeat"] = tj["repeat"]
        row["gt_sc_cli_ms"] = wall * 1e3
        refsc = read_table(d / "ref_sc_bus.csv")
        cols = [f"ikss_ka_{f}_{c}" for f in ("3ph", "2ph", "1ph") for c in ("max", "min")]
        row["err_sc"] = worst(diff(num(r[c]), num(refsc[i][c]), True) for i, r in out.items() for c in cols)
    row["load_after"] = loadavg()
    return row


def fmt_err(x):
    return "–" if x is None else ("inf" if math.isinf(x) else f"{x:.1e}")


def fmt_t(x):
    return "–" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")


def ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.0f}x" if a / b >= 10 else f"{a / b:.1f}x"


def markdown(rows, header):
    out = [header, "",
           "| network | buses | worst \\|dV\\| bal. (p.u.) | worst \\|d angle\\| (deg) | worst \\|dV\\| unbal. (p.u.) "
           "| worst SC rel. | gridtwin PF cold / warm (µs) | pandapower runpp (ms) | runpp / cold "
           "| gridtwin 3ph cold / warm (µs) | pandapower runpp_3ph (ms) | runpp_3ph / cold "
           "| gridtwin SC, 6 cases (µs) | pandapower calc_sc 3ph max / 6 cases (ms) | 6 cases / 6 cases "
           "| gridtwin CLI call PF / SC (ms) | load |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        g = r.get
        out.append(
            f"| {r['network']} | {r['buses']} | {fmt_err(g('err_dv'))} | {fmt_err(g('err_da'))} "
            f"| {fmt_err(g('err_dv3'))} | {fmt_err(g('err_sc'))} "
            f"| {fmt_t(g('gt_cold_us'))} / {fmt_t(g('gt_warm_us'))} | {fmt_t(g('pp_runpp_ms'))} "
            f"| {ratio(g('pp_runpp_ms') * 1e3, g('gt_cold_us'))} "
            + (f"| {fmt_t(g('gt3_cold_us'))} / {fmt_t(g('gt3_warm_us'))} | {fmt_t(g('pp_runpp_3ph_ms'))} "
               f"| {ratio(g('pp_runpp_3ph_ms') * 1e3, g('gt3_cold_us'))} " if r["has_3ph"] else "| – | – | – ")
            + f"| {fmt_t(g('gt_sc_us'))} | {fmt_t(g('pp_sc_3ph_max_ms'))} / {fmt_t(g('pp_sc_all6_ms'))} "
            f"| {ratio(g('pp_sc_all6_ms') * 1e3, g('gt_sc_us'))} "
            f"| {fmt_t(g('gt_cli_ms'))} / {fmt_t(g('gt_sc_cli_ms'))} | {r['load_before']} |")
    return "\n".join(out) + "\n"


def summary(rows):
    """Ranges of the ratios and the networks where gridtwin is not faster."""
    out = []
    for label, pp_key, gt_key in [("runpp / gridtwin cold balanced solve", "pp_runpp_ms", "gt_cold_us"),
                                  ("runpp_3ph / gridtwin cold unbalanced solve", "pp_runpp_3ph_ms", "gt3_cold_us"),
                                  ("calc_sc 6 cases / gridtwin short-circuit", "pp_sc_all6_ms", "gt_sc_us"),
                                  ("calc_sc 3ph max alone / gridtwin short-circuit (all 6)", "pp_sc_3ph_max_ms",
                                   "gt_sc_us")]:
        rs = sorted((r[pp_key] * 1e3 / r[gt_key], r["network"]) for r in rows if r.get(pp_key) and r.get(gt_key))
        if not rs:
            continue
        slower = [n for q, n in rs if q < 1]
        out.append(f"- {label}: {rs[0][0]:.3g}x ({rs[0][1]}) to {rs[-1][0]:.3g}x ({rs[-1][1]}), median "
                   f"{statistics.median(q for q, _ in rs):.3g}x over {len(rs)} networks"
                   + (f"; gridtwin slower on {', '.join(slower)}" if slower else "") + ".")
    errs = [("balanced |dV| (p.u.)", "err_dv", 1e-6), ("unbalanced |dV| (p.u.)", "err_dv3", 1e-5),
            ("IEC 60909 relative", "err_sc", 1e-3)]
    for label, k, tol in errs:
        xs = [(r[k], r["network"]) for r in rows if r.get(k) is not None]
        if xs:
            w = max(xs)
            over = [n for x, n in xs if not x <= tol]
            out.append(f"- worst {label}: {fmt_err(w[0])} ({w[1]}), tolerance {tol:g}"
                       + (f"; over it: {', '.join(over)}" if over else "; every network within it") + ".")
    rb = [(r["pp_rebuild_dv"], r["network"]) for r in rows if r.get("pp_rebuild_dv") is not None]
    if rb:
        same = [x for x, _ in rb if x <= 1e-9]
        other = sorted(((x, n) for x, n in rb if not x <= 1e-9), key=lambda t: t[1])
        out.append(f"- rebuild check: on {len(same)} of {len(rb)} networks pandapower's voltages on the rebuilt "
                   f"network equal the exported references within {fmt_err(max(same, default=0.0))} p.u."
                   + (f"; on {len(other)} they differ by up to {fmt_err(max(other)[0])} p.u. ("
                      + ", ".join(f"{n} {fmt_err(x)}" for x, n in other) + ")" if other else "") + ".")
    return "\n".join(out) + "\n"


def machine():
    import pandapower
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import numba
        nb = f"numba {numba.__version__}"
    except ImportError:
        nb = "no numba"
    return (f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"pandapower {pandapower.__version__} ({nb})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="folders of tests/data/grid (default: all)")
    ap.add_argument("--gridtwin", default=str(ROOT / "target" / "release" / "gridtwin"))
    ap.add_argument("--exporter", default=str(ROOT.parent / "shared" / "tools" / "pandapower-export"))
    ap.add_argument("--repeat", type=int, default=50, help="gridtwin --repeat K (default 50)")
    ap.add_argument("--pp-repeat", type=int, default=7, help="timed pandapower calls after the warm-up (7)")
    ap.add_argument("--pp-repeat-3ph", type=int, default=5, help="timed runpp_3ph calls after the warm-up (5)")
    ap.add_argument("--json", help="write every measured figure here")
    ap.add_argument("--doc", help="markdown file whose pp-timing markers get the table")
    ap.add_argument("--from-json", help="measure nothing: write the table of an earlier --json file")
    a = ap.parse_args()
    if a.from_json:
        saved = json.loads(Path(a.from_json).read_text())
        write_table(saved["rows"], make_header(saved["info"]), a.doc)
        return

    exporter = load_module("pandapower_export", a.exporter)
    variants = load_module("make_variants", DATA / "make_variants.py")
    names = a.names or sorted(p.parent.name for p in DATA.glob("*/network.json"))
    start = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
             "utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows = []
    for name in names:
        r = measure(name, exporter, variants, a.gridtwin, a.repeat, a.pp_repeat, a.pp_repeat_3ph)
        rows.append(r)
        print(f"{name}: {r['buses']} buses, dV {fmt_err(r.get('err_dv'))}, dV3 {fmt_err(r.get('err_dv3'))}, "
              f"SC {fmt_err(r.get('err_sc'))}, PF {r['gt_cold_us']:.0f} us cold vs runpp {r['pp_runpp_ms']:.2f} ms, "
              f"SC {r['gt_sc_us']:.0f} us vs calc_sc x6 {r['pp_sc_all6_ms']:.1f} ms, load {r['load_before']}",
              file=sys.stderr, flush=True)
    end = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    info = {"machine": machine(), "start": start, "end_uptime": end, "repeat": a.repeat,
            "pp_repeat": a.pp_repeat, "pp_repeat_3ph": a.pp_repeat_3ph}
    header = make_header(info)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"info": info, "rows": rows}, indent=1) + "\n")
    write_table(rows, header, a.doc)


def make_header(info):
    start, n = info["start"], info["pp_repeat"]
    return (f"Measured {start['utc']} on {info['machine']}; gridtwin `--repeat {info['repeat']}` (fewer, at least "
            f"5, where that would take over 5 s), pandapower one warm-up then the median of {n} calls "
            f"({info['pp_repeat_3ph']} for runpp_3ph; fewer, at least 1, where that would take over 5 s; up to "
            f"{max(1, n // 2)} within 10 s for the six short-circuit cases). `uptime` at the start: "
            f"`{start['uptime']}`; at the end: `{info['end_uptime']}`. The load column is the 1/5/15-minute load "
            f"average before each network.")


def write_table(rows, header, doc):
    table = markdown(rows, header) + "\n" + summary(rows)
    if doc:
        p = Path(doc)
        text = p.read_text()
        b, e = "<!-- pp-timing:begin -->", "<!-- pp-timing:end -->"
        if b not in text or e not in text:
            sys.exit(f"{p}: no {b} ... {e} markers")
        p.write_text(text[:text.index(b) + len(b)] + "\n" + table + text[text.index(e):])
    else:
        sys.stdout.write(table)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Copies networks exported by ../../../../shared/tools/pandapower-export (or any folder in that neutral format)
into tests/data/grid in compact form: network.json without indentation, and of pandapower's results only the
columns the tests compare (bus voltages of both transformer models, per-phase voltages, IEC 60909 currents).
Standard library only.

    python3 compact.py EXPORT_DIR [EXPORT_DIR ...]     # one folder per network
"""
import csv
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEEP = {
    "ref_pf_bus.csv": ["index", "vm_pu_t", "va_degree_t", "vm_pu_pi"],
    "ref_pf3ph_bus.csv": ["index", "vm_a_pu", "vm_b_pu", "vm_c_pu"],
    "ref_pf3ph_bus_converged.csv": ["index", "vm_a_pu", "vm_b_pu", "vm_c_pu"],
    "ref_sc_bus.csv": ["index", "vn_kv"] + [f"ikss_ka_{f}_{c}" for f in ("3ph", "2ph", "1ph") for c in ("max", "min")],
}

for src in map(Path, sys.argv[1:]):
    if not (src / "network.json").exists():
        continue
    dst = HERE / src.name
    dst.mkdir(exist_ok=True)
    doc = json.loads((src / "network.json").read_text())
    (dst / "network.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    for name, cols in KEEP.items():
        if not (src / name).exists():
            continue
        with open(src / name) as f:
            rows = list(csv.DictReader(f))
        with open(dst / name, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(cols)
            for r in rows:
                w.writerow([r.get(c, "") for c in cols])
    for note in ("ASSUMPTIONS.txt", "DRAW.txt"):
        if (src / note).exists():
            shutil.copy(src / note, dst / note)
    print(src.name, file=sys.stderr)

#!/usr/bin/env bash
# PHOLD-ns side by side: gridtwin's engine, SimCore 0.1, NeXosim 1.0 (1 thread) and SimPy 4.1.2, one thread each.
# Usage: benches/peers/run.sh [CONFIG [RUNS [SIMPY_RUNS]]]   (defaults: A 5 3)
# Every engine must give the reference event count and checksum (the binary exits non-zero otherwise);
# prints the median events/s per engine and gridtwin's ratio to each.
set -euo pipefail
cd "$(dirname "$0")"
config=${1:-A}
runs=${2:-5}
simpy_runs=${3:-3}

venv=target/simpy-venv
if ! "$venv/bin/python" -c 'import simpy, sys; sys.exit(simpy.__version__ != "4.1.2")' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check simpy==4.1.2
fi

cargo build --release --locked --quiet
exec target/release/gridtwin-peers --config "$config" --runs "$runs" --simpy-runs "$simpy_runs" \
  --engines bare-heap,gridtwin,simcore,nexosim,simpy --python "$venv/bin/python"

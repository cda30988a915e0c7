#!/usr/bin/env bash
# Solve times and worst errors of gridtwin against pandapower over every network of tests/data/grid, written
# into docs/validation.md (between its pp-timing markers) and out/pp-timing.json.
# Usage: tools/pp-timing.sh [NAME...]     (default: every folder)
# Environment: GRIDTWIN (default target/release/gridtwin, built with `cargo build --release` if missing),
#   PP_VENV (default target/pp-venv, created with pandapower 3.5.6, simbench and numba if missing),
#   PANDAPOWER_EXPORT (default ../shared/tools/pandapower-export, the exporter the reference data came from).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${PP_VENV:-target/pp-venv}
gt=${GRIDTWIN:-target/release/gridtwin}
exporter=${PANDAPOWER_EXPORT:-../shared/tools/pandapower-export}
if ! "$venv/bin/python" -c 'import pandapower, simbench, numba, sys; sys.exit(pandapower.__version__ != "3.5.6")' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pandapower==3.5.6 simbench numba
fi
[ -x "$gt" ] || cargo build --release --locked --quiet
exec "$venv/bin/python" tools/pp-timing.py --gridtwin "$gt" --exporter "$exporter" \
  --json out/pp-timing.json --doc docs/validation.md "$@"

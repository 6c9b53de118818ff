#!/usr/bin/env bash
# Create or refresh the environment of a Ray cluster node as the README tells users to install one:
# `pip install rsrt[ray]` (pinned by requirements.lock), without the notebook extra or the test tools.
# The scale-out benchmark starts its Ray nodes from it (benchmarks/bench_scaleout.py); prints the env's python.
# Idempotent (a stamp of the lock and pyproject hashes). Env: RSRT_NODE_VENV (default .venv-node),
# RSRT_PYTHON (default python3.11 or python3), RSRT_TORCH_INDEX (as in scripts/ensure_env.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${RSRT_NODE_VENV:-.venv-node}"
PY="${RSRT_PYTHON:-$(command -v python3.11 || command -v python3)}"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
stamp="$VENV/.rsrt-node-env-stamp"
if ! { [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "[rsrt] setting up a cluster node's environment in $VENV (rsrt[ray], pinned by requirements.lock) ..." >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  torch_pin="$(grep -E '^torch==' requirements.lock)"
  "$VENV/bin/python" -m pip install --quiet "$torch_pin" ${RSRT_TORCH_INDEX:+--index-url "$RSRT_TORCH_INDEX"} >&2
  "$VENV/bin/python" -m pip install --quiet -c requirements.lock -e ".[ray]" >&2
  echo "$want" > "$stamp"
fi
echo "$(cd "$VENV" && pwd)/bin/python"

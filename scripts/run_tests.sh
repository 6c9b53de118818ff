#!/usr/bin/env bash
# The README's test command: set up the pinned environment, lint with ruff, then run pytest: unit and integration tests
# (the real data in ../shared/data when it is there; skipped with a reason when not), the study through
# papermill, and every notebook with nbval on its default (smoke) parameters.
# Data, caches and outputs of the tests go to a fresh temporary folder (RSRT_TEST_ROOT to reuse one).
# --fast: the loop to run while working (under a minute here, on two pytest workers; RSRT_TEST_WORKERS=1 for one):
# unit tests not marked slow, no notebooks, no browser, no study runs. The command without it runs everything (what CI runs):
# the tests on two workers and the notebooks beside them; with arguments, one pytest of those arguments (nbval on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_env.sh
export MPLBACKEND=Agg HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
root="${RSRT_TEST_ROOT:-$(mktemp -d -t rsrt-tests-XXXXXX)}"
export RSRT_DATA_DIR="$root/data" RSRT_CACHE_DIR="$root/cache" RSRT_OUTPUTS_DIR="$root/outputs"
.venv/bin/ruff check .  # the linter (code and notebooks; config in pyproject.toml)
.venv/bin/lint-imports --no-cache  # the layering contracts ([tool.importlinter] in pyproject.toml)
if [ "${1:-}" = "--fast" ]; then
  shift
  # two pytest workers (pytest-xdist): the unit tests share nothing but the session's caches, which are safe to share
  exec .venv/bin/python -m pytest tests/unit tests/test_notebooks_are_thin.py -m "not slow and not integration" \
    -n "${RSRT_TEST_WORKERS:-2}" "$@"
fi
nbval=(--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg)
if [ "$#" -eq 0 ]; then
  # Everything: the tests on two workers (pytest-xdist; a test file stays on one worker, so its fixtures run once),
  # and beside them the notebooks under nbval in one more process (in order: each reads the one before's outputs).
  log="$root/notebooks.log"
  .venv/bin/python -m pytest notebooks "${nbval[@]}" > "$log" 2>&1 & notebooks=$!
  set +e
  .venv/bin/python -m pytest tests -n "${RSRT_TEST_WORKERS:-2}" --dist loadfile --durations=15; tests_status=$?
  wait $notebooks; notebooks_status=$?
  set -e
  echo "=== the notebooks under nbval (pytest notebooks ${nbval[*]}) ==="
  cat "$log"
  [ $tests_status -eq 0 ] && exit $notebooks_status || exit $tests_status
fi
exec .venv/bin/python -m pytest "${nbval[@]}" "$@"

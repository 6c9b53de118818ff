#!/usr/bin/env bash
# The README's test command: set up the pinned environment, then run pytest (unit, integration, notebooks).
# Integration tests use the benchmark mirror in ../shared/data when it is there and skip with a reason when not.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_env.sh
export MPLBACKEND=Agg HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"

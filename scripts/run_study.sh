#!/usr/bin/env bash
# The README's study command: set up the pinned environment, then run the default study end to end
# (data import or download, captioning, embedding, retrieval, evaluation, audit, ablations, baselines)
# and aggregate every run under outputs/ into outputs/report/. Extra arguments go to `rsrt run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_env.sh
export MPLBACKEND=Agg HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false
.venv/bin/rsrt run "${RSRT_PARAMS:-params/default.yaml}" "$@"
.venv/bin/rsrt report

#!/usr/bin/env bash
# The README's study command: set up the pinned environment, then run the default study end to end
# (data import or download, captioning, embedding, retrieval, evaluation, audit, ablations, baselines)
# aggregate every run under outputs/ into outputs/report/, and build the study's book (outputs/book/, a static website
# of every complete run; it never re-runs a notebook). Extra arguments go to `rsrt run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure_env.sh
export MPLBACKEND=Agg HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false
.venv/bin/rsrt run "${RSRT_PARAMS:-params/default.yaml}" "$@"
.venv/bin/rsrt report
.venv/bin/rsrt book

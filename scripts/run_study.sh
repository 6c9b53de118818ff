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
# the report and the book read the runs, not each other: both at once (the report's lines are printed after the book's)
report_log="$(mktemp -t rsrt-report-XXXXXX)"
trap 'rm -f "$report_log"' EXIT
.venv/bin/rsrt report > "$report_log" 2>&1 & report=$!
book_status=0
.venv/bin/rsrt book || book_status=$?
report_status=0
wait $report || report_status=$?
cat "$report_log"
exit $(( book_status != 0 ? book_status : report_status ))

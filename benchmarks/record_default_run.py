"""Record the default run's headline figures in benchmarks/results/default_run.json, from its metrics.json and
provenance.json (run `bash scripts/run_study.sh` first), so that the README and the book quote a file, not a number
typed by hand.

    python benchmarks/record_default_run.py [--outputs DIR] [--run NAME]"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "benchmarks" / "results" / "default_run.json"
KEPT = ("run_name", "dataset", "split", "n_images", "n_queries", "captioner", "encoder", "pooling", "field", "coverage",
        "label", "t2i", "i2t", "mR", "mR_t2i", "mR_i2t", "ci95", "ci95_caption_level", "mR_ties_pessimistic", "mR_ties_optimistic",
        "params_digest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, default=Path(os.environ.get("RSRT_OUTPUTS_DIR", PROJECT / "outputs")))
    parser.add_argument("--run", default="default-rsicd-aid150-neighbour")
    args = parser.parse_args()
    folder = args.outputs / args.run
    metrics = json.loads((folder / "metrics.json").read_text())
    provenance = json.loads((folder / "provenance.json").read_text())
    record = {"question": "what does the default offline study measure?", "command": "bash scripts/run_study.sh",
              **{key: metrics[key] for key in KEPT if key in metrics},
              "machine": {"platform": provenance.get("platform"), "cpus": os.cpu_count(), "python": provenance.get("python")},
              "measured_at": provenance.get("created"), "revision": provenance.get("git", {}).get("revision")}
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{record['run_name']}: mR {record['mR']} {record['ci95']['mR']} -> {RESULTS.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()

"""How long the README's study command takes on this machine, cold and warm, and how fast its two encoders run:
clones the project's committed HEAD into a temporary folder, then times `bash scripts/run_study.sh` there twice
(cold: a new environment and empty caches; warm: the same again, everything cached), reads each notebook's own
duration from the executed notebooks, and measures the encoder rates (benchmarks/bench_encoders.py's functions,
every runtime against PyTorch in the same run). Writes benchmarks/results/study_speed.json with the CPU model, core
count and load before and after each part; the README's timing line is rendered from that file.

    python benchmarks/bench_study_speed.py [--keep DIR] [--skip-encoders]
    python benchmarks/bench_study_speed.py --set encoder.options.precision=bfloat16 --out study_speed_bfloat16.json

The study reads the benchmark files from ../shared/data (or RSRT_MIRROR_DIR); the clone's `.venv` is built from
requirements.lock like a new user's (pip's own cache makes it faster than a first download)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "benchmarks"))
RESULTS = PROJECT / "benchmarks" / "results" / "study_speed.json"
RUN_NAME = "default-rsicd-aid150-neighbour"

from bench_encoders import machine  # noqa: E402


def timed(command: list[str], cwd: Path, log: Path, env: dict) -> dict:
    """Run a command with its output to `log`; its wall time and the load before and after."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("ab") as out:
        code = subprocess.call(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code:
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}; see {log}")
    return {"seconds": round(time.perf_counter() - started, 1), "load_1m_before": round(load, 2),
            "load_1m_after": round(os.getloadavg()[0], 2)}


def notebook_seconds(clone: Path) -> dict:
    """Each executed notebook's duration as papermill recorded it."""
    folder = clone / "outputs" / RUN_NAME / "notebooks"
    durations = {}
    for path in sorted(folder.glob("*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            durations[path.stem] = round(float(meta["duration"]), 1)
    return durations


def study_pass(clone: Path, log: Path, env: dict, environment: bool, overrides: list[str]) -> dict:
    """One pass of the README's command: the environment step timed on its own, then the whole command."""
    record = {"environment": timed(["bash", "scripts/ensure_env.sh"], clone, log, env)} if environment else {}
    sets = [part for item in overrides for part in ("--set", item)]
    record["run_study"] = timed(["bash", "scripts/run_study.sh", *sets], clone, log, env)
    record["notebooks"] = notebook_seconds(clone)
    record["total_seconds"] = round(sum(part["seconds"] for key, part in record.items() if key in ("environment", "run_study")), 1)
    return record


def run_metrics(clone: Path) -> dict | None:
    """The timed run's metrics.json (so a faster setting shows what it measured)."""
    path = clone / "outputs" / RUN_NAME / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def encoder_rates(clone: Path) -> dict:
    """The study's encoders on every runtime and precision against PyTorch, on the run's own neighbour paragraphs."""
    from bench_encoders import measure

    corpus = next(iter(sorted((clone / "cache" / "corpora").glob("*neighbour*.jsonl"))), None)
    return measure(512, 512, corpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="clone into this (new) folder and keep it, instead of a temporary one")
    parser.add_argument("--skip-encoders", action="store_true", help="time the study only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter override for the study (as `rsrt run --set`); the run keeps its name")
    parser.add_argument("--out", default=RESULTS.name, help=f"results file name in benchmarks/results (default {RESULTS.name})")
    args = parser.parse_args()
    if any("=" not in item for item in args.set):
        raise SystemExit(f"--set takes KEY=VALUE, got {args.set}")
    results = RESULTS.with_name(args.out)
    if args.keep and args.keep.exists():
        raise SystemExit(f"--keep {args.keep} exists; give a new folder (this script never deletes what it did not make)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="rsrt-study-speed-"))
    clone = work / "rsrt" if not args.keep else work
    revision = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=PROJECT, text=True).strip()
    subprocess.check_call(["git", "clone", "--quiet", str(PROJECT), str(clone)])
    env = {**os.environ, "RSRT_MIRROR_DIR": os.environ.get("RSRT_MIRROR_DIR", str(PROJECT.parent / "shared" / "data"))}
    for variable in ("RSRT_PROJECT_DIR", "RSRT_CACHE_DIR", "RSRT_OUTPUTS_DIR", "RSRT_DATA_DIR", "VIRTUAL_ENV"):
        env.pop(variable, None)  # the clone's own folders, as a new user's
    log = work / "study_speed.log"
    record = {"question": "how long does the README's study command take here, cold and warm?",
              "command": " ".join(["python benchmarks/bench_study_speed.py", *(f"--set {item}" for item in args.set),
                                   *([f"--out {args.out}"] if args.out != RESULTS.name else [])]),
              "overrides": args.set, "revision": revision, "machine": machine()}
    try:
        record["cold"] = study_pass(clone, log, env, environment=True, overrides=args.set)
        record["warm"] = study_pass(clone, log, env, environment=False, overrides=args.set)
        metrics = run_metrics(clone) or {}
        record["metrics"] = {key: metrics.get(key) for key in ("encoder", "mR", "ci95")}
        if not args.skip_encoders:
            record["encoders"] = encoder_rates(clone)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    record["load_1m_after"] = round(os.getloadavg()[0], 2)
    record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results.write_text(json.dumps(record, indent=1) + "\n")
    print(f"cold {record['cold']['total_seconds']} s (environment {record['cold']['environment']['seconds']} s), "
          f"warm {record['warm']['total_seconds']} s -> {results.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()

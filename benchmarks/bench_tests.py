"""How long the README's test command and the fast loop take here: builds the environment, then runs
`bash scripts/run_tests.sh --fast` and `bash scripts/run_tests.sh` in this checkout, each with pytest's own summaries and its
slowest tests, and writes benchmarks/results/test_times.json with the CPU model, cores and load before and after.

    python benchmarks/bench_tests.py [--fast-only]"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "benchmarks"))
RESULTS = PROJECT / "benchmarks" / "results" / "test_times.json"
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed).*?) in ([\d.]+)s", re.MULTILINE)  # with or without -q's rules
SLOW = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", re.MULTILINE)

from bench_encoders import machine  # noqa: E402


def timed_suite(args: list[str]) -> dict:
    """One run of the test command: wall time, each pytest's own time and counts (the full command runs two: the tests
    on two workers and the notebooks beside them), the slowest phases, the load."""
    load = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    extra = ["--durations=10", "-q", "-p", "no:cacheprovider"] if args else []  # the full command sets its own
    done = subprocess.run(["bash", "scripts/run_tests.sh", *args, *extra], cwd=PROJECT, capture_output=True, text=True)
    wall = round(time.perf_counter() - started, 1)
    found = SUMMARY.findall(done.stdout)
    if done.returncode or not found:
        raise SystemExit(f"run_tests.sh {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return {"command": " ".join(["bash scripts/run_tests.sh", *args]), "wall_seconds": wall,
            "pytest_seconds": max(float(seconds) for _, seconds in found),
            "outcome": "; ".join(outcome for outcome, _ in found), "load_1m_before": load,
            "load_1m_after": round(os.getloadavg()[0], 2),
            "slowest": [{"seconds": float(s), "phase": phase, "test": test} for s, phase, test in SLOW.findall(done.stdout)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-only", action="store_true", help="time the fast loop only")
    args = parser.parse_args()
    record = {"question": "how long do the test command and the fast loop take here?",
              "command": "python benchmarks/bench_tests.py", "machine": machine(),
              "revision": subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=PROJECT, text=True).strip()}
    subprocess.run(["bash", "scripts/ensure_env.sh"], cwd=PROJECT, check=True)  # built first: not part of the times
    record["fast"] = timed_suite(["--fast"])
    if not args.fast_only:
        record["full"] = timed_suite([])  # the README's command as CI runs it
    record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print({name: record[name]["wall_seconds"] for name in ("fast", "full") if name in record})


if __name__ == "__main__":
    main()

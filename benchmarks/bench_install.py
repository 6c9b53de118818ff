"""What an install weighs: each profile (the core, a Ray worker node, everything) installed into a new virtual
environment, pinned by requirements.lock, against the same profiles of an earlier commit (default: the last commit
before the package was split into a core and extras). Writes benchmarks/results/install_size.json.

    python benchmarks/bench_install.py [--before REF]

Sizes are the installed files of each environment's site-packages (du); counts are the installed distributions
other than pip. Needs the package index (PyPI) or a local mirror pip is configured for."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "benchmarks" / "results" / "install_size.json"
BEFORE = "06edcb1"  # the last commit with every dependency in the core
PROFILES = {"core": "", "ray_node": "[ray]", "all": "[all]"}


def site_packages_size(venv: Path) -> int:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return int(subprocess.run(["du", "-sb", str(site)], capture_output=True, text=True, check=True).stdout.split()[0])


def install(source: Path, extras: str, work: Path) -> dict:
    """A new environment with `source[extras]` installed (torch and every pin from requirements.lock)."""
    venv = work / f"venv-{source.name}{extras.strip('[]') or '-core'}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    started = time.monotonic()
    torch = next(line for line in (PROJECT / "requirements.lock").read_text().splitlines() if line.startswith("torch=="))
    subprocess.run(pip + [torch], check=True)
    subprocess.run(pip + ["-c", str(PROJECT / "requirements.lock"), f"{source}{extras}"], check=True)
    listed = json.loads(subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    names = sorted(d["name"].lower() for d in listed if d["name"].lower() not in ("pip", "setuptools", "rsrt"))
    return {"distributions": len(names), "site_packages_mb": round(site_packages_size(venv) / 2**20, 1),
            "install_s": round(time.monotonic() - started, 1), "names": names}


def checkout(ref: str, work: Path) -> Path:
    """The project's files at `ref` (git archive), to install as that commit declared it."""
    folder = work / f"rsrt-{ref}"
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(PROJECT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default {BEFORE})")
    args = parser.parse_args()
    results = {"question": "what does each install profile weigh, before and after the core/extras split?",
               "command": "python benchmarks/bench_install.py", "before_commit": args.before,
               "machine": {"python": platform.python_version(), "platform": platform.platform()}}
    with tempfile.TemporaryDirectory(prefix="rsrt-install-") as tmp:
        work = Path(tmp)
        before = checkout(args.before, work)
        after = checkout("HEAD", work)
        results["before"] = {"core": install(before, "", work), "ray_node": install(before, "[ray]", work)}
        results["after"] = {name: install(after, extras, work) for name, extras in PROFILES.items()}
    for when in ("before", "after"):
        for name, row in results[when].items():
            print(f"{when:>6} {name:<9} {row['distributions']:>4} distributions  {row['site_packages_mb']:>8} MB")
    results["conclusion"] = (f"core: {results['before']['core']['distributions']} -> "
                             f"{results['after']['core']['distributions']} distributions, "
                             f"{results['before']['core']['site_packages_mb']} -> {results['after']['core']['site_packages_mb']} MB; "
                             f"Ray node: {results['before']['ray_node']['site_packages_mb']} -> "
                             f"{results['after']['ray_node']['site_packages_mb']} MB")
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(results["conclusion"], f"\nwritten {RESULTS.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()

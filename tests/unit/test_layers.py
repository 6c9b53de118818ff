"""The layering in pyproject.toml ([tool.importlinter]) holds, and the tool that checks it catches each kind of break:
an upward import, an extra's package in the core, an import cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def lint(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under `root` with the project's contracts."""
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
                           "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=300)


@pytest.fixture()
def package_copy(tmp_path):
    """A copy of the package and its contracts, to break on purpose."""
    shutil.copytree(PROJECT / "rsrt_utils", tmp_path / "rsrt_utils", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_line(root: Path, module: str, line: str) -> None:
    path = root / "rsrt_utils" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_package_keeps_every_contract():
    result = lint(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


# (module, line added to it, what the report must say): an upward import, an extra's package in the core, a cycle
BREAKS = [("captioning/schema.py", "from ..search import layout  # noqa",
           ["Each layer imports only the layers below it BROKEN", "rsrt_utils.captioning.schema -> rsrt_utils.search.layout"]),
          ("metrics.py", "import matplotlib  # noqa", ["rsrt_utils.metrics is not allowed to import matplotlib"]),
          ("captioning/schema.py", "from . import runner  # noqa", ["No import cycle between the modules of a package BROKEN"])]


@pytest.mark.parametrize("module, line, reports", BREAKS, ids=["upward-import", "extra-in-core", "cycle"])
def test_each_kind_of_break_is_caught(package_copy, module, line, reports):
    add_line(package_copy, module, line)
    result = lint(package_copy)
    assert result.returncode == 1
    for report in reports:
        assert report in result.stdout


def test_no_backend_name_is_compared_outside_the_registry():
    """What a backend is or needs is a field of its registry entry, never `backend == "<name>"` somewhere else."""
    import re

    from rsrt_utils.captioning.registry import BACKENDS_INFO

    names = "|".join(re.escape(n) for n in BACKENDS_INFO)
    pattern = re.compile(rf"""[=!]=\s*["']({names})["']|["']({names})["']\s*[=!]=|in \(["']({names})["']""")
    found = [f"{path.relative_to(PROJECT)}:{number}: {line.strip()}"
             for path in sorted((PROJECT / "rsrt_utils").rglob("*.py")) if path.name != "registry.py"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line) and "data_command" not in line and 'name == "published"' not in line]
    assert found == []


def test_backend_capabilities_are_read_through_the_declared_list():
    """An optional backend attribute is one of backend.CAPABILITIES, read with `capability`, never `getattr(backend, ...)`."""
    import re

    pattern = re.compile(r"(getattr|hasattr)\((self\.)?backend,")
    found = [f"{path.relative_to(PROJECT)}:{number}" for path in sorted((PROJECT / "rsrt_utils").rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line) and "def capability" not in line and path.name != "backend.py"]
    assert found == []


def test_each_backend_lives_in_the_layer_of_its_extra():
    """The registry names backend modules by string (no import edge a tool sees), so this checks it: a core backend's
    module is in the lean core, a backend of an extra lives outside it and says which extra it needs."""
    import tomllib

    from rsrt_utils.captioning.registry import BACKENDS_INFO

    contracts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    core = next(c for c in contracts if c["id"] == "lean-core")["source_modules"]
    extras = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for info in BACKENDS_INFO.values():
        if info.module is None:
            continue
        in_core = any(info.module == m or info.module.startswith(m + ".") for m in core)
        assert in_core or info.extra is not None, f"{info.name}: {info.module} is outside the core but names no extra"
        assert info.extra is None or info.extra in extras, f"{info.name}: extra {info.extra!r} is not in pyproject"

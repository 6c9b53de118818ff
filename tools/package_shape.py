"""Print the package's shape: lines of code per folder and which rsrt_utils modules import which.

Usage: python tools/package_shape.py [ROOT]  (ROOT: a checkout, default this one); used for the redesign's
before/after figures in docs/architecture.md.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str, is_package: bool) -> set[str]:
    """rsrt_utils modules imported by one file (relative imports resolved)."""
    found = set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rsrt_utils")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("rsrt_utils"):
                found.add(target)
                if not node.module:  # `from .. import logsafe`: the names that are modules
                    found |= {f"{target}.{a.name}" for a in node.names if a.name != "__version__"}
    return found


def _folder(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def main(root: Path) -> None:
    package = root / "rsrt_utils"
    lines: dict[str, int] = defaultdict(int)
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, root)
        folder = module if path.parent == package and path.name != "__init__.py" else _folder(module)
        lines["rsrt_utils/" + str(path.parent.relative_to(package)).replace(".", "(top level)")] += len(path.read_text().splitlines())
        for target in _imports(path, module, path.name == "__init__.py"):
            dst = _folder(target)
            if dst != _folder(module) and dst != "rsrt_utils":
                edges[_folder(module)].add(dst)
    print("lines of code per folder:")
    for folder, n in sorted(lines.items()):
        print(f"  {folder:28s} {n:6d}")
    print(f"  {'total':28s} {sum(lines.values()):6d}")
    print("imports between folders (top-level modules count as their own folder):")
    for src in sorted(edges):
        print(f"  {src} -> {', '.join(sorted(edges[src]))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])

"""What each extra adds, from the installed metadata (pyproject's optional-dependencies), and a way to run Python with
the packages of chosen extras made unimportable, as if only the core (or core + one extra) were installed."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

_NAME = re.compile(r"^([A-Za-z0-9_.-]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(dist: str = "rsrt", extra: str | None = None) -> list[str]:
    """The distribution names `dist` requires (with `extra`: only what that extra adds; its rsrt[...] expanded)."""
    found = []
    for line in metadata.requires(dist) or []:
        name, _, marker = line.partition(";")
        wanted = re.search(r"extra\s*==\s*['\"]([\w-]+)['\"]", marker)
        if (wanted.group(1) if wanted else None) != extra:
            continue
        inner = re.match(r"^rsrt\[([\w,-]+)\]", name.strip())
        if inner:
            found += [r for e in inner.group(1).split(",") for r in requirements(dist, e)]
        else:
            found.append(_normal(_NAME.match(name.strip()).group(1)))
    return found


def closure(names: list[str]) -> set[str]:
    """Every distribution the given ones need, transitively (installed ones only)."""
    seen, todo = set(), list(names)
    while todo:
        name = _normal(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_NAME.match(r).group(1) for r in (metadata.requires(name) or []) if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            pass
    return seen


def modules_of(distributions: set[str]) -> set[str]:
    """The top-level modules the installed distributions provide."""
    return {module for module, dists in metadata.packages_distributions().items()
            if any(_normal(d) in distributions for d in dists) and not module.startswith("_")}


def blocked_modules(kept_extras: tuple[str, ...] = ()) -> set[str]:
    """Top-level modules that only the extras (other than `kept_extras`) bring: what a core install lacks."""
    kept = closure(requirements() + [r for e in kept_extras for r in requirements(extra=e)])
    extras = [e for e in metadata.metadata("rsrt").get_all("Provides-Extra") or [] if e not in kept_extras]
    only_extras = closure([r for e in extras for r in requirements(extra=e)]) - kept - {"rsrt"}
    return modules_of(only_extras)


BLOCKER = '''
import sys
BLOCKED = set({blocked!r})
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in this install)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
'''


def run_without(blocked: set[str], code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `code` in a new Python in which the `blocked` top-level modules cannot be imported."""
    return subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=sorted(blocked)) + code], capture_output=True,
                          text=True, timeout=600, **kwargs)

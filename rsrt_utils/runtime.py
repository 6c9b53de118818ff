"""Where the study's small encoders run: ONNX Runtime on a graph exported locally from the PyTorch weights, or PyTorch.

The choice is `runtime=` where an encoder takes it, else the environment variable RSRT_RUNTIME, else "auto":
ONNX Runtime where `onnxruntime` and `onnx` (the exporter's dependency) are installed, PyTorch otherwise. PyTorch is
the reference path; what each runtime gains and how close its vectors stay is measured by
benchmarks/bench_encoders.py and docs/speed.md.

Exported graphs are cached under cache_dir()/onnx, one file per export identity: the caller's description of the
model (weights digest, taps, ...) plus the torch, onnx and opset versions, so a changed model or exporter never
reuses a stale graph. A graph is written to a temporary file and renamed, so an interrupted export is never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .paths import cache_dir

RUNTIME_VARIABLE = "RSRT_RUNTIME"
RUNTIMES = ("auto", "onnxruntime", "pytorch")
OPSET = 17


def onnxruntime_installed() -> bool:
    """ONNX Runtime and the exporter's `onnx` package are both importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def choose_runtime(requested: str | None = None) -> str:
    """"onnxruntime" or "pytorch": the request, else $RSRT_RUNTIME, else auto (ONNX Runtime where it is installed)."""
    source = "runtime" if requested else RUNTIME_VARIABLE
    choice = (requested or os.environ.get(RUNTIME_VARIABLE) or "auto").strip().lower()
    if choice not in RUNTIMES:
        raise ValueError(f"{source} {choice!r} is not known; choose one of {', '.join(RUNTIMES)}")
    if choice == "auto":
        return "onnxruntime" if onnxruntime_installed() else "pytorch"
    if choice == "onnxruntime" and not onnxruntime_installed():
        raise RuntimeError(f"{source} 'onnxruntime' needs the packages onnxruntime and onnx: pip install onnxruntime onnx "
                           f"(or use {RUNTIME_VARIABLE}=pytorch)")
    return choice


def usable_threads() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class GraphSpec:
    """What an export is: a name for the file, everything that changes the graph, and its inputs and outputs (the first
    axis of each is the batch; `dynamic` adds named axes beyond it, e.g. {"input_ids": {1: "tokens"}})."""

    name: str
    identity: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict = field(default_factory=dict)

    def key(self) -> str:
        import onnx
        import torch

        described = f"{self.identity}|inputs={self.inputs}|outputs={self.outputs}|dynamic={sorted(self.dynamic.items())}"
        versions = f"torch={torch.__version__}|onnx={onnx.__version__}|opset={OPSET}"
        return hashlib.sha256(f"{described}|{versions}".encode()).hexdigest()[:16]

    def axes(self) -> dict:
        return {name: {0: "batch", **self.dynamic.get(name, {})} for name in (*self.inputs, *self.outputs)}


def exported_graph(spec: GraphSpec, build_module: Callable, example_inputs: Sequence, root: Path | None = None) -> Path:
    """The ONNX file of `spec`, exported from `build_module()` on first use (example_inputs: torch tensors)."""
    root = Path(root or cache_dir() / "onnx")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name)[:60].strip("_")
    target = root / f"{slug}-{spec.key()}.onnx"
    if target.is_file():
        return target
    import warnings

    import torch

    root.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=root, prefix=f".{slug}-", suffix=".onnx.partial")
    os.close(handle)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding and its own deprecation
            torch.onnx.export(build_module().eval(), tuple(example_inputs), staging, input_names=list(spec.inputs),
                              output_names=list(spec.outputs), dynamic_axes=spec.axes(), opset_version=OPSET,
                              dynamo=False)
        os.replace(staging, target)
    finally:
        Path(staging).unlink(missing_ok=True)
    return target


class OnnxSession:
    """An ONNX Runtime session on the CPU with all graph optimisations and `threads` intra-op threads."""

    def __init__(self, path: Path, threads: int | None = None):
        import warnings

        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads or usable_threads()))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT's own warnings are about graph rewrites, not results
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = Path(path)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs for these inputs (only the inputs the graph takes are passed)."""
        return self.session.run(None, {name: feeds[name] for name in self.input_names})

"""One study run: its validated parameters, its folder, where its work runs, and the dataset split it reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..captioning.registry import backend_info
from ..data import Dataset, load_dataset
from ..data.store import ensure_store
from ..engine import Engine, Where
from ..fileutil import write_json_atomic
from ..paths import data_dir
from ..scaleout.engine import open_engine
from .params import RunParams
from .run_folder import RunFolder
from .smoke import make_smoke_dataset


@dataclass
class StudyRun:
    """One run: its validated parameters and its output folder (its layout: run_folder.RunFolder)."""

    params: RunParams
    run_dir: Path
    where: Where = field(default_factory=Where)  # where captioning and embedding run (`rsrt run --ray`: the ENGINE parameter)
    _engine: Engine | None = field(default=None, repr=False, compare=False)

    def engine(self, config: dict | None = None) -> Engine:
        """The engine this run's work runs on, opened once (on Ray: connected, with the backend's key variable)."""
        if self._engine is None:
            self._engine = open_engine(self.where, config)
        return self._engine

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    def figure_path(self, name: str) -> Path:
        return self.folder.figure(name)

    def artifacts(self) -> dict:
        path = self.folder.artifacts
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_artifact(self, key: str, value) -> None:
        """Set one entry of artifacts.json (under a lock: notebooks of a run may run side by side)."""
        from filelock import FileLock

        with FileLock(str(self.folder.artifacts) + ".lock"):
            data = self.artifacts()
            data[key] = value
            write_json_atomic(data, self.folder.artifacts)

    @property
    def is_oracle(self) -> bool:
        """Whether the run's "descriptions" are the human captions themselves (the oracle, a ceiling)."""
        return backend_info(self.params.captioner.backend).human_captions


def split_source(run: StudyRun) -> dict:
    """Where the configured dataset's splits are read from, as plain values (load_dataset's keyword arguments; the
    smoke benchmark is generated first): what a Ray worker loads the neighbour bank from."""
    p = run.params.dataset
    if p.name == "smoke":
        root = make_smoke_dataset(data_dir() / "smoke")
        return {"name": "smoke", "annotations": str(root), "images_dir": str(p.images_dir or root / "images")}
    if p.annotations:
        return {"name": p.name, "annotations": str(p.annotations), "images_dir": p.images_dir and str(p.images_dir)}
    root = Path(p.root) if p.root else ensure_store(p.name)
    return {"name": p.name, "root": str(root), "source": p.source, "images_dir": p.images_dir and str(p.images_dir)}


def load_split(run: StudyRun, split: str | None = None) -> Dataset:
    """Load the configured dataset split (the smoke benchmark is generated on first use)."""
    return load_dataset(split=split or run.params.dataset.split, **split_source(run))

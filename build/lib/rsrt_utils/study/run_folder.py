"""The layout of a study run's folder, in one place: every module that reads or writes a run's files names them here.

outputs/<run_name>/
  params.resolved.yaml   the validated parameters (written when they change)   provenance.json   versions, git, machine
  RUN_ATTEMPT.json / RUN_COMPLETE.json / RUN_FAILED.json   the state of the last attempt
  artifacts.json         what each stage hands to the next    data_report.json   corpus_keys.json   scores.npz
  metrics.json           the run's result; metrics_<baseline>.json (clip, fusion) beside it
  notebooks/ figures/ ablations/   the executed notebooks, the figures, the ablation tables
  audit/                 audit_items.json (the audit as data), audit_sheet.html, audit_sheet_pageNN.png,
                         scoring_sheet.csv (+ scoring_sheet.<auditor>.csv), automatic_checks.csv, summary_*.csv
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..fileutil import write_json_atomic
from ..metrics_record import read_record
from ..paths import outputs_dir

PARAMS_FILE = "params.resolved.yaml"
METRICS_FILE = "metrics.json"
COMPLETE_MARK = "RUN_COMPLETE.json"
FAILED_MARK = "RUN_FAILED.json"
ATTEMPT_MARK = "RUN_ATTEMPT.json"


@dataclass(frozen=True)
class RunMetrics:
    """A run's metrics.json (or a baseline's), typed: the figures every reader uses, and the whole record."""

    path: Path
    run_name: str
    dataset: str
    mR: float
    ci95_mR: tuple[float, float]
    t2i: dict
    i2t: dict
    coverage: str
    label: str | None
    record: dict = field(repr=False)

    @classmethod
    def read(cls, path: Path) -> "RunMetrics":
        m = read_record(path)
        return cls(Path(path), m.get("run_name") or Path(path).parent.name, m.get("dataset") or "", m["mR"],
                   tuple(m["ci95"]["mR"]), m.get("t2i", {}), m.get("i2t", {}), m.get("coverage", ""), m.get("label"), m)


@dataclass(frozen=True)
class RunFolder:
    """One run's folder and its named files."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, *parts: str) -> Path:
        """A path inside the run (its parent folders created)."""
        return self.writable(self.path.joinpath(*parts))

    @staticmethod
    def writable(path: Path) -> Path:
        """The path, its parent folders created."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def executed_notebook(self, name: str) -> Path:
        return self.file("notebooks", name)

    # ------------------------------------------------------------ files of the run
    params = property(lambda self: self.path / PARAMS_FILE)
    provenance = property(lambda self: self.path / "provenance.json")
    artifacts = property(lambda self: self.path / "artifacts.json")
    data_report = property(lambda self: self.path / "data_report.json")
    corpus_keys = property(lambda self: self.path / "corpus_keys.json")
    scores = property(lambda self: self.path / "scores.npz")
    metrics = property(lambda self: self.path / METRICS_FILE)
    complete_mark = property(lambda self: self.path / COMPLETE_MARK)
    failed_mark = property(lambda self: self.path / FAILED_MARK)
    attempt_mark = property(lambda self: self.path / ATTEMPT_MARK)
    notebooks = property(lambda self: self.path / "notebooks")
    figures = property(lambda self: self.path / "figures")
    ablations = property(lambda self: self.path / "ablations")
    audit = property(lambda self: self.path / "audit")

    def baseline_metrics(self, baseline: str) -> Path:
        """metrics_<baseline>.json (clip, fusion)."""
        return self.path / f"metrics_{baseline}.json"

    def metrics_files(self) -> list[Path]:
        """metrics.json and the baselines' metrics_*.json, sorted."""
        return sorted(self.path.glob("metrics*.json"))

    def figure(self, name: str) -> Path:
        return self.file("figures", f"{name}.png")

    def ablation_table(self, axis: str) -> Path:
        return self.file("ablations", f"{axis}.csv")

    # ------------------------------------------------------------ the audit folder
    audit_items = property(lambda self: self.audit / "audit_items.json")
    audit_sheet_html = property(lambda self: self.audit / "audit_sheet.html")
    audit_sheet_png = property(lambda self: self.audit / "audit_sheet.png")  # pages: audit_sheet_pageNN.png
    audit_first_page = property(lambda self: self.audit / "audit_sheet_page01.png")
    sheets_digest = property(lambda self: self.audit / "sheets_digest.json")
    scoring_sheet = property(lambda self: self.audit / "scoring_sheet.csv")
    automatic_checks = property(lambda self: self.audit / "automatic_checks.csv")
    unsupported_words = property(lambda self: self.audit / "top_unsupported_words.csv")

    def auditor_sheet(self, auditor: str) -> Path:
        return self.audit / f"scoring_sheet.{auditor}.csv"

    def auditors(self) -> list[str]:
        """The auditors with a saved sheet (scoring_sheet.<auditor>.csv), sorted."""
        return sorted(p.name.removeprefix("scoring_sheet.").removesuffix(".csv")
                      for p in self.audit.glob("scoring_sheet.*.csv"))

    def audit_summary(self, name: str) -> Path:
        return self.file("audit", f"summary_{name}.csv")

    def audit_summaries(self) -> list[Path]:
        return sorted(self.audit.glob("summary_*.csv"))

    def has_audit(self) -> bool:
        return self.scoring_sheet.is_file()

    # ------------------------------------------------------------ state of the run
    def is_complete(self, digest: str | None = None) -> bool:
        """The last attempt ran every notebook of the run and wrote metrics.json (with these parameters, if a
        digest is given)."""
        if not self.complete_mark.is_file() or not self.metrics.is_file():
            return False
        return digest is None or json.loads(self.complete_mark.read_text()).get("params_digest") == digest

    def has_fresh_metrics(self) -> bool:
        """metrics.json was written by the run's current (or last) attempt."""
        if not (self.attempt_mark.is_file() and self.metrics.is_file()):
            return False
        return self.metrics.stat().st_mtime >= json.loads(self.attempt_mark.read_text())["started"]

    def mark_complete(self, info: dict) -> None:
        write_json_atomic({**info, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")},
                          self.file(COMPLETE_MARK))

    def read_metrics(self) -> RunMetrics:
        return RunMetrics.read(self.metrics)


def run_folder(name_or_path: str | Path, root: Path | None = None) -> RunFolder:
    """The folder of a run given by name (under root, default outputs_dir()) or by path."""
    path = Path(name_or_path)
    return RunFolder(path if path.is_absolute() or path.exists() else Path(root or outputs_dir()) / path)


def list_runs(root: Path | None = None, complete: bool | None = None, audited: bool = False) -> list[RunFolder]:
    """The run folders under root (default outputs_dir()): folders holding resolved params or metrics, sorted by name;
    complete=True/False keeps only (in)complete runs; audited: only runs with a scoring sheet."""
    root = Path(root or outputs_dir())
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in sorted(root.iterdir())
            if p.is_dir() and ((p / PARAMS_FILE).is_file() or (p / METRICS_FILE).is_file() or (p / "audit").is_dir())]
    if complete is not None:
        runs = [r for r in runs if r.is_complete() == complete]
    return [r for r in runs if r.has_audit()] if audited else runs

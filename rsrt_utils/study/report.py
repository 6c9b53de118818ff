"""Aggregate every run's metrics.json under outputs/ into one CSV and one comparison figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..metrics_record import read_record, summary_metrics
from ..paths import outputs_dir
from ..spreadsheet import write_frame
from .reference import measured_row, published_table, setting_of, versus_references
from .run_folder import RunFolder, list_runs

SUMMARY_COLUMNS = ["run_name", "dataset", "split", "n_images", "captioner", "setting", "label", "encoder", "pooling", "field",
                   "t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10", "mR", "mR_t2i", "mR_i2t", "ci_low", "ci_high",
                   "quoted_lines", "coverage", "params_digest", "path"]


def summary_columns() -> list[str]:
    """summary.csv's columns: the fixed ones, with every registered metric after mR."""
    at = SUMMARY_COLUMNS.index("mR_i2t") + 1
    return SUMMARY_COLUMNS[:at] + summary_metrics() + SUMMARY_COLUMNS[at:]


def flatten_metrics(metrics: dict, path: Path) -> dict:
    row = {k: metrics.get(k) for k in ("run_name", "dataset", "split", "n_images", "captioner", "label", "encoder",
                                       "pooling", "field", "mR", "mR_t2i", "mR_i2t", "coverage", "params_digest", *summary_metrics())}
    for direction in ("t2i", "i2t"):
        for k, v in metrics[direction].items():
            row[f"{direction}_{k}"] = v
    row["ci_low"], row["ci_high"] = metrics["ci95"]["mR"]
    row["quoted_lines"] = versus_references(metrics.get("dataset") or "", metrics["ci95"]["mR"])
    row["setting"] = setting_of(metrics.get("label"))
    row["path"] = str(path)
    row["run_name"] = row["run_name"] or path.parent.name
    return row


def collect_metrics(root: Path | None = None, current: Path | None = None) -> pd.DataFrame:
    """One row per outputs/<run>/metrics*.json of every complete run (the run, and its CLIP / fusion baselines);
    incomplete runs (a partial or failed last attempt) are left out and named. `current`: the run whose attempt is
    in progress (its report notebook), included when this attempt wrote its metrics."""
    def counts(run: RunFolder) -> bool:
        return run.is_complete() or (current is not None and run.path.resolve() == Path(current).resolve()
                                     and run.has_fresh_metrics())

    runs = [run for run in list_runs(root) if run.metrics_files()]
    skipped = [run.name for run in runs if not counts(run)]
    if skipped:
        print(f"left out (incomplete: the last attempt failed or ran only some notebooks): {', '.join(skipped)}")
    paths = sorted(p for run in runs if counts(run) for p in run.metrics_files())
    rows = [flatten_metrics(read_record(p), p) for p in paths]
    return pd.DataFrame(rows, columns=summary_columns())


def build_report(root: Path | None = None, current: Path | None = None) -> dict:
    """Write outputs/report/summary.csv and comparison.png; return their paths and the table."""
    from .figures import plot_comparison

    root = root or outputs_dir()
    summary = collect_metrics(root, current)
    target = root / "report"
    target.mkdir(parents=True, exist_ok=True)
    write_frame(summary, target / "summary.csv")
    measured = [measured_row(read_record(p), system=f"{r} (measured)") for p, r in zip(summary["path"], summary["run_name"])]
    rows = pd.concat([pd.DataFrame(measured), published_table()], ignore_index=True) if measured else published_table()
    figure = plot_comparison(rows, path=target / "comparison.png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return {"summary_csv": target / "summary.csv", "figure": target / "comparison.png", "table": summary}

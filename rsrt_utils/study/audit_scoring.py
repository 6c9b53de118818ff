"""Scoring sheets: one CSV per auditor (its schema in audit_columns.py), read back checked, and summarised with the
agreement between auditors (quadratic-weighted kappa, correlations)."""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..spreadsheet import read_frame, write_rows
from .audit import SCORING_INSTRUCTIONS, AuditItem, ScoringSheetError
from .audit_columns import AUDIT_COUNT_COLUMNS, AUDIT_SCORE_COLUMN, MAX_AUDIT_COUNT, SCORE_COLUMNS, SHEET_COLUMNS

WHOLE_NUMBER = re.compile(r"[0-9]+")


def scoring_instructions_path(sheet_path: Path | str) -> Path:
    """Where the instructions for a scoring sheet live: `<sheet stem>_instructions.txt` beside it."""
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(f"{sheet_path.stem}_instructions.txt")


def write_scoring_sheet(items: Sequence[AuditItem], path: Path | str) -> Path:
    """An empty scoring CSV, one row per (image, variant), plus the instructions in a sibling .txt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, SHEET_COLUMNS, ([item.image_id, item.scene_class, k] + [""] * (len(SHEET_COLUMNS) - 3)
                                     for item in items for k in range(1, len(item.variants) + 1)))
    scoring_instructions_path(path).write_text(SCORING_INSTRUCTIONS, encoding="utf-8")
    return path


def _parse_int(value: str, where: str, column: str, low: int, high: int) -> int:
    """The whole number typed in a cell (digits only, within [low, high]); ScoringSheetError otherwise, never a
    silently changed value (no '3.0', '1e3' or rounding)."""
    text = value.strip()
    if not WHOLE_NUMBER.fullmatch(text) or not low <= int(text) <= high:
        shown = repr(value) if text else "empty"
        raise ScoringSheetError(f"{where}, column {column!r}: {shown} is not a valid value; type a whole number "
                                f"from {low} to {high} (digits only)")
    return int(text)


def read_scoring_sheet(path: Path | str) -> pd.DataFrame:
    """Read and validate one filled scoring sheet; errors name the file, the row (CSV line) and the column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scoring sheet {path} does not exist")
    raw = read_frame(path, dtype=str, keep_default_na=False)
    missing = [c for c in SHEET_COLUMNS if c not in raw.columns]
    if missing:
        raise ScoringSheetError(f"{path}: missing column(s) {missing}; the sheet needs {list(SHEET_COLUMNS)} "
                                "(write a fresh one with write_scoring_sheet)")
    records = []
    for position, row in raw.iterrows():
        where = f"{path}: row {position + 1} (CSV line {position + 2}, image {row['image_id']!r}, variant {row['variant']!r})"
        if not row["image_id"].strip():
            raise ScoringSheetError(f"{where}, column 'image_id': empty; do not edit the key columns")
        record = {"image_id": row["image_id"].strip(), "scene_class": row["scene_class"].strip(),
                  "variant": _parse_int(row["variant"], where, "variant", 1, MAX_AUDIT_COUNT)}
        for column in AUDIT_COUNT_COLUMNS:
            record[column] = _parse_int(row[column], where, column, 0, MAX_AUDIT_COUNT)
        record[AUDIT_SCORE_COLUMN] = _parse_int(row[AUDIT_SCORE_COLUMN], where, AUDIT_SCORE_COLUMN, 1, 5)
        record["notes"] = row["notes"]
        record["auditor"] = row["auditor"].strip()
        records.append(record)
    frame = pd.DataFrame(records, columns=list(SHEET_COLUMNS))
    duplicated = frame.duplicated(["image_id", "variant"], keep=False)
    if duplicated.any():
        first = int(np.flatnonzero(duplicated)[0])
        raise ScoringSheetError(f"{path}: row {first + 1} (CSV line {first + 2}): image {frame.at[first, 'image_id']!r} "
                                f"variant {frame.at[first, 'variant']} appears more than once; keep one row per variant")
    frame["sheet"] = str(path)
    if (frame["auditor"] == "").any():
        frame.loc[frame["auditor"] == "", "auditor"] = path.stem
    return frame


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], categories: Sequence[int] = (1, 2, 3, 4, 5)) -> float:
    """Cohen's kappa with quadratic weights over fixed ordered categories (NaN when both raters never vary)."""
    index = {c: i for i, c in enumerate(categories)}
    n_cat = len(categories)
    observed = np.zeros((n_cat, n_cat))
    for x, y in zip(a, b):
        observed[index[x], index[y]] += 1
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    i, j = np.indices((n_cat, n_cat))
    weights = (i - j) ** 2 / (n_cat - 1) ** 2
    denominator = (weights * expected).sum()
    if denominator == 0:
        return float("nan")
    return float(1.0 - (weights * observed).sum() / denominator)


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(a, b).statistic), float(stats.pearsonr(a, b).statistic)


def agreement_between(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Per score column: rows compared, exact agreement, Spearman and Pearson r, quadratic kappa (completeness only)."""
    keys = ["image_id", "variant"]
    merged = first.merge(second, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if not unmatched.empty:
        row = unmatched.iloc[0]
        side = first["sheet"].iat[0] if row["_merge"] == "left_only" else second["sheet"].iat[0]
        raise ScoringSheetError(f"the two sheets do not have the same rows: image {row['image_id']!r} variant "
                                f"{row['variant']} is only in {side} ({len(unmatched)} unmatched row(s)); "
                                "both auditors must score the same sheet")
    rows = []
    for column in SCORE_COLUMNS:
        a, b = merged[f"{column}_a"].to_numpy(int), merged[f"{column}_b"].to_numpy(int)
        spearman, pearson = _correlations(a, b)
        rows.append({"score": column, "n_rows": len(merged), "exact_agreement": float(np.mean(a == b)),
                     "kappa_quadratic": quadratic_weighted_kappa(a, b) if column == AUDIT_SCORE_COLUMN else float("nan"),
                     "spearman": spearman, "pearson": pearson})
    return pd.DataFrame(rows)


def _group_means(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    grouped = rows.groupby(by)
    means = grouped[list(SCORE_COLUMNS)].mean()
    means["n_rows"] = grouped.size()
    return means.reset_index()


def summarise_scoring_sheets(paths: Sequence[Path | str]) -> dict[str, pd.DataFrame]:
    """Validate filled sheets and summarise them.

    Returns 'rows' (all scores, with auditor and sheet), 'per_variant', 'per_class' and 'per_auditor' means,
    'overall', and, given two or more sheets, 'agreement' for every pair (sheet_a, sheet_b, score, n_rows,
    exact_agreement, kappa_quadratic, spearman, pearson).
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ValueError("no scoring sheets given")
    sheets = [read_scoring_sheet(p) for p in paths]
    rows = pd.concat(sheets, ignore_index=True)
    summary = {"rows": rows, "per_variant": _group_means(rows, "variant"), "per_class": _group_means(rows, "scene_class"),
               "per_auditor": _group_means(rows, "auditor"),
               "overall": pd.DataFrame([{**rows[list(SCORE_COLUMNS)].mean().to_dict(), "n_rows": len(rows)}])}
    if len(sheets) >= 2:
        pairs = []
        for (i, a), (j, b) in itertools.combinations(enumerate(sheets), 2):
            pair = agreement_between(a, b)
            pair.insert(0, "sheet_b", str(paths[j]))
            pair.insert(0, "sheet_a", str(paths[i]))
            pairs.append(pair)
        summary["agreement"] = pd.concat(pairs, ignore_index=True)
    return summary

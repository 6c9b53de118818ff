"""Per-auditor scoring sheets (`audit/scoring_sheet.<auditor>.csv`) in exactly the format of audit_scoring.write_scoring_sheet.

Values are validated by audit.read_scoring_sheet itself; saves merge only the rows sent, under a file lock, and
replace the file atomically, so two auditors or two tabs saving at once lose nothing. A sheet on disk that does not
validate is reported and never overwritten.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from filelock import FileLock

from ..spreadsheet import unescape_cell, write_rows
from ..study.audit import ScoringSheetError
from ..study.audit_columns import SCORE_COLUMNS, SHEET_COLUMNS, SHEET_KEY_COLUMNS
from ..study.audit_scoring import read_scoring_sheet
from ..study.run_folder import RunFolder
from .audit_runs import AuditRun

ENTRY_COLUMNS = SCORE_COLUMNS + ("notes",)
AUDITOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
MAX_NOTE_CHARS = 2000
LOCK_TIMEOUT_S = 30
# Stand-ins for rows nobody scored yet, so read_scoring_sheet validates the scored rows at their real CSV lines.
_PLACEHOLDER = {"correct_objects": "0", "hallucinated_objects": "0", "direction_errors": "0", "completeness_1to5": "1"}


class SheetOnDiskError(ValueError):
    """The auditor's sheet on disk does not validate; it is left as it is."""


@dataclass(frozen=True)
class SheetState:
    """An auditor's rows (every SHEET_COLUMNS value as text), the sheet's file name and any problem with it."""

    auditor: str
    sheet: str
    rows: tuple[dict[str, str], ...]
    problem: str = ""

    def scored_rows(self) -> int:
        return sum(is_scored(row) for row in self.rows)

    def scored_images(self) -> int:
        by_image: dict[str, bool] = {}
        for row in self.rows:
            by_image[row["image_id"]] = by_image.get(row["image_id"], True) and is_scored(row)
        return sum(by_image.values())

    def by_key(self) -> dict[tuple[str, str], dict[str, str]]:
        return {(row["image_id"], row["variant"]): row for row in self.rows}


def check_auditor(name: str | None) -> str:
    """The auditor name, stripped; ValueError unless it is 1-40 letters, digits, '-' or '_' (it names a file)."""
    text = (name or "").strip()
    if not AUDITOR_NAME.fullmatch(text):
        shown = repr(name) if text else "an empty name"
        raise ValueError(f"auditor name {shown} cannot be used: type 1 to 40 letters, digits, '-' or '_' "
                         "(e.g. 'alice' or 'jd_2'); it names your scoring sheet file")
    return text


def sheet_name(auditor: str) -> str:
    return RunFolder(Path(".")).auditor_sheet(auditor).name


def auditors_with_sheets(audit_dir: Path) -> list[str]:
    """Auditors who already have a sheet in the audit folder."""
    return [n for n in RunFolder(Path(audit_dir).parent).auditors() if AUDITOR_NAME.fullmatch(n)]


def is_touched(row: Mapping[str, str]) -> bool:
    """The auditor filled at least one score or note of this row."""
    return any(str(row.get(c, "")).strip() for c in ENTRY_COLUMNS)


def is_scored(row: Mapping[str, str]) -> bool:
    """Every score of the row is filled (a validated sheet then holds valid integers there)."""
    return all(str(row.get(c, "")).strip() for c in SCORE_COLUMNS)


def _blank_rows(run: AuditRun, auditor: str) -> list[dict[str, str]]:
    return [dict(zip(SHEET_COLUMNS, (*key, *[""] * len(ENTRY_COLUMNS), auditor))) for key in run.key_rows]


def _write_csv(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    write_rows(path, SHEET_COLUMNS, ([row[c] for c in SHEET_COLUMNS] for row in rows))


def validate_rows(rows: Sequence[Mapping[str, str]], name: str) -> list[dict[str, str]]:
    """The rows with their scores normalised ('3.0' -> '3'), as read_scoring_sheet validates them; rows nobody
    touched stay empty. ScoringSheetError names the sheet, its CSV line, the image, the column and the fix."""
    filled = [{**row, **(_PLACEHOLDER if not is_touched(row) else {})} for row in rows]
    with tempfile.TemporaryDirectory(prefix="rsrt-sheet-") as folder:
        path = Path(folder) / name
        _write_csv(path, filled)
        try:
            frame = read_scoring_sheet(path)
        except ScoringSheetError as error:
            raise ScoringSheetError(str(error).replace(str(path), name)) from None
    out = []
    for row, parsed in zip(rows, frame.to_dict("records")):
        scores = {c: str(parsed[c]) for c in SCORE_COLUMNS} if is_touched(row) else {c: "" for c in SCORE_COLUMNS}
        out.append({**row, **scores, "variant": str(parsed["variant"])})
    return out


def _read_sheet(path: Path, run: AuditRun) -> list[dict[str, str]]:
    """The rows of an auditor's sheet on disk; SheetOnDiskError if its columns, rows or values are wrong."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in SHEET_COLUMNS if c not in (reader.fieldnames or [])]
        rows = [{c: unescape_cell((row.get(c) or "").strip() if c in SHEET_KEY_COLUMNS else row.get(c) or "")
                 for c in SHEET_COLUMNS} for row in reader]
    if missing:
        raise SheetOnDiskError(f"{path.name}: missing column(s) {missing}; the sheet needs {list(SHEET_COLUMNS)}")
    keys = [tuple(r[c] for c in SHEET_KEY_COLUMNS) for r in rows]
    if sorted(keys) != sorted(run.key_rows):
        extra, lost = set(keys) - set(run.key_rows), set(run.key_rows) - set(keys)
        detail = f"rows not in the audit: {sorted(extra)[:3]}" if extra else f"missing rows: {sorted(lost)[:3]}"
        raise SheetOnDiskError(f"{path.name} does not have the rows of {run.name}'s scoring sheet ({detail}); "
                               "do not add, remove or edit key rows")
    try:
        return validate_rows(rows, path.name)
    except ScoringSheetError as error:
        raise SheetOnDiskError(str(error)) from None


def load_sheet(run: AuditRun, auditor: str) -> SheetState:
    """The auditor's rows (blank when the sheet does not exist yet); a sheet that does not validate comes back with
    its problem and blank rows, untouched on disk."""
    auditor = check_auditor(auditor)
    path = run.audit_dir / sheet_name(auditor)
    if not path.is_file():
        return SheetState(auditor, path.name, tuple(_blank_rows(run, auditor)))
    try:
        return SheetState(auditor, path.name, tuple(_read_sheet(path, run)))
    except SheetOnDiskError as error:
        problem = f"{error}. The file was not changed: fix it or move it away, then reload this page."
        return SheetState(auditor, path.name, tuple(_blank_rows(run, auditor)), problem)


def _entry_values(entry: Mapping, run_name: str, known: Mapping) -> tuple[tuple[str, str], dict[str, str]]:
    """(key, values) of one submitted row; ValueError naming a row that is not in the audit or a bad value type."""
    key = (str(entry.get("image_id", "")), str(entry.get("variant", "")))
    if key not in known:
        raise ValueError(f"image {key[0]!r} variant {key[1]!r} is not a row of {run_name}'s scoring sheet; "
                         "reload the page")
    values = {}
    for column in ENTRY_COLUMNS:
        value = entry.get(column)
        if value is not None and not isinstance(value, (str, int, float)):
            raise ValueError(f"image {key[0]!r} variant {key[1]}: {column} must be a number or text, got {value!r}")
        values[column] = "" if value is None else str(value)
    if len(values["notes"]) > MAX_NOTE_CHARS:
        raise ValueError(f"image {key[0]!r} variant {key[1]}: notes have {len(values['notes'])} characters; "
                         f"keep them under {MAX_NOTE_CHARS}")
    return key, values


def _replace_atomically(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _write_csv(Path(tmp), rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_scores(run: AuditRun, auditor: str, entries: Sequence[Mapping]) -> SheetState:
    """Merge the submitted rows into the auditor's sheet (other rows as they are on disk now) and write it atomically.

    ValueError/ScoringSheetError for a bad row (nothing written); SheetOnDiskError when the sheet on disk is malformed.
    """
    auditor = check_auditor(auditor)
    path = run.audit_dir / sheet_name(auditor)
    with FileLock(run.audit_dir / f".{path.name}.lock", timeout=LOCK_TIMEOUT_S):
        state = load_sheet(run, auditor)
        if state.problem:
            raise SheetOnDiskError(state.problem)
        rows = state.by_key()
        for entry in entries:
            key, values = _entry_values(entry, run.name, rows)
            rows[key] = {**rows[key], **values}
        merged = validate_rows([{**row, "auditor": auditor} for row in rows.values()], path.name)
        _replace_atomically(path, merged)
    return SheetState(auditor, path.name, tuple(merged))

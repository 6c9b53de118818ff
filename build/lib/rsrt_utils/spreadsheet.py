"""CSV files that people open in a spreadsheet, written so that no cell runs as a formula (OWASP's CSV-injection rule).

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`, which
spreadsheets show as text; a cell that already starts with `'` before such a character gets one more, so reading the
file back with `unescape_cell` restores exactly what was written. Numbers are written as numbers, text is quoted.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def escape_cell(value):
    """The value as a spreadsheet cannot run it: text starting with a formula prefix gets a leading `'`."""
    if isinstance(value, str) and value.lstrip(_QUOTE).startswith(FORMULA_PREFIXES):
        return _QUOTE + value
    return value


def unescape_cell(value):
    """The text `escape_cell` was given (the inverse: one leading `'` dropped where escape_cell added it)."""
    if isinstance(value, str) and value.startswith(_QUOTE) and value.lstrip(_QUOTE).startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


def write_rows(path: Path | str, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """A CSV of the header and rows, every text cell escaped."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([escape_cell(c) for c in header])
        writer.writerows([escape_cell(c) for c in row] for row in rows)
    return path


def write_frame(frame: pd.DataFrame, path: Path | str) -> Path:
    """frame.to_csv(path, index=False) with every text cell (and column name) escaped."""
    safe = frame.rename(columns=escape_cell)
    for column in safe.select_dtypes(include=["object", "string"]).columns:
        safe[column] = safe[column].map(escape_cell)
    safe.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)  # pandas leaves a bare \r unquoted otherwise
    return Path(path)


def read_frame(path: Path | str, **options) -> pd.DataFrame:
    """pd.read_csv(path, **options) with the escaping of write_frame / write_rows undone."""
    frame = pd.read_csv(path, **options)
    frame = frame.rename(columns=unescape_cell)
    for column in frame.select_dtypes(include=["object", "string"]).columns:
        frame[column] = frame[column].map(unescape_cell)
    return frame

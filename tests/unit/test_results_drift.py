"""No figure a reader sees is typed by hand: the README's headline block is generated from the results files, and
every figure with two decimals in the README and docs/ occurs in the results files the page cites
(`benchmarks/results/<name>.json`; every results file when it cites none) or among the published figures the data
registry quotes. A stale or mistyped number fails here, naming the page and the figure."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rsrt_utils.data.registry import DATASETS_INFO
from rsrt_utils.literature import published_rows
from rsrt_utils.study.findings import render_readme

PROJECT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(r"(?<![\d.])(?<!Python )\d{1,3}\.\d{2}(?![\d.])")
CITED = re.compile(r"\b([a-z0-9_]+)\.json\b")
RESULTS = PROJECT / "benchmarks" / "results"


def _values(value, found: set[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _values(item, found)
    elif isinstance(value, list):
        for item in value:
            _values(item, found)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found.add(f"{abs(value):.2f}")  # a page writes the sign apart (−0.18, [−1.03, +0.66])
        if isinstance(value, int) and value >= 10**6:  # a byte count, as a page shows it in GB or MB
            found.update({f"{value / 1e9:.2f}", f"{value / 1e6:.2f}"})
    elif isinstance(value, str):
        found.update(FIGURE.findall(value))


def known_figures(files: list[Path] | None = None) -> set[str]:
    """Every number of the given results files (default all) and of the quoted literature, to two decimals."""
    found: set[str] = set()
    for path in files if files is not None else RESULTS.glob("*.json"):
        _values(json.loads(path.read_text()), found)
    for _, _, value in published_rows():
        found.add(f"{value:.2f}")
    for info in DATASETS_INFO.values():
        _values(getattr(info, "published_recalls", {}), found)
    return found


def test_the_readme_headline_block_is_what_the_results_files_give():
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert render_readme(text) == text, "README.md differs from benchmarks/results: run python tools/render_readme.py"


def test_the_readme_is_a_front_door():
    assert len((PROJECT / "README.md").read_text(encoding="utf-8").splitlines()) <= 120


def unknown_figures(text: str) -> list[str]:
    """The figures of a page that the results files it cites (all, when it cites none) do not hold."""
    cited = [RESULTS / f"{name}.json" for name in dict.fromkeys(CITED.findall(text)) if (RESULTS / f"{name}.json").is_file()]
    return sorted(set(FIGURE.findall(text)) - known_figures(cited or None))


def test_every_figure_on_a_page_comes_from_a_results_file():
    pages = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
    unknown = {str(page.relative_to(PROJECT)): unknown_figures(page.read_text(encoding="utf-8")) for page in pages}
    assert {page: figures for page, figures in unknown.items() if figures} == {}


def test_a_figure_no_cited_file_holds_is_caught():
    page = "From `benchmarks/results/default_run.json`: mR 16.95 [15.68, 18.26]."
    assert unknown_figures(page) == []
    assert unknown_figures(page.replace("16.95", "16.94")) == ["16.94"], "the default run measures 16.95, not 16.94"

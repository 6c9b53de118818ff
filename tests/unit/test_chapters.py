"""The book's results chapters and front-page findings are the results files' own figures, each with its command and
machine."""

from __future__ import annotations

import json

import pytest

from rsrt_utils.study import chapters, findings


@pytest.mark.parametrize("name", list(chapters.CHAPTERS))
def test_each_chapter_names_its_command_and_machine(name):
    page = chapters.CHAPTERS[name]()
    assert page.startswith("# ") and "reproduce with `" in page and "measured on" in page


def test_the_quality_chapter_shows_each_step_of_the_file():
    record = json.loads((findings.RESULTS / findings.QUALITY).read_text())
    page = chapters.quality()
    for track in record["tracks"]["zero-shot"].values():
        for step in track["steps"]:
            assert f"| {step['mR']} |" in page and step["step"] in page


def test_the_findings_follow_the_figures(tmp_path):
    """Changing a results file changes what the front page says (nothing is typed)."""
    for name in (findings.QUALITY, findings.DEFAULT_RUN, "neighbour_tuning.json"):
        (tmp_path / name).write_text((findings.RESULTS / name).read_text())
    record = json.loads((tmp_path / findings.QUALITY).read_text())
    record["tracks"]["zero-shot"]["rsicd"]["steps"][-1].update({"mR": 14.01, "ci95": [13.0, 15.0]})
    (tmp_path / findings.QUALITY).write_text(json.dumps(record))
    rsicd = findings.summary(tmp_path).split("**RSICD**")[1].split("\n")[0]
    assert "14.01 [13.00, 15.00]" in rsicd and "lies above the interval, so it stays below zero-shot CLIP" in rsicd

"""The boilerplate stripping of the VLM-quality benchmark (benchmarks/tune_vlm_retrieval.py), fixed before any figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from tune_vlm_retrieval import strip_boilerplate  # noqa: E402


@pytest.mark.parametrize("text, stripped", [
    ("The image depicts an aerial view of a bridge crossing over a river.", "A bridge crossing over a river."),
    ("The image is a bird's eye view of a large, empty track field.", "A large, empty track field."),
    ("This is a satellite image of a city with many roads.", "A city with many roads."),
    ("The image features a large bridge crossing over a body of water.", "Large bridge crossing over a body of water."),
    ("An airport with two runways and planes.", "An airport with two runways and planes."),  # nothing to strip
    ("The image shows a lake.", "The image shows a lake."),  # too little would be left: kept whole
])
def test_opening_templates_are_removed_and_nothing_else(text, stripped):
    assert strip_boilerplate(text) == stripped

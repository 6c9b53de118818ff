"""Long system names never squeeze a bar chart: the comparison keeps most of its width for the bars."""

from __future__ import annotations

import pandas as pd

from rsrt_utils.study.figures import LABEL_LINES, plot_comparison, system_label
from rsrt_utils.study.reference import published_table

LONGEST = ("neighbour:caption-transfer:efficientnet-lite0-multilayer+st:all-MiniLM-L6-v2 + hubness-corrected bank of "
           "UCM descriptions")  # longer than any label a run writes (the 90-character one of the per-run figure)


def rows(system: str) -> pd.DataFrame:
    measured = pd.DataFrame([{"system": system, "setting": "uses in-domain train captions; not zero-shot",
                              "dataset": "rsicd", "mR": 16.95, "ci_low": 15.68, "ci_high": 18.26, "kind": "measured"}])
    return pd.concat([measured, published_table()], ignore_index=True)


def plot_fraction(figure) -> float:
    """The share of the figure's width the narrowest panel's plot area keeps."""
    return min(ax.get_position().width for ax in figure.axes if ax.get_title(loc="left"))


def test_the_longest_label_leaves_most_of_the_width_to_the_bars(tmp_path):
    figure = plot_comparison(rows(LONGEST), path=tmp_path / "comparison.png")
    figure.canvas.draw()
    assert plot_fraction(figure) > 0.55, plot_fraction(figure)
    short = plot_comparison(rows("MiniLM"), path=tmp_path / "short.png")
    short.canvas.draw()
    assert plot_fraction(figure) > 0.8 * plot_fraction(short), "a long name costs the bars little width"


def test_a_label_is_wrapped_and_cut_with_its_setting_below():
    label = system_label(LONGEST, "uses in-domain train captions; not zero-shot")
    lines = label.splitlines()
    assert len(lines) <= LABEL_LINES + 2 and all(len(line) <= 36 for line in lines)
    assert lines[0].startswith("neighbour:caption") and "[uses in-domain" in label and label.endswith("zero-shot]")

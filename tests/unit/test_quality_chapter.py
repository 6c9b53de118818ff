"""The retrieval-quality chapter: its committed results honour the selection rule, and its tables and figures build."""

from __future__ import annotations

import pytest

from rsrt_utils.study import figures, quality


@pytest.fixture(scope="module")
def results():
    return quality.load_quality_results()


def test_every_setting_was_chosen_on_the_other_dataset(results):
    grid_keys = list(results["grid"])
    for reported, track in results["tracks"]["zero-shot"].items():
        chosen_on = track["chosen_on"]
        assert chosen_on != reported
        best = max(results["all_configurations"][chosen_on], key=lambda row: row["mR"])
        assert {k: best[k] for k in grid_keys} == track["config"]
        assert track["steps"][0]["config"] == results["baseline"] and track["steps"][-1]["config"] == track["config"]
        train = results["tracks"]["uses train data"][reported]
        assert train["chosen_on"] == chosen_on
        assert train["beta_b"] == max(train["beta_b_grid_on_chosen"], key=lambda row: row["mR"])["beta_b"]


def test_every_configuration_is_listed_on_both_datasets(results):
    n = 1
    for values in results["grid"].values():
        n *= len(values)
    assert {name: len(rows) for name, rows in results["all_configurations"].items()} == {"rsitmd": n, "rsicd": n}
    assert len(quality.tried_table(results)) == n


def test_tables_and_figures(results, tmp_path):
    targets = quality.targets_table(results)
    for row in targets.itertuples():
        if row.target == row.target and row.target is not None:  # not NaN
            assert row.met == (row.mR >= row.target)
    rows = quality.quality_rows(results)
    assert set(rows) == {"rsitmd", "rsicd"} and all(r[0]["step"].startswith("baseline") for r in rows.values())
    assert quality.quality_table(results)["mR"].notna().all()
    figures.plot_quality_path(rows, path=tmp_path / "path.png")
    figures.plot_gain_breakdown(quality.gain_pairs(results), path=tmp_path / "gains.png")
    assert (tmp_path / "path.png").stat().st_size > 10_000 and (tmp_path / "gains.png").stat().st_size > 10_000


def test_a_missing_results_file_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/tune_vlm_retrieval.py"):
        quality.load_quality_results(tmp_path / "none.json")

"""The retrieval-quality chapter: its committed results honour the selection rule, and its tables and figures build."""

from __future__ import annotations

import pytest

from rsrt_utils.study import figures, quality


@pytest.fixture(scope="module")
def results():
    return quality.load_quality_results()


def test_every_setting_was_chosen_on_the_other_dataset_without_the_shared_images(results):
    grid_keys = list(results["grid"])
    overlap = quality.load_overlap()
    assert results["overlap"]["current"] == overlap["shared_images"] and all(n > 0 for n in overlap["shared_images"].values())
    for reported, track in results["tracks"]["zero-shot"].items():
        chosen_on = track["chosen_on"]
        assert chosen_on != reported and track["selected_by"] == "mR_overlap_free"
        best = max(results["all_configurations"][chosen_on], key=lambda row: row["mR_overlap_free"])
        assert {k: best[k] for k in grid_keys} == track["config"]
        on_all = max(results["all_configurations"][chosen_on], key=lambda row: row["mR"])
        assert {k: on_all[k] for k in grid_keys} == results["selection_all_images"][reported]["config"]
        previous = max(results["all_configurations"][chosen_on], key=lambda row: row["mR_overlap_free_previous"])
        assert {k: previous[k] for k in grid_keys} == results["selection_previous_list"][reported]["config"]
        assert track["steps"][0]["config"] == results["baseline"] and quality._grid_step(track)["config"] == track["config"]
        train = results["tracks"]["uses train data"][reported]
        assert train["chosen_on"] == chosen_on
        assert train["beta_b"] == max(train["beta_b_grid_on_chosen"], key=lambda row: row["mR"])["beta_b"]


def test_the_beta_c_grid_turns_down_on_the_choosing_dataset(results):
    for track in results["tracks"]["zero-shot"].values():
        curve = [row["mR"] for row in sorted(track["beta_c_on_chosen"], key=lambda row: row["beta_c"])]
        assert len(curve) == len(results["grid"]["beta_c"]) and curve[-1] < max(curve)


def test_claims_carry_image_level_and_paired_intervals_for_the_pick_and_the_procedure(results):
    claims = quality.claims_table(results)
    for row in claims.to_dict("records"):
        lo, hi = row["pick ci95"]
        clip = row["zero-shot CLIP (quoted)"]
        assert lo <= row["pick mR"] <= hi and row["pick: CLIP below the interval"] == (clip < lo)
        assert row["final mR"] != row["pick mR"] or not row["larger bank adopted"]
        assert row["final: CLIP below the interval"] == (clip < row["final ci95"][0])
        gain_lo, gain_hi = row["gain ci95 (paired)"]
        assert gain_lo <= row["gain over baseline"] <= gain_hi
        p_lo, p_hi = row["procedure ci95"]
        assert p_lo <= row["procedure: expected mR"] <= p_hi and 0 < row["pick recurs"] <= 1
        assert row["procedure: CLIP below the interval"] == (clip < p_lo)
    bank = quality.bank_table(results)
    assert set(bank["dataset"]) == {"rsitmd", "rsicd"} and bank.filter(like="beta_c").notna().all().all()
    assert (bank["beta_c 0"].groupby(bank["dataset"]).nunique() == 1).all(), "beta_c 0 is the same with every bank"
    assert len(quality.overlap_table(quality.load_overlap())) == quality.load_overlap()["n_pairs"]


def test_the_selection_bootstrap_starts_from_the_recorded_pick(results):
    grid_keys = list(results["grid"])
    for label, per_dataset in results["selection_uncertainty"].items():
        for reported, r in per_dataset.items():
            assert r["pick_matches_selection"], f"{label} list, {reported}: the bootstrap's full-split argmax is the pick"
            row = next(c for c in results["all_configurations"][reported] if {k: c[k] for k in grid_keys} == r["pick"])
            assert r["pick_mR"] == row["mR"] and r["most_picked"][0]["share"] <= 1
            assert abs(sum(m["share"] for m in r["most_picked"]) - 1) < 1e-9 or len(r["most_picked"]) == 5
    assert len(quality.selection_table(results)) == 4 and len(quality.lists_table(results)) == 6


def test_the_larger_bank_is_adopted_only_when_chosen_on_the_other_dataset_and_transductive_never(results):
    for dataset, block in results["bank_lever"].items():
        larger, transductive = block["larger same-VLM bank"], block["transductive: the test captions"]
        assert larger["adopted"] == larger["chosen_over_pick"], "adopted on the choosing dataset alone"
        assert larger["chosen_over_pick"] == (max(r["mR"] for r in larger["grid_on_chosen"]) > larger["pick_on_chosen"])
        assert not transductive["adopted"]
        steps = [s["step"] for s in results["tracks"]["zero-shot"][dataset]["steps"]]
        assert any("larger same-VLM bank" in s for s in steps) == larger["adopted"]
        assert not any("transductive" in s for s in steps)
        assert max(larger["grid_on_chosen"], key=lambda r: r["mR"])["beta_c"] == larger["beta_c"]
    assert len(quality.bank_lever_table(results)) == 4


def test_both_conventions_are_given_for_every_row(results):
    table = quality.direction_means_table(results)
    full = quality.quality_table(results)
    assert table[["T2I mean", "I2T mean"]].notna().all().all()
    for direction, column in (("t2i", "T2I mean"), ("i2t", "I2T mean")):
        recalls = full[[f"{direction} R@{k}" for k in (1, 5, 10)]].mean(axis=1)
        assert ((recalls - full[column]).abs() <= 0.011).all()
    assert (((full["T2I mean"] + full["I2T mean"]) / 2 - full["mR"]).abs() <= 0.011).all()


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

"""R@K, mR, ties, bootstrap intervals and per-class tables against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from rsrt_utils.metrics import bootstrap_means, evaluate_scores, hits_at_k, mean_over_runs, rank_of_best_relevant

KS3 = (1, 2, 3)
# 3 images, 2 captions each; caption q describes image INDEX[q].
INDEX = np.array([0, 0, 1, 1, 2, 2])
# Text->image: ranks of the true image among the others (by hand) = [0, 1, 0, 2, 0, 1].
T2I = np.array([
    [0.9, 0.1, 0.2],   # q0 -> img0 first
    [0.3, 0.5, 0.1],   # q1 -> img0 second (0.5 above)
    [0.2, 0.8, 0.1],   # q2 -> img1 first
    [0.7, 0.1, 0.6],   # q3 -> img1 third
    [0.1, 0.2, 0.3],   # q4 -> img2 first
    [0.5, 0.4, 0.45],  # q5 -> img2 second
])
# Image->text: best relevant caption ranks (by hand) = [2, 1, 0].
I2T = np.array([
    [0.1, 0.2, 0.9, 0.3, 0.05, 0.0],  # img0: best own = 0.2, two others above -> rank 2
    [0.8, 0.1, 0.7, 0.2, 0.0, 0.0],   # img1: best own = 0.7, one above -> rank 1
    [0.1, 0.1, 0.1, 0.1, 0.3, 0.9],   # img2: q4 is low but q5 is first -> ANY relevant -> rank 0
])


def test_ranks_by_hand():
    relevant = INDEX[:, None] == np.arange(3)[None, :]
    assert rank_of_best_relevant(T2I, relevant).tolist() == [0, 1, 0, 2, 0, 1]
    assert rank_of_best_relevant(I2T, relevant.T).tolist() == [2, 1, 0]


def test_recalls_both_directions_and_mr_over_six():
    result = evaluate_scores(T2I, I2T, INDEX, ks=KS3, n_boot=10)
    assert result["t2i"] == {"R@1": 50.0, "R@2": 83.33, "R@3": 100.0}
    assert result["i2t"] == {"R@1": 33.33, "R@2": 66.67, "R@3": 100.0}
    # (50 + 83.333 + 100 + 33.333 + 66.667 + 100) / 6
    assert result["mR"] == 72.22
    assert result["n_queries"] == {"t2i": 6, "i2t": 3}
    # each direction's mean of its recalls (the convention of the method's released code): (50 + 83.333 + 100) / 3
    assert (result["mR_t2i"], result["mR_i2t"]) == (77.78, 66.67)
    for key in ("mR_t2i", "mR_i2t"):
        low, high = result["ci95"][key]
        assert low <= result[key] <= high


def test_i2t_counts_any_relevant_caption():
    """Image 0 owns captions 0 and 2; only caption 2 is ranked first for it: still a hit at R@1."""
    i2t = np.array([[0.0, 0.5, 0.9], [0.1, 0.9, 0.2]])
    t2i = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    result = evaluate_scores(t2i, i2t, [0, 1, 0], ks=(1, 2), n_boot=5)
    assert result["i2t"]["R@1"] == 100.0
    first_only = evaluate_scores(t2i, i2t, [0, 1, 1], ks=(1, 2), n_boot=5)  # caption 2 re-assigned to image 1
    assert first_only["i2t"]["R@1"] == 50.0  # image 0 keeps only caption 0, which it ranks last


def test_default_ks_with_designed_ranks():
    """12 images, one caption each; the true image is placed at ranks 0, 3, 7, 11 for four queries."""
    n = 12
    wanted = {0: 0, 1: 3, 2: 7, 3: 11}
    scores = np.zeros((n, n))
    for q in range(n):
        order = [j for j in range(n) if j != q]
        rank = wanted.get(q, 0)
        ranking = order[:rank] + [q] + order[rank:]
        scores[q, ranking] = np.linspace(1.0, 0.0, n)
    result = evaluate_scores(scores, scores.T.copy(), np.arange(n), n_boot=10)
    # t2i hits: R@1 misses q1,q2,q3 -> 9/12; R@5 misses q2,q3 -> 10/12; R@10 misses q3 -> 11/12
    assert result["t2i"] == {"R@1": 75.0, "R@5": 83.33, "R@10": 91.67}


@pytest.mark.parametrize("ties, rank", [("pessimistic", 1), ("optimistic", 0)])
def test_ties(ties, rank):
    """An irrelevant candidate with the same score counts above (pessimistic) or not (optimistic)."""
    scores = np.array([[0.5, 0.5, 0.1]])
    relevant = np.array([[True, False, False]])
    assert rank_of_best_relevant(scores, relevant, ties).tolist() == [rank]
    assert hits_at_k([rank], (1, 2)).tolist() == [[rank == 0, True]]


def test_ties_in_evaluate_scores():
    """Two images with identical captions: pessimistic R@1 = 0, optimistic R@1 = 100."""
    t2i = np.full((2, 2), 0.7)
    pess = evaluate_scores(t2i, t2i.T.copy(), [0, 1], ks=(1,), ties="pessimistic", n_boot=5)
    opt = evaluate_scores(t2i, t2i.T.copy(), [0, 1], ks=(1,), ties="optimistic", n_boot=5)
    assert pess["mR"] == 0.0 and opt["mR"] == 100.0


def test_unknown_tie_policy():
    with pytest.raises(ValueError, match="ties"):
        rank_of_best_relevant(np.zeros((1, 2)), np.array([[True, False]]), "random")


def test_query_without_relevant_candidate_is_an_error():
    t2i = np.array([[0.9, 0.1], [0.8, 0.2]])
    with pytest.raises(ValueError, match="no relevant candidate"):
        evaluate_scores(t2i, t2i.T.copy(), [0, 0], n_boot=5)  # image 1 has no caption


def test_shape_errors():
    with pytest.raises(ValueError, match="i2t_scores"):
        evaluate_scores(T2I, T2I, INDEX, n_boot=5)
    with pytest.raises(ValueError, match="caption_image_index"):
        evaluate_scores(T2I, I2T, INDEX[:5], n_boot=5)


def _tiled(n_blocks: int, seed: int = 3) -> np.ndarray:
    """n_blocks copies of one random 10x10 block on the diagonal; cross-block scores far below."""
    block = np.random.default_rng(seed).uniform(0, 1, size=(10, 10))
    scores = np.full((10 * n_blocks, 10 * n_blocks), -1.0)
    for b in range(n_blocks):
        scores[10 * b:10 * (b + 1), 10 * b:10 * (b + 1)] = block
    return scores


def test_bootstrap_contains_point_and_shrinks_with_more_queries():
    small, large = _tiled(1), _tiled(40)
    r_small = evaluate_scores(small, small.T.copy(), np.arange(10), ks=(1, 2, 3), n_boot=500)
    r_large = evaluate_scores(large, large.T.copy(), np.arange(400), ks=(1, 2, 3), n_boot=500)
    assert r_small["mR"] == r_large["mR"]  # the same ranks, repeated
    for r in (r_small, r_large):
        lo, hi = r["ci95"]["mR"]
        assert lo <= r["mR"] <= hi
        for d in ("t2i", "i2t"):
            for key, (lo, hi) in r["ci95"][d].items():
                assert lo <= r[d][key] <= hi
    width = lambda r: r["ci95"]["mR"][1] - r["ci95"]["mR"][0]  # noqa: E731
    assert width(r_large) < width(r_small) / 3  # ~ 1/sqrt(40)


def test_bootstrap_means_seeded_and_shaped():
    hits = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=bool)
    a = bootstrap_means(hits, 50, np.random.default_rng(1))
    b = bootstrap_means(hits, 50, np.random.default_rng(1))
    assert a.shape == (50, 2) and np.array_equal(a, b)
    assert set(np.unique(a * 4).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_per_class_table_by_hand():
    result = evaluate_scores(T2I, I2T, INDEX, image_classes=["a", "a", "b"], ks=KS3, n_boot=5)
    table = {row["scene_class"]: row for row in result["per_class"]}
    # class a: t2i ranks [0,1,0,2], i2t ranks [2,1]; class b: t2i ranks [0,1], i2t rank [0]
    assert [table["a"][f"t2i R@{k}"] for k in KS3] == [50.0, 75.0, 100.0]
    assert [table["a"][f"i2t R@{k}"] for k in KS3] == [0.0, 50.0, 100.0]
    assert [table["b"][f"t2i R@{k}"] for k in KS3] == [50.0, 100.0, 100.0]
    assert [table["b"][f"i2t R@{k}"] for k in KS3] == [100.0, 100.0, 100.0]
    assert table["a"]["mR"] == 62.5 and table["b"]["mR"] == 91.67
    assert table["a"]["n_images"] == 2 and table["b"]["n_images"] == 1


def _run(mr, t2i1, ci):
    return {"t2i": {"R@1": t2i1}, "i2t": {"R@1": 2 * t2i1}, "mR": mr, "ci95": {"mR": ci}}


def test_mean_over_runs():
    out = mean_over_runs([_run(40.0, 10.0, [30.0, 50.0]), _run(50.0, 20.0, [40.0, 60.0])])
    assert out["mR"] == 45.0
    assert out["t2i"] == {"R@1": 15.0} and out["i2t"] == {"R@1": 30.0}
    assert out["ci95"]["mR"] == [35.0, 55.0]
    with pytest.raises(ValueError):
        mean_over_runs([])


def test_n_boot_zero_is_a_clear_error():
    with pytest.raises(ValueError, match="n_boot must be >= 1"):
        evaluate_scores(T2I, I2T, INDEX, n_boot=0)


@pytest.mark.parametrize("n", [1, 7, 5465])
def test_bootstrap_means_equals_resampled_means(n):
    """Same draws as the direct definition hits[idx].mean(axis=1), bit for bit."""
    hits = np.random.default_rng(n).random((n, 3)) < 0.4
    fast = bootstrap_means(hits, 700, np.random.default_rng(9))
    rng, step = np.random.default_rng(9), max(1, 2_000_000 // n)
    direct = np.concatenate([hits[rng.integers(0, n, size=(min(700, s + step) - s, n))].mean(axis=1)
                             for s in range(0, 700, step)])
    np.testing.assert_array_equal(fast, direct)


def test_duplicate_aware_relevance_marks_every_image_sharing_the_text():
    from rsrt_utils.metrics import duplicate_aware_relevance

    captions = ["A river", "a  river", "a bridge", "a farm"]
    relevant = duplicate_aware_relevance(captions, [0, 1, 1, 2], 3)
    expected = np.array([[True, True, False], [True, True, False], [False, True, False], [False, False, True]])
    assert (relevant == expected).all()


def test_duplicate_aware_relevance_can_only_raise_recall():
    from rsrt_utils.metrics import duplicate_aware_relevance

    # caption 0 and 1 are the same text for images 0 and 1; image 1 scores higher for both
    t2i = np.array([[0.2, 0.9], [0.2, 0.9], [0.1, 0.8]])
    index = np.array([0, 1, 1])
    standard = evaluate_scores(t2i, t2i.T.copy(), index, ks=(1,), n_boot=1, ties="pessimistic")
    aware = evaluate_scores(t2i, t2i.T.copy(), index, ks=(1,), n_boot=1, ties="pessimistic",
                            relevant=duplicate_aware_relevance(["x", "x", "y"], index, 2))
    assert standard["t2i"]["R@1"] == round(200 / 3, 2)
    assert aware["t2i"]["R@1"] == 100.0
    # i2t: each image's best own caption ties with the other image's identical caption ("x"), and ties count
    # against (pessimistic), so both miss; with duplicates relevant the tied caption is relevant too
    assert standard["i2t"]["R@1"] == 0.0 and aware["i2t"]["R@1"] == 100.0


def test_random_ties_are_the_expected_hit_rate_of_random_orders():
    """Exact formula against brute force: average hits over every order of the tied candidates."""
    from itertools import permutations

    from rsrt_utils.metrics import random_tie_hit_rates

    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.5, 0.1]])
    relevant = np.array([[False, True, False, True, False, False]])  # g = 1 above, t = 2 and r = 2 tied
    expected = []
    for k in (1, 2, 3, 4):
        hits = []
        for order in permutations(range(1, 5)):  # the four tied candidates in every order
            ranking = [0, *order, 5]
            first_relevant = min(ranking.index(c) for c in (1, 3))
            hits.append(first_relevant < k)
        expected.append(np.mean(hits))
    assert np.allclose(random_tie_hit_rates(scores, relevant, ks=(1, 2, 3, 4))[0], expected)
    assert np.allclose(expected, [0.0, 2 / 4, 5 / 6, 1.0])


def test_random_ties_lie_between_pessimistic_and_optimistic():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(40, 12)).astype(float)  # many exact ties
    index = rng.integers(0, 12, size=40)
    index[:12] = np.arange(12)
    results = {t: evaluate_scores(scores, scores.T.copy(), index, ties=t, n_boot=1)["mR"]
               for t in ("pessimistic", "random", "optimistic")}
    assert results["pessimistic"] < results["random"] < results["optimistic"]


def test_float_noise_does_not_break_a_tie():
    """Identical texts can score a few ulps apart; at 1e-6 resolution they still tie."""
    t2i = np.array([[0.7, 0.7 + 3e-8], [0.2, 0.9]], dtype=np.float32)
    result = evaluate_scores(t2i, t2i.T.copy(), np.array([0, 1]), ks=(1,), n_boot=1, ties="pessimistic")
    assert result["t2i"]["R@1"] == 50.0  # query 0 ties with image 1: a miss when ties count against
    optimistic = evaluate_scores(t2i, t2i.T.copy(), np.array([0, 1]), ks=(1,), n_boot=1, ties="optimistic")
    assert optimistic["t2i"]["R@1"] == 100.0


# ---------------------------------------------------------------- image-level (cluster) and paired intervals
def _correlated_scores(n_images: int = 120, per_image: int = 5, seed: int = 0):
    """Scores where an image's captions share its difficulty (correlated hits), as in real benchmarks."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(n_images), per_image)
    difficulty = rng.normal(size=n_images)[owner]
    t2i = rng.normal(size=(len(owner), n_images))
    t2i[np.arange(len(owner)), owner] += 2.0 - 1.5 * difficulty
    return t2i, np.ascontiguousarray(t2i.T), owner


def test_image_bootstrap_equals_resampling_images_with_their_captions():
    from rsrt_utils.metrics import hit_rates, image_bootstrap_means, relevance_t2i

    t2i, i2t, owner = _correlated_scores(40)
    relevant = relevance_t2i(owner, 40)
    t2i_hits, i2t_hits = hit_rates(t2i, relevant), hit_rates(i2t, relevant.T)
    fast_t2i, fast_i2t = image_bootstrap_means(t2i_hits, i2t_hits, owner, 6, np.random.default_rng(4))
    draws = np.random.default_rng(4).integers(0, 40, size=(6, 40))
    for row, images in enumerate(draws):
        captions = np.concatenate([np.flatnonzero(owner == i) for i in images])
        assert np.allclose(fast_t2i[row], t2i_hits[captions].mean(axis=0))
        assert np.allclose(fast_i2t[row], i2t_hits[images].mean(axis=0))


def test_image_level_interval_is_wider_than_the_caption_level_one_when_captions_are_correlated():
    t2i, i2t, owner = _correlated_scores()
    result = evaluate_scores(t2i, i2t, owner, n_boot=2000)
    image, caption = result["ci95"]["mR"], result["ci95_caption_level"]["mR"]
    assert image[0] <= result["mR"] <= image[1] and "over images" in result["ci95"]["method"]
    assert image[1] - image[0] > 1.1 * (caption[1] - caption[0])


def test_paired_difference_of_a_setting_with_itself_is_exactly_zero_and_a_real_gain_is_found():
    from rsrt_utils.metrics import paired_mr_difference, quoted_inside

    t2i, i2t, owner = _correlated_scores()
    same = paired_mr_difference((t2i, i2t), (t2i, i2t), owner, n_boot=200)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0]
    better_t2i = t2i.copy()
    better_t2i[np.arange(len(owner)), owner] += 1.0
    gain = paired_mr_difference((better_t2i, i2t), (t2i, i2t), owner, n_boot=500)
    a = evaluate_scores(better_t2i, i2t, owner, n_boot=1)["mR"] - evaluate_scores(t2i, i2t, owner, n_boot=1)["mR"]
    assert abs(gain["difference"] - a) < 0.02 and gain["ci95"][0] > 0
    assert quoted_inside([1.0, 2.0], 1.5) and not quoted_inside([1.0, 2.0], 2.5)


def _settings(strengths, n_images=60, per_image=5, seed=0):
    """(t2i, i2t) score pairs whose true match is lifted by each strength, and the caption owners."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(n_images), per_image)
    out = []
    for lift in strengths:
        t2i = rng.normal(size=(owner.size, n_images))
        t2i[np.arange(owner.size), owner] += lift
        i2t = rng.normal(size=(n_images, owner.size))
        i2t[owner, np.arange(owner.size)] += lift
        out.append((t2i, i2t))
    return out, owner


def test_per_image_hits_give_the_protocol_mr_of_every_setting():
    from rsrt_utils.metrics import mr_from_image_hits, per_image_hits

    settings, owner = _settings([0.0, 1.0, 2.5])
    hits = np.stack([per_image_hits(t2i, i2t, owner) for t2i, i2t in settings], axis=1)
    whole = mr_from_image_hits(hits, np.ones((1, hits.shape[0])))[0] * 100
    assert np.allclose(whole, [evaluate_scores(t2i, i2t, owner, n_boot=1)["mR"] for t2i, i2t in settings], atol=0.006)
    drawn = np.zeros(hits.shape[0])
    drawn[:30] = 2  # the first 30 images drawn twice each: the same mR as those 30 images alone
    assert np.allclose(mr_from_image_hits(hits[:30], np.ones((1, 30)))[0], mr_from_image_hits(hits, drawn[None])[0])


def test_selection_bootstrap_recurs_always_for_a_clear_winner_and_splits_between_equals():
    from rsrt_utils.metrics import per_image_hits, selection_bootstrap

    clear, owner = _settings([0.0, 0.5, 3.0])
    hits = np.stack([per_image_hits(t2i, i2t, owner) for t2i, i2t in clear], axis=1)
    result = selection_bootstrap(hits, np.array([10.0, 20.0, 30.0]), n_boot=200, seed=1)
    assert (result["pick"], result["recurrence"], result["expected_mR"], result["ci95"]) == (2, 1.0, 30.0, [30.0, 30.0])
    equal, owner = _settings([1.0, 1.0, 1.0], seed=3)
    hits = np.stack([per_image_hits(t2i, i2t, owner) for t2i, i2t in equal], axis=1)
    result = selection_bootstrap(hits, np.array([10.0, 20.0, 30.0]), n_boot=400, seed=1)
    assert 0.15 < result["recurrence"] < 0.85 and len(result["picks"]) >= 2, "equals: no setting wins every resample"
    assert 10.0 < result["expected_mR"] < 30.0 and result["ci95"][0] < result["ci95"][1]
    assert sum(result["picks"].values()) == 400

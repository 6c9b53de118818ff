"""Reciprocal rank fusion on hand-made rankings whose fused order is computed by hand."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rsrt_utils.baselines.fusion import evaluate_fused, fuse_retrieval, reciprocal_rank_fusion, row_ranks
from rsrt_utils.metrics import evaluate_scores


def test_row_ranks_are_one_based_best_first():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [-2.0, 7.0, 1.0, 0.0]])
    np.testing.assert_array_equal(row_ranks(scores), [[1, 4, 2, 3], [4, 1, 2, 3]])


def test_row_ranks_tie_policies():
    scores = np.array([[0.5, 0.9, 0.5, 0.1]])
    np.testing.assert_array_equal(row_ranks(scores, ties="min"), [[2, 1, 2, 4]])
    np.testing.assert_array_equal(row_ranks(scores, ties="ordinal"), [[2, 1, 3, 4]])


def test_two_systems_fuse_to_the_hand_computed_order():
    # system A ranks candidates 0,1,2,3 as 1,2,3,4 (cosines); system B as 4,3,1,2 (a different scale)
    system_a = np.array([[0.9, 0.8, 0.7, 0.6]])
    system_b = np.array([[10.0, 20.0, 40.0, 30.0]])
    fused = reciprocal_rank_fusion([system_a, system_b])
    by_hand = [1 / 61 + 1 / 64, 1 / 62 + 1 / 63, 1 / 63 + 1 / 61, 1 / 64 + 1 / 62]
    np.testing.assert_allclose(fused, [by_hand], rtol=1e-12)
    # 1/63+1/61 = .032266 > 1/61+1/64 = .032018 > 1/62+1/63 = .032002 > 1/64+1/62 = .031754
    assert list(np.argsort(-fused[0])) == [2, 0, 1, 3]


def test_the_constant_k_changes_the_winner_as_computed_by_hand():
    # candidate 0: ranks 1 and 10; candidate 1: ranks 4 and 4; the rest fill ranks 2,3,5..10 / 1,2,3,5..9
    system_a = -np.array([[1, 4, 2, 3, 5, 6, 7, 8, 9, 10]], dtype=float)
    system_b = -np.array([[10, 4, 1, 2, 3, 5, 6, 7, 8, 9]], dtype=float)
    small_k = reciprocal_rank_fusion([system_a, system_b], k=1)
    standard = reciprocal_rank_fusion([system_a, system_b])
    assert small_k[0, 0] == pytest.approx(1 / 2 + 1 / 11) and small_k[0, 1] == pytest.approx(2 / 5)
    assert standard[0, 0] == pytest.approx(1 / 61 + 1 / 70) and standard[0, 1] == pytest.approx(2 / 64)
    assert small_k[0, 0] > small_k[0, 1]      # 0.5909 > 0.4000: the single first place wins
    assert standard[0, 1] > standard[0, 0]    # 0.03125 > 0.03068: consistent fourth places win


def test_rows_are_fused_independently_and_three_systems_add_up():
    first = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    second = np.array([[1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    third = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    fused = reciprocal_rank_fusion([first, second, third], k=60)
    row0 = [1 / 61 + 1 / 63 + 1 / 63, 1 / 62 + 1 / 61 + 1 / 62, 1 / 63 + 1 / 62 + 1 / 61]
    row1 = [1 / 63 + 1 / 63 + 1 / 61, 1 / 62 + 1 / 62 + 1 / 62, 1 / 61 + 1 / 61 + 1 / 63]
    np.testing.assert_allclose(fused, [row0, row1], rtol=1e-12)
    assert list(np.argsort(-fused[0])) == [1, 2, 0] and list(np.argsort(-fused[1])) == [2, 1, 0]


def test_tied_scores_share_their_reciprocal_rank():
    fused = reciprocal_rank_fusion([np.array([[0.5, 0.5, 0.1]])])
    np.testing.assert_allclose(fused, [[1 / 61, 1 / 61, 1 / 63]])


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="differ in shape"):
        reciprocal_rank_fusion([np.zeros((2, 3)), np.zeros((3, 2))])
    with pytest.raises(ValueError, match="k must be > 0"):
        reciprocal_rank_fusion([np.zeros((2, 3))], k=0)
    with pytest.raises(ValueError, match="NaN"):
        reciprocal_rank_fusion([np.array([[0.1, np.nan]])])
    with pytest.raises(ValueError, match="at least one"):
        reciprocal_rank_fusion([])


def test_fused_retrieval_is_scored_by_evaluate_scores():
    rng = np.random.default_rng(0)
    caption_image_index = np.repeat(np.arange(20), 5)
    systems = [(rng.normal(size=(100, 20)), rng.normal(size=(20, 100))) for _ in range(2)]
    t2i, i2t = fuse_retrieval(systems)
    assert t2i.shape == (100, 20) and i2t.shape == (20, 100)
    result = evaluate_fused(systems, caption_image_index, n_boot=20)
    expected = evaluate_scores(t2i, i2t, caption_image_index, n_boot=20)
    assert {key: result[key] for key in expected} == expected and result["fusion"]["k"] == 60


def test_fusing_a_system_with_itself_keeps_its_ranking_and_recalls():
    rng = np.random.default_rng(1)
    caption_image_index = np.repeat(np.arange(30), 5)
    t2i = rng.normal(size=(150, 30))
    i2t = rng.normal(size=(30, 150))
    alone = evaluate_scores(t2i, i2t, caption_image_index, n_boot=10)
    fused = evaluate_fused([(t2i, i2t), (t2i, i2t)], caption_image_index, n_boot=10)
    assert (fused["t2i"], fused["i2t"], fused["mR"]) == (alone["t2i"], alone["i2t"], alone["mR"])


def test_fusion_is_vectorised_at_benchmark_size():
    rng = np.random.default_rng(2)
    systems = [rng.normal(size=(5465, 1093)).astype(np.float32) for _ in range(2)]
    started = time.perf_counter()
    fused = reciprocal_rank_fusion(systems)
    assert fused.shape == (5465, 1093)
    assert time.perf_counter() - started < 10, "RRF over an RSICD-sized matrix should take seconds, not minutes"


def test_zscore_sum_standardises_each_row_then_adds_with_equal_weights():
    from rsrt_utils.baselines.fusion import zscore_sum_fusion

    a = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    b = np.array([[30.0, 10.0, 20.0], [0.0, 2.0, 1.0]])
    z = 1.224744871391589  # (3 - 2) / std([1, 2, 3]) with ddof 0
    expected = np.array([[-z + z, 0.0 - z, z + 0.0], [0.0 - z, 0.0 + z, 0.0]])
    np.testing.assert_allclose(zscore_sum_fusion([a, b]), expected)  # a constant row adds nothing
    with pytest.raises(ValueError, match="one shape"):
        zscore_sum_fusion([a, b[:, :2]])
    with pytest.raises(ValueError, match="choose one of rrf, zsum"):
        fuse_retrieval([(a, a.T)], method="borda")

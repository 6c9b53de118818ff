"""Pooling over a variable number of variants, gallery building, chunking, both score directions, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from rsrt_utils.retrieval import VariantGallery, pool, pooled_similarity, text_to_text_scores, top_k
from rsrt_utils.vectors import l2_normalise

# Image 0 has three variants, image 1 only one (its other slots are padding and must be ignored).
VARIANTS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
GROUPS = [0, 0, 0, 1]
QUERIES = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
# By hand. q0 vs img0: 1, 0, 0.6; vs img1: 0.8.  q1 vs img0: -1, 0, -0.6; vs img1: -0.8.
EXPECTED = {
    "max": [[1.0, 0.8], [0.0, -0.8]],
    "mean": [[1.6 / 3, 0.8], [-1.6 / 3, -0.8]],
    "top2-mean": [[0.8, 0.8], [-0.3, -0.8]],
}


@pytest.fixture
def gallery() -> VariantGallery:
    return VariantGallery.from_groups(VARIANTS, GROUPS)


@pytest.mark.parametrize("pooling", sorted(EXPECTED))
def test_pooling_by_hand_with_masking(gallery, pooling):
    scores = pooled_similarity(QUERIES, gallery, pooling)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, EXPECTED[pooling], atol=1e-6)


def test_pool_ignores_masked_slots_directly():
    sims = np.array([[[0.2, 0.9, 0.4], [0.3, 5.0, 5.0]]])
    mask = np.array([[True, True, True], [True, False, False]])
    np.testing.assert_allclose(pool(sims, mask, "max"), [[0.9, 0.3]])
    np.testing.assert_allclose(pool(sims, mask, "mean"), [[0.5, 0.3]])
    np.testing.assert_allclose(pool(sims, mask, "top2-mean"), [[0.65, 0.3]])


def test_top2_mean_with_single_column():
    sims = np.array([[[0.7], [0.1]]])
    np.testing.assert_allclose(pool(sims, np.ones((2, 1), bool), "top2-mean"), [[0.7, 0.1]])


def test_unknown_pooling():
    with pytest.raises(ValueError, match="pooling"):
        pool(np.zeros((1, 1, 1)), np.ones((1, 1), bool), "median")


def test_from_groups_places_unordered_rows():
    vectors = np.arange(10, dtype=np.float32).reshape(5, 2)
    g = VariantGallery.from_groups(vectors, [1, 0, 1, 0, 1])
    assert g.embeddings.shape == (2, 3, 2) and g.n_images == 2
    np.testing.assert_array_equal(g.embeddings[0, :2], vectors[[1, 3]])
    np.testing.assert_array_equal(g.embeddings[1], vectors[[0, 2, 4]])
    assert g.mask.tolist() == [[True, True, False], [True, True, True]]
    np.testing.assert_array_equal(g.embeddings[0, 2], [0, 0])


def test_from_groups_errors():
    with pytest.raises(ValueError, match="group indices"):
        VariantGallery.from_groups(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="no text"):
        VariantGallery.from_groups(np.ones((2, 2)), [0, 0], n_groups=2)  # image 1 has no variant
    with pytest.raises(ValueError, match="3-D"):
        VariantGallery(np.zeros((2, 2)), np.ones((2, 2), bool))


def test_take_variants(gallery):
    one = gallery.take_variants(1)
    assert one.embeddings.shape == (2, 1, 2) and one.mask.all()
    np.testing.assert_allclose(pooled_similarity(QUERIES, one, "max"), [[1.0, 0.8], [-1.0, -0.8]])
    two = gallery.take_variants(2)
    assert two.mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError):
        gallery.take_variants(0)


@pytest.mark.parametrize("pooling", ["max", "mean", "top2-mean"])
def test_chunking_equals_unchunked(pooling):
    rng = np.random.default_rng(0)
    vectors = l2_normalise(rng.normal(size=(40, 16)))
    groups = np.r_[np.arange(9), rng.integers(0, 9, size=31)]  # every image has >= 1 variant, counts vary
    g = VariantGallery.from_groups(vectors, groups)
    queries = l2_normalise(rng.normal(size=(23, 16)))
    full = pooled_similarity(queries, g, pooling, chunk_size=10_000)
    # BLAS may round a 1-row product differently from a block product: equal up to float32 rounding
    for chunk in (1, 4, 22):
        np.testing.assert_allclose(pooled_similarity(queries, g, pooling, chunk_size=chunk), full, rtol=0, atol=1e-6)


def test_dimension_mismatch(gallery):
    with pytest.raises(ValueError, match="dimension"):
        pooled_similarity(np.ones((1, 3)), gallery)


def test_text_to_text_scores_default_is_transpose(gallery):
    t2i, i2t = text_to_text_scores(QUERIES, gallery)
    np.testing.assert_array_equal(i2t, t2i.T)
    assert i2t.flags.c_contiguous


def test_text_to_text_scores_with_separate_image_queries():
    captions = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    gallery = VariantGallery.from_groups(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1])
    image_queries = VariantGallery.from_groups(np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]), [0, 1, 1])
    t2i, i2t = text_to_text_scores(captions, gallery, image_queries, pooling="max")
    np.testing.assert_allclose(t2i, [[1, 0], [0, 1]])
    # image 0 stands for [0,1]; image 1 for [1,0] and [0.6,0.8] -> max per caption
    np.testing.assert_allclose(i2t, [[0.0, 1.0], [1.0, 0.8]], atol=1e-6)
    with pytest.raises(ValueError, match="image queries"):
        text_to_text_scores(captions, gallery, VariantGallery.from_groups(np.ones((1, 2)), [0]))


def test_top_k_order():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert top_k(scores, 10).tolist() == [[1, 3, 2, 0], [0, 1, 2, 3]]
    assert top_k(scores, 1).tolist() == [[1], [0]]


def test_l2_normalise_keeps_zero_rows():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


@pytest.mark.parametrize("pooling", ["max", "mean", "top2-mean"])
@pytest.mark.parametrize("max_variants", [1, 2, 5, 9])
def test_fast_pooling_is_identical_to_the_reference(pooling, max_variants):
    """pooled_similarity (slice-wise pooling) gives exactly what `pool` gives on the full similarity tensor."""
    rng = np.random.default_rng(max_variants)
    n_img, dim = 30, 24
    groups = np.r_[np.arange(n_img), rng.integers(0, n_img, size=n_img * (max_variants - 1))]
    g = VariantGallery.from_groups(l2_normalise(rng.normal(size=(len(groups), dim))), groups)
    queries = l2_normalise(rng.normal(size=(17, dim)))
    sims = (queries @ g.embeddings.reshape(-1, dim).T).reshape(17, *g.mask.shape)
    reference = pool(sims, g.mask, pooling).astype(np.float32)  # mean divides by int counts -> float64
    np.testing.assert_array_equal(pooled_similarity(queries, g, pooling, chunk_size=10_000), reference)


def test_hubness_is_the_mean_of_the_k_nearest_bank_similarities():
    from rsrt_utils.retrieval import hubness

    vectors = l2_normalise(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    bank = l2_normalise(np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]))
    sims = vectors @ bank.T
    expected = np.sort(sims, axis=1)[:, -2:].mean(axis=1)
    np.testing.assert_allclose(hubness(vectors, bank, k=2), expected, rtol=1e-6)
    itself = hubness(vectors, vectors, k=1, exclude_self=True)  # the nearest OTHER row
    np.testing.assert_allclose(itself, [np.sqrt(0.5), np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)

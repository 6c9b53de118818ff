"""The search tool's vector index: exact and HNSW search against an independent numpy computation."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from rsrt_utils.search import index as index_module
from rsrt_utils.search.index import IndexLoadError, VectorIndex, exact_search
from rsrt_utils.search.synthetic_vectors import clustered_embeddings

RECALL_BAR = 0.95  # the approximate index's recall@10 against exact search, as targeted at 10^6 rows


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def brute_force(vectors: np.ndarray, owners: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Item scores (q, n_items): max cosine over each item's rows, computed row by row in float64."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q.astype(np.float64) @ v.astype(np.float64).T
    pooled = np.full((len(q), owners.max() + 1), -np.inf)
    for row, owner in enumerate(owners):
        pooled[:, owner] = np.maximum(pooled[:, owner], sims[:, row])
    return pooled


def assert_same_ranking(scores: np.ndarray, items: np.ndarray, pooled: np.ndarray, k: int) -> None:
    """Returned scores are the true top-k pooled scores, and each returned item really has its returned score."""
    truth = -np.sort(-pooled, axis=1)[:, :k]
    np.testing.assert_allclose(scores, truth, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(pooled, items, 1), scores, atol=1e-5)
    assert all(len(set(row)) == k for row in items), "an item was returned twice"


@pytest.fixture(scope="module")
def random_set():
    """3000 rows of 32-d unit vectors, 1..6 rows per item (uneven on purpose), and 40 queries."""
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 7, 800)
    owners = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(owners)
    return unit_rows(rng, len(owners), 32), owners, unit_rows(rng, 40, 32)


def test_exact_index_equals_numpy_brute_force(random_set):
    vectors, owners, queries = random_set
    index = VectorIndex.build(vectors * 3.0, owners, kind="exact")  # not normalised: the index normalises
    scores, items = index.search(queries * 0.5, k=10)
    assert (index.kind, index.dim, index.n_vectors, index.n_items) == ("exact", 32, len(vectors), 800)
    assert scores.dtype == np.float32 and items.dtype == np.int64 and scores.shape == items.shape == (40, 10)
    assert_same_ranking(scores, items, brute_force(vectors, owners, queries), 10)


def test_numpy_reference_equals_brute_force(random_set):
    vectors, owners, queries = random_set
    scores, items = exact_search(vectors, owners, queries, k=10)
    assert_same_ranking(scores, items, brute_force(vectors, owners, queries), 10)


def test_hnsw_recall_at_10_on_clustered_embeddings():
    data = clustered_embeddings(4000, variants=5, dim=384, n_queries=200, seed=3)  # 20k rows like sentence vectors
    start = time.perf_counter()
    index = VectorIndex.build(data.vectors, data.owners, kind="hnsw")
    _, found = index.search(data.queries, k=10)
    elapsed = time.perf_counter() - start
    truth = np.argsort(-brute_force(data.vectors, data.owners, data.queries), axis=1, kind="stable")[:, :10]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert index.kind == "hnsw" and index.n_items == 4000
    assert recall >= RECALL_BAR, f"HNSW recall@10 {recall:.3f} < {RECALL_BAR} (build + search {elapsed:.1f} s)"


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_max_pooling_finds_items_behind_a_crowd_of_rows(kind):
    """Item 0's twelve rows all beat every other row; k=3 must still return three distinct items, best row each."""
    rng = np.random.default_rng(1)
    query = unit_rows(rng, 1, 16)[0]
    crowd = query + 0.05 * rng.standard_normal((12, 16))
    others = unit_rows(rng, 30, 16) + 0.6 * query
    vectors = np.vstack([crowd, others]).astype(np.float32)
    owners = np.r_[np.zeros(12, dtype=np.int64), np.repeat(np.arange(1, 16), 2)]
    scores, items = VectorIndex.build(vectors, owners, kind=kind).search(query, k=3)
    pooled = brute_force(vectors, owners, query[None, :])
    assert items[0, 0] == 0 and len(set(items[0])) == 3
    assert_same_ranking(scores, items, pooled, 3)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_fewer_items_than_k_are_padded(kind):
    rng = np.random.default_rng(2)
    vectors, owners = unit_rows(rng, 7, 8), np.array([0, 0, 1, 2, 2, 2, 1])
    scores, items = VectorIndex.build(vectors, owners, kind=kind).search(unit_rows(rng, 2, 8), k=5)
    assert items.shape == (2, 5)
    assert (np.sort(items[:, :3], axis=1) == [0, 1, 2]).all()
    assert (items[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all() and np.isfinite(scores[:, :3]).all()


def test_auto_switches_to_hnsw_at_the_threshold(monkeypatch, random_set):
    vectors, owners, _ = random_set
    monkeypatch.setattr(index_module, "EXACT_MAX_VECTORS", len(vectors))
    assert VectorIndex.build(vectors, owners).kind == "hnsw"
    monkeypatch.setattr(index_module, "EXACT_MAX_VECTORS", len(vectors) + 1)
    assert VectorIndex.build(vectors, owners).kind == "exact"


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_save_load_round_trip_gives_the_same_results(tmp_path, random_set, kind):
    vectors, owners, queries = random_set
    index = VectorIndex.build(vectors, owners, kind=kind, params={"M": 8} if kind == "hnsw" else None)
    index.save(tmp_path / "ix")
    index.save(tmp_path / "ix")  # saving over an existing folder swaps it, leaving nothing else behind
    loaded = VectorIndex.load(tmp_path / "ix")
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved index"):
        index.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me" and len(list(tmp_path.iterdir())) == 2
    assert (loaded.kind, loaded.dim, loaded.n_vectors, loaded.n_items, loaded.params) == \
           (index.kind, index.dim, index.n_vectors, index.n_items, index.params)
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10)):
        np.testing.assert_array_equal(got, want)


def test_load_of_a_missing_folder_names_it(tmp_path):
    with pytest.raises(IndexLoadError, match=r"nowhere does not exist.*Build it"):
        VectorIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-meta", "bad-meta"])
def test_load_of_a_damaged_folder_names_it_and_the_fix(tmp_path, random_set, damage):
    vectors, owners, _ = random_set
    folder = tmp_path / "ix"
    VectorIndex.build(vectors, owners, kind="exact").save(folder)
    blob, meta = folder / "index.faiss", folder / "meta.json"
    if damage == "truncate":
        blob.write_bytes(blob.read_bytes()[:1000])
    elif damage == "garbage":  # same size as recorded, unreadable content
        blob.write_bytes(b"\x00" * blob.stat().st_size)
    elif damage == "no-meta":
        meta.unlink()
    else:
        meta.write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexLoadError, match=rf"{folder}.*Rebuild it"):
        VectorIndex.load(folder)


def test_load_refuses_an_unknown_format(tmp_path, random_set):
    vectors, owners, _ = random_set
    VectorIndex.build(vectors, owners, kind="exact").save(tmp_path / "ix")
    meta = json.loads((tmp_path / "ix" / "meta.json").read_text())
    (tmp_path / "ix" / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(IndexLoadError, match="format 99"):
        VectorIndex.load(tmp_path / "ix")


def _bad_inputs():
    rng = np.random.default_rng(5)
    v, o = unit_rows(rng, 6, 4), np.array([0, 0, 1, 1, 2, 2])
    nan_rows = v.copy()
    nan_rows[3, 1] = np.nan
    return [
        ("empty vectors", lambda: VectorIndex.build(np.zeros((0, 4)), np.zeros(0, dtype=int)), r"shape \(0, 4\)"),
        ("NaN row", lambda: VectorIndex.build(nan_rows, o), "row 3 contains NaN"),
        ("zero row", lambda: VectorIndex.build(np.vstack([v, np.zeros((1, 4))]), np.r_[o, 2]), "row 6 is all zeros"),
        ("owners length", lambda: VectorIndex.build(v, o[:5]), r"one item index per vector \(6\).*\(5,\)"),
        ("float owners", lambda: VectorIndex.build(v, o.astype(float)), "dtype float64"),
        ("negative owner", lambda: VectorIndex.build(v, o - 1), "holds -1"),
        ("gap in items", lambda: VectorIndex.build(v, np.array([0, 0, 2, 2, 3, 3])), "item 1 has no vector"),
        ("unknown kind", lambda: VectorIndex.build(v, o, kind="annoy"), "kind='annoy'"),
        ("bad HNSW param", lambda: VectorIndex.build(v, o, kind="hnsw", params={"ef": 4}), r"\['ef'\]"),
        ("params on exact", lambda: VectorIndex.build(v, o, kind="exact", params={"M": 8}), "do not apply"),
        ("wrong query dim", lambda: VectorIndex.build(v, o).search(np.ones(5)), "dimension 5.*4-d"),
        ("NaN query", lambda: VectorIndex.build(v, o).search(np.array([1.0, np.nan, 0, 0])), "queries row 0 contains NaN"),
        ("k zero", lambda: VectorIndex.build(v, o).search(v[0], k=0), "k=0"),
        ("k not int", lambda: VectorIndex.build(v, o).search(v[0], k=2.5), "k=2.5"),
        ("reference k", lambda: exact_search(v, o, v[:1], k=-1), "k=-1"),
    ]


@pytest.mark.parametrize("label, call, message", _bad_inputs(), ids=[case[0] for case in _bad_inputs()])
def test_bad_input_is_a_clear_value_error(label, call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_thread_default_follows_the_environment(monkeypatch):
    monkeypatch.setenv("RSRT_FAISS_THREADS", "1")
    assert index_module.default_threads() == 1
    monkeypatch.setenv("RSRT_FAISS_THREADS", "zero")
    with pytest.raises(ValueError, match="RSRT_FAISS_THREADS='zero'"):
        index_module.default_threads()
    monkeypatch.delenv("RSRT_FAISS_THREADS")
    assert 1 <= index_module.default_threads() <= (__import__("os").cpu_count() or 1)


def test_synthetic_queries_are_near_their_image_but_never_a_row():
    data = clustered_embeddings(300, variants=5, dim=64, n_queries=50, seed=1)
    again = clustered_embeddings(300, variants=5, dim=64, n_queries=50, seed=1)
    np.testing.assert_array_equal(data.vectors, again.vectors)
    sims = data.queries @ data.vectors.T
    assert sims.max() < 0.9999, "a query equals a gallery row"
    best_owner = data.owners[sims.argmax(axis=1)]
    assert (best_owner == data.query_images).mean() >= 0.5  # most queries' best row belongs to their own image


def test_search_leaves_the_callers_thread_setting_alone(random_set):
    vectors, owners, queries = random_set
    index = VectorIndex.build(vectors, owners, kind="exact")
    index_module.set_threads(1)
    try:
        before = index_module.faiss.omp_get_max_threads()
        index.search(queries[0], k=3)
        index.search(np.repeat(queries, 2, axis=0), k=3)  # a batch above SINGLE_THREAD_QUERIES
        assert index_module.faiss.omp_get_max_threads() == before
    finally:
        index_module.set_threads()
    with pytest.raises(ValueError, match="threads=0"):
        index_module.set_threads(0)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_add_and_retire_give_the_results_of_a_fresh_build_of_the_live_rows(kind, tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 24)).astype(np.float32)
    owners = np.repeat(np.arange(600), 5)
    index = VectorIndex.build(vectors[:2000], owners[:2000], kind)
    gone = np.arange(0, 400, 3)
    index.retire(gone)
    index.add(vectors[2000:], owners[2000:])
    assert (index.n_items, index.n_live_items) == (600, 600 - len(gone))
    queries = rng.normal(size=(40, 24)).astype(np.float32)
    live = ~np.isin(owners, gone)
    ids = np.unique(owners[live])
    _, expected = exact_search(vectors[live], np.searchsorted(ids, owners[live]), queries, 10)
    _, found = index.search(queries, 10)
    assert not np.isin(found, gone).any(), "a retired item is never returned"
    assert np.mean([len(set(ids[e]) & set(f)) / 10 for e, f in zip(expected, found)]) >= (1.0 if kind == "exact" else 0.97)
    index.save(tmp_path / "ix")
    assert (VectorIndex.load(tmp_path / "ix").search(queries, 10)[1] == found).all()
    renumber = index.compact()
    assert index.retired_fraction == 0 and index.n_items == len(ids) and (renumber[ids] == np.arange(len(ids))).all()
    with pytest.raises(ValueError, match="without gaps"):
        index.add(vectors[:5], np.full(5, index.n_items + 3))

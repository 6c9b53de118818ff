"""Seeded synthetic unit vectors shaped like sentence embeddings, for the index tests and benchmark.

Each description vector is a sum of a shared mean direction (sentence embeddings are anisotropic), a scene class,
a topic within it, its image and its own variant noise, drawn with a decaying spectrum (a few directions carry most of
the variance) and randomly rotated, then L2-normalised. Queries are fresh variants of random gallery images: close to
their image's rows, never equal to one. `benchmarks/bench_index.py` compares these statistics with real MiniLM ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_CLASSES = 30        # scene classes, as in RSICD / AID
N_TOPICS = 1000       # sub-topics spread over the classes
# Standard deviations of each level (the spectrum is normalised to unit total variance).
SCALES = {"mean": 1.0, "class": 0.6, "topic": 0.3, "image": 0.35, "variant": 0.55}
SPECTRUM_POWER = 0.6  # the j-th direction's std falls as (j + 1) ** -power
_CHUNK_IMAGES = 20_000


@dataclass
class SyntheticSet:
    """Gallery rows (n, d), their image index (n,), queries (q, d) and each query's source image (q,)."""

    vectors: np.ndarray
    owners: np.ndarray
    queries: np.ndarray
    query_images: np.ndarray


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class _Shape:
    """The random basis, spectrum and level centres that every draw of one seed shares."""

    def __init__(self, dim: int, rng: np.random.Generator):
        spectrum = (np.arange(dim) + 1.0) ** -SPECTRUM_POWER
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.mix = (spectrum / np.linalg.norm(spectrum))[:, None] * basis.T.astype(np.float32)
        self.rng, self.dim = rng, dim
        self.mean = _normalise(rng.standard_normal((1, dim)))[0].astype(np.float32) * SCALES["mean"]
        classes = self.draw(N_CLASSES, "class")
        self.topics = classes[rng.integers(0, N_CLASSES, N_TOPICS)] + self.draw(N_TOPICS, "topic")

    def draw(self, n: int, level: str) -> np.ndarray:
        """n anisotropic Gaussian rows at one level's scale."""
        return (self.rng.standard_normal((n, self.dim), dtype=np.float32) @ self.mix) * SCALES[level]


def clustered_embeddings(n_images: int, variants: int = 5, dim: int = 384, n_queries: int = 1000,
                         seed: int = 0) -> SyntheticSet:
    """n_images * variants unit rows (owners = image index) and n_queries held-out query vectors."""
    if n_images < 1 or variants < 1 or dim < 2 or n_queries < 0:
        raise ValueError(f"n_images={n_images}, variants={variants}, dim={dim}, n_queries={n_queries}: "
                         "give n_images >= 1, variants >= 1, dim >= 2 and n_queries >= 0")
    shape = _Shape(dim, np.random.default_rng(seed))
    centres = shape.mean + shape.topics[shape.rng.integers(0, N_TOPICS, n_images)]
    vectors = np.empty((n_images * variants, dim), dtype=np.float32)
    for start in range(0, n_images, _CHUNK_IMAGES):
        block = centres[start:start + _CHUNK_IMAGES] + shape.draw(min(_CHUNK_IMAGES, n_images - start), "image")
        centres[start:start + len(block)] = block
        rows = np.repeat(block, variants, axis=0) + shape.draw(len(block) * variants, "variant")
        vectors[start * variants:(start + len(block)) * variants] = _normalise(rows)
    query_images = shape.rng.integers(0, n_images, n_queries)
    queries = _normalise(centres[query_images] + shape.draw(n_queries, "variant"))
    owners = np.repeat(np.arange(n_images, dtype=np.int64), variants)
    return SyntheticSet(vectors, owners, queries.astype(np.float32), query_images.astype(np.int64))


def similarity_profile(vectors: np.ndarray, owners: np.ndarray, n_sample: int = 1500, seed: int = 0) -> dict:
    """Mean cosine of random pairs, of two rows of the same image, and of each row's nearest other-image row."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(n_sample, len(vectors)), replace=False)
    sample, who = vectors[rows], owners[rows]
    sims = sample @ sample.T
    other = who[:, None] != who[None, :]
    order = np.argsort(owners, kind="stable")
    first = np.searchsorted(owners[order], np.unique(who))  # each sampled image's first two rows
    pairs = first[(first + 1 < len(owners)) & (owners[order][np.minimum(first + 1, len(owners) - 1)] == owners[order][first])]
    same = np.einsum("id,id->i", vectors[order[pairs]], vectors[order[pairs + 1]])
    return {"random_pair_cos": round(float(sims[other].mean()), 3),
            "same_image_cos": round(float(same.mean()), 3) if len(same) else None,
            "nearest_other_image_cos": round(float(np.where(other, sims, -np.inf).max(axis=1).mean()), 3),
            "n_sample": int(len(rows))}

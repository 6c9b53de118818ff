"""Rank images by their caption variants: cosine similarity, pooled over each image's variants.

An image is represented by several texts (its RSRT caption variants, or for the oracle the
other human captions). A query's score for an image is a pooling (max, mean, top2-mean) of
its similarities to that image's texts. Everything is vectorised over queries and images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

POOLINGS = ("max", "mean", "top2-mean")


@dataclass
class VariantGallery:
    """Texts of a gallery, grouped by image: embeddings (n_images, n_variants, dim) + validity mask."""

    embeddings: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 3:
            raise ValueError(f"VariantGallery.embeddings must be 3-D (images, variants, dim); got shape {self.embeddings.shape}")
        if self.mask.shape != self.embeddings.shape[:2]:
            raise ValueError(f"mask shape {self.mask.shape} does not match embeddings {self.embeddings.shape[:2]}")
        empty = np.flatnonzero(~self.mask.any(axis=1))
        if empty.size:
            raise ValueError(f"{empty.size} gallery image(s) have no text (first index {empty[0]}); every image needs at least one variant")

    @property
    def n_images(self) -> int:
        return self.embeddings.shape[0]

    @classmethod
    def from_groups(cls, vectors: np.ndarray, group_index: Sequence[int], n_groups: int | None = None) -> "VariantGallery":
        """Build from flat text vectors and the image index of each text (any number of texts per image)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        group_index = np.asarray(group_index, dtype=np.int64)
        if vectors.shape[0] != group_index.shape[0]:
            raise ValueError(f"{vectors.shape[0]} vectors but {group_index.shape[0]} group indices")
        n_groups = int(group_index.max()) + 1 if n_groups is None else n_groups
        counts = np.bincount(group_index, minlength=n_groups)
        width = max(int(counts.max()), 1)
        order = np.argsort(group_index, kind="stable")
        slot = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
        embeddings = np.zeros((n_groups, width, vectors.shape[1]), dtype=np.float32)
        mask = np.zeros((n_groups, width), dtype=bool)
        embeddings[group_index[order], slot] = vectors[order]
        mask[group_index[order], slot] = True
        return cls(embeddings, mask)

    def take_variants(self, n_variants: int) -> "VariantGallery":
        """Keep the first n variants of each image (for the 1/3/5-variant ablation)."""
        if n_variants < 1:
            raise ValueError(f"n_variants must be >= 1, got {n_variants}")
        return VariantGallery(self.embeddings[:, :n_variants].copy(), self.mask[:, :n_variants].copy())


def pool(similarities: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Pool (..., n_images, n_variants) similarities over the last axis, ignoring masked-out slots."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not known; choose one of {', '.join(POOLINGS)}")
    if pooling == "max":
        return np.where(mask, similarities, -np.inf).max(axis=-1)
    if pooling == "mean":
        total = np.where(mask, similarities, 0.0).sum(axis=-1)
        return total / mask.sum(axis=-1)
    # top2-mean: mean of the two best variants (the single variant when an image has one)
    masked = np.where(mask, similarities, -np.inf)
    if masked.shape[-1] == 1:
        return masked[..., 0]
    top2 = -np.partition(-masked, 1, axis=-1)[..., :2]
    second = np.where(np.isfinite(top2[..., 1]), top2[..., 1], top2[..., 0])
    return (top2[..., 0] + second) / 2.0


def _pool_by_slices(sims: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Same result as `pool` for max and top2-mean, but elementwise over the variant slices, which is
    several times faster than reducing a length-5 last axis. Overwrites masked-out slots of `sims`."""
    if not mask.all():
        sims[:, ~mask] = -np.inf
    cols = [sims[..., v] for v in range(sims.shape[-1])]
    if pooling == "max" or len(cols) == 1:
        best = cols[0].copy()
        for col in cols[1:]:
            np.maximum(best, col, out=best)
        return best
    first, second = np.maximum(cols[0], cols[1]), np.minimum(cols[0], cols[1])
    for col in cols[2:]:
        np.maximum(second, np.minimum(first, col), out=second)
        np.maximum(first, col, out=first)
    second = np.where(np.isfinite(second), second, first)
    return (first + second) / 2.0


def pooled_similarity(queries: np.ndarray, gallery: VariantGallery, pooling: str = "max", chunk_size: int = 2048) -> np.ndarray:
    """Score every query against every gallery image: (n_queries, n_images) float32.

    Queries and gallery texts are assumed L2-normalised, so a dot product is a cosine.
    Queries are processed in chunks to bound memory.
    """
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != gallery.embeddings.shape[2]:
        raise ValueError(f"queries of shape {queries.shape} do not match gallery dimension {gallery.embeddings.shape[2]}")
    n_img, n_var, dim = gallery.embeddings.shape
    flat = gallery.embeddings.reshape(n_img * n_var, dim)
    out = np.empty((queries.shape[0], n_img), dtype=np.float32)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not known; choose one of {', '.join(POOLINGS)}")
    pool_block = pool if pooling == "mean" else _pool_by_slices  # mean keeps `pool`'s summation order
    for start in range(0, queries.shape[0], chunk_size):
        block = queries[start:start + chunk_size] @ flat.T
        out[start:start + chunk_size] = pool_block(block.reshape(-1, n_img, n_var), gallery.mask, pooling)
    return out


def text_to_text_scores(caption_vectors: np.ndarray, gallery: VariantGallery, image_queries: VariantGallery | None = None,
                        pooling: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Score matrices for both directions of text-to-text retrieval.

    Returns (t2i, i2t): t2i is (n_captions, n_images), i2t is (n_images, n_captions).
    Image queries are the texts that stand for each query image (the paper's second prompt);
    by default they are the gallery variants themselves.
    """
    t2i = pooled_similarity(caption_vectors, gallery, pooling)
    if image_queries is None:
        return t2i, np.ascontiguousarray(t2i.T)
    if image_queries.n_images != gallery.n_images:
        raise ValueError(f"image queries cover {image_queries.n_images} images but the gallery has {gallery.n_images}")
    i2t = pooled_similarity(caption_vectors, image_queries, pooling).T
    return t2i, np.ascontiguousarray(i2t)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best candidates per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def hubness(vectors: np.ndarray, bank: np.ndarray, k: int = 10, exclude_self: bool = False) -> np.ndarray:
    """Mean cosine of each row of `vectors` with its k nearest rows of `bank`: how generic a text is (a hub is close
    to many texts). With exclude_self, `bank` is `vectors` itself and a row's own similarity is left out."""
    sims = np.asarray(vectors, dtype=np.float32) @ np.asarray(bank, dtype=np.float32).T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    k = min(k, sims.shape[1] - int(exclude_self))
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)

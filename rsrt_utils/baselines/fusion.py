"""Reciprocal rank fusion (RRF) of retrieval systems: parameter-free besides k = 60, no training.

For each query row, every system ranks the candidates (1 = best); the fused score of a candidate is
sum over systems of 1 / (k + rank). Only ranks enter, so systems with incomparable score scales
(CLIP cosines, text-to-text cosines) fuse without calibration (Cormack, Clarke & Buettcher, SIGIR 2009).
Everything is vectorised over queries; the fused matrices go straight into `evaluate_scores`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..metrics import evaluate_scores

RRF_K = 60
RANK_TIES = ("min", "ordinal")


def row_ranks(scores: np.ndarray, ties: str = "min") -> np.ndarray:
    """1-based rank of every candidate within its query row (highest score = rank 1).

    ties="min": equal scores share the best rank of their group (competition ranking, order-free);
    ties="ordinal": equal scores are ranked by column index.
    """
    if ties not in RANK_TIES:
        raise ValueError(f"ties={ties!r} is not known; choose one of {RANK_TIES}")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (queries, candidates) matrix; got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; rank fusion needs a score for every candidate")
    order = np.argsort(-scores, axis=1, kind="stable")
    position = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    if ties == "min":
        sorted_scores = np.take_along_axis(scores, order, axis=1)
        starts_group = np.ones(scores.shape, dtype=bool)
        starts_group[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
        position = np.maximum.accumulate(np.where(starts_group, position, 0), axis=1)
    ranks = np.empty(scores.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, position + 1, axis=1)
    return ranks


def reciprocal_rank_fusion(score_matrices: Sequence[np.ndarray], k: float = RRF_K, ties: str = "min") -> np.ndarray:
    """Fused (n_queries, n_candidates) float64 scores: sum over systems of 1 / (k + rank)."""
    matrices = [np.asarray(m) for m in score_matrices]
    if not matrices:
        raise ValueError("reciprocal_rank_fusion needs at least one score matrix")
    shapes = {m.shape for m in matrices}
    if len(shapes) != 1:
        raise ValueError(f"score matrices differ in shape {sorted(shapes)}; fuse systems scored on the same "
                         "queries and candidates, in the same order")
    if not k > 0:
        raise ValueError(f"RRF constant k must be > 0 (the standard is {RRF_K}), got {k}")
    fused = np.zeros(matrices[0].shape, dtype=np.float64)
    for matrix in matrices:
        fused += 1.0 / (k + row_ranks(matrix, ties))
    return fused


def fuse_retrieval(systems: Sequence[tuple[np.ndarray, np.ndarray]], k: float = RRF_K,
                   ties: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """Fuse (t2i, i2t) score pairs of several systems into one fused (t2i, i2t) pair."""
    if len(systems) < 1:
        raise ValueError("fuse_retrieval needs at least one (t2i, i2t) pair")
    t2i = reciprocal_rank_fusion([pair[0] for pair in systems], k, ties)
    i2t = reciprocal_rank_fusion([pair[1] for pair in systems], k, ties)
    return t2i, i2t


def evaluate_fused(systems: Sequence[tuple[np.ndarray, np.ndarray]], caption_image_index: Sequence[int],
                   image_classes: Sequence[str] | None = None, k: float = RRF_K, **evaluate_options) -> dict:
    """RRF-fuse the systems and score the result with the shared `evaluate_scores`."""
    t2i, i2t = fuse_retrieval(systems, k)
    result = evaluate_scores(t2i, i2t, caption_image_index, image_classes, **evaluate_options)
    result["fusion"] = {"method": "reciprocal rank fusion", "k": k, "n_systems": len(systems)}
    return result

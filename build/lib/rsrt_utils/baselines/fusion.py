"""Fusion of retrieval systems without training: reciprocal rank fusion (RRF, k = 60) and the z-scored score sum.

For each query row, every system ranks the candidates (1 = best); the fused score of a candidate is
sum over systems of 1 / (k + rank). Only ranks enter, so systems with incomparable score scales
(CLIP cosines, text-to-text cosines) fuse without calibration (Cormack, Clarke & Buettcher, SIGIR 2009).
The z-scored sum standardises each system's scores within every query row (mean 0, sd 1) and adds them
with equal weights (fixed, not tuned). Everything is vectorised over queries; the fused matrices go straight
into `evaluate_scores`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..metrics import evaluate_scores

RRF_K = 60
RANK_TIES = ("min", "ordinal")
FUSION_METHODS = ("rrf", "zsum")


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


def zscore_sum_fusion(score_matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Fused scores: sum over systems of each query row's z-scored scores (equal weights)."""
    matrices = [np.asarray(m, dtype=np.float64) for m in score_matrices]
    if not matrices or len({m.shape for m in matrices}) != 1:
        raise ValueError(f"z-score fusion needs score matrices of one shape, got {[m.shape for m in matrices]}")
    fused = np.zeros(matrices[0].shape)
    for matrix in matrices:
        spread = matrix.std(axis=1, keepdims=True)
        fused += (matrix - matrix.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
    return fused


def _fuse(matrices: Sequence[np.ndarray], method: str, k: float, ties: str) -> np.ndarray:
    if method == "rrf":
        return reciprocal_rank_fusion(matrices, k, ties)
    if method == "zsum":
        return zscore_sum_fusion(matrices)
    raise ValueError(f"fusion method {method!r} is not known; choose one of {', '.join(FUSION_METHODS)}")


def fuse_retrieval(systems: Sequence[tuple[np.ndarray, np.ndarray]], k: float = RRF_K,
                   ties: str = "min", method: str = "rrf") -> tuple[np.ndarray, np.ndarray]:
    """Fuse (t2i, i2t) score pairs of several systems into one fused (t2i, i2t) pair."""
    if len(systems) < 1:
        raise ValueError("fuse_retrieval needs at least one (t2i, i2t) pair")
    return _fuse([pair[0] for pair in systems], method, k, ties), _fuse([pair[1] for pair in systems], method, k, ties)


def evaluate_fused(systems: Sequence[tuple[np.ndarray, np.ndarray]], caption_image_index: Sequence[int],
                   image_classes: Sequence[str] | None = None, k: float = RRF_K, method: str = "rrf",
                   **evaluate_options) -> dict:
    """Fuse the systems (RRF or z-scored sum) and score the result with the shared `evaluate_scores`."""
    t2i, i2t = fuse_retrieval(systems, k, method=method)
    result = evaluate_scores(t2i, i2t, caption_image_index, image_classes, **evaluate_options)
    name = "reciprocal rank fusion" if method == "rrf" else "z-scored score sum"
    result["fusion"] = {"method": name, "n_systems": len(systems), **({"k": k} if method == "rrf" else {})}
    return result

"""The field's standard retrieval metrics: R@K in both directions, mR, per class, and image-level bootstrap
intervals (images resampled with their captions; paired ones for the difference of two settings).

What papers call R@K is a *hit rate*: the share of queries with at least one relevant item in
the top K. Text->image: a caption query has one relevant image. Image->text: an image query has
several relevant captions (usually 5) and counts as a hit if ANY is in the top K.
mR is the mean of the six recalls (R@1/5/10 in both directions), in percent.

Ties: a query's rank is the number of *irrelevant* candidates scoring above its best relevant
candidate. Exact ties arise from identical texts (RSICD has many duplicate captions; caption
transfer gives many images the same variants), and how they are broken can move mR by several
points, so every evaluation names its policy and metrics.json reports all three:
  "random"       (default) the expected hit rate when tied candidates are put in a uniformly random
                 order: unbiased, and independent of the order images happen to be stored in
  "pessimistic"  irrelevant candidates with an equal score count as above the relevant one
  "optimistic"   they count as below it
Papers' code usually breaks ties by array position (argsort), which is none of these.
Scores are compared at a resolution of 1e-6 (SCORE_DECIMALS): the same pair of texts can get
cosines a few float32 ulps apart depending on its position in a matrix product, and such noise
must not decide a tie.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .metrics_record import compute_metrics

KS = (1, 5, 10)
TIE_POLICIES = ("random", "pessimistic", "optimistic")
DEFAULT_TIES = "random"
SCORE_DECIMALS = 6


class TieCounts(NamedTuple):
    """Per query, the irrelevant candidates strictly above its best relevant score, the irrelevant and the relevant
    ones tied with it: every tie policy's rank and hits follow from these three counts."""

    greater: np.ndarray
    tied_irrelevant: np.ndarray
    tied_relevant: np.ndarray


def tie_counts(scores: np.ndarray, relevant: np.ndarray) -> TieCounts:
    """The TieCounts of every query (scores, relevant: (n_queries, n_candidates), each query with a relevant one)."""
    scores = resolve_scores(scores)
    relevant = np.asarray(relevant, dtype=bool)
    _check_relevance(scores, relevant)
    best = np.where(relevant, scores, -np.inf).max(axis=1, keepdims=True)
    tied = scores == best
    count = lambda mask: mask.sum(axis=1).astype(np.float64)  # noqa: E731
    return TieCounts(count((scores > best) & ~relevant), count(tied & ~relevant), count(tied & relevant))


def rank_of_best_relevant(scores: np.ndarray, relevant: np.ndarray, ties: str = "pessimistic") -> np.ndarray:
    """0-based rank of each query's best relevant candidate among the irrelevant ones.

    scores, relevant: (n_queries, n_candidates); every query needs at least one relevant candidate.
    ties: "pessimistic" or "optimistic" (a "random" order has no single rank; see hit_rates).
    """
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties={ties!r}: a rank needs 'pessimistic' or 'optimistic'; hit_rates handles 'random'")
    return _rank(tie_counts(scores, relevant), ties)


def _rank(counts: TieCounts, ties: str) -> np.ndarray:
    ranks = counts.greater + (counts.tied_irrelevant if ties == "pessimistic" else 0)
    return ranks.astype(np.int64)


def resolve_scores(scores: np.ndarray) -> np.ndarray:
    """Scores at the comparison resolution (SCORE_DECIMALS), so float noise cannot decide a tie."""
    return np.round(np.asarray(scores, dtype=np.float64), SCORE_DECIMALS)


def _check_relevance(scores: np.ndarray, relevant: np.ndarray) -> None:
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevance {relevant.shape} differ in shape")
    lonely = np.flatnonzero(~relevant.any(axis=1))
    if lonely.size:
        raise ValueError(f"{lonely.size} queries have no relevant candidate (first: query {lonely[0]})")


def random_tie_hit_rates(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = KS) -> np.ndarray:
    """(n_queries, len(ks)) expected hits when tied candidates are ordered uniformly at random."""
    return _random_tie_hits(tie_counts(scores, relevant), ks)


def _random_tie_hits(counts: TieCounts, ks: Sequence[int]) -> np.ndarray:
    """With g irrelevant candidates strictly above the best relevant score, t irrelevant and r relevant ones
    tied with it, the number P of tied irrelevant ones drawn before the first tied relevant one satisfies
    Pr(P >= m) = prod_{i<m} (t - i) / (t + r - i); a hit at K needs g + P < K."""
    greater, t, r = counts
    out = np.empty((greater.shape[0], len(ks)))
    for j, k in enumerate(ks):
        m = k - greater  # tied irrelevant candidates that may still come first
        survive = np.ones_like(t)  # Pr(P >= m), built factor by factor
        for i in range(int(k)):
            factor = np.clip(t - i, 0, None) / (t + r - i).clip(min=1)
            survive = np.where(i < m, survive * factor, survive)
        out[:, j] = np.where(m <= 0, 0.0, 1.0 - survive)
    return out


def hit_rates(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = KS, ties: str = DEFAULT_TIES) -> np.ndarray:
    """(n_queries, len(ks)) hits (0/1, or expected values under random tie order) at each K."""
    _check_policy(ties)
    return hits_from_counts(tie_counts(scores, relevant), ks, ties)


def hits_from_counts(counts: TieCounts, ks: Sequence[int] = KS, ties: str = DEFAULT_TIES) -> np.ndarray:
    """hit_rates from a query set's TieCounts under one tie policy."""
    if ties == "random":
        return _random_tie_hits(counts, ks)
    return hits_at_k(_rank(counts, ties), ks).astype(np.float64)


def _check_policy(ties: str) -> None:
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties={ties!r} is not known; choose one of {', '.join(TIE_POLICIES)}")


def hits_at_k(ranks: np.ndarray, ks: Sequence[int] = KS) -> np.ndarray:
    """(n_queries, len(ks)) booleans: is the best relevant candidate within the top K?"""
    return np.asarray(ranks)[:, None] < np.asarray(ks)[None, :]


def relevance_t2i(caption_image_index: np.ndarray, n_images: int) -> np.ndarray:
    """(n_captions, n_images) booleans: caption q describes image i."""
    caption_image_index = np.asarray(caption_image_index)
    return caption_image_index[:, None] == np.arange(n_images)[None, :]


def duplicate_aware_relevance(captions: Sequence[str], caption_image_index: Sequence[int], n_images: int) -> np.ndarray:
    """(n_captions, n_images): caption q is relevant to every image that has a caption with the same text
    (case- and space-insensitive). Shows how much duplicate captions (RSICD) cost under the protocol."""
    keys = [" ".join(c.lower().split()) for c in captions]
    _, text_id = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    has_text = np.zeros((int(text_id.max()) + 1, n_images), dtype=bool)
    has_text[text_id, np.asarray(caption_image_index)] = True
    return has_text[text_id]


def bootstrap_means(hits: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_cols) means of hits over queries resampled with replacement.

    Each resample's draw counts times the hits give exact integer sums (as hits[idx].mean would), faster.
    """
    n = hits.shape[0]
    values = np.asarray(hits, dtype=np.float64)
    out = np.empty((n_boot, hits.shape[1]))
    step = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        out[start:stop] = (_resample_counts(n, rng, stop - start) @ values) / n
    return out


def _resample_counts(n: int, rng: np.random.Generator, chunk: int) -> np.ndarray:
    """(chunk, n) how many times each of n units is drawn in `chunk` resamples of n draws with replacement."""
    idx = rng.integers(0, n, size=(chunk, n)) + (np.arange(chunk) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=chunk * n).reshape(chunk, n)


def image_bootstrap_means(t2i_hits: np.ndarray, i2t_hits: np.ndarray, caption_image_index: np.ndarray, n_boot: int,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """((n_boot, k) text->image, (n_boot, k) image->text) hit rates with IMAGES resampled, each with all its captions
    (a cluster bootstrap: an image's captions are correlated, so resampling captions alone makes intervals too narrow).
    Both directions use the same resampled images."""
    n_images = i2t_hits.shape[0]
    owner = np.asarray(caption_image_index, dtype=np.int64)
    per_image_t2i = np.zeros((n_images, t2i_hits.shape[1]))
    np.add.at(per_image_t2i, owner, np.asarray(t2i_hits, dtype=np.float64))
    captions_per_image = np.bincount(owner, minlength=n_images).astype(np.float64)
    t2i_out, i2t_out = np.empty((n_boot, t2i_hits.shape[1])), np.empty((n_boot, i2t_hits.shape[1]))
    step = max(1, 2_000_000 // max(n_images, 1))
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        counts = _resample_counts(n_images, rng, stop - start).astype(np.float64)
        t2i_out[start:stop] = (counts @ per_image_t2i) / np.maximum(counts @ captions_per_image, 1.0)[:, None]
        i2t_out[start:stop] = (counts @ np.asarray(i2t_hits, dtype=np.float64)) / n_images
    return t2i_out, i2t_out


def mr_samples(t2i_boot: np.ndarray, i2t_boot: np.ndarray) -> np.ndarray:
    """mR of each bootstrap resample (mean of the recalls of both directions)."""
    return (t2i_boot.sum(axis=1) + i2t_boot.sum(axis=1)) / (t2i_boot.shape[1] + i2t_boot.shape[1])


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [round(float(lo) * 100, 2), round(float(hi) * 100, 2)]


def _recall_dict(means: Iterable[float], ks: Sequence[int]) -> dict[str, float]:
    return {f"R@{k}": round(float(m) * 100, 2) for k, m in zip(ks, means)}


def evaluate_scores(t2i_scores: np.ndarray, i2t_scores: np.ndarray, caption_image_index: Sequence[int],
                    image_classes: Sequence[str] | None = None, ks: Sequence[int] = KS, ties: str = DEFAULT_TIES,
                    n_boot: int = 1000, seed: int = 0, relevant: np.ndarray | None = None,
                    other_ties: bool = False) -> dict:
    """Standard protocol on precomputed score matrices.

    t2i_scores: (n_captions, n_images); i2t_scores: (n_images, n_captions);
    caption_image_index[q] is the image that caption q describes. `relevant` (n_captions, n_images)
    replaces that one-image relevance (e.g. duplicate_aware_relevance: a diagnostic, not the protocol).
    Returns t2i/i2t recalls, mR (the mean of the six) and each direction's mean of its recalls (mR_t2i, mR_i2t: the
    convention of the method's released code) in percent; 95 % intervals from an image-level (cluster) bootstrap — images
    resampled with all their captions, both directions on the same images — as `ci95`, and the caption-level one
    (each direction's queries resampled as if independent: too narrow, a diagnostic) as `ci95_caption_level`;
    and, given classes, a per-class table; other_ties adds `mR_ties_<policy>` for every other tie policy.
    """
    _check_policy(ties)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1 (got {n_boot}); use n_boot=1 for a negligible bootstrap cost")
    caption_image_index = np.asarray(caption_image_index, dtype=np.int64)
    n_captions, n_images = t2i_scores.shape
    if i2t_scores.shape != (n_images, n_captions):
        raise ValueError(f"i2t_scores has shape {i2t_scores.shape}; expected (n_images, n_captions) = {(n_images, n_captions)}")
    if caption_image_index.shape != (n_captions,):
        raise ValueError(f"caption_image_index has {caption_image_index.shape[0]} entries for {n_captions} captions")
    if relevant is None:
        relevant = relevance_t2i(caption_image_index, n_images)
    elif relevant.shape != (n_captions, n_images):
        raise ValueError(f"relevant has shape {relevant.shape}; expected (n_captions, n_images) = {(n_captions, n_images)}")
    counts = tie_counts(t2i_scores, relevant), tie_counts(i2t_scores, relevant.T)
    t2i_hits, i2t_hits = (hits_from_counts(c, ks, ties) for c in counts)
    t2i_mean, i2t_mean = t2i_hits.mean(axis=0), i2t_hits.mean(axis=0)
    m_r = _mean_recall(t2i_hits, i2t_hits)

    t2i_boot, i2t_boot = image_bootstrap_means(t2i_hits, i2t_hits, caption_image_index, n_boot,
                                               np.random.default_rng(seed))
    mr_boot = mr_samples(t2i_boot, i2t_boot)
    rng = np.random.default_rng(seed)
    caption_level = mr_samples(bootstrap_means(t2i_hits, n_boot, rng), bootstrap_means(i2t_hits, n_boot, rng))
    result = {
        "n_images": int(n_images),
        "n_queries": {"t2i": int(n_captions), "i2t": int(n_images)},
        "t2i": _recall_dict(t2i_mean, ks),
        "i2t": _recall_dict(i2t_mean, ks),
        "mR": round(float(m_r) * 100, 2),
        "mR_t2i": round(float(t2i_mean.mean()) * 100, 2),
        "mR_i2t": round(float(i2t_mean.mean()) * 100, 2),
        "ci95": {
            "mR": _interval(mr_boot),
            "mR_t2i": _interval(t2i_boot.mean(axis=1)),
            "mR_i2t": _interval(i2t_boot.mean(axis=1)),
            "t2i": {f"R@{k}": _interval(t2i_boot[:, j]) for j, k in enumerate(ks)},
            "i2t": {f"R@{k}": _interval(i2t_boot[:, j]) for j, k in enumerate(ks)},
            "method": f"percentile bootstrap over images (each with its captions), {n_boot} resamples, seed {seed}",
        },
        "ci95_caption_level": {"mR": _interval(caption_level),
                               "method": f"percentile bootstrap over queries as if independent (a diagnostic: too "
                                         f"narrow), {n_boot} resamples, seed {seed}"},
        "ties": ties,
        **compute_metrics(t2i_scores, i2t_scores, caption_image_index, ties),
    }
    if image_classes is not None:
        result["per_class"] = per_class_recalls(t2i_hits, i2t_hits, caption_image_index, image_classes, ks).to_dict(orient="records")
    if other_ties:
        result.update(_mr_other_ties(*counts, ks, ties))
    return result


def per_image_hits(t2i_scores: np.ndarray, i2t_scores: np.ndarray, caption_image_index: Sequence[int],
                   ks: Sequence[int] = KS, ties: str = DEFAULT_TIES) -> np.ndarray:
    """(n_images, 2 * len(ks) + 1): per image, its captions' summed t2i hits, its own i2t hits, its caption count;
    what selection_bootstrap resamples (the protocol's hits, image by image)."""
    owner = np.asarray(caption_image_index, dtype=np.int64)
    relevant = relevance_t2i(owner, t2i_scores.shape[1])
    t2i_hits = hit_rates(t2i_scores, relevant, ks, ties)
    i2t_hits = hit_rates(i2t_scores, relevant.T, ks, ties)
    summed = np.zeros((i2t_hits.shape[0], len(ks)))
    np.add.at(summed, owner, t2i_hits)
    return np.hstack([summed, i2t_hits, np.bincount(owner, minlength=i2t_hits.shape[0])[:, None]])


def mr_from_image_hits(hits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mR per row of `weights` (n_draws, n_images: how often each image is drawn) from per_image_hits stacked over
    settings (n_images, n_settings, 2k + 1) -> (n_draws, n_settings)."""
    k = (hits.shape[-1] - 1) // 2
    drawn = (weights @ hits.reshape(hits.shape[0], -1)).reshape(weights.shape[0], *hits.shape[1:])
    t2i = drawn[..., :k] / np.maximum(drawn[..., -1:], 1.0)
    i2t = drawn[..., k:2 * k] / weights.sum(axis=1)[:, None, None]
    return (t2i.sum(axis=-1) + i2t.sum(axis=-1)) / (2 * k)


def selection_bootstrap(hits: np.ndarray, reported: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """The uncertainty of choosing a setting by max mR: resample the choosing split's images, re-run the argmax,
    read the reported figure of the setting picked each time.

    hits: per_image_hits of every setting on the choosing split, stacked (n_images, n_settings, 2k + 1);
    reported: each setting's mR (percent) on the reported split. Returns the pick on the whole split, how often each
    resample picks it, the expected reported mR over resamples and its 95 % (and 5th-percentile) bounds."""
    n_images = hits.shape[0]
    pick = int(np.argmax(mr_from_image_hits(hits, np.ones((1, n_images)))[0]))
    rng, picks = np.random.default_rng(seed), []
    step = max(1, 200_000 // max(hits.shape[1], 1))
    for start in range(0, n_boot, step):
        weights = _resample_counts(n_images, rng, min(step, n_boot - start)).astype(np.float64)
        picks.append(np.argmax(mr_from_image_hits(hits, weights), axis=1))
    picks = np.concatenate(picks)
    values = np.asarray(reported, dtype=np.float64)[picks]
    chosen, counts = np.unique(picks, return_counts=True)
    return {"pick": pick, "recurrence": round(float((picks == pick).mean()), 3),
            "expected_mR": round(float(values.mean()), 2),
            "ci95": [round(float(v), 2) for v in np.percentile(values, [2.5, 97.5])],
            "p5": round(float(np.percentile(values, 5)), 2),
            "picks": {int(c): int(n) for c, n in sorted(zip(chosen, counts), key=lambda x: -x[1])},
            "method": f"image-level bootstrap of the choosing split, argmax re-run, {n_boot} resamples, seed {seed}"}


def paired_mr_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                         caption_image_index: Sequence[int], ks: Sequence[int] = KS, ties: str = DEFAULT_TIES,
                         n_boot: int = 1000, seed: int = 0) -> dict:
    """mR(a) - mR(b) of two settings' (t2i, i2t) scores on the same queries, with a paired image-level interval
    (the same resampled images for both, so what the two share cancels out)."""
    owner = np.asarray(caption_image_index, dtype=np.int64)
    n_images = a[0].shape[1]
    relevant = relevance_t2i(owner, n_images)
    samples, points = [], []
    for t2i, i2t in (a, b):
        t2i_hits, i2t_hits = hit_rates(t2i, relevant, ks, ties), hit_rates(i2t, relevant.T, ks, ties)
        points.append(_mean_recall(t2i_hits, i2t_hits))
        samples.append(mr_samples(*image_bootstrap_means(t2i_hits, i2t_hits, owner, n_boot, np.random.default_rng(seed))))
    return {"difference": round(float(points[0] - points[1]) * 100, 2), "ci95": _interval(samples[0] - samples[1]),
            "method": f"paired percentile bootstrap over images, {n_boot} resamples, seed {seed}"}


def quoted_inside(interval: Sequence[float], quoted: float) -> bool:
    """Whether a quoted figure lies inside a measured interval (then the two are not told apart)."""
    return bool(interval[0] <= quoted <= interval[1])


def _mr_other_ties(t2i_counts: TieCounts, i2t_counts: TieCounts, ks: Sequence[int], ties: str) -> dict[str, float]:
    return {f"mR_ties_{other}": round(float(_mean_recall(hits_from_counts(t2i_counts, ks, other),
                                                         hits_from_counts(i2t_counts, ks, other))) * 100, 2)
            for other in TIE_POLICIES if other != ties}


def _mean_recall(t2i_hits: np.ndarray, i2t_hits: np.ndarray) -> float:
    """mR as a fraction, from per-query hits: the mean of both directions' recalls at every K."""
    return float(mr_samples(t2i_hits.mean(axis=0)[None], i2t_hits.mean(axis=0)[None])[0])


def per_class_recalls(t2i_hits: np.ndarray, i2t_hits: np.ndarray, caption_image_index: np.ndarray,
                      image_classes: Sequence[str], ks: Sequence[int] = KS) -> pd.DataFrame:
    """Recalls per scene class: text->image by the class of the caption's image, image->text by the query image's."""
    image_classes = np.asarray(image_classes)
    frames = []
    for direction, hits, classes in (("t2i", t2i_hits, image_classes[caption_image_index]), ("i2t", i2t_hits, image_classes)):
        frame = pd.DataFrame(hits.astype(float) * 100, columns=[f"{direction} R@{k}" for k in ks])
        frame["scene_class"] = classes
        frames.append(frame.groupby("scene_class").agg(["mean"]).droplevel(1, axis=1))
    table = frames[0].join(frames[1], how="outer")
    table["mR"] = table.mean(axis=1)
    table["n_images"] = pd.Series(image_classes).value_counts()
    return table.round(2).reset_index()


def mean_over_runs(results: Sequence[dict]) -> dict:
    """Average recalls and mR of several evaluations of the same setting (e.g. the oracle's k = 1..5)."""
    if not results:
        raise ValueError("mean_over_runs needs at least one result")
    out = {"t2i": {}, "i2t": {}}
    for direction in ("t2i", "i2t"):
        for key in results[0][direction]:
            out[direction][key] = round(float(np.mean([r[direction][key] for r in results])), 2)
    for key in ("mR", "mR_t2i", "mR_i2t"):
        if all(key in r for r in results):
            out[key] = round(float(np.mean([r[key] for r in results])), 2)
    out["ci95"] = {"mR": [round(float(np.mean([r["ci95"]["mR"][i] for r in results])), 2) for i in (0, 1)],
                   "method": "mean of the per-run bootstrap interval bounds"}
    return out

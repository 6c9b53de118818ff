"""The zero-shot CLIP baseline: a frozen dual encoder (rsrt_utils.baselines.clip_models) embeds the gallery images and
the captions, and the shared metrics score it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..encoders.cache import CachedEncoder
from ..image_encoders.cache import CachedImageEncoder, load_rgb
from ..metrics import evaluate_scores
from .clip_models import ClipBackend, ClipTextEncoder, _batches


def _gallery_paths(dataset) -> list[Path]:
    missing = [im.image_id for im in dataset.images if im.image_path is None]
    if missing:
        raise ValueError(f"{len(missing)} of {len(dataset.images)} images have no pixels (first: {missing[0]!r}); "
                         "a CLIP baseline needs every gallery image: call dataset.with_images() first and report "
                         "the coverage")
    return [Path(im.image_path) for im in dataset.images]


def _encode_image_files(backend: ClipBackend, paths: Sequence[Path], chunk: int, progress: bool) -> np.ndarray:
    parts = [backend.encode_images([load_rgb(p) for p in batch])
             for batch in _batches(list(paths), chunk, progress, "CLIP images")]
    return np.concatenate(parts) if parts else np.zeros((0, backend.dim), dtype=np.float32)


def _encode_unique_texts(backend: ClipBackend, texts: Sequence[str], progress: bool) -> np.ndarray:
    unique = list(dict.fromkeys(texts))
    vectors = backend.encode_texts(unique, progress=progress)
    row = {text: i for i, text in enumerate(unique)}
    return vectors[[row[t] for t in texts]]


def embed_gallery_and_captions(dataset, backend: ClipBackend, cache_root: Path | str | None = None,
                               use_cache: bool = True, cache_policy: str = "only-missing",
                               progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """(image_vectors, caption_vectors, cache_stats) of a dataset; cached on disk unless use_cache=False."""
    paths = _gallery_paths(dataset)
    if not use_cache:
        images = _encode_image_files(backend, paths, 256, progress)
        return images, _encode_unique_texts(backend, dataset.captions, progress), {}
    image_root = Path(cache_root) / "image_embeddings" if cache_root else None
    text_root = Path(cache_root) / "embeddings" if cache_root else None
    image_encoder = CachedImageEncoder(backend, image_root, cache_policy, progress=progress)
    text_encoder = CachedEncoder(ClipTextEncoder(backend), text_root, cache_policy, progress=progress)
    try:
        images = image_encoder.encode_paths(paths)
        captions = text_encoder.encode(dataset.captions)
    finally:
        image_encoder.close()
        text_encoder.cache.close()
    return images, captions, {"images": image_encoder.last_stats, "texts": text_encoder.last_stats}


def clip_score_matrices(image_vectors: np.ndarray, caption_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores (t2i (n_captions, n_images), i2t (n_images, n_captions)) of unit-norm vectors."""
    if image_vectors.shape[1] != caption_vectors.shape[1]:
        raise ValueError(f"image vectors have dimension {image_vectors.shape[1]} but caption vectors "
                         f"{caption_vectors.shape[1]}; both must come from the same CLIP model")
    t2i = np.asarray(caption_vectors, dtype=np.float32) @ np.asarray(image_vectors, dtype=np.float32).T
    return t2i, np.ascontiguousarray(t2i.T)


def _pixel_notes(dataset, paths: Sequence[Path]) -> list[str]:
    notes = list(getattr(dataset, "notes", []))
    if any("aid150" in str(p).lower() for p in paths):
        notes.append("pixels from AID-150 (150x150 downscaled AID scenes): a faithful proxy, not the benchmark's pixels")
    return notes + ["zero-shot: frozen CLIP, no training or fine-tuning"]


def run_clip_baseline(dataset, backend: ClipBackend, cache_root: Path | str | None = None, use_cache: bool = True,
                      cache_policy: str = "only-missing", ties: str = "random", n_boot: int = 1000,
                      seed: int = 0, progress: bool = True) -> dict:
    """Zero-shot CLIP retrieval on a dataset, scored by the shared metrics (`evaluate_scores`).

    Returns model/dataset identity, coverage, notes, `metrics` (R@1/5/10 both ways, mR, ci95, per class),
    the score matrices `t2i_scores` / `i2t_scores` (for fusion), cache statistics and timings.
    """
    started = time.perf_counter()
    images, captions, cache_stats = embed_gallery_and_captions(dataset, backend, cache_root, use_cache,
                                                               cache_policy, progress)
    embedded = time.perf_counter()
    t2i, i2t = clip_score_matrices(images, captions)
    metrics = evaluate_scores(t2i, i2t, dataset.caption_image_index, dataset.image_classes, ties=ties,
                              n_boot=n_boot, seed=seed)
    coverage = dataset.coverage_note() if hasattr(dataset, "coverage_note") else ""
    return {
        "system": "zero-shot CLIP", "model": backend.name, "dataset": getattr(dataset, "name", ""),
        "split": getattr(dataset, "split", ""), "coverage": coverage,
        "notes": _pixel_notes(dataset, _gallery_paths(dataset)), "metrics": metrics,
        "t2i_scores": t2i, "i2t_scores": i2t, "cache": cache_stats,
        "timings_s": {"embed": round(embedded - started, 3), "score_and_evaluate": round(time.perf_counter() - embedded, 3)},
    }


# ----------------------------------------------------------------------------- published figures

# ----------------------------------------------------------------------------- a tiny random CLIP (tests, benchmarks)


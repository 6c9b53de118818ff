"""Text-to-text evaluation on a dataset split, and the metrics.json every evaluation writes."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .data import Dataset
from .encoders import TextEncoder
from .metrics import DEFAULT_TIES, evaluate_scores, mean_over_runs, mr_under_other_tie_policies
from .retrieval import VariantGallery, text_to_text_scores

ORACLE_CAPTIONER = "human-caption oracle (leave-one-out)"


def embed_grouped_texts(groups: Sequence[Sequence[str]], encoder: TextEncoder) -> VariantGallery:
    """Embed each image's texts (any number per image) into a VariantGallery."""
    flat = [text for group in groups for text in group]
    index = [i for i, group in enumerate(groups) for _ in group]
    return VariantGallery.from_groups(encoder.encode(flat), index, n_groups=len(groups))


def evaluate_text_to_text(dataset: Dataset, gallery_texts: Sequence[Sequence[str]], encoder: TextEncoder,
                          pooling: str = "max", image_query_texts: Sequence[Sequence[str]] | None = None,
                          ties: str = DEFAULT_TIES, n_boot: int = 1000, seed: int = 0) -> dict:
    """Standard protocol: captions of the split are the queries; each image is ranked by its texts.

    gallery_texts[i] are image i's caption variants; image_query_texts[i] (optional) the texts that
    stand for image i as an image->text query (default: its gallery texts).
    """
    if len(gallery_texts) != dataset.n_images:
        raise ValueError(f"{len(gallery_texts)} gallery entries for {dataset.n_images} images of {dataset.name} {dataset.split}")
    gallery = embed_grouped_texts(gallery_texts, encoder)
    queries = embed_grouped_texts(image_query_texts, encoder) if image_query_texts is not None else None
    captions = encoder.encode(dataset.captions)
    t2i, i2t = text_to_text_scores(captions, gallery, queries, pooling)
    result = evaluate_scores(t2i, i2t, dataset.caption_image_index, dataset.image_classes, ties=ties, n_boot=n_boot, seed=seed)
    result.update(mr_under_other_tie_policies(t2i, i2t, dataset.caption_image_index, ties))
    return result


def human_caption_oracle(dataset: Dataset, encoder: TextEncoder, pooling: str = "max", ties: str = DEFAULT_TIES,
                         n_boot: int = 1000, seed: int = 0) -> dict:
    """Ceiling for perfect captions: for k = 1..5, gallery = an image's other four human captions,
    queries = caption k of every image (both directions); reports the mean over k and each k."""
    groups = dataset.captions_by_image()
    counts = {len(g) for g in groups}
    if len(counts) != 1 or counts.pop() < 2:
        raise ValueError(f"the oracle needs the same number (>= 2) of captions for every image; {dataset.name} "
                         f"{dataset.split} has {sorted({len(g) for g in groups})}")
    n_caps = len(groups[0])
    vectors = encoder.encode(dataset.captions)
    order = np.argsort(dataset.caption_image_index, kind="stable")
    by_image = vectors[order].reshape(dataset.n_images, n_caps, -1)
    runs = []
    for k in range(n_caps):
        rest = [j for j in range(n_caps) if j != k]
        gallery = VariantGallery(by_image[:, rest], np.ones((dataset.n_images, n_caps - 1), dtype=bool))
        t2i, i2t = text_to_text_scores(by_image[:, k], gallery, pooling=pooling)
        runs.append(evaluate_scores(t2i, i2t, np.arange(dataset.n_images), dataset.image_classes, ties=ties, n_boot=n_boot, seed=seed + k))
        runs[-1].update(mr_under_other_tie_policies(t2i, i2t, np.arange(dataset.n_images), ties))
    result = mean_over_runs(runs)
    for key in [key for key in runs[0] if key.startswith("mR_ties_")]:
        result[key] = round(float(np.mean([r[key] for r in runs])), 2)
    result.update({"n_images": dataset.n_images, "n_queries": {"t2i": dataset.n_images, "i2t": dataset.n_images, "per_k": True},
                   "per_k": [{"k": k + 1, "t2i": r["t2i"], "i2t": r["i2t"], "mR": r["mR"], "ci95": r["ci95"]["mR"]} for k, r in enumerate(runs)],
                   "ties": ties, "per_class": _mean_per_class(runs)})
    return result


def _mean_per_class(runs: list[dict]) -> list[dict]:
    import pandas as pd

    frame = pd.concat([pd.DataFrame(r["per_class"]) for r in runs])
    return frame.groupby("scene_class").mean(numeric_only=True).round(2).reset_index().to_dict(orient="records")


def metrics_record(result: dict, dataset: Dataset, captioner: str, encoder: str, pooling: str, params: dict | None = None,
                   label: str | None = None) -> dict:
    """The metrics.json content: identification first, then the figures, then the resolved parameters."""
    record = {"dataset": dataset.name, "split": dataset.split, "n_images": dataset.n_images,
              "n_queries": result.get("n_queries"), "captioner": captioner, "encoder": encoder, "pooling": pooling,
              "coverage": dataset.coverage_note(), "label": label}
    record.update({k: v for k, v in result.items() if k not in ("n_images", "n_queries")})
    record["params"] = params or {}
    return record

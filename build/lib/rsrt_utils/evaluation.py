"""The human-caption oracle (a ceiling), and the metrics.json record every evaluation writes."""

from __future__ import annotations

import numpy as np

from .data import Dataset
from .encoders import TextEncoder
from .metrics import DEFAULT_TIES, mean_over_runs
from .metrics_record import mean_metrics
from .scoring import PrecomputedEncoder, ScoringSpec, evaluate, score_texts

ORACLE_CAPTIONER = "human-caption oracle (leave-one-out)"


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
    encoder = PrecomputedEncoder(encoder, dataset.captions)
    runs = []
    for k in range(n_caps):
        rest = [[c for j, c in enumerate(g) if j != k] for g in groups]
        spec = ScoringSpec(n_variants=n_caps - 1, pooling=pooling, ties=ties, n_boot=n_boot, seed=seed + k)
        t2i, i2t = score_texts(rest, [g[k] for g in groups], encoder, spec)  # query q is caption k of image q
        runs.append(evaluate(t2i, i2t, np.arange(dataset.n_images), spec, dataset.image_classes))
    result = mean_over_runs(runs)
    result.update(mean_metrics(runs))
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

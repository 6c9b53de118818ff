"""The side-by-side comparison of measured runs with the published figures (rsrt_utils.literature)."""

from __future__ import annotations

import pandas as pd

from ..data.registry import DATASETS_INFO
from ..literature import published_mr, published_rows

GEORSCLIP_README = "GeoRSCLIP ViT-B/32 zero-shot (RS5M README)"


def zero_shot_references(dataset: str) -> list[tuple[str, float]]:
    """The quoted lines a training-free result is read against: zero-shot CLIP, zero-shot GeoRSCLIP, the paper."""
    return [("CLIP ViT-B/32 zero-shot", published_mr("CLIP ViT-B/32", dataset)),
            (GEORSCLIP_README, published_mr(GEORSCLIP_README, dataset)),
            ("TRSLLaVA (GPT-4.1)", published_mr("TRSLLaVA (GPT-4.1 captions, T2T)", dataset))]


def published_table() -> pd.DataFrame:
    """One row per (system, dataset) of the comparison, with kind = 'quoted'."""
    return pd.DataFrame([{"system": row.system, "setting": row.setting, "dataset": dataset, "mR": value, "ci_low": None,
                          "ci_high": None, "kind": "quoted", "source": row.source}
                         for row, dataset, value in published_rows(in_comparison_only=True)])


SETTING_TRAIN = "uses in-domain train captions; not zero-shot"


def setting_of(label: str | None) -> str:
    """The short setting a measured row is shown under: zero-shot, uses train captions, ceiling, or training-free."""
    text = (label or "").lower()
    if "not zero-shot" in text or "train caption" in text:
        return SETTING_TRAIN
    if "ceiling" in text:
        return "ceiling (human captions)"
    if "zero-shot" in text:
        return "zero-shot"
    return label or "training-free"


def versus_references(dataset: str, interval) -> str:
    """Each quoted zero-shot line read against a measured interval: above it, below it, or inside it (not told apart)."""
    if dataset not in DATASETS_INFO:
        return ""
    lo, hi = interval
    verdicts = []
    for name, value in zero_shot_references(dataset):
        if value is not None:
            where = "inside the interval" if lo <= value <= hi else ("below the interval" if value < lo else "above the interval")
            verdicts.append(f"{name} {value}: {where}")
    return "; ".join(verdicts)


def measured_row(metrics: dict, system: str | None = None) -> dict:
    """A comparison row from a metrics.json record (with where each quoted zero-shot line lies against its interval)."""
    lo, hi = metrics["ci95"]["mR"]
    return {"system": system or f"this study: {metrics['captioner']} + {metrics['encoder']}",
            "setting": setting_of(metrics.get("label")), "dataset": metrics["dataset"], "mR": metrics["mR"], "ci_low": lo,
            "ci_high": hi, "kind": "measured", "source": metrics.get("coverage", ""),
            "quoted lines": versus_references(metrics["dataset"], (lo, hi))}


def comparison_table(measured: list[dict], dataset: str | None = None) -> pd.DataFrame:
    """Our measured rows beside the quoted ones, for one dataset (or all), sorted by mR."""
    table = pd.concat([pd.DataFrame([measured_row(m) if "captioner" in m else m for m in measured]), published_table()],
                      ignore_index=True)
    if dataset:
        table = table[table["dataset"] == dataset]
    return table.sort_values("mR", ascending=False).reset_index(drop=True)

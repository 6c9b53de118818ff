"""Published figures (quoted from their sources, never measured here): the one table the report, the quality
chapter and the CLIP baseline read."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

QUOTED = "quoted, not measured"


@dataclass(frozen=True)
class Published:
    """One quoted result: mR in percent on RSITMD / RSICD test (None where the source gives none)."""

    system: str
    family: str       # e.g. "CLIP", "GeoRSCLIP": how the CLIP baseline table groups rows
    backbone: str
    setting: str
    rsitmd: float | None
    rsicd: float | None
    source: str
    directions: dict = field(default_factory=dict)   # {"t2i R@1": ...} where the source gives them (RSITMD)
    in_comparison: bool = True                        # shown in the report's comparison table


PUBLISHED = (
    Published("TRSLLaVA (GPT-4.1 captions, T2T)", "TRSLLaVA", "GPT-4.1 + text-embedding-3-small", "training-free",
              42.62, 31.33, "paper abstract; paper digest"),
    Published("zero-shot CLIP (paper's baseline)", "CLIP (TRSLLaVA paper's baseline)", "unspecified", "zero-shot",
              23.86, None, "paper abstract"),
    Published("CLIP ViT-B/32", "CLIP", "ViT-B/32", "zero-shot", 24.19, 15.74, "RS5M paper, Table II",
              directions={"i2t R@1": 9.51, "i2t R@5": 23.01, "i2t R@10": 32.74,
                          "t2i R@1": 8.81, "t2i R@5": 27.88, "t2i R@10": 43.19}),
    Published("GeoRSCLIP ViT-B/32", "GeoRSCLIP", "ViT-B/32", "zero-shot", 35.68, 26.18, "RS5M paper"),
    Published("GeoRSCLIP ViT-B/32 zero-shot (RS5M README)", "GeoRSCLIP", "ViT-B/32", "zero-shot", 35.33, 26.06,
              "RS5M README", in_comparison=False),
    Published("GeoRSCLIP ViT-H/14", "GeoRSCLIP", "ViT-H/14", "zero-shot", 40.38, 28.48, "RS5M README"),
    Published("AMFMN", "AMFMN", "-", "supervised", 29.72, 16.42, "RemoteCLIP paper, Table II"),
    Published("GaLR", "GaLR", "-", "supervised", 31.41, 18.96, "RemoteCLIP paper, Table II"),
    Published("PIR", "PIR", "-", "supervised", 38.24, 24.46, "RemoteCLIP paper, Table II"),
    Published("RemoteCLIP ViT-B/32", "RemoteCLIP", "ViT-B/32", "trained on RSITMD+RSICD train", 49.38, 35.26,
              "RemoteCLIP paper, Table II"),
    Published("GeoRSCLIP-FT", "GeoRSCLIP-FT", "ViT-B/32", "fine-tuned", 51.81, 38.87, "RS5M paper, Table II"),
)
CLIP_FAMILIES = ("CLIP", "CLIP (TRSLLaVA paper's baseline)", "GeoRSCLIP", "RemoteCLIP", "GeoRSCLIP-FT")


def published(system: str) -> Published:
    """The row of one system (KeyError naming the known systems)."""
    for row in PUBLISHED:
        if row.system == system:
            return row
    raise KeyError(f"no published figure for {system!r}; known: {', '.join(r.system for r in PUBLISHED)}")


def published_mr(system: str, dataset: str) -> float | None:
    """One quoted mR (dataset 'rsitmd' or 'rsicd')."""
    if dataset not in ("rsitmd", "rsicd"):
        raise ValueError(f"published figures exist for rsitmd and rsicd, not {dataset!r}")
    return getattr(published(system), dataset)


def published_rows(in_comparison_only: bool = False) -> list[tuple[Published, str, float]]:
    """(row, dataset, mR) for every quoted figure."""
    return [(row, dataset, value) for row in PUBLISHED if row.in_comparison or not in_comparison_only
            for dataset, value in (("rsitmd", row.rsitmd), ("rsicd", row.rsicd)) if value is not None]


def published_clip_figures() -> pd.DataFrame:
    """The CLIP-family rows (percent, mR over six recalls, direction recalls where quoted)."""
    directions = list(published("CLIP ViT-B/32").directions)
    rows = []
    for row, dataset, value in published_rows(in_comparison_only=True):
        if row.family not in CLIP_FAMILIES:
            continue
        shown = row.directions if dataset == "rsitmd" else {}
        rows.append({"system": row.family, "backbone": row.backbone, "setting": row.setting, "dataset": dataset.upper(),
                     "mR": value, **{k: shown.get(k, float("nan")) for k in directions}, "source": row.source,
                     "status": QUOTED})
    return pd.DataFrame(rows)

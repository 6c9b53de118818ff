"""Published systems (quoted from their sources, never measured here): what each is, with its figures read from the
dataset records (data/registry.py, `published_mr`); the one table the report, the quality chapter and the CLIP
baseline read."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .data.registry import DATASETS_INFO

QUOTED = "quoted, not measured"
SIX_RECALLS = "mR = mean of R@1/5/10 in both directions (six recalls), each caption its own query"


@dataclass(frozen=True)
class Published:
    """One published system; its quoted mR per dataset lives in that dataset's record."""

    system: str
    family: str       # e.g. "CLIP", "GeoRSCLIP": how the CLIP baseline table groups rows
    backbone: str
    setting: str
    source: str
    in_comparison: bool = True                        # shown in the report's comparison table
    convention: str = SIX_RECALLS                     # how the source computes its mR (conventions differ)

    def mr(self, dataset: str) -> float | None:
        """The quoted mR on a dataset's test split (None where the source gives none)."""
        return DATASETS_INFO[dataset].published_mr.get(self.system)

    def recalls(self, dataset: str) -> dict:
        """The quoted direction recalls ({"t2i R@1": ...}) where the source gives them."""
        return DATASETS_INFO[dataset].published_recalls.get(self.system, {})


PUBLISHED = (
    Published("TRSLLaVA (GPT-4.1 captions, T2T)", "TRSLLaVA", "GPT-4.1 + text-embedding-3-small", "training-free",
              "paper abstract; paper digest"),
    Published("zero-shot CLIP (paper's baseline)", "CLIP (TRSLLaVA paper's baseline)", "unspecified", "zero-shot",
              "paper abstract"),
    Published("CLIP ViT-B/32", "CLIP", "ViT-B/32", "zero-shot", "RS5M paper, Table II"),
    Published("GeoRSCLIP ViT-B/32", "GeoRSCLIP", "ViT-B/32", "zero-shot", "RS5M paper"),
    Published("GeoRSCLIP ViT-B/32 zero-shot (RS5M README)", "GeoRSCLIP", "ViT-B/32", "zero-shot", "RS5M README",
              in_comparison=False),
    Published("GeoRSCLIP ViT-H/14", "GeoRSCLIP", "ViT-H/14", "zero-shot", "RS5M README"),
    Published("AMFMN", "AMFMN", "-", "supervised", "RemoteCLIP paper, Table II"),
    Published("GaLR", "GaLR", "-", "supervised", "RemoteCLIP paper, Table II"),
    Published("PIR", "PIR", "-", "supervised", "RemoteCLIP paper, Table II"),
    Published("RemoteCLIP ViT-B/32", "RemoteCLIP", "ViT-B/32", "trained on RSITMD+RSICD train",
              "RemoteCLIP paper, Table II"),
    Published("GeoRSCLIP-FT", "GeoRSCLIP-FT", "ViT-B/32", "fine-tuned", "RS5M paper, Table II"),
    Published("RemoteCLIP ViT-B/32 (SkyScript protocol)", "RemoteCLIP", "ViT-B/32", "trained on RSITMD+RSICD train",
              "SkyScript paper", in_comparison=False,
              convention="mR over six recalls with duplicate captions merged and a prompt prepended (SkyScript protocol)"),
)
CLIP_FAMILIES = ("CLIP", "CLIP (TRSLLaVA paper's baseline)", "GeoRSCLIP", "RemoteCLIP", "GeoRSCLIP-FT")


def published(system: str) -> Published:
    """The row of one system (KeyError naming the known systems)."""
    for row in PUBLISHED:
        if row.system == system:
            return row
    raise KeyError(f"no published figure for {system!r}; known: {', '.join(r.system for r in PUBLISHED)}")


def published_mr(system: str, dataset: str) -> float | None:
    """One quoted mR on a benchmark dataset's test split."""
    if dataset not in DATASETS_INFO:
        raise ValueError(f"published figures exist for {', '.join(DATASETS_INFO)}, not {dataset!r}")
    return published(system).mr(dataset)


def published_rows(in_comparison_only: bool = False) -> list[tuple[Published, str, float]]:
    """(row, dataset, mR) for every quoted figure."""
    return [(row, dataset, row.mr(dataset)) for row in PUBLISHED if row.in_comparison or not in_comparison_only
            for dataset in DATASETS_INFO if row.mr(dataset) is not None]


def published_clip_figures() -> pd.DataFrame:
    """The CLIP-family rows (percent, mR over six recalls, direction recalls where quoted)."""
    directions = list(published("CLIP ViT-B/32").recalls("rsitmd"))
    rows = []
    for row, dataset, value in published_rows(in_comparison_only=True):
        if row.family not in CLIP_FAMILIES:
            continue
        shown = row.recalls(dataset)
        rows.append({"system": row.family, "backbone": row.backbone, "setting": row.setting, "dataset": dataset.upper(),
                     "mR": value, **{k: shown.get(k, float("nan")) for k in directions}, "source": row.source,
                     "convention": row.convention, "status": QUOTED})
    return pd.DataFrame(rows)

"""Hand audit of caption quality: sample images, show them beside their variants, score them, summarise the scores.

Workflow: `sample_for_audit` -> `build_audit_items` -> `audit_sheet` (what an auditor is shown, as data) ->
`write_audit_items` (audit_items.json, the hand-over) -> `write_audit_sheet_html`, `plot_audit_sheet` and the web app
all render from it; `write_scoring_sheet` (one CSV per auditor, its schema below) -> people fill the CSVs ->
`summarise_scoring_sheets`.
`automatic_caption_checks` gives the cheap, automatic counterparts (length, diversity, unsupported words).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..captioning.schema import VARIANT_FIELDS, Variant
from ..data.dataset import Dataset
from .caption_checks import as_variants, check_image_variants
from .figures import load_thumbnail

AUDIT_ITEMS_FORMAT = 1  # the version of audit_items.json




SCORING_INSTRUCTIONS = """\
How to fill the scoring sheet (one row per image and caption variant)
=====================================================================
Look at the image (audit sheet HTML or PNG) and read the variant (all three fields).
Remember the prompt's convention: top = North, bottom = South, left = West, right = East.

correct_objects       whole number 0-1000: objects or land-cover types the variant names that ARE visible.
hallucinated_objects  whole number 0-1000: objects the variant names that are NOT visible in the image.
direction_errors      whole number 0-1000: positions/directions stated wrongly (e.g. "river in the north" when it is south).
completeness_1to5     whole number 1-5: how much of what matters in the image the variant covers
                      (1 = misses the main content, 3 = main content but little else, 5 = complete).
notes                 free text (optional).
auditor               your name or initials (the same on every row).

Count each distinct object once per variant. Leave no score cell empty. Do not edit image_id,
scene_class or variant, nor add or remove rows: two auditors' sheets are compared row by row.
"""


class ScoringSheetError(ValueError):
    """A filled scoring sheet has a missing column, a missing row or a bad value."""


def _largest_remainder(total: int, weights: np.ndarray, caps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split `total` into integers proportional to `weights` (largest-remainder method), never above `caps`.

    Ties between equal remainders are broken at random (given rng); units a capped class cannot take go round again.
    """
    alloc = np.zeros(len(weights), dtype=int)
    remaining = int(total)
    while remaining > 0:
        open_ = alloc < caps
        share = np.where(open_, weights, 0).astype(float)
        if share.sum() == 0:
            share = open_.astype(float)
        quota = remaining * share / share.sum()
        base = np.minimum(np.floor(quota).astype(int), caps - alloc)
        alloc += base
        remaining -= int(base.sum())
        for i in np.lexsort((rng.random(len(weights)), -(quota - np.floor(quota)))):
            if remaining == 0:
                break
            if alloc[i] < caps[i]:
                alloc[i] += 1
                remaining -= 1
    return alloc


def sample_for_audit(dataset: Dataset, n_images: int, seed: int, only_with_pixels: bool = True) -> list[int]:
    """Image indices for a hand audit, stratified by scene class and reproducible given `seed`.

    Proportional allocation (largest remainder); when n_images >= the number of classes every class gets
    at least one image. By default only images with pixels are eligible (an auditor must see the image).
    Returned sorted by scene class, then by image index.
    """
    eligible = [i for i, im in enumerate(dataset.images) if im.image_path is not None or not only_with_pixels]
    if not eligible:
        raise ValueError(f"{dataset.coverage_note()}: no image can be audited; "
                         "pass only_with_pixels=False to sample images without pixels anyway")
    if not 1 <= n_images <= len(eligible):
        raise ValueError(f"n_images={n_images} must be between 1 and the {len(eligible)} eligible images")
    classes = sorted({dataset.images[i].scene_class for i in eligible})
    members = {c: [i for i in eligible if dataset.images[i].scene_class == c] for c in classes}
    counts = np.array([len(members[c]) for c in classes])
    rng = np.random.default_rng(seed)
    if n_images >= len(classes):
        alloc = 1 + _largest_remainder(n_images - len(classes), counts - 1, counts - 1, rng)
    else:
        alloc = _largest_remainder(n_images, counts, counts, rng)
    chosen = []
    for scene_class, k in zip(classes, alloc):
        chosen.extend(sorted(int(i) for i in rng.choice(members[scene_class], size=int(k), replace=False)))
    return chosen


@dataclass
class AuditItem:
    """One image to audit: its pixels (path or none), its human captions and its caption variants."""

    image_index: int
    image_id: str
    scene_class: str
    image_path: Path | None
    human_captions: list[str]
    variants: list[Variant] = field(default_factory=list)
    checks: dict | None = None    # the automatic checks shown beside it (audit_sheet fills them)
    picture: str | None = None    # its pixels as a JPEG data URI, as the auditor sees them (audit_sheet fills it)

    def to_json(self, number: int) -> dict:
        return {"number": number, "image_index": self.image_index, "image_id": self.image_id,
                "scene_class": self.scene_class, "image_path": str(self.image_path) if self.image_path else None,
                "human_captions": list(self.human_captions), "variants": [v.model_dump() for v in self.variants],
                "checks": self.checks, "picture": self.picture}

    @classmethod
    def from_json(cls, row: dict) -> "AuditItem":
        return cls(int(row["image_index"]), row["image_id"], row["scene_class"],
                   Path(row["image_path"]) if row.get("image_path") else None, list(row["human_captions"]),
                   as_variants(row["image_id"], row["variants"]), row.get("checks"), row.get("picture"))


@dataclass
class AuditSheet:
    """What an auditor is shown, as data: the items (with their checks and pictures), title, coverage and the pixel
    note. Saved as audit_items.json; the HTML sheet, the PNG pages and the web app all render from it."""

    title: str
    coverage: str
    items: list[AuditItem]
    pixel_note: str | None = None
    all_classes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"format": AUDIT_ITEMS_FORMAT, "title": self.title, "coverage": self.coverage,
                "pixel_note": self.pixel_note, "all_classes": list(self.all_classes),
                "items": [item.to_json(n) for n, item in enumerate(self.items, start=1)]}


def build_audit_items(dataset: Dataset, corpus: Mapping[str, Sequence[Variant]], image_indices: Sequence[int]) -> list[AuditItem]:
    """AuditItems for the chosen images: corpus maps image_id -> variants (e.g. from captioning.corpus.load_variants)."""
    missing = [dataset.images[i].image_id for i in image_indices if dataset.images[i].image_id not in corpus]
    if missing:
        raise KeyError(f"{len(missing)} sampled image(s) have no variants in the corpus (first: {missing[0]!r}); "
                       "caption them first or sample from the captioned images only")
    captions = dataset.captions_by_image()
    items = []
    for i in image_indices:
        image = dataset.images[i]
        items.append(AuditItem(int(i), image.image_id, image.scene_class, image.image_path, list(captions[i]),
                               as_variants(image.image_id, corpus[image.image_id])))
    return items


def audit_sheet(items: Sequence[AuditItem], title: str, coverage: str, pixel_note: str | None = None,
                all_classes: Sequence[str] = ()) -> AuditSheet:
    """The sheet of the items, each with its automatic checks and picture filled in."""
    classes = list(all_classes) or [item.scene_class for item in items]
    for item in items:
        if item.checks is None:
            item.checks = check_image_variants(item.variants, item.human_captions, item.scene_class, classes)
        if item.picture is None:
            item.picture = image_data_uri(item.image_path)
    return AuditSheet(title, coverage, list(items), pixel_note, classes)


def write_audit_items(sheet: AuditSheet, path: Path | str) -> Path:
    """audit_items.json: the audit handed over as data (written through a temporary file)."""
    from ..fileutil import write_json_atomic

    return write_json_atomic(sheet.to_json(), path)


def read_audit_items(path: Path | str) -> AuditSheet:
    """The sheet saved by write_audit_items; ScoringSheetError naming the file if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != AUDIT_ITEMS_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {AUDIT_ITEMS_FORMAT}")
        items = [AuditItem.from_json(row) for row in data["items"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ScoringSheetError(f"{path} is not an audit items file ({error}); re-create it with prepare_audit "
                                "(notebook 05)") from None
    return AuditSheet(data["title"], data["coverage"], items, data.get("pixel_note"), data.get("all_classes") or [])


def shown_fields(variants: Sequence[Variant]) -> list[str]:
    """The variant fields a sheet shows as columns (a free-form description has one, shown as 'description')."""
    return [f for f in VARIANT_FIELDS if any(f in v.present_fields() for v in variants)]


def image_data_uri(path: Path | str | None, max_px: int = 600) -> str | None:
    """The image as a base64 JPEG data URI (self-contained HTML), or None without a readable file."""
    pixels = load_thumbnail(path, size=max_px)
    if pixels is None:
        return None
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

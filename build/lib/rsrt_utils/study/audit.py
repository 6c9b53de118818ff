"""Hand audit of caption quality: sample images, show them beside their variants, score them, summarise the scores.

Workflow: `sample_for_audit` -> `build_audit_items` -> `audit_sheet` (what an auditor is shown, as data) ->
`write_audit_items` (audit_items.json, the hand-over) -> `write_audit_sheet_html`, `plot_audit_sheet` and the web app
all render from it; `write_scoring_sheet` (one CSV per auditor, its schema below) -> people fill the CSVs ->
`summarise_scoring_sheets`.
`automatic_caption_checks` gives the cheap, automatic counterparts (length, diversity, unsupported words).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..captioning.schema import VARIANT_FIELDS, Variant
from ..data.dataset import Dataset
from ..spreadsheet import read_frame, write_rows
from .audit_columns import (  # noqa: F401 - the scoring sheet's schema, read from here by the app and notebooks
    AUDIT_COUNT_COLUMNS,
    AUDIT_SCORE_COLUMN,
    MAX_AUDIT_COUNT,
    SCORE_COLUMNS,
    SHEET_COLUMNS,
    SHEET_KEY_COLUMNS,
)
from .figures import load_thumbnail, save_figure, wrap

AUDIT_ITEMS_FORMAT = 1  # the version of audit_items.json
WHOLE_NUMBER = re.compile(r"[0-9]+")

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


# --------------------------------------------------------------------------------------------- sampling
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


# --------------------------------------------------------------------------------------------- items
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
                   _as_variants(row["image_id"], row["variants"]), row.get("checks"), row.get("picture"))


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


def _as_variants(image_id: str, values: Sequence) -> list[Variant]:
    try:
        return [v if isinstance(v, Variant) else Variant.model_validate(v) for v in values]
    except Exception as error:  # pydantic's message names the field
        raise ValueError(f"corpus entry for image {image_id!r} is not a list of variants: {error}") from error


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
                               _as_variants(image.image_id, corpus[image.image_id])))
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


# --------------------------------------------------------------------------------------------- HTML sheet
_HTML_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} .coverage{color:#555;font-style:italic;margin-top:0}
.item{display:flex;gap:20px;border-top:2px solid #ccc;padding:16px 0;page-break-inside:avoid}
.left{flex:0 0 320px} .left img{width:300px;height:300px;object-fit:contain;image-rendering:auto;border:1px solid #999}
.nopixels{width:300px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center;color:#555}
.meta{font-size:14px;margin:6px 0} .human{font-size:13px;padding-left:18px} .human li{margin-bottom:3px}
table{border-collapse:collapse;font-size:13px;width:100%} th,td{border:1px solid #ccc;padding:5px;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.n{width:24px;text-align:center;font-weight:bold}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #ddd;padding:10px;font-size:12px}
mark{background:#ffd6a5} .checks{font-size:13px;margin:0 0 6px} .ok{color:#1a7f37;font-weight:bold}
.bad{color:#c62828;font-weight:bold} .pixelnote{background:#fff8e1;border:1px solid #f0c36d;padding:8px;font-size:14px}
"""


def image_data_uri(path: Path | str | None, max_px: int = 600) -> str | None:
    """The image as a base64 JPEG data URI (self-contained HTML), or None without a readable file."""
    pixels = load_thumbnail(path, size=max_px)
    if pixels is None:
        return None
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _class_badge(check: dict) -> str:
    if "class_word_present" not in check:
        return ""
    own = ('<span class="ok">scene class named</span>' if check["class_word_present"]
           else '<span class="bad">scene class NOT named</span>')
    others = check["other_classes_named"]
    return own + (f' <span class="bad">names other classes: {html.escape(", ".join(others))}</span>' if others else "")


def _item_html(number: int, item: AuditItem) -> str:
    e = html.escape
    uri = item.picture
    picture = f'<img src="{uri}" alt="{e(item.image_id)}">' if uri else '<div class="nopixels">no pixels for this image</div>'
    humans = "".join(f"<li>{e(c)}</li>" for c in item.human_captions) or "<li><em>none</em></li>"
    check = item.checks
    fields = shown_fields(item.variants)
    rows = "".join(f'<tr><td class="n">{k}</td>' + "".join(
        f"<td>{e(v.text(f)) if f in v.present_fields() else ''}</td>" for f in fields) + "</tr>"
                   for k, v in enumerate(item.variants, start=1))
    header = "<tr><th>#</th>" + "".join(f"<th>{e(f if len(fields) > 1 else 'description')}</th>" for f in fields) + "</tr>"
    words = " ".join(f"<mark>{e(w)}</mark>" for w in check["unsupported_words"]) or "none"
    checks = (f'<p class="checks">{_class_badge(check)}<br>{check["n_unsupported_words"]} word(s) that no human caption '
              f'uses: {words}</p>')
    return (f'<section class="item" id="item-{number}"><div class="left">{picture}'
            f'<p class="meta"><b>{number}. {e(item.image_id)}</b><br>scene class: {e(item.scene_class)}</p>'
            f'<p class="meta">Human captions:</p><ol class="human">{humans}</ol></div>'
            f'<div class="right">{checks}<table>{header}{rows}</table></div></section>')


def write_audit_sheet_html(sheet: AuditSheet, path: Path | str) -> Path:
    """A self-contained HTML audit sheet of the sheet's data: images embedded as data URIs, inline CSS, all text
    escaped; words no human caption uses are marked and a badge says whether the text names the image's scene class."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    body = "\n".join(_item_html(n, item) for n, item in enumerate(sheet.items, start=1))
    document = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(sheet.title)}</title>'
                f"<style>{_HTML_STYLE}</style></head><body>\n<h1>{e(sheet.title)}</h1>\n"
                f'<p class="coverage">Coverage: {e(sheet.coverage)} — {len(sheet.items)} image(s) in this sheet</p>\n'
                + (f'<p class="pixelnote">{e(sheet.pixel_note)}</p>\n' if sheet.pixel_note else "") +
                f"<details><summary>Scoring instructions</summary><pre>{e(SCORING_INSTRUCTIONS)}</pre></details>\n"
                f"{body}\n</body></html>\n")
    path.write_text(document, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- PNG sheet
_TEXT_WIDTH = 150
_FIELD_MAX_LINES = {"one_sentence": 2, "feature": 3, "caption": 5}
_SHEET_FONT = 8.0
_LINE_PT = _SHEET_FONT * 1.3


def _check_line(item: AuditItem) -> str:
    """One line of automatic checks: scene class named or not, other classes named, unsupported words."""
    check = item.checks
    parts = []
    if "class_word_present" in check:
        parts.append("scene class named" if check["class_word_present"] else "scene class NOT named")
        if check["other_classes_named"]:
            parts.append("names other classes: " + ", ".join(check["other_classes_named"]))
    parts.append(f"{check['n_unsupported_words']} word(s) no human caption uses: " + ", ".join(check["unsupported_words"][:12])
                 + (" ..." if check["n_unsupported_words"] > 12 else ""))
    return "Checks: " + "; ".join(parts)


def _item_lines(item: AuditItem) -> list[tuple[str, bool]]:
    """(text, bold) lines for one item: its human captions, the automatic checks, then each variant's fields (long
    ones cut)."""
    lines: list[tuple[str, bool]] = [("Human captions", True)]
    lines += [(wrap(f"• {c}", _TEXT_WIDTH, 1), False) for c in item.human_captions] or [("(none)", False)]
    lines.extend((line, True) for line in wrap(_check_line(item), _TEXT_WIDTH, 2).split("\n"))
    for k, variant in enumerate(item.variants, start=1):
        lines.append((f"Variant {k}" if variant.is_structured else f"Description {k}", True))
        for name in variant.present_fields():
            text = wrap(f"{name}: {variant.text(name)}", _TEXT_WIDTH, _FIELD_MAX_LINES[name])
            lines.extend(("    " + line, False) for line in text.split("\n"))
    return lines


def plot_audit_sheet(sheet: AuditSheet, path: Path | str, per_page: int = 4) -> list[Path]:
    """The audit sheet as PNG pages (`<stem>_page01.png`, ...): image left, human captions, automatic checks and
    variants right. Long fields are cut with an ellipsis; the HTML sheet has the full text.
    """
    items, pixel_note = sheet.items, sheet.pixel_note
    if per_page < 1:
        raise ValueError(f"per_page must be >= 1, got {per_page}")
    if not items:
        raise ValueError("no audit items to plot; build them with build_audit_items(...)")
    path = Path(path)
    pages = [items[i:i + per_page] for i in range(0, len(items), per_page)]
    written = []
    for number, page in enumerate(pages, start=1):
        texts = [_item_lines(item) for item in page]
        heights = [max(2.8, len(lines) * _LINE_PT / 72 + 0.3) for lines in texts]
        fig = Figure(figsize=(15.0, sum(heights) + 0.8), layout="constrained")
        grid = fig.add_gridspec(len(page), 2, width_ratios=[1, 4.6], height_ratios=heights)
        for row, (item, lines) in enumerate(zip(page, texts)):
            _audit_row(fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1]), item, lines)
        fig.suptitle(f"Caption audit sheet — page {number} of {len(pages)} (long fields cut; full text in the HTML sheet)"
                     + (f"\n{wrap(pixel_note, 150)}" if pixel_note else ""), fontsize=12, fontweight="bold")
        target = path.with_name(f"{path.stem}_page{number:02d}.png")
        save_figure(fig, target)
        written.append(target)
    return written


def _audit_row(image_ax, text_ax, item: AuditItem, lines: list[tuple[str, bool]]) -> None:
    pixels = load_thumbnail(item.image_path)
    if pixels is None:
        image_ax.text(0.5, 0.5, "no pixels\nfor this image", ha="center", va="center", transform=image_ax.transAxes)
    else:
        image_ax.imshow(pixels)
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    image_ax.set_title(f"{item.image_id}\n[{item.scene_class}]", fontsize=9)
    text_ax.set_axis_off()
    for n, (line, bold) in enumerate(lines):
        text_ax.annotate(line, (0.0, 1.0), xycoords="axes fraction", xytext=(0, -n * _LINE_PT), textcoords="offset points",
                         va="top", ha="left", fontsize=_SHEET_FONT, fontweight="bold" if bold else "normal",
                         annotation_clip=False)


# --------------------------------------------------------------------------------------------- scoring sheets
def scoring_instructions_path(sheet_path: Path | str) -> Path:
    """Where the instructions for a scoring sheet live: `<sheet stem>_instructions.txt` beside it."""
    sheet_path = Path(sheet_path)
    return sheet_path.with_name(f"{sheet_path.stem}_instructions.txt")


def write_scoring_sheet(items: Sequence[AuditItem], path: Path | str) -> Path:
    """An empty scoring CSV, one row per (image, variant), plus the instructions in a sibling .txt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, SHEET_COLUMNS, ([item.image_id, item.scene_class, k] + [""] * (len(SHEET_COLUMNS) - 3)
                                     for item in items for k in range(1, len(item.variants) + 1)))
    scoring_instructions_path(path).write_text(SCORING_INSTRUCTIONS, encoding="utf-8")
    return path


def _parse_int(value: str, where: str, column: str, low: int, high: int) -> int:
    """The whole number typed in a cell (digits only, within [low, high]); ScoringSheetError otherwise, never a
    silently changed value (no '3.0', '1e3' or rounding)."""
    text = value.strip()
    if not WHOLE_NUMBER.fullmatch(text) or not low <= int(text) <= high:
        shown = repr(value) if text else "empty"
        raise ScoringSheetError(f"{where}, column {column!r}: {shown} is not a valid value; type a whole number "
                                f"from {low} to {high} (digits only)")
    return int(text)


def read_scoring_sheet(path: Path | str) -> pd.DataFrame:
    """Read and validate one filled scoring sheet; errors name the file, the row (CSV line) and the column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scoring sheet {path} does not exist")
    raw = read_frame(path, dtype=str, keep_default_na=False)
    missing = [c for c in SHEET_COLUMNS if c not in raw.columns]
    if missing:
        raise ScoringSheetError(f"{path}: missing column(s) {missing}; the sheet needs {list(SHEET_COLUMNS)} "
                                "(write a fresh one with write_scoring_sheet)")
    records = []
    for position, row in raw.iterrows():
        where = f"{path}: row {position + 1} (CSV line {position + 2}, image {row['image_id']!r}, variant {row['variant']!r})"
        if not row["image_id"].strip():
            raise ScoringSheetError(f"{where}, column 'image_id': empty; do not edit the key columns")
        record = {"image_id": row["image_id"].strip(), "scene_class": row["scene_class"].strip(),
                  "variant": _parse_int(row["variant"], where, "variant", 1, MAX_AUDIT_COUNT)}
        for column in AUDIT_COUNT_COLUMNS:
            record[column] = _parse_int(row[column], where, column, 0, MAX_AUDIT_COUNT)
        record[AUDIT_SCORE_COLUMN] = _parse_int(row[AUDIT_SCORE_COLUMN], where, AUDIT_SCORE_COLUMN, 1, 5)
        record["notes"] = row["notes"]
        record["auditor"] = row["auditor"].strip()
        records.append(record)
    frame = pd.DataFrame(records, columns=list(SHEET_COLUMNS))
    duplicated = frame.duplicated(["image_id", "variant"], keep=False)
    if duplicated.any():
        first = int(np.flatnonzero(duplicated)[0])
        raise ScoringSheetError(f"{path}: row {first + 1} (CSV line {first + 2}): image {frame.at[first, 'image_id']!r} "
                                f"variant {frame.at[first, 'variant']} appears more than once; keep one row per variant")
    frame["sheet"] = str(path)
    if (frame["auditor"] == "").any():
        frame.loc[frame["auditor"] == "", "auditor"] = path.stem
    return frame


def quadratic_weighted_kappa(a: Sequence[int], b: Sequence[int], categories: Sequence[int] = (1, 2, 3, 4, 5)) -> float:
    """Cohen's kappa with quadratic weights over fixed ordered categories (NaN when both raters never vary)."""
    index = {c: i for i, c in enumerate(categories)}
    n_cat = len(categories)
    observed = np.zeros((n_cat, n_cat))
    for x, y in zip(a, b):
        observed[index[x], index[y]] += 1
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    i, j = np.indices((n_cat, n_cat))
    weights = (i - j) ** 2 / (n_cat - 1) ** 2
    denominator = (weights * expected).sum()
    if denominator == 0:
        return float("nan")
    return float(1.0 - (weights * observed).sum() / denominator)


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(a, b).statistic), float(stats.pearsonr(a, b).statistic)


def agreement_between(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Per score column: rows compared, exact agreement, Spearman and Pearson r, quadratic kappa (completeness only)."""
    keys = ["image_id", "variant"]
    merged = first.merge(second, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if not unmatched.empty:
        row = unmatched.iloc[0]
        side = first["sheet"].iat[0] if row["_merge"] == "left_only" else second["sheet"].iat[0]
        raise ScoringSheetError(f"the two sheets do not have the same rows: image {row['image_id']!r} variant "
                                f"{row['variant']} is only in {side} ({len(unmatched)} unmatched row(s)); "
                                "both auditors must score the same sheet")
    rows = []
    for column in SCORE_COLUMNS:
        a, b = merged[f"{column}_a"].to_numpy(int), merged[f"{column}_b"].to_numpy(int)
        spearman, pearson = _correlations(a, b)
        rows.append({"score": column, "n_rows": len(merged), "exact_agreement": float(np.mean(a == b)),
                     "kappa_quadratic": quadratic_weighted_kappa(a, b) if column == AUDIT_SCORE_COLUMN else float("nan"),
                     "spearman": spearman, "pearson": pearson})
    return pd.DataFrame(rows)


def _group_means(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    grouped = rows.groupby(by)
    means = grouped[list(SCORE_COLUMNS)].mean()
    means["n_rows"] = grouped.size()
    return means.reset_index()


def summarise_scoring_sheets(paths: Sequence[Path | str]) -> dict[str, pd.DataFrame]:
    """Validate filled sheets and summarise them.

    Returns 'rows' (all scores, with auditor and sheet), 'per_variant', 'per_class' and 'per_auditor' means,
    'overall', and, given two or more sheets, 'agreement' for every pair (sheet_a, sheet_b, score, n_rows,
    exact_agreement, kappa_quadratic, spearman, pearson).
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ValueError("no scoring sheets given")
    sheets = [read_scoring_sheet(p) for p in paths]
    rows = pd.concat(sheets, ignore_index=True)
    summary = {"rows": rows, "per_variant": _group_means(rows, "variant"), "per_class": _group_means(rows, "scene_class"),
               "per_auditor": _group_means(rows, "auditor"),
               "overall": pd.DataFrame([{**rows[list(SCORE_COLUMNS)].mean().to_dict(), "n_rows": len(rows)}])}
    if len(sheets) >= 2:
        pairs = []
        for (i, a), (j, b) in itertools.combinations(enumerate(sheets), 2):
            pair = agreement_between(a, b)
            pair.insert(0, "sheet_b", str(paths[j]))
            pair.insert(0, "sheet_a", str(paths[i]))
            pairs.append(pair)
        summary["agreement"] = pd.concat(pairs, ignore_index=True)
    return summary


# --------------------------------------------------------------------------------------------- automatic checks
STOPWORDS = frozenset("""
a an the and or but of in on at to from by with without into onto over under above below near next beside besides
between among around along across through behind front is are was were be been being has have had it its this that
these those there here which who whom whose what where when while as than then so such some many much more most few
several lot lots very also can could may might will would shall should do does did not no one two three four five
other others each both all any either neither same own only just about like image picture photo scene area view shows
shown showing seen visible appears appear located situated part parts of kind type we see aerial satellite
for towards toward another away further likely possibly perhaps overall their they them its it's into upon
""".split())
DIRECTION_WORDS = frozenset("""
north south east west northern southern eastern western northeast northwest southeast southwest northeastern
northwestern southeastern southwestern northward southward eastward westward left right top bottom upper lower
centre center central middle side sides corner corners edge edges
""".split())
_WORD = re.compile(r"[a-z]+")
# Scene classes whose file-name prefix is not itself the word a caption would use (the rest: the prefix).
CLASS_WORDS = {"denseresidential": ("residential",), "mediumresidential": ("residential",),
               "sparseresidential": ("residential",), "baseballfield": ("baseball",), "bareland": ("bare", "barren"),
               "railwaystation": ("railway", "train", "station"), "storagetanks": ("tank",),
               "center": ("center", "centre"), "commercial": ("commercial",), "industrial": ("industrial", "factory"),
               "meadow": ("meadow", "grassland"), "port": ("port", "harbor", "harbour"), "viaduct": ("viaduct",),
               "boat": ("boat", "ship"), "intersection": ("intersection", "crossroad"), "plane": ("plane", "airplane")}


def class_words(scene_class: str) -> tuple[str, ...]:
    """Words that name a scene class in a caption (singular forms)."""
    return CLASS_WORDS.get(scene_class, (singular(scene_class),))


def class_mentions(text: str, scene_class: str, all_classes: Sequence[str]) -> tuple[bool, list[str]]:
    """(the image's own class is named, the other scene classes the text names) — a wrong-scene signal."""
    words = {singular(w) for w in _WORD.findall(text.lower())}
    own = set(class_words(scene_class))
    others = sorted(c for c in set(all_classes) - {scene_class, "unlabelled"} if set(class_words(c)) & words - own)
    return bool(own & words), others


def content_words(text: str) -> list[str]:
    """Lowercase alphabetic tokens of length >= 2, minus stopwords and direction/position words."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS and w not in DIRECTION_WORDS]


def singular(word: str) -> str:
    """A light plural folding so that 'trees' and 'tree' match (ies->y, sses/xes/ches/shes->-es, s->'')."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _jaccard_distance(a: set[str], b: set[str]) -> float:
    union = a | b
    return 1.0 - len(a & b) / len(union) if union else 0.0


def _variant_key(variant: Variant) -> str:
    return " ".join(variant.text("all").lower().split())


def check_image_variants(variants: Sequence[Variant], human_captions: Sequence[str], scene_class: str | None = None,
                         all_classes: Sequence[str] = ()) -> dict:
    """Lengths, diversity, duplicates, unsupported words and scene-class words of one image's variants."""
    record: dict = {"n_variants": len(variants)}
    for name in VARIANT_FIELDS:
        lengths = [len(v.text(name).split()) for v in variants if name in v.present_fields()]
        if lengths or any(v.is_structured for v in variants):
            record[f"mean_words_{name}"] = float(np.mean(lengths)) if lengths else 0.0
    word_sets = [set(_WORD.findall(v.text("all").lower())) for v in variants]
    pairs = list(itertools.combinations(word_sets, 2))
    record["diversity"] = float(np.mean([_jaccard_distance(a, b) for a, b in pairs])) if pairs else float("nan")
    keys = [_variant_key(v) for v in variants]
    record["n_duplicate_variants"] = len(keys) - len(set(keys))
    supported = {singular(w) for c in human_captions for w in content_words(c)}
    unsupported: dict[str, None] = {}
    for variant in variants:
        for word in content_words(variant.text("all")):
            if singular(word) not in supported:
                unsupported.setdefault(word, None)
    record["n_unsupported_words"] = len(unsupported)
    record["unsupported_words"] = sorted(unsupported)
    if scene_class and scene_class != "unlabelled":
        text = " ".join(v.text("all") for v in variants)
        record["class_word_present"], record["other_classes_named"] = class_mentions(text, scene_class, all_classes)
    return record


def automatic_caption_checks(dataset: Dataset, corpus: Mapping[str, Sequence[Variant]]) -> pd.DataFrame:
    """Per captioned image: mean words per field, diversity (mean pairwise 1 - Jaccard of word sets), duplicate
    variants, and content words the variants use that none of the image's human captions uses.

    Words are compared after a light plural folding ('trees' ~ 'tree'); the listed words are as the variants wrote them.
    Images of the dataset that have no corpus entry are skipped; use `summarise_caption_checks` for totals.
    """
    captions = dataset.captions_by_image()
    records = []
    for i, image in enumerate(dataset.images):
        if image.image_id not in corpus:
            continue
        variants = _as_variants(image.image_id, corpus[image.image_id])
        records.append({"image_id": image.image_id, "scene_class": image.scene_class,
                        **check_image_variants(variants, captions[i], image.scene_class, dataset.image_classes)})
    if not records:
        raise ValueError(f"none of the {dataset.n_images} images of {dataset.name} {dataset.split} is in the corpus "
                         f"({len(corpus)} entries); check that the corpus ids are image file names like "
                         f"{dataset.images[0].image_id if dataset.images else 'x.jpg'!r}")
    return pd.DataFrame(records)


def summarise_caption_checks(checks: pd.DataFrame, top: int = 20) -> dict[str, pd.DataFrame]:
    """'means': the mean of every numeric check across images; 'top_unsupported_words': word, n_images, share_of_images."""
    numeric = checks.select_dtypes(["number", "bool"]).astype(float)
    if "other_classes_named" in checks:
        numeric["names_another_class"] = checks["other_classes_named"].map(lambda v: bool(v) if isinstance(v, list) else np.nan)
    means = numeric.mean().to_frame("mean").T.assign(n_images=len(checks)).reset_index(drop=True)
    counter = Counter(word for words in checks["unsupported_words"] for word in words)
    top_words = pd.DataFrame(counter.most_common(top), columns=["word", "n_images"])
    top_words["share_of_images"] = top_words["n_images"] / max(len(checks), 1)
    return {"means": means, "top_unsupported_words": top_words}


__all__ = ["AuditItem", "ScoringSheetError", "SCORING_INSTRUCTIONS", "SHEET_COLUMNS", "sample_for_audit",
           "build_audit_items", "image_data_uri", "write_audit_sheet_html", "plot_audit_sheet", "write_scoring_sheet",
           "scoring_instructions_path", "read_scoring_sheet", "quadratic_weighted_kappa", "agreement_between",
           "summarise_scoring_sheets", "content_words", "singular", "check_image_variants", "automatic_caption_checks",
           "summarise_caption_checks"]

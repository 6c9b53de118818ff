"""Study runs with a caption audit: find them under the outputs folder and read what `prepare_audit` wrote.

The texts an auditor needs (image, human captions, variants, automatic checks) come from the audit handed over as
data, `audit/audit_items.json` (study.audit.read_audit_items); the rows to score from the empty
`audit/scoring_sheet.csv`. The run folder's layout is study.run_folder's.
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..study.audit import AuditSheet, ScoringSheetError, read_audit_items, shown_fields
from ..study.audit_columns import SHEET_COLUMNS, SHEET_KEY_COLUMNS
from ..study.run_folder import RunFolder, list_runs

_DATA_URI = re.compile(r"data:(image/(?:jpeg|png));base64,([A-Za-z0-9+/=]+)")


class UnknownRun(LookupError):
    """No study run of that name has an audit folder under the outputs root."""


@dataclass(frozen=True)
class Checks:
    """The automatic checks the HTML sheet shows for one image (None: no scene class to check)."""

    class_named: bool | None = None
    other_classes: str = ""
    unsupported_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class SheetImage:
    """One sampled image as the audit sheet shows it, with the sheet rows (variant numbers) to score."""

    number: int
    image_id: str
    scene_class: str
    variants: tuple[int, ...]
    human_captions: tuple[str, ...] = ()
    texts: dict[int, dict[str, str]] = field(default_factory=dict)  # variant number -> field -> text
    checks: Checks = Checks()
    has_pixels: bool = False


@dataclass(frozen=True)
class AuditRun:
    """A run's audit: its title and notes, the images in sheet order and the key rows of the scoring sheet."""

    name: str
    audit_dir: Path
    title: str
    coverage: str
    pixel_note: str
    images: tuple[SheetImage, ...]
    key_rows: tuple[tuple[str, str, str], ...]  # (image_id, scene_class, variant) as the template has them
    warning: str = ""
    pictures: dict[int, tuple[str, bytes]] = field(default_factory=dict, repr=False)  # number -> (media type, bytes)

    @property
    def n_images(self) -> int:
        return len(self.images)


def list_audit_runs(outputs_root: Path) -> list[str]:
    """Names of the run folders directly under outputs_root that hold an audit scoring sheet, sorted."""
    return [run.name for run in list_runs(outputs_root, audited=True)]


def read_key_rows(template: Path) -> tuple[tuple[str, str, str], ...]:
    """The (image_id, scene_class, variant) rows of the empty scoring sheet; ScoringSheetError if it lacks columns."""
    with template.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in SHEET_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ScoringSheetError(f"{template}: missing column(s) {missing}; re-create it with prepare_audit "
                                    "(notebook 05) or audit_scoring.write_scoring_sheet")
        return tuple(tuple(row[c].strip() for c in SHEET_KEY_COLUMNS) for row in reader)


def _picture(uri: str | None) -> tuple[str, bytes] | None:
    """(media type, bytes) of a data URI; None when there is none or it is broken."""
    match = _DATA_URI.fullmatch(uri or "")
    if match is None:
        return None
    try:
        return match.group(1), base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        return None


def _checks(check: dict | None) -> Checks:
    if not check:
        return Checks()
    return Checks(check.get("class_word_present"), ", ".join(check.get("other_classes_named") or ()),
                  tuple(check.get("unsupported_words") or ()))


def _texts(variants) -> dict[int, dict[str, str]]:
    """variant number -> column -> text, as the sheet shows them (one free-form field is shown as 'description')."""
    fields = shown_fields(variants)
    names = fields if len(fields) > 1 else ["description"] * len(fields)
    return {k: {name: v.text(f) for name, f in zip(names, fields) if f in v.present_fields() and v.text(f)}
            for k, v in enumerate(variants, start=1)}


def _sections(sheet: AuditSheet) -> dict[str, dict]:
    """image_id -> what the sheet shows of it (human captions, variant texts, checks, picture)."""
    return {item.image_id: {"human_captions": tuple(item.human_captions), "texts": _texts(item.variants),
                            "checks": _checks(item.checks), "picture": _picture(item.picture)} for item in sheet.items}


def _group_keys(key_rows) -> list[tuple[str, str, list[int]]]:
    """(image_id, scene_class, variant numbers) per image, in the order the template lists them."""
    groups: dict[str, tuple[str, list[int]]] = {}
    for image_id, scene_class, variant in key_rows:
        number = int(variant) if variant.isdigit() else 0
        groups.setdefault(image_id, (scene_class, []))[1].append(number)
    return [(image_id, scene_class, numbers) for image_id, (scene_class, numbers) in groups.items()]


def load_audit_run(outputs_root: Path, name: str) -> AuditRun:
    """The audit of run `name`; UnknownRun (naming the known runs) when there is none."""
    known = list_audit_runs(outputs_root)
    if name not in known:
        listed = ", ".join(known) if known else "none yet (run notebook 05_caption_audit of a study run first)"
        raise UnknownRun(f"no study run {name!r} with an audit under {outputs_root}; known runs: {listed}")
    run = RunFolder(outputs_root / name)
    key_rows = read_key_rows(run.scoring_sheet)
    header, sections, warning = {"title": f"Caption audit: {name}", "coverage": "", "pixel_note": ""}, {}, ""
    if run.audit_items.is_file():
        sheet = read_audit_items(run.audit_items)
        header = {"title": sheet.title, "coverage": sheet.coverage, "pixel_note": sheet.pixel_note or ""}
        sections = _sections(sheet)
    else:
        warning = (f"{run.audit_items.name} is missing from {run.audit}: images and variant texts cannot be shown; "
                   "re-create the audit with notebook 05 (prepare_audit)")
    images, pictures = [], {}
    for number, (image_id, scene_class, variants) in enumerate(_group_keys(key_rows), start=1):
        parsed = sections.get(image_id, {})
        if parsed.get("picture"):
            pictures[number] = parsed["picture"]
        images.append(SheetImage(number, image_id, scene_class, tuple(variants), parsed.get("human_captions", ()),
                                 parsed.get("texts", {}), parsed.get("checks", Checks()), bool(parsed.get("picture"))))
    if sections and not warning and set(sections) != {image.image_id for image in images}:
        warning = (f"{run.audit_items.name} and {run.scoring_sheet.name} list different images; re-create both with "
                   "prepare_audit")
    return AuditRun(name, run.audit, header["title"] or f"Caption audit: {name}", header["coverage"],
                    header["pixel_note"], tuple(images), key_rows, warning, pictures)


class AuditRunCache:
    """Read audits by run name, read again when their files change (the items file holds every picture)."""

    def __init__(self, outputs_root: Path):
        self.outputs_root = outputs_root
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple, AuditRun]] = {}

    def _stamp(self, name: str) -> tuple:
        run = RunFolder(self.outputs_root / name)
        return tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
                     for p in (run.scoring_sheet, run.audit_items))

    def get(self, name: str) -> AuditRun:
        """The run's audit, parsed once per version of its files."""
        if name not in list_audit_runs(self.outputs_root):
            return load_audit_run(self.outputs_root, name)  # raises UnknownRun with the known names
        stamp = self._stamp(name)
        with self._lock:
            cached = self._cache.get(name)
            if cached is None or cached[0] != stamp:
                cached = (stamp, load_audit_run(self.outputs_root, name))
                self._cache[name] = cached
            return cached[1]

"""Study runs with a caption audit: find them under the outputs folder and read what `prepare_audit` wrote.

The texts an auditor needs (image, human captions, variants, automatic checks) are read back from the
self-contained `audit/audit_sheet.html`; the rows to score come from the empty `audit/scoring_sheet.csv`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bs4 import BeautifulSoup

from ..study.audit import SHEET_COLUMNS, SHEET_KEY_COLUMNS, ScoringSheetError

AUDIT_FOLDER = "audit"
TEMPLATE_SHEET = "scoring_sheet.csv"
HTML_SHEET = "audit_sheet.html"
_SHEET_COUNT = re.compile(r" — \d+ image\(s\) in this sheet$")  # the page states its own counts
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
    """Names of the run folders directly under outputs_root that hold `audit/scoring_sheet.csv`, sorted."""
    if not outputs_root.is_dir():
        return []
    return sorted(p.name for p in outputs_root.iterdir() if (p / AUDIT_FOLDER / TEMPLATE_SHEET).is_file())


def read_key_rows(template: Path) -> tuple[tuple[str, str, str], ...]:
    """The (image_id, scene_class, variant) rows of the empty scoring sheet; ScoringSheetError if it lacks columns."""
    with template.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in SHEET_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ScoringSheetError(f"{template}: missing column(s) {missing}; re-create it with prepare_audit "
                                    "(notebook 05) or audit.write_scoring_sheet")
        return tuple(tuple(row[c].strip() for c in SHEET_KEY_COLUMNS) for row in reader)


def _text(node) -> str:
    return " ".join(node.get_text(" ").split()) if node is not None else ""


def _picture(section) -> tuple[str, bytes] | None:
    img = section.select_one(".left img")
    match = _DATA_URI.fullmatch(img.get("src", "")) if img is not None else None
    if match is None:
        return None
    try:
        return match.group(1), base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        return None


def _checks(section) -> Checks:
    box = section.select_one("p.checks")
    if box is None:
        return Checks()
    named = None
    if box.find("span", class_="ok"):
        named = True
    elif any("NOT named" in _text(s) for s in box.find_all("span", class_="bad")):
        named = False
    others = next((_text(s).partition(":")[2].strip() for s in box.find_all("span", class_="bad")
                   if _text(s).startswith("names other classes")), "")
    return Checks(named, others, tuple(_text(m) for m in box.find_all("mark")))


def _variant_texts(section) -> dict[int, dict[str, str]]:
    table = section.select_one("table")
    if table is None:
        return {}
    fields = [_text(th) for th in table.find_all("th")][1:]
    texts = {}
    for tr in table.find_all("tr"):
        cells = tr.find_all("td")
        if cells and _text(cells[0]).isdigit():
            texts[int(_text(cells[0]))] = {f: _text(td) for f, td in zip(fields, cells[1:]) if _text(td)}
    return texts


def _parse_section(section) -> dict:
    """image_id, scene_class, human captions, variant texts, checks and picture of one `<section class=item>`."""
    meta = section.select_one(".left p.meta")
    heading = _text(meta.b) if meta is not None and meta.b is not None else ""
    image_id = heading.partition(". ")[2] or heading
    humans = tuple(_text(li) for li in section.select("ol.human li") if li.em is None)
    return {"image_id": image_id, "human_captions": humans, "texts": _variant_texts(section),
            "checks": _checks(section), "picture": _picture(section)}


def parse_audit_sheet(path: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """(title, coverage and pixel note; image_id -> parsed section) from an HTML sheet written by audit.py."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    coverage = _SHEET_COUNT.sub("", _text(soup.select_one("p.coverage")).removeprefix("Coverage: "))
    header = {"title": _text(soup.h1), "coverage": coverage, "pixel_note": _text(soup.select_one("p.pixelnote"))}
    sections = (_parse_section(s) for s in soup.select("section.item"))
    return header, {s["image_id"]: s for s in sections if s["image_id"]}


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
    audit_dir = outputs_root / name / AUDIT_FOLDER
    key_rows = read_key_rows(audit_dir / TEMPLATE_SHEET)
    html_path = audit_dir / HTML_SHEET
    header, sections, warning = {"title": f"Caption audit: {name}", "coverage": "", "pixel_note": ""}, {}, ""
    if html_path.is_file():
        header, sections = parse_audit_sheet(html_path)
    else:
        warning = f"{HTML_SHEET} is missing from {audit_dir}: images and variant texts cannot be shown"
    images, pictures = [], {}
    for number, (image_id, scene_class, variants) in enumerate(_group_keys(key_rows), start=1):
        parsed = sections.get(image_id, {})
        if parsed.get("picture"):
            pictures[number] = parsed["picture"]
        images.append(SheetImage(number, image_id, scene_class, tuple(variants), parsed.get("human_captions", ()),
                                 parsed.get("texts", {}), parsed.get("checks", Checks()), bool(parsed.get("picture"))))
    if sections and not warning and set(sections) != {image.image_id for image in images}:
        warning = f"{HTML_SHEET} and {TEMPLATE_SHEET} list different images; re-create both with prepare_audit"
    return AuditRun(name, audit_dir, header["title"] or f"Caption audit: {name}", header["coverage"],
                    header["pixel_note"], tuple(images), key_rows, warning, pictures)


class AuditRunCache:
    """Parsed audits by run name, re-read when the sheet files change (the HTML sheet is large to parse)."""

    def __init__(self, outputs_root: Path):
        self.outputs_root = outputs_root
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple, AuditRun]] = {}

    def _stamp(self, name: str) -> tuple:
        folder = self.outputs_root / name / AUDIT_FOLDER
        return tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None
                     for p in (folder / TEMPLATE_SHEET, folder / HTML_SHEET))

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

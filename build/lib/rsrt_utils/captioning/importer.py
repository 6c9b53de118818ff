"""Import an existing corpus (the authors' RSRT JSONL, or a documented plain JSONL) into a CorpusStore.

Formats
  rsrt   the authors' layout (Jinghao-Xiao/TRSLLaVA): one JSON object per line and image,
         {"image": "data/rsitmd/images/pond_2994.tif", "variants": [{one_sentence, feature, caption} x5],
         "model": "gpt-4.1"}. Also accepted: the image under "image_name", "filename", "image_path" or
         "image_id"; the answer under "variants", "response", "output" or "answer", as a list, an object
         with "variants", or the model's raw JSON text (fences and prose tolerated); and the authors'
         ungrouped layout, one variant per line ({"image": ..., "text": {...}} or {"image": ...,
         "one_sentence_caption", "feature_analysis", "caption"}), grouped by image in file order.
         The image id is the file name of "image" (the datasets' ids are file names).
  plain  {"image_id": "pond_2994.tif", "variants": [{"one_sentence", "feature", "caption"} x5]} per line, or
         {"image_id": ..., "descriptions": ["free text", ...]} (1 to N free-form descriptions, kept as written).
         The project's own corpus files are plain files too: their failed records and image-query records
         are skipped and counted, not reported as bad lines.
Every line is validated (five distinct, complete variants, or non-empty descriptions); bad lines are reported
with their numbers. An input with no usable line is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from pydantic import ValidationError

from .backend import BackendAnswer, CaptionRequest
from .corpus import CorpusStore, make_cache_key, utc_now
from .images import file_sha256
from .parsing import ParseError, parse_variants
from .schema import CorpusRecord, Variant

FORMATS = ("rsrt", "plain")
IMAGE_KEYS = ("image", "image_name", "filename", "image_path", "image_id")
ANSWER_KEYS = ("variants", "response", "output", "answer")
IMPORT_PROMPT_VERSION = "imported"


@dataclass
class ImportReport:
    source: str
    format: str
    imported: int = 0
    skipped_done: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def text(self) -> str:
        skipped = "".join(f"; {n} {what} skipped" for what, n in sorted(self.skipped.items()))
        lines = [f"imported {self.imported} image(s) from {self.source} ({self.format}); "
                 f"{self.skipped_done} already in the store{skipped}; {len(self.bad_lines)} bad line(s)"]
        lines += [f"  line {n}: {reason}" for n, reason in self.bad_lines[:50]]
        if len(self.bad_lines) > 50:
            lines.append(f"  ... and {len(self.bad_lines) - 50} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"source": self.source, "format": self.format, "imported": self.imported, "skipped_done": self.skipped_done,
                "skipped": self.skipped, "n_bad_lines": len(self.bad_lines), "bad_lines": self.bad_lines[:50]}


class SkippedLine(Exception):
    """A well-formed line that is not an answer to import (a failed record, an image-query record)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


@dataclass
class ImportedImage:
    line_number: int
    image_id: str
    variants: list[Variant]
    model: str | None


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"import format {format!r} is not known; choose one of {', '.join(FORMATS)}")


def _first(obj: dict, keys: Sequence[str]):
    for key in keys:
        if obj.get(key) not in (None, ""):
            return key, obj[key]
    return None, None


def _single_variant(obj: dict) -> dict | None:
    """The authors' ungrouped layout: one variant per line."""
    if isinstance(obj.get("text"), dict):
        obj = obj["text"]
    if not any(k in obj for k in ("one_sentence", "one_sentence_caption", "feature", "feature_analysis", "caption")):
        return None
    return {"one_sentence": obj.get("one_sentence") or obj.get("one_sentence_caption") or "",
            "feature": obj.get("feature") or obj.get("feature_analysis") or "", "caption": obj.get("caption") or ""}


def _parse_line(text: str, format: str) -> tuple[str, object, str | None]:
    """(image id, answer or single-variant dict, model) of one line; ParseError if unusable."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as error:
        raise ParseError(f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(obj, dict):
        raise ParseError(f"expected a JSON object, got {type(obj).__name__}")
    if format == "plain":
        return _parse_plain(obj)
    key, image = _first(obj, IMAGE_KEYS)
    if image is None:
        raise ParseError(f"no image name (looked for {', '.join(IMAGE_KEYS)})")
    image_id = str(image) if key == "image_id" else Path(str(image).replace("\\", "/")).name
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    _, answer = _first(obj, ANSWER_KEYS)
    if answer is not None:
        return image_id, parse_variants(answer), model
    variant = _single_variant(obj)
    if variant is None:
        raise ParseError(f"no variants (looked for {', '.join(ANSWER_KEYS)}, or one variant's fields)")
    return image_id, variant, model


def _parse_plain(obj: dict) -> tuple[str, object, str | None]:
    if "cache_key" in obj and obj.get("status") == "failed":
        raise SkippedLine("failed record(s)")
    if "cache_key" in obj and obj.get("mode", "variants") != "variants":
        raise SkippedLine(f"{obj['mode']} record(s)")
    missing = [k for k in ("image_id",) if k not in obj] + ([] if {"variants", "descriptions"} & set(obj) else ["variants"])
    if missing:
        raise ParseError(f"missing key(s) {', '.join(missing)}; a plain line is {{\"image_id\": ..., \"variants\": [...]}} "
                         f"or {{\"image_id\": ..., \"descriptions\": [...]}}")
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    if "descriptions" in obj:
        return str(obj["image_id"]), _descriptions(obj["descriptions"]), model
    if "cache_key" in obj:  # the project's own record: its variants are stored as they were validated
        return str(obj["image_id"]), _descriptions(obj["variants"]), model
    return str(obj["image_id"]), parse_variants(obj["variants"]), model


def _descriptions(values) -> list[Variant]:
    """1..N variants as written: free-form strings, or variant objects (structured or description-only)."""
    if not isinstance(values, list) or not values:
        raise ParseError("descriptions must be a non-empty list")
    try:
        return [Variant.description(v) if isinstance(v, str) else Variant.model_validate(v) for v in values]
    except ValidationError as error:
        raise ParseError(f"bad description: {str(error).splitlines()[-1].strip()}") from None


def read_import_file(path: Path | str, format: str = "rsrt",
                     skipped: dict[str, int] | None = None) -> tuple[list[ImportedImage], list[tuple[int, str]]]:
    """The valid images of an import file and the bad lines as (line number, reason); skipped lines are counted."""
    _check_format(format)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"import file {str(path)!r} does not exist; pass the corpus JSONL with --in")
    images: dict[str, ImportedImage] = {}
    singles: dict[str, list[tuple[int, dict]]] = {}
    bad: list[tuple[int, str]] = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                image_id, answer, model = _parse_line(text, format)
            except ParseError as error:
                bad.append((number, error.reason))
                continue
            except SkippedLine as skip:
                if skipped is not None:
                    skipped[skip.what] = skipped.get(skip.what, 0) + 1
                continue
            if isinstance(answer, dict):
                singles.setdefault(image_id, []).append((number, answer))
            elif image_id in images:
                bad.append((number, f"image {image_id!r} appears again (first on line {images[image_id].line_number})"))
            else:
                variants = answer if isinstance(answer, list) else answer.variants
                images[image_id] = ImportedImage(number, image_id, variants, model)
    _group_singles(singles, images, bad)
    bad.sort()
    return list(images.values()), bad


def _group_singles(singles, images, bad) -> None:
    for image_id, rows in singles.items():
        first_line = rows[0][0]
        if image_id in images:
            bad.append((first_line, f"image {image_id!r} has both a grouped line and single-variant lines"))
            continue
        try:
            variant_set = parse_variants([variant for _, variant in rows])
        except ParseError as error:
            bad.append((first_line, f"image {image_id!r} (single-variant lines {', '.join(str(n) for n, _ in rows)}): "
                                    f"{error.reason}"))
            continue
        images[image_id] = ImportedImage(first_line, image_id, variant_set.variants, None)


def _key_settings(format: str) -> dict:
    return {"format": format}


def import_corpus(in_path: Path | str, store_path: Path | str, format: str = "rsrt", model: str | None = None,
                  known_image_ids: Iterable[str] | None = None) -> ImportReport:
    """Validate an existing corpus file and write its images into the store (backend "import")."""
    skipped: dict[str, int] = {}
    images, bad = read_import_file(in_path, format, skipped)
    if not images:
        raise ValueError(f"{in_path} holds no image to import ({len(bad)} bad line(s), "
                         f"{sum(skipped.values())} skipped line(s)); check the file and --format {format}"
                         + (f"; first bad line {bad[0][0]}: {bad[0][1]}" if bad else ""))
    known = set(known_image_ids) if known_image_ids is not None else None
    report = ImportReport(str(in_path), format, skipped=skipped, bad_lines=bad)
    store = CorpusStore(store_path).acquire()
    source = {"source_file": Path(in_path).name, "source_sha256": file_sha256(in_path)}
    try:
        _write_imported(store, images, known, model, format, source, report)
    finally:
        store.close()
    report.bad_lines.sort()
    return report


def _write_imported(store: CorpusStore, images, known, model, format, source, report: ImportReport) -> None:
    for image in images:
        if known is not None and image.image_id not in known:
            report.bad_lines.append((image.line_number, f"image {image.image_id!r} is not in the dataset's image ids"))
            continue
        record_model = image.model or model or "unknown"
        key = make_cache_key("import", record_model, IMPORT_PROMPT_VERSION, _key_settings(format), "variants",
                             None, image.image_id)
        record = CorpusRecord(image_id=image.image_id, cache_key=key, status="ok", variants=image.variants,
                              backend="import", model=record_model, prompt_version=IMPORT_PROMPT_VERSION,
                              settings={**_key_settings(format), **source}, created_at=utc_now())
        if store.append(record):
            report.imported += 1
        else:
            report.skipped_done += 1


class ImportedCorpusBackend:
    """A caption backend that answers from an existing corpus file (no model call, no pixels needed)."""

    name = "import"
    batch_size = 256
    needs_pixels = False
    label = "imported corpus: captions were written elsewhere"

    def __init__(self, path: Path | str, format: str = "rsrt", model: str | None = None):
        images, bad = read_import_file(path, format)
        if bad:
            details = "; ".join(f"line {n}: {reason}" for n, reason in bad[:5])
            raise ValueError(f"{path} has {len(bad)} bad line(s) ({details}); fix them or use import_corpus, "
                             f"which reports and skips them")
        self._variants = {image.image_id: image.variants for image in images}
        models = {image.model for image in images if image.model}
        self.model = model or (models.pop() if len(models) == 1 else "unknown")
        self.prompt_version = IMPORT_PROMPT_VERSION
        self.settings = {**_key_settings(format), "source_sha256": file_sha256(path)}

    def answer_batch(self, requests: Sequence[CaptionRequest], mode: str, strict: bool = False) -> list[BackendAnswer]:
        if mode != "variants":
            raise ValueError(f"an imported corpus only has variants, not mode {mode!r}")
        return [BackendAnswer(variants=self._variants[r.image_id]) if r.image_id in self._variants
                else BackendAnswer(error=f"image {r.image_id!r} is not in the imported corpus") for r in requests]


def check_import_config(config: dict) -> dict:
    """The registry's check of an import config before any work: the corpus file exists and holds five structured
    variants per image (the corpus runner validates every answer against the RSRT schema); its path resolved."""
    from .schema import N_VARIANTS

    path = config.get("path")
    if not path or not Path(path).expanduser().is_file():
        raise ValueError(f"corpus file {str(path)!r} does not exist; give the JSONL to import with --corpus FILE (lines "
                         "{\"image_id\": <path relative to DIR>, \"variants\": [five variants]})")
    config = {**config, "path": Path(path).expanduser().resolve(), "format": config.get("format", "plain")}
    images, bad = read_import_file(config["path"], config["format"])
    if bad:
        raise ValueError(f"corpus {str(path)!r} line {bad[0][0]}: {bad[0][1]} ({len(bad)} bad line(s)); fix the file")
    short = next((im for im in images if len(im.variants) != N_VARIANTS or not all(v.is_structured for v in im.variants)), None)
    if short is not None:
        free = sum(not v.is_structured for v in short.variants)
        raise ValueError(f"corpus {str(path)!r} line {short.line_number}: image {short.image_id!r} has "
                         f"{len(short.variants)} variant(s), {free} of them free-form; a collection imports {N_VARIANTS} "
                         f"structured variants per image ({{\"image_id\": <path relative to DIR>, \"variants\": "
                         f"[{{\"one_sentence\", \"feature\", \"caption\"}} x {N_VARIANTS}]}})")
    if not images:
        raise ValueError(f"corpus {str(path)!r} holds no image; give one JSON line per image")
    return config

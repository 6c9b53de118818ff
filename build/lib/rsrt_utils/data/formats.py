"""Readers for every annotation format the benchmarks circulate in, detected automatically.

Each reader returns a list of `RawImage(filename, split, captions)` in file order.
  amfmn-precomp  `<split>_caps.txt` + `<split>_filename.txt` (one filename line per caption, or
                 one per image followed by 5 caption lines each; both layouts occur)
  karpathy-json  `dataset_*.json`: {"images": [{"filename", "split", "sentences": [{"raw"}]}]}
  record-list    a JSON list of {"split", "captions": [...], "file_path"} or {"image", "caption": [...]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CAPTIONS_PER_IMAGE = 5


class AnnotationFormatError(ValueError):
    """An annotation file or folder that no reader understands, or that is inconsistent."""


@dataclass
class RawImage:
    filename: str
    split: str
    captions: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_amfmn_precomp(folder: Path, split: str) -> list[RawImage]:
    """AMFMN precomputed text files for one split, in either filename layout."""
    caps_path, names_path = folder / f"{split}_caps.txt", folder / f"{split}_filename.txt"
    for p in (caps_path, names_path):
        if not p.is_file():
            raise AnnotationFormatError(f"AMFMN split {split!r}: {p} is missing (expected {split}_caps.txt and {split}_filename.txt)")
    captions = [c.strip() for c in _read_lines(caps_path)]
    names = [n.strip() for n in _read_lines(names_path)]
    if len(names) == len(captions):  # one filename line per caption
        images: dict[str, RawImage] = {}
        for name, caption in zip(names, captions):
            images.setdefault(name, RawImage(name, split)).captions.append(caption)
        return list(images.values())
    if len(captions) == CAPTIONS_PER_IMAGE * len(names):  # one line per image, 5 captions each
        return [RawImage(name, split, captions[CAPTIONS_PER_IMAGE * i:CAPTIONS_PER_IMAGE * (i + 1)]) for i, name in enumerate(names)]
    raise AnnotationFormatError(
        f"AMFMN split {split!r} in {folder}: {len(captions)} caption lines and {len(names)} filename lines fit neither "
        f"layout (equal counts, or {CAPTIONS_PER_IMAGE} captions per filename line)")


def read_karpathy_json(path: Path) -> list[RawImage]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, image in enumerate(data["images"]):
        try:
            out.append(RawImage(image["filename"], image["split"], [s["raw"].strip() for s in image["sentences"]]))
        except (KeyError, TypeError) as exc:
            raise AnnotationFormatError(f"{path}: image entry {i} lacks {exc} (Karpathy format needs filename, split, sentences[].raw)") from exc
    return out


def read_record_list(path: Path, default_split: str | None = None) -> list[RawImage]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, record in enumerate(data):
        name = record.get("file_path") or record.get("image") or record.get("filename")
        captions = record.get("captions", record.get("caption"))
        split = record.get("split", default_split)
        if name is None or captions is None or split is None:
            raise AnnotationFormatError(
                f"{path}: record {i} has keys {sorted(record)}; a record needs file_path|image, captions|caption and a split "
                "(pass split= when the file has none)")
        if isinstance(captions, str):
            captions = [captions]
        out.append(RawImage(Path(name).name, split, [c.strip() for c in captions]))
    return out


def detect_format(path: Path) -> str:
    """Name the format of an annotation file or folder, or raise saying what was found."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*_caps.txt")) and any(path.glob("*_filename.txt")):
            return "amfmn-precomp"
        found = sorted(p.name for p in path.iterdir())[:10]
        raise AnnotationFormatError(f"{path} is a folder without <split>_caps.txt/<split>_filename.txt pairs; found {found}")
    if not path.is_file():
        raise AnnotationFormatError(f"annotation path {path} does not exist")
    if path.suffix.lower() != ".json":
        raise AnnotationFormatError(f"{path}: unknown annotation file type {path.suffix!r}; expected a .json file or an AMFMN folder")
    with path.open(encoding="utf-8") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith("{") and '"images"' in head:
        return "karpathy-json"
    if head.startswith("["):
        return "record-list"
    raise AnnotationFormatError(f"{path}: JSON that is neither a Karpathy dict with 'images' nor a list of records "
                                f"(starts with {head[:60]!r})")


def read_annotations(path: Path, split: str) -> list[RawImage]:
    """Read one split from any supported annotation file/folder (format detected)."""
    fmt = detect_format(path)
    if fmt == "amfmn-precomp":
        return read_amfmn_precomp(Path(path), split)
    images = read_karpathy_json(Path(path)) if fmt == "karpathy-json" else read_record_list(Path(path), default_split=split)
    selected = [im for im in images if im.split in _split_aliases(split)]
    if not selected:
        found = sorted({im.split for im in images})
        raise AnnotationFormatError(f"{path}: no images in split {split!r}; the file has splits {found}")
    return selected


def _split_aliases(split: str) -> set[str]:
    """AMFMN merges train and val into 'train'; other formats keep them apart."""
    return {"train", "val"} if split == "train" else {split}

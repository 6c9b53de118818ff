"""Tiny fixture writers shared by the foundation's unit tests (annotation files in every format, fake mirrors)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from rsrt_utils.data import Dataset, ImageRecord, scene_class_of


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write lines with a trailing newline, creating parents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_amfmn_per_caption(folder: Path, split: str, images: dict[str, list[str]]) -> Path:
    """AMFMN layout with one filename line per caption."""
    names = [name for name, caps in images.items() for _ in caps]
    write_lines(folder / f"{split}_caps.txt", [c for caps in images.values() for c in caps])
    write_lines(folder / f"{split}_filename.txt", names)
    return folder


def write_amfmn_per_image(folder: Path, split: str, images: dict[str, list[str]]) -> Path:
    """AMFMN layout with one filename line per image (5 caption lines each)."""
    write_lines(folder / f"{split}_caps.txt", [c for caps in images.values() for c in caps])
    write_lines(folder / f"{split}_filename.txt", list(images))
    return folder


def write_karpathy(path: Path, entries: list[tuple[str, str, list[str]]]) -> Path:
    """Karpathy dataset_*.json from (filename, split, captions)."""
    images = [{"filename": f, "split": s, "sentences": [{"raw": c, "tokens": c.split()} for c in caps]}
              for f, s, caps in entries]
    path.write_text(json.dumps({"images": images, "dataset": "tiny"}), encoding="utf-8")
    return path


def write_json(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def make_dataset(groups: list[list[str]], names: list[str] | None = None, name: str = "tiny",
                 split: str = "test") -> Dataset:
    """A Dataset straight from per-image caption lists (no file)."""
    names = names or [f"class{i % 2}_{i}.jpg" for i in range(len(groups))]
    images = [ImageRecord(n, scene_class_of(n), split) for n in names]
    captions = [c for g in groups for c in g]
    index = [i for i, g in enumerate(groups) for _ in g]
    return Dataset(name, split, images, captions, np.asarray(index))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_mirror(root: Path, files: dict[str, bytes]) -> Path:
    """A fake mirror folder: relpath -> content."""
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def write_checksum_table(folder: Path, dataset: str, files: dict[str, bytes]) -> Path:
    """A checksums/<dataset>.tsv computed from the fixture bytes (as sources.write_checksum_tables would)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset}.tsv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["relpath", "sha256", "bytes"])
        for rel, data in files.items():
            writer.writerow([rel, sha256_bytes(data), len(data)])
    return path

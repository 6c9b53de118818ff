"""One canonical dataset object: images (id, scene class, split, pixel path or none) and their captions."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..paths import data_dir
from .formats import AnnotationFormatError, RawImage, read_annotations
from .registry import DATASETS, DATASETS_INFO, PIXEL_STORES, SPLITS, PixelStore

UNLABELLED = "unlabelled"


def scene_class_of(filename: str) -> str:
    """Scene class = file-name prefix before '_' (e.g. 'denseresidential_12.jpg'); numeric names are unlabelled."""
    stem = Path(filename).stem
    prefix = stem.split("_", 1)[0].lower() if "_" in stem else ""
    return prefix if prefix and not prefix.isdigit() else UNLABELLED


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    scene_class: str
    split: str
    image_path: Path | None = None


@dataclass
class Dataset:
    """Images and their captions; caption q belongs to image `caption_image_index[q]`."""

    name: str
    split: str
    images: list[ImageRecord]
    captions: list[str]
    caption_image_index: np.ndarray
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.caption_image_index = np.asarray(self.caption_image_index, dtype=np.int64)
        if len(self.captions) != len(self.caption_image_index):
            raise ValueError(f"{len(self.captions)} captions but {len(self.caption_image_index)} caption-image indices")

    def __repr__(self) -> str:
        with_px = sum(im.image_path is not None for im in self.images)
        return (f"Dataset({self.name!r}, split={self.split!r}, images={len(self.images)}, captions={len(self.captions)}, "
                f"with_pixels={with_px})")

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def image_ids(self) -> list[str]:
        return [im.image_id for im in self.images]

    @property
    def image_classes(self) -> list[str]:
        return [im.scene_class for im in self.images]

    def captions_by_image(self) -> list[list[str]]:
        groups: list[list[str]] = [[] for _ in self.images]
        for caption, i in zip(self.captions, self.caption_image_index):
            groups[i].append(caption)
        return groups

    def subset(self, image_indices: Sequence[int], note: str | None = None) -> "Dataset":
        """Keep the given images (in that order) and their captions, re-indexed."""
        image_indices = np.asarray(image_indices, dtype=np.int64)
        new_index = np.full(self.n_images, -1, dtype=np.int64)
        new_index[image_indices] = np.arange(len(image_indices))
        keep = np.flatnonzero(new_index[self.caption_image_index] >= 0)
        order = keep[np.argsort(new_index[self.caption_image_index[keep]], kind="stable")]
        notes = self.notes + ([note] if note else [])
        return Dataset(self.name, self.split, [self.images[i] for i in image_indices], [self.captions[q] for q in order],
                       new_index[self.caption_image_index[order]], self.source, notes)

    def with_images(self) -> "Dataset":
        """Only the images that have pixels (e.g. RSICD test scenes found in AID-150)."""
        keep = [i for i, im in enumerate(self.images) if im.image_path is not None]
        return self.subset(keep, note=f"restricted to {len(keep)} of {self.n_images} images that have pixels")

    def without_blank_captions(self) -> "Dataset":
        keep = [q for q, c in enumerate(self.captions) if c.strip()]
        dropped = len(self.captions) - len(keep)
        if not dropped:
            return self
        return replace(self, captions=[self.captions[q] for q in keep], caption_image_index=self.caption_image_index[keep],
                       notes=self.notes + [f"dropped {dropped} blank caption(s)"])

    def coverage_note(self) -> str:
        """How many images have pixels: every figure states it."""
        with_px = sum(im.image_path is not None for im in self.images)
        return f"{self.name.upper()} {self.split}: {with_px} of {self.n_images} images with pixels"


def read_aid150_mapping(root: Path) -> dict[str, Path]:
    """RSICD filename -> AID-150 image path, from the mapping table or, without it, by same-name lookup."""
    return read_pixel_mapping(root, PIXEL_STORES["aid150"])


def read_pixel_mapping(root: Path, store: PixelStore) -> dict[str, Path]:
    """Benchmark file name -> image path in a pixel store, from its mapping table or, without it, by file name."""
    table = root / store.mapping if store.mapping else None
    images = root / store.images
    mapping: dict[str, Path] = {}
    if table is not None and table.is_file():
        with table.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                if row.get("aid150_relpath"):
                    mapping[row["rsicd_filename"]] = images / row["aid150_relpath"]
    elif images.is_dir():
        for path in root.glob(store.image_glob):
            mapping[path.name] = path
    return {name: path for name, path in mapping.items() if path.is_file()}


def _resolve_root(root: Path | str | None, name: str) -> Path:
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"data root {root} does not exist; point it at a store or a mirror such as ../shared/data")
        return root
    store = data_dir()
    if not (store / name / "MANIFEST.json").is_file():
        raise FileNotFoundError(
            f"dataset {name!r} is not in the data store {store} (no complete import found). "
            f"Run `rsrt data import --from ../shared/data` (a local mirror) or `rsrt data download`.")
    return store


def load_dataset(name: str, split: str = "test", root: Path | str | None = None, source: str | None = None,
                 annotations: Path | str | None = None, images_dir: Path | str | None = None,
                 drop_blank: bool = True) -> Dataset:
    """Load a benchmark split into a Dataset.

    name: 'rsitmd' or 'rsicd' (any name when `annotations` is given); root: a store/mirror folder (default: the project store);
    source: which annotation source inside root ('amfmn' default, 'json' for RSITMD);
    annotations: an explicit annotation file/folder in any supported format (overrides source);
    images_dir: a folder whose files match the image file names exactly (RSICD defaults to AID-150).
    """
    if name not in DATASETS_INFO and annotations is None:
        raise ValueError(f"dataset {name!r} is not known; choose one of {', '.join(DATASETS_INFO)}, "
                         "or give `annotations` (a file/folder in a supported format) for your own data")
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not known; choose one of {', '.join(SPLITS)} ('train' includes val)")
    if annotations is None:
        root = _resolve_root(root, name)
        sources = DATASETS_INFO[name].annotation_sources
        source = source or next(iter(sources))
        if source not in sources:
            raise ValueError(f"source {source!r} is not known for {name}; choose one of {', '.join(sources)}")
        annotations = root / sources[source]
    raw = read_annotations(Path(annotations), split)
    pixel_paths = _pixel_paths(name, raw, root, images_dir)
    return _build_dataset(name, split, raw, pixel_paths, str(annotations), drop_blank)


def _pixel_paths(name: str, raw: list[RawImage], root: Path | str | None, images_dir: Path | str | None) -> dict[str, Path]:
    if images_dir is not None:
        folder = Path(images_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"images_dir {folder} does not exist")
        return {im.filename: folder / im.filename for im in raw if (folder / im.filename).is_file()}
    record = DATASETS_INFO.get(name)
    if record is not None and record.pixel_store and root is not None:
        return read_pixel_mapping(Path(root), PIXEL_STORES[record.pixel_store])
    return {}


def _build_dataset(name: str, split: str, raw: list[RawImage], pixel_paths: dict[str, Path], source: str,
                   drop_blank: bool) -> Dataset:
    seen: dict[str, int] = {}
    images: list[ImageRecord] = []
    captions: list[str] = []
    index: list[int] = []
    for item in raw:
        if item.filename in seen:
            raise AnnotationFormatError(f"{source}: image {item.filename!r} appears twice in split {split!r}")
        seen[item.filename] = len(images)
        images.append(ImageRecord(item.filename, scene_class_of(item.filename), split, pixel_paths.get(item.filename)))
        captions.extend(item.captions)
        index.extend([len(images) - 1] * len(item.captions))
    dataset = Dataset(name, split, images, captions, np.asarray(index), source)
    return dataset.without_blank_captions() if drop_blank else dataset

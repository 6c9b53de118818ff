"""On-disk image-embedding cache keyed by (model identity, sha256 of the image file's bytes).

It mirrors the text-embedding cache (`rsrt_utils.encoders.cache`) and reuses its SQLite store:
one file per model under `cache_dir()/image_embeddings`, every batch written in one transaction,
so an interrupted run keeps its finished batches and the next run embeds only what is missing.
Images are decoded only when their vector is missing; identical files are embedded once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..encoders.cache import OVERWRITE_POLICIES, EmbeddingCache
from ..fileutil import file_sha256
from ..paths import cache_dir


class ImageEncoder(Protocol):
    """Embeds PIL images as L2-normalised float32 rows; `name` identifies model + preprocessing."""

    name: str

    def encode_images(self, images: Sequence[Image.Image], progress: bool = False) -> np.ndarray: ...


def image_key(model_name: str, content_sha256: str) -> str:
    """Cache key of one image under one model."""
    return hashlib.sha256(f"{model_name}\x00{content_sha256}".encode()).hexdigest()


def load_rgb(path: Path | str) -> Image.Image:
    """Decode an image file as RGB, naming the file when it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read image {path} ({exc.__class__.__name__}: {exc}); "
                         "check the file or drop it from the dataset") from exc


def default_image_cache_root() -> Path:
    return cache_dir() / "image_embeddings"


class CachedImageEncoder:
    """Wraps an ImageEncoder with the on-disk cache; `last_stats` counts what was computed."""

    def __init__(self, encoder: ImageEncoder, cache_root: Path | str | None = None, policy: str = "only-missing",
                 write_batch: int = 256, progress: bool = True):
        if policy not in OVERWRITE_POLICIES:
            raise ValueError(f"cache policy {policy!r} is not known; choose one of {', '.join(OVERWRITE_POLICIES)}")
        if write_batch < 1:
            raise ValueError(f"write_batch must be >= 1, got {write_batch}")
        self.encoder = encoder
        self.name = encoder.name
        self.policy = policy
        self.cache = EmbeddingCache(encoder.name, Path(cache_root) if cache_root else default_image_cache_root())
        self.write_batch = write_batch
        self.progress = progress
        self.last_stats = {"images": 0, "unique": 0, "computed": 0}

    def encode_paths(self, paths: Sequence[Path | str]) -> np.ndarray:
        """(n_images, dim) float32 vectors of the image files, in the given order."""
        paths = [Path(p) for p in paths]
        missing_files = [p for p in paths if not p.is_file()]
        if missing_files:
            raise FileNotFoundError(f"{len(missing_files)} image file(s) do not exist (first: {missing_files[0]})")
        hashes = [file_sha256(p) for p in paths]
        first_path = dict(zip(reversed(hashes), reversed(paths)))
        unique = list(dict.fromkeys(hashes))
        keys = [image_key(self.name, h) for h in unique]
        cached = {} if self.policy == "always" else self.cache.get_many(keys)
        missing = [i for i, key in enumerate(keys) if key not in cached]
        if missing and self.policy == "never":
            raise RuntimeError(f"{len(missing)} of {len(unique)} images are not in the {self.name} cache "
                               f"({self.cache.path}) and the policy is 'never'; rerun with policy 'only-missing'")
        bar = tqdm(total=len(missing), desc=f"embedding images with {self.name}", unit="image",
                   disable=not (self.progress and missing))
        for start in range(0, len(missing), self.write_batch):
            batch = missing[start:start + self.write_batch]
            vectors = self.encoder.encode_images([load_rgb(first_path[unique[i]]) for i in batch])
            self.cache.put_many([keys[i] for i in batch], vectors)
            cached.update({keys[i]: v for i, v in zip(batch, vectors)})
            bar.update(len(batch))
        bar.close()
        self.last_stats = {"images": len(paths), "unique": len(unique), "computed": len(missing)}
        if not paths:
            return np.zeros((0, 0), dtype=np.float32)
        by_hash = {h: cached[k] for h, k in zip(unique, keys)}
        return np.stack([by_hash[h] for h in hashes]).astype(np.float32, copy=False)

    def close(self) -> None:
        self.cache.close()

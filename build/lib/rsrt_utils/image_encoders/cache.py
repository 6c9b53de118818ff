"""On-disk image-embedding cache keyed by (model identity, sha256 of the image file's bytes).

It mirrors the text-embedding cache (`rsrt_utils.encoders.cache`) and reuses its SQLite store:
one file per model under `cache_dir()/image_embeddings`, every batch written in one transaction,
so an interrupted run keeps its finished batches and the next run embeds only what is missing.
Images are decoded only when their vector is missing; identical files are embedded once.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from ..encoders.cache import EmbeddingCache
from ..fileutil import file_sha256
from ..image_files import ImageReadError, open_rgb, raise_for_failures
from ..paths import cache_dir
from ..vector_cache import check_policy, fill_missing


class ImageEncoder(Protocol):
    """Embeds PIL images as L2-normalised float32 rows; `name` identifies model + preprocessing."""

    name: str

    def encode_images(self, images: Sequence[Image.Image], progress: bool = False) -> np.ndarray: ...


def image_key(model_name: str, content_sha256: str) -> str:
    """Cache key of one image under one model."""
    return hashlib.sha256(f"{model_name}\x00{content_sha256}".encode()).hexdigest()


def load_rgb(path: Path | str) -> Image.Image:
    """Decode an image file as RGB; ImageReadError (a ValueError) names a missing, unreadable or oversized file."""
    return open_rgb(path)


def default_image_cache_root() -> Path:
    return cache_dir() / "image_embeddings"


class CachedImageEncoder:
    """Wraps an ImageEncoder with the on-disk cache; `last_stats` counts what was computed."""

    def __init__(self, encoder: ImageEncoder, cache_root: Path | str | None = None, policy: str = "only-missing",
                 write_batch: int = 256, progress: bool = True):
        if write_batch < 1:
            raise ValueError(f"write_batch must be >= 1, got {write_batch}")
        self.encoder = encoder
        self.name = encoder.name
        self.policy = check_policy(policy)
        self.cache = EmbeddingCache(encoder.name, Path(cache_root) if cache_root else default_image_cache_root())
        self.write_batch = write_batch
        self.progress = progress
        self.last_stats = {"images": 0, "unique": 0, "computed": 0}

    def encode_paths(self, paths: Sequence[Path | str]) -> np.ndarray:
        """(n_images, dim) float32 vectors of the image files, in the given order; ImageReadError names an unreadable
        file (after the readable ones are embedded and cached)."""
        vectors, failures = self.encode_available(paths)
        raise_for_failures(paths, failures)
        return vectors

    def encode_available(self, paths: Sequence[Path | str]) -> tuple[np.ndarray, dict[int, str]]:
        """(vectors of the readable images, in order, the others left out; {position: why it cannot be read})."""
        paths = [Path(p) for p in paths]
        failures = {i: "the file does not exist" for i, p in enumerate(paths) if not p.is_file()}
        hashes = [None if i in failures else file_sha256(p) for i, p in enumerate(paths)]
        first_path = {h: p for h, p in zip(reversed(hashes), reversed(paths)) if h is not None}
        unique = list(dict.fromkeys(h for h in hashes if h is not None))
        key_of = {h: image_key(self.name, h) for h in unique}
        path_of = {key_of[h]: first_path[h] for h in unique}
        found, unreadable, computed = fill_missing(
            self.cache, key_of.values(), partial(self._embed, path_of), policy=self.policy, what="images", name=self.name, unit="image",
            progress=f"embedding images with {self.name}" if self.progress else None)
        failures.update({i: unreadable[key_of[h]] for i, h in enumerate(hashes) if h is not None and key_of[h] in unreadable})
        self.last_stats = {"images": len(paths), "unique": len(unique), "computed": computed, "unreadable": len(failures)}
        rows = [found[key_of[h]] for i, h in enumerate(hashes) if i not in failures]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32), failures
        return np.stack(rows).astype(np.float32, copy=False), failures

    def _embed(self, path_of: dict[str, Path], missing: list[str]):
        """Batches of (keys, vectors, {key: why unreadable}) for the missing keys, each file decoded on its own."""
        for start in range(0, len(missing), self.write_batch):
            batch, images, bad = [], [], {}
            for key in missing[start:start + self.write_batch]:
                try:
                    images.append(load_rgb(path_of[key]))
                    batch.append(key)
                except ImageReadError as error:
                    bad[key] = error.reason
            yield batch, (self.encoder.encode_images(images) if batch else None), bad

    def close(self) -> None:
        self.cache.close()

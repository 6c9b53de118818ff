"""On-disk embedding cache keyed by (model name, exact text), in one SQLite file per model.

SQLite transactions make every write atomic: an interrupted run leaves only complete rows,
and the next run computes just what is missing. Overwrite policies (as in BEIR/MTEB):
  only-missing  use cached vectors, compute and store the rest (default)
  always        recompute every text and overwrite the cache
  never         read-only: every text must already be cached, else an error
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..paths import cache_dir
from ..vector_cache import CACHE_POLICIES, SQLiteVectorCache, check_policy, fill_missing
from .base import TextEncoder

OVERWRITE_POLICIES = CACHE_POLICIES


def text_key(model_name: str, text: str) -> str:
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:120] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]


class EmbeddingCache(SQLiteVectorCache):
    """Vectors of one model, stored by text key."""

    def __init__(self, model_name: str, root: Path | None = None):
        self.model_name = model_name
        super().__init__(Path(root or cache_dir() / "embeddings") / f"{_slug(model_name)}.sqlite")


class CachedEncoder:
    """Wraps a TextEncoder with the embedding cache; duplicate texts are embedded once."""

    def __init__(self, encoder: TextEncoder, cache_root: Path | None = None, policy: str = "only-missing",
                 write_batch: int = 512, progress: bool = True):
        self.encoder = encoder
        self.name = encoder.name
        self.policy = check_policy(policy)
        self.cache = EmbeddingCache(encoder.name, cache_root)
        self.write_batch = write_batch
        self.progress = progress
        self.last_stats = {"texts": 0, "unique": 0, "computed": 0}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        keys = [text_key(self.name, t) for t in unique]
        text_of = dict(zip(keys, unique))

        def compute(missing: list[str]):
            if hasattr(self.encoder, "encode_batches"):  # a pool of workers: one job, batches stored as they come
                for positions, vectors in self.encoder.encode_batches([text_of[k] for k in missing]):
                    yield [missing[i] for i in positions], vectors, {}
                return
            for start in range(0, len(missing), self.write_batch):
                batch = missing[start:start + self.write_batch]
                yield batch, self.encoder.encode([text_of[k] for k in batch]), {}

        found, _, computed = fill_missing(self.cache, keys, compute, policy=self.policy, what="texts", name=self.name, unit="text",
                                          progress=f"embedding with {self.name}" if self.progress else None)
        self.last_stats = {"texts": len(texts), "unique": len(unique), "computed": computed}
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        by_text = {t: found[k] for t, k in zip(unique, keys)}
        return np.stack([by_text[t] for t in texts]).astype(np.float32, copy=False)

"""Bag-of-words feature hashing: a deterministic, weight-free text encoder for smoke runs and tests.

It is a real (weak) lexical encoder: texts sharing words get a positive cosine. It is never the
default for reported figures.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

from ..vectors import l2_normalise

_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    def __init__(self, dim: int = 4096):
        if dim < 8:
            raise ValueError(f"hashing encoder dimension must be >= 8, got {dim}")
        self.dim = dim
        self.name = f"hashing:{dim}"

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, (1.0 if (value >> 63) & 1 else -1.0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                bucket, sign = self._bucket(token)
                out[row, bucket] += sign
        return l2_normalise(out)

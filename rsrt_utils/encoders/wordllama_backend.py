"""WordLlama static embeddings (weights ship in the PyPI package; offline and fast)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..retrieval import l2_normalise


class WordLlamaEncoder:
    def __init__(self, config: str = "l2_supercat", dim: int = 256):
        try:
            from wordllama import WordLlama
        except ImportError as exc:
            raise RuntimeError("text encoder 'wordllama:' needs the package 'wordllama': pip install wordllama") from exc
        self.model = WordLlama.load(config=config, dim=dim)
        self.dim = dim
        self.name = f"wordllama:{config}:{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.asarray(self.model.embed(list(texts)), dtype=np.float32))

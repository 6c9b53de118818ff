"""WordLlama static embeddings (weights ship in the PyPI package; offline and fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..vectors import l2_normalise


class WordLlamaEncoder:
    def __init__(self, config: str = "l2_supercat", dim: int = 256):
        try:
            import wordllama
            from wordllama import WordLlama
        except ImportError as exc:
            raise RuntimeError("text encoder 'wordllama:' needs the package 'wordllama': pip install wordllama") from exc
        # The package ships weights and tokenizer under its own folder, laid out as its cache expects;
        # point the loader there so that it never goes to the hub for a file it already has.
        try:
            self.model = WordLlama.load(config=config, dim=dim, cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        except FileNotFoundError:
            self.model = WordLlama.load(config=config, dim=dim)
        self.dim = dim
        self.name = f"wordllama:{config}:{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.asarray(self.model.embed(list(texts)), dtype=np.float32))

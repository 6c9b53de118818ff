"""OpenAI embeddings backend (the authors' text-embedding-3-small) through the official client.

The API key comes from the environment only (OPENAI_API_KEY, or the variable named by
`api_key_env`). `base_url` (or OPENAI_BASE_URL) points the same code at any compatible server.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..vectors import l2_normalise


class OpenAIEmbeddingEncoder:
    def __init__(self, model: str = "text-embedding-3-small", base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", batch_size: int = 256, dimensions: int | None = None,
                 max_retries: int = 5, timeout: float = 60.0):
        from openai import OpenAI

        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise RuntimeError(f"the OpenAI embeddings backend needs an API key in the environment variable {api_key_env}; "
                               f"export {api_key_env}=... (it is never read from params files)")
        from ..server_urls import split_query

        base_url, query = split_query(base_url or os.environ.get("OPENAI_BASE_URL"))
        self.client = OpenAI(api_key=api_key, base_url=base_url, default_query=query, max_retries=max_retries,
                             timeout=timeout)
        self.model = model
        self.batch_size = batch_size
        self.dimensions = dimensions
        self.name = f"openai:{model}" + (f":{dimensions}" if dimensions else "")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else " " for t in texts[start:start + self.batch_size]]
            extra = {"dimensions": self.dimensions} if self.dimensions else {}
            response = self.client.embeddings.create(model=self.model, input=batch, **extra)
            ordered = sorted(response.data, key=lambda item: item.index)
            if len(ordered) != len(batch):
                raise RuntimeError(f"embeddings server returned {len(ordered)} vectors for {len(batch)} texts")
            rows.extend(item.embedding for item in ordered)
        if not rows:
            return np.zeros((0, self.dimensions or 1536), dtype=np.float32)
        return l2_normalise(np.asarray(rows, dtype=np.float32))

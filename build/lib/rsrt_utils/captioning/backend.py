"""The contract every captioning backend fulfils; the corpus runner (runner.py) drives it.

A backend answers *requests* (one image each) in one of two modes:
  "variants"     the RSRT corpus: five structured variants per image
  "image_query"  the text that stands for a query image in image->text retrieval (paper's 2nd prompt)
It returns either raw model text (parsed and validated by the runner, with a stricter retry) or
already-structured variants (backends that build them directly, such as the neighbour captioner).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Sequence, runtime_checkable

from .schema import Variant

Mode = Literal["variants", "image_query"]
MODES = ("variants", "image_query")


@dataclass(frozen=True)
class CaptionRequest:
    """One image to describe. `image_sha256` is the content hash used in cache keys."""

    image_id: str
    image_path: Path | None
    image_sha256: str | None = None
    scene_class: str | None = None


@dataclass
class BackendAnswer:
    """A backend's answer for one request: raw text to parse, or structured variants / query text."""

    raw_text: str | None = None
    variants: list[Variant] | None = None
    query_text: str | None = None
    usage: dict = field(default_factory=dict)
    error: str | None = None  # this request failed (after the backend's own retries); the reason, for the record


class BackendFatalError(RuntimeError):
    """Raised by a backend when no request can succeed (e.g. the API key is rejected): the runner stops."""


@runtime_checkable
class CaptionBackend(Protocol):
    """name: backend kind ("openai-chat", "openai-batch", "transformers", "neighbour", "import");
    model: model id; settings: every setting that changes the answer (goes into the cache key);
    prompt_version: version string of the prompts used; label: a caveat shown wherever results appear
    (e.g. the neighbour captioner's "uses in-domain train captions; not zero-shot"), or None.
    """

    name: str
    model: str
    settings: dict
    prompt_version: str
    label: str | None

    def answer_batch(self, requests: Sequence[CaptionRequest], mode: Mode, strict: bool = False) -> list[BackendAnswer]:
        """Answer each request (same order). Raise per-request problems as exceptions only if the
        whole batch failed; the runner records failures per image and never stops the run for one."""
        ...


# What a backend MAY have beyond the protocol, with the value assumed when it has not. Every caller reads these through
# `capability`, so this is the one list of them (docs/contributing.md: "A new backend").
CAPABILITIES = {
    "label": None,              # a caveat shown wherever its results appear (the neighbour captioner's "not zero-shot")
    "needs_pixels": True,       # False: it answers from the image id alone (an imported corpus), no file is read
    "batch_size": 1,            # requests answered in one call (a local VLM's batch)
    "base_urls": None,          # its servers (a fleet): the runner keeps `concurrency` requests in flight for each
    "total_concurrency": 0,     # requests it keeps in flight itself across its fleet (0: not a server backend)
    "fleet": None,              # an EndpointFleet: per-server health and the report a run prints
    "caption_to_store": None,   # its own submit/poll/collect cycle (the Batch API) instead of the runner's
}


def capability(backend, name: str):
    """A backend's optional capability `name` (one of CAPABILITIES), or its declared default."""
    if name not in CAPABILITIES:
        raise KeyError(f"{name!r} is not a declared backend capability ({', '.join(CAPABILITIES)})")
    value = getattr(backend, name, None)
    return CAPABILITIES[name] if value is None else value

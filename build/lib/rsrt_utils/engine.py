"""Where work runs: one interface for captioning and embedding, here (`LocalEngine`) or on a Ray cluster
(`scaleout.RayEngine`, the `ray` extra). A command chooses once (`Where`, from its `--ray/--actors`) and hands the
engine to the collection builder or the study; nothing below asks again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .captioning.api import BackendContext, build_backend
from .captioning.registry import backend_info
from .captioning.runner import RunSummary, caption_images
from .encoders import CachedEncoder, make_text_encoder

DEFAULT_ACTORS = 2  # actors in each Ray pool unless --actors says otherwise
LOCAL = "local"


@dataclass(frozen=True)
class Where:
    """Where a command's work runs: here (`ray` None) or on the Ray cluster at `ray` with `actors` actors per pool."""

    ray: str | None = None
    actors: int = DEFAULT_ACTORS

    def __post_init__(self):
        if isinstance(self.actors, bool) or not isinstance(self.actors, int) or self.actors < 1:
            raise ValueError(f"--actors {self.actors!r} must be a whole number >= 1 (actors in the pool)")

    @property
    def spec(self) -> str:
        """One line for a notebook parameter or a log: 'local' or 'ray ADDRESS ACTORS'."""
        return LOCAL if self.ray is None else f"ray {self.ray} {self.actors}"

    @classmethod
    def parse(cls, spec: str | None) -> Where:
        """The inverse of `spec` (empty or 'local': here)."""
        words = (spec or LOCAL).split()
        if words == [LOCAL]:
            return cls()
        if len(words) == 3 and words[0] == "ray" and words[2].isdigit():
            return cls(words[1], int(words[2]))
        raise ValueError(f"engine {spec!r} is not known: give 'local' or 'ray ADDRESS ACTORS' (e.g. 'ray auto 2')")

    def check_backend(self, config: dict) -> None:
        """A backend that runs only on Ray is refused here (before any work)."""
        if self.ray is None and backend_info(config["backend"]).needs_ray:
            raise ValueError(f"backend {config['backend']!r} runs on a Ray cluster: add --ray ADDRESS")


class Engine(Protocol):
    """What the collection builder and the study's corpus and embedding steps run on."""

    where: Where

    def backend(self, config: dict, context: dict | None = None):
        """The caption backend (or, on Ray, a stand-in with its identity: what its cache keys are made of)."""

    def encoder(self, spec: str, progress: bool = True, **options) -> CachedEncoder:
        """The text encoder with the embedding cache (kept on this machine)."""

    def caption(self, requests, backend, config: dict, store_path: Path, mode: str = "variants", *,
                concurrency: int = 8, progress: bool = True, context: dict | None = None) -> RunSummary:
        """Caption every request not yet in the store (the runner's records, resumable)."""


class LocalEngine:
    """Everything in this process: the corpus runner's threads and the encoder here."""

    def __init__(self, where: Where | None = None):
        self.where = where or Where()

    def backend(self, config: dict, context: dict | None = None):
        return build_backend(config, BackendContext(**(context or {})))

    def encoder(self, spec: str, progress: bool = True, policy: str | None = None, **options) -> CachedEncoder:
        extra = {"policy": policy} if policy else {}
        return CachedEncoder(make_text_encoder(spec, **options), progress=progress, **extra)

    def caption(self, requests, backend, config: dict, store_path: Path, mode: str = "variants", *,
                concurrency: int = 8, progress: bool = True, context: dict | None = None) -> RunSummary:
        return caption_images(requests, backend, store_path, mode=mode, concurrency=concurrency, progress=progress)

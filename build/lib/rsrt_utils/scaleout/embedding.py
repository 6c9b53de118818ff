"""Embedding in an actor pool: each actor loads the text encoder once; the driver keeps the embedding cache (SQLite)
and stores every batch as it comes back, so the cache is the local path's, keyed by the same model name and text.

`RayTextEncoder` is a TextEncoder (`name`, `encode`) with `encode_batches`, which `encoders.cache.CachedEncoder` uses
to stream the missing texts through the pool in one job."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..engine import DEFAULT_ACTORS

BATCH_TEXTS = 256


class EncodeActor:
    """One actor of the pool: the encoder built once from its spec, then one encode per batch."""

    def __init__(self, spec: str, threads: int | None, secrets=None, options: dict | None = None):
        import torch

        from ..encoders import make_text_encoder

        if secrets is not None:
            secrets.install()
        if threads:
            torch.set_num_threads(threads)
        self.encoder = make_text_encoder(spec, **(options or {}))

    def __call__(self, batch: dict) -> dict:
        vectors = self.encoder.encode([str(t) for t in batch["text"]])
        return {"position": batch["position"], "vector": np.asarray(vectors, dtype=np.float32)}


class RayTextEncoder:
    """The text encoder of `spec`, run in `actors` actors of the connected cluster (connect first)."""

    def __init__(self, spec: str, actors: int = DEFAULT_ACTORS, cpus_per_actor: float = 1.0, threads: int | None = 1,
                 secrets=None, options: dict | None = None):
        from ..encoders import key_variable_of, make_text_encoder
        from .cluster import WorkerSecrets

        # an API encoder's key (openai:), read here and handed to the actors through the job's SecretKeeper
        self.secrets = secrets or WorkerSecrets(tuple(filter(None, [key_variable_of(spec, options)])))
        self.spec, self.actors, self.cpus_per_actor, self.threads = spec, actors, cpus_per_actor, threads
        self.options = dict(options or {})
        self.name = make_text_encoder(spec, **self.options).name  # cheap: local models load on their first text

    def encode_batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions in `texts`, their vectors) per batch, as the actors finish them."""
        import ray

        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = [{"position": i, "text": t} for i, t in enumerate(texts)]
        blocks = max(1, min(len(rows) // BATCH_TEXTS, 8 * self.actors))
        embedded = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            EncodeActor, batch_size=BATCH_TEXTS, compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=self.cpus_per_actor, fn_constructor_kwargs={"spec": self.spec, "threads": self.threads,
                                                                  "secrets": self.secrets, "options": self.options})
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            yield np.asarray(batch["position"], dtype=np.int64), np.stack(batch["vector"]).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Every text's vector, in order."""
        texts = list(texts)
        out: np.ndarray | None = None
        for positions, vectors in self.encode_batches(texts):
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[positions] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

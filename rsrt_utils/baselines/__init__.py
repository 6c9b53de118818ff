"""Baselines: zero-shot CLIP (and remote-sensing CLIPs) on the shared metrics, and reciprocal rank fusion."""

from .clip import (
                   DEFAULT_CLIP_MODEL,
                   ClipModelLoadError,
                   HFClipBackend,
                   OpenClipBackend,
                   clip_score_matrices,
                   embed_gallery_and_captions,
                   loadable_clip_models,
                   make_clip_backend,
                   probe_clip_models,
                   run_clip_baseline,
                   save_tiny_random_clip,
)
from .fusion import RRF_K, evaluate_fused, fuse_retrieval, reciprocal_rank_fusion, row_ranks
from .image_cache import CachedImageEncoder

__all__ = ["DEFAULT_CLIP_MODEL", "ClipModelLoadError", "HFClipBackend", "OpenClipBackend", "clip_score_matrices",
           "embed_gallery_and_captions", "loadable_clip_models", "make_clip_backend", "probe_clip_models",
           "run_clip_baseline", "save_tiny_random_clip", "RRF_K", "evaluate_fused",
           "fuse_retrieval", "reciprocal_rank_fusion", "row_ranks", "CachedImageEncoder"]

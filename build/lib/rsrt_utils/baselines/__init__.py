"""Baselines: zero-shot CLIP (and remote-sensing CLIPs) on the shared metrics, and reciprocal rank fusion."""

from .clip import clip_score_matrices, embed_gallery_and_captions, run_clip_baseline
from .fusion import RRF_K, evaluate_fused, fuse_retrieval, reciprocal_rank_fusion, row_ranks

__all__ = ["clip_score_matrices", "embed_gallery_and_captions", "run_clip_baseline", "RRF_K", "evaluate_fused",
           "fuse_retrieval", "reciprocal_rank_fusion", "row_ranks"]

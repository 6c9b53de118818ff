"""Frozen text encoders behind one small interface, and an on-disk embedding cache."""

from .base import TextEncoder, make_text_encoder, DEFAULT_TEXT_ENCODER, available_offline_encoders
from .cache import EmbeddingCache, CachedEncoder, OVERWRITE_POLICIES

__all__ = ["TextEncoder", "make_text_encoder", "DEFAULT_TEXT_ENCODER", "available_offline_encoders",
           "EmbeddingCache", "CachedEncoder", "OVERWRITE_POLICIES"]

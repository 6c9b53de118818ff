"""Frozen text encoders behind one small interface, and an on-disk embedding cache."""

from .base import DEFAULT_TEXT_ENCODER, TextEncoder, available_offline_encoders, make_text_encoder
from .cache import OVERWRITE_POLICIES, CachedEncoder, EmbeddingCache

__all__ = ["TextEncoder", "make_text_encoder", "DEFAULT_TEXT_ENCODER", "available_offline_encoders",
           "EmbeddingCache", "CachedEncoder", "OVERWRITE_POLICIES"]

"""Frozen text encoders behind one small interface, and an on-disk embedding cache."""

from .base import (
    DEFAULT_TEXT_ENCODER,
    ENCODER_KINDS,
    TextEncoder,
    available_offline_encoders,
    check_encoder_spec,
    key_variable_of,
    make_text_encoder,
)
from .cache import OVERWRITE_POLICIES, CachedEncoder, EmbeddingCache

__all__ = ["TextEncoder", "make_text_encoder", "check_encoder_spec", "key_variable_of", "ENCODER_KINDS", "DEFAULT_TEXT_ENCODER", "available_offline_encoders",
           "EmbeddingCache", "CachedEncoder", "OVERWRITE_POLICIES"]

"""Image encoders, each with the on-disk cache of its vectors: EfficientNet-Lite features (the neighbour captioner),
CLIP-style dual encoders (the zero-shot baseline), and the cache shared by image embeddings (cache.py)."""

"""Image encoders, each with the on-disk cache of its vectors: EfficientNet-Lite features (the neighbour captioner),
and the cache shared by image embeddings (cache.py)."""

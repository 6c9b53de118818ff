"""Reference settings of the neighbour captioner that the benchmarks and tests score, in one place.

Each preset is NeighbourCaptioner keyword arguments; QUERY_VARIANTS holds the image->text variant count
(ScoringSpec.n_query_variants) each preset was measured with. Figures: docs/neighbour_captioner.md.
"""

from __future__ import annotations

# The measured starting point: Lite0 head features, k 10, unweighted consensus, five variants, no TTA.
BASELINE_SETTINGS = {"k": 10, "tau": None, "n_variants": 5, "tta": False, "nearest_bonus": 0.0,
                     "image_model": "efficientnet-lite0", "class_vote_k": 0, "paragraph_size": 0, "whiten_dim": 0}
# The best v1 validation row, with two image encoders (about 3.5x the feature cost of one): an option, not the default.
BEST_TWO_ENCODER_SETTINGS = {"k": 10, "tau": 0.03, "n_variants": 5, "tta": False, "nearest_bonus": 0.05,
                             "image_model": "efficientnet-lite0+efficientnet-lite2", "class_vote_k": 0,
                             "paragraph_size": 0, "whiten_dim": 0}
# The v1 defaults (the "previous defaults"; chosen on the v1 validation split: Lite0 head features, no class vote,
# one caption per variant).
V1_DEFAULTS = {"k": 10, "tau": 0.03, "n_variants": 5, "tta": False, "nearest_bonus": 0.1,
               "image_model": "efficientnet-lite0", "class_vote_k": 0, "paragraph_size": 0, "whiten_dim": 0}
# The v2 defaults (multilayer features, class vote 20, paragraphs of 12; no whitening).
V2_DEFAULTS = {"k": 10, "tau": 0.03, "n_variants": 5, "tta": False, "nearest_bonus": 0.1,
               "image_model": "efficientnet-lite0-multilayer", "class_vote_k": 20, "paragraph_size": 12, "whiten_dim": 0}

# Image->text pools over an image's first N variants (formerly the captioner's n_query_captions); the current
# DEFAULT_SETTINGS take theirs from the study's retrieval.n_query_variants (params/default.yaml).
QUERY_VARIANTS = {"baseline": 5, "best_two_encoders": 2, "v1_defaults": 5, "v2_defaults": 5}

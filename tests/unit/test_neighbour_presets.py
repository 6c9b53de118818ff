"""The benchmarks' neighbour-captioner presets (benchmarks/neighbour_presets.py) stay valid captioner settings."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS, NeighbourCaptioner
from rsrt_utils.scoring import ScoringSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import neighbour_presets as presets  # noqa: E402

PRESETS = {"baseline": presets.BASELINE_SETTINGS, "best_two_encoders": presets.BEST_TWO_ENCODER_SETTINGS,
           "v1_defaults": presets.V1_DEFAULTS, "v2_defaults": presets.V2_DEFAULTS}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_a_full_set_of_captioner_options(name):
    settings = PRESETS[name]
    inspect.signature(NeighbourCaptioner).bind(None, **settings)  # a removed option (e.g. n_query_captions) fails here
    assert set(settings) == set(DEFAULT_SETTINGS), set(settings) ^ set(DEFAULT_SETTINGS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_names_its_image_query_variants(name):
    spec = ScoringSpec(n_variants=PRESETS[name]["n_variants"], n_query_variants=presets.QUERY_VARIANTS[name])
    assert 1 <= spec.query_variants <= spec.n_variants

"""rsrt_utils.scoring: the spec's checks and the one path from texts to score matrices and figures."""

from __future__ import annotations

import numpy as np
import pytest

from rsrt_utils.encoders import make_text_encoder
from rsrt_utils.metrics import evaluate_scores
from rsrt_utils.scoring import PrecomputedEncoder, ScoringSpec, evaluate, image_texts, score_texts

GALLERY = [["a runway with planes", "an airport terminal", "planes parked at gates"],
           ["a river with a bridge", "a bridge over water", "cars on a bridge"],
           ["a dense green forest", "dark trees", "a forest with a track"]]
CAPTIONS = ["many planes at an airport", "a bridge crosses the river", "a forest of trees"]


@pytest.fixture(scope="module")
def encoder():
    return make_text_encoder("hashing:512")


def _cosines(a, b, encoder):
    return encoder.encode(a) @ encoder.encode(b).T


def test_spec_rejects_unknown_choices_naming_them():
    with pytest.raises(ValueError, match="pooling 'median' is not known; choose one of max, mean, top2-mean"):
        ScoringSpec(pooling="median")
    with pytest.raises(ValueError, match="ties"):
        ScoringSpec(ties="coin")
    with pytest.raises(ValueError, match="n_variants must be >= 1"):
        ScoringSpec(n_variants=0)


def test_scores_are_max_pooled_cosines_over_the_first_variants(encoder):
    spec = ScoringSpec(n_variants=2, n_query_variants=1)
    t2i, i2t = score_texts(GALLERY, CAPTIONS, encoder, spec)
    for q, caption in enumerate(CAPTIONS):
        for i, texts in enumerate(GALLERY):
            assert t2i[q, i] == pytest.approx(_cosines([caption], texts[:2], encoder).max(), abs=1e-6)
            assert i2t[i, q] == pytest.approx(_cosines([caption], texts[:1], encoder).max(), abs=1e-6)


def test_backend_image_queries_replace_the_variants_on_the_image_side(encoder):
    spec = ScoringSpec(n_variants=3, image_query="backend")
    queries = [["an airport"], ["a river"], ["a forest"]]
    t2i, i2t = score_texts(GALLERY, CAPTIONS, encoder, spec, queries)
    np.testing.assert_allclose(i2t, _cosines([q[0] for q in queries], CAPTIONS, encoder), atol=1e-6)
    np.testing.assert_allclose(t2i, score_texts(GALLERY, CAPTIONS, encoder, spec.replace(image_query="variants"))[0])
    with pytest.raises(ValueError, match="image-query texts"):
        score_texts(GALLERY, CAPTIONS, encoder, spec)


def test_an_image_without_variants_gets_one_empty_text():
    assert image_texts([["a"], []], ScoringSpec()) == [["a"], [""]]


def test_evaluate_adds_the_other_tie_policies_and_the_duplicate_diagnostic(encoder):
    spec = ScoringSpec(n_boot=10)
    t2i, i2t = score_texts(GALLERY, CAPTIONS, encoder, spec)
    index = np.arange(3)
    result = evaluate(t2i, i2t, index, spec, captions=CAPTIONS)
    plain = evaluate_scores(t2i, i2t, index, n_boot=10)
    assert result["mR"] == plain["mR"] and result["ci95"] == plain["ci95"]
    assert {"mR_ties_pessimistic", "mR_ties_optimistic", "mR_duplicates_relevant"} <= set(result)
    assert "mR_ties_random" not in result


def test_precomputed_encoder_embeds_each_text_once(encoder):
    class Counting:
        name = "counting"

        def __init__(self):
            self.seen = []

        def encode(self, texts):
            self.seen += list(texts)
            return encoder.encode(texts)

    inner = Counting()
    wrapped = PrecomputedEncoder(inner, CAPTIONS + CAPTIONS)
    np.testing.assert_array_equal(wrapped.encode(CAPTIONS[::-1]), encoder.encode(CAPTIONS[::-1]))
    wrapped.encode(["a new text", CAPTIONS[0]])
    assert inner.seen == CAPTIONS + ["a new text"]

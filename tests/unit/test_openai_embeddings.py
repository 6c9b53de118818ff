"""The existing OpenAI embeddings encoder (rsrt_utils/encoders/openai_backend.py) against the fake server."""

import numpy as np
import pytest

from rsrt_utils.encoders.openai_backend import OpenAIEmbeddingEncoder
from tests.fakes.keys import fake_key

FAKE_KEY = fake_key("embed")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def test_vectors_are_deterministic_normalised_and_batched(fake_openai):
    encoder = OpenAIEmbeddingEncoder(base_url=fake_openai.base_url, batch_size=3, max_retries=0, timeout=5)
    texts = ["a river", "a forest", "a river", "", "an airport", "a port", "a farm"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (7, fake_openai.embedding_dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert len(fake_openai.requests_to("/embeddings")) == 3
    assert fake_openai.requests_to("/embeddings")[0].body["model"] == "text-embedding-3-small"
    assert np.allclose(encoder.encode(["a river"])[0], vectors[0])


def test_dimensions_are_passed_through(fake_openai):
    encoder = OpenAIEmbeddingEncoder(base_url=fake_openai.base_url, dimensions=8, max_retries=0, timeout=5)
    assert encoder.encode(["x", "y"]).shape == (2, 8) and "openai:text-embedding-3-small:8" == encoder.name


def test_missing_key_names_the_variable(monkeypatch, fake_openai):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        OpenAIEmbeddingEncoder(base_url=fake_openai.base_url)


def test_empty_input_gives_an_empty_matrix(fake_openai):
    encoder = OpenAIEmbeddingEncoder(base_url=fake_openai.base_url, dimensions=8, max_retries=0)
    assert encoder.encode([]).shape == (0, 8) and not fake_openai.requests_to("/embeddings")

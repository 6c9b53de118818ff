"""Shared pytest fixtures. The project root is put on sys.path so tests can import `tests.fakes`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402


@pytest.fixture
def fake_openai():
    """A real local OpenAI-compatible HTTP server on 127.0.0.1 (random port), stopped after the test."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()

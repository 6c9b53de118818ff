"""Made-up credentials for the tests and benchmarks: made new at each run, so no key-like value is ever committed."""

from __future__ import annotations

import secrets


def fake_key(purpose: str) -> str:
    """A credential-shaped value that authenticates nothing (`test-<purpose>-<48 random hex digits>`)."""
    return f"test-{purpose}-{secrets.token_hex(24)}"

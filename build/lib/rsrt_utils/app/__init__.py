"""`rsrt serve`: a local web app to search collections and to score a study run's caption audit in the browser."""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    """The FastAPI app (imported lazily so `rsrt --help` does not load the web stack)."""
    from .server import create_app as _create_app

    return _create_app(*args, **kwargs)

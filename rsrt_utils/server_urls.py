"""Addresses of OpenAI-compatible servers: the public form that settings and manifests store, and the query a
gateway needs sent with every request. Shared by the captioning backends, the embeddings backend and collections."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")  # names of this machine only
DEFAULT_HOST = LOOPBACK_HOSTS[0]  # where a local server binds unless told otherwise


def public_base_url(base_url: str | None) -> str | None:
    """The server address without credentials or query (safe to store in settings)."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def split_query(base_url: str | None) -> tuple[str | None, dict | None]:
    """(the URL without its query, the query's parameters): a gateway's `?api-key=...` or `?api-version=...` is sent
    with every request as a query parameter (the client would otherwise glue request paths after the query)."""
    if not base_url:
        return base_url, None
    parts = urlsplit(base_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query="", fragment="")), (query or None)

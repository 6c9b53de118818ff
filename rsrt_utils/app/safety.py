"""What keeps the local web app safe: no secret in any page or log line, no path outside a collection, no foreign site
driving the app (DNS rebinding, cross-site posts), no unbounded upload."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import Headers, MutableHeaders

from ..logsafe import install, scrub, scrub_tree
from ..server_urls import LOOPBACK_HOSTS

log = logging.getLogger(__name__)



class ScrubbedJSONResponse(JSONResponse):
    """The app's JSON answers: no secret value in any string they carry."""

    def render(self, content) -> bytes:
        return super().render(scrub_tree(content))


def install_log_scrubbing(logger_names=("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "rsrt_utils")) -> None:
    """Put the one secret filter (logsafe) on the server's loggers, their handlers and every root handler."""
    install(logger_names)


def is_safe_relative_id(image_id: str) -> bool:
    """A relative posix path with no empty, '.' or '..' part, no backslash or NUL (checked before any lookup)."""
    if not image_id or image_id.startswith("/") or any(ch in image_id for ch in "\\\x00"):
        return False
    return all(part not in ("", ".", "..") for part in image_id.split("/"))


def allowed_hosts(host: str) -> list[str]:
    """Host headers the app answers: the loopback names when bound to loopback (defeats DNS rebinding), else any."""
    if host in LOOPBACK_HOSTS:
        return list(LOOPBACK_HOSTS)
    return ["*"]


def same_origin(origin: str | None, host_header: str | None) -> bool:
    """A browser's Origin header names this server (requests without Origin, e.g. from scripts, pass)."""
    if not origin:
        return True
    return bool(host_header) and urlsplit(origin).netloc.lower() == host_header.lower()


def allowed_request(method: str, headers) -> bool:
    """Another site's page may link here (a top-level GET) but never post, nor load our pages or images in the
    background (Sec-Fetch-Site says where a browser request comes from; Origin is checked as well)."""
    reading = method in ("GET", "HEAD")
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return reading and headers.get("sec-fetch-mode") == "navigate"
    return reading or same_origin(headers.get("origin"), headers.get("host"))


class SameOriginGuard:
    """ASGI middleware: refuses state-changing requests that another site's page sent (Origin is not this server) and
    adds the security headers to every answer."""

    def __init__(self, app, headers: dict[str, str], path_headers: dict[str, dict[str, str]] | None = None):
        self.app, self.headers, self.path_headers = app, headers, path_headers or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        headers = next((h for prefix, h in self.path_headers.items() if scope["path"].startswith(prefix)), self.headers)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        request_headers = Headers(scope=scope)
        if not allowed_request(scope["method"], request_headers):
            refusal = PlainTextResponse("cross-site request refused: open the page from this server", 403)
            return await refusal(scope, receive, send_with_headers)
        started = []

        async def send_tracked(message):
            started.append(message["type"])
            await send_with_headers(message)

        try:
            return await self.app(scope, receive, send_tracked)
        except Exception as error:  # an unexpected error still answers with the security headers, its text scrubbed
            log.exception("%s %s failed", scope["method"], scope["path"])
            if started:
                raise
            failure = PlainTextResponse(f"internal error ({type(error).__name__}): {scrub(str(error))}", 500)
            return await failure(scope, receive, send_with_headers)


class UploadTooLarge(Exception):
    """The request body went over the upload limit."""

    def __init__(self, limit: int):
        super().__init__(f"the request is larger than {limit // (1 << 20)} MB")
        self.limit = limit


class BodyLimit:
    """ASGI middleware: every request body stops at `limit` bytes, declared or not (UploadTooLarge, handled by the
    app's error handler)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise UploadTooLarge(self.limit)
            return message

        return await self.app(scope, counting_receive, send)

"""The FastAPI app behind `rsrt serve`: search pages over collections and the caption audit of study runs."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..image_files import ImageReadError
from ..paths import outputs_dir
from ..server_urls import DEFAULT_HOST
from ..study.audit import ScoringSheetError
from .audit_routes import router as audit_router
from .audit_runs import AuditRunCache, UnknownRun
from .pages import FORM_OVERHEAD_BYTES, PACKAGE_DIR, error_response
from .safety import BodyLimit, SameOriginGuard, ScrubbedJSONResponse, UploadTooLarge, allowed_hosts
from .search_routes import router as search_router
from .shelf import CollectionShelf, UnknownCollection
from .uploads import MAX_UPLOAD_BYTES

BOOK_PATH = "/study"
# The book (Sphinx) runs small inline scripts of its theme; each page's own policy (a <meta> written by `rsrt book`)
# admits only those, by hash, so a script in a notebook's output never runs; both policies apply. Still nothing from
# another origin. docs/security.md says why.
BOOK_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
            "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send "Origin: null" with form posts
    "X-Frame-Options": "DENY",
}


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request, exc: HTTPException):
        return error_response(request, exc.status_code, str(exc.detail))

    async def not_found(request, exc: LookupError):
        return error_response(request, 404, str(exc.args[0] if exc.args else exc))

    async def too_large(request, exc: UploadTooLarge):
        return error_response(request, 413, f"{exc}; choose an image of at most {MAX_UPLOAD_BYTES // (1 << 20)} MB")

    async def broken_sheet(request, exc: ScoringSheetError):
        return error_response(request, 409, f"the run's scoring sheet cannot be read: {exc}")

    async def unreadable_image(request, exc: ImageReadError):
        return error_response(request, 422, f"the image cannot be shown or described: {exc.reason}")

    async def bad_request(request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return error_response(request, 422, f"the request is not valid: {problems}")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(UnknownRun, not_found)
    app.add_exception_handler(UnknownCollection, not_found)
    app.add_exception_handler(UploadTooLarge, too_large)
    app.add_exception_handler(ScoringSheetError, broken_sheet)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(ImageReadError, unreadable_image)


class BookFiles(StaticFiles):
    """The built book (`rsrt book`) under /study; a page naming the command while none is built."""

    async def __call__(self, scope, receive, send):
        if not Path(self.directory).is_dir():
            page = HTMLResponse(f"<!DOCTYPE html><title>No book yet · rsrt</title><h1>No book built yet</h1><p>Build the "
                                f"study's book with <code>rsrt book</code> (it reads {Path(self.directory).parent}), "
                                "then reload this page. <a href=\"/\">Back</a></p>", 404)
            return await page(scope, receive, send)
        return await super().__call__(scope, receive, send)


def _install_middleware(app: FastAPI, host: str, basemap: str | None = None) -> None:
    headers = dict(SECURITY_HEADERS)
    if basemap:  # the map's tiles come from the basemap's origin, and from nowhere else
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            "img-src 'self' data:", f"img-src 'self' data: {basemap_origin(basemap)}")
    app.add_middleware(SameOriginGuard, headers=headers,
                       path_headers={BOOK_PATH: {**SECURITY_HEADERS, "Content-Security-Policy": BOOK_CSP}})
    app.add_middleware(BodyLimit, limit=MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host))


def create_app(outputs_root: Path | str | None = None, index_root: Path | str | None = None,
               host: str = DEFAULT_HOST, captioners: Mapping[str, object] | None = None,
               base_urls: list[str] | None = None, basemap: str | None = None) -> FastAPI:
    """The app over the study runs under outputs_root (default outputs_dir()) and the collections under index_root
    (default rsrt_utils.paths.indexes_dir()); `host` is where it is bound (loopback: only loopback Host headers);
    captioners: caption backends by collection name, for collections built with a bank given in code; base_urls: the
    captioners' server URLs with their credentials (`rsrt serve --base-url`); basemap: a tile URL template for the
    map of georeferenced collections (`rsrt serve --basemap`; without it the map shows the chips' own quicklooks)."""
    app = FastAPI(title="rsrt", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=ScrubbedJSONResponse)
    app.state.outputs_root = Path(outputs_root or outputs_dir()).expanduser().resolve()
    app.state.basemap = check_basemap(basemap) if basemap else None
    app.state.audits = AuditRunCache(app.state.outputs_root)
    app.state.collections = CollectionShelf(Path(index_root).expanduser() if index_root else None, captioners,
                                            base_urls)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.mount(BOOK_PATH, BookFiles(directory=app.state.outputs_root / "book", html=True, check_dir=False), name="study")
    app.add_api_route("/favicon.ico", lambda: FileResponse(PACKAGE_DIR / "static" / "favicon.svg",
                                                           media_type="image/svg+xml"), include_in_schema=False)
    app.include_router(search_router)
    app.include_router(audit_router)
    _install_error_handlers(app)
    _install_middleware(app, host, app.state.basemap)
    return app


def check_basemap(url: str) -> str:
    """A tile URL template (https://host/{z}/{x}/{y}.png), checked: http(s), a host, and {z}, {x}, {y}."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not all(f"{{{c}}}" in url for c in "zxy"):
        raise ValueError(f"basemap {url!r} is not a tile URL template: give e.g. "
                         "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    if any(c in url for c in " '\";"):
        raise ValueError(f"basemap {url!r} holds a space, quote or semicolon; give a plain tile URL template")
    return url


def basemap_origin(url: str) -> str:
    """scheme://host[:port] of a tile URL template (what the page's policy admits images from)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"

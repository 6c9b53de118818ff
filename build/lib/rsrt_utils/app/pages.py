"""What every page of the app shares: the templates, the error answer (JSON for the API, a page otherwise) and the
search time shown under results."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..logsafe import scrub
from .safety import ScrubbedJSONResponse

PACKAGE_DIR = Path(__file__).resolve().parent
UPLOAD_PATH = "/search/image"
FORM_OVERHEAD_BYTES = 64 * 1024
templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
templates.env.finalize = scrub  # every value a template prints passes the secret filter before escaping

# The top menu of every page, in order: (section a page passes to mark its entry active, href, label). A new page
# that belongs in the menu adds one entry here (docs/contributing.md, "A web page").
NAV = [("search", "/search", "Search"), ("audit", "/audit", "Caption audit"), ("study", "/study/", "The study")]
templates.env.globals["nav"] = NAV


def render(request: Request, name: str, context: dict, status: int = 200) -> HTMLResponse:
    """A page from templates/ (autoescaped; secrets scrubbed)."""
    return templates.TemplateResponse(request, name, context, status_code=status)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(request: Request, status: int, message: str):
    """JSON {"detail": ...} for the API, the error page otherwise; the message is scrubbed of secrets."""
    message = scrub(message)
    if is_api(request):
        return ScrubbedJSONResponse({"detail": message}, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status)


def timed_search(context: dict, search, *args):
    """context["hits"] = search(*args), and context["elapsed"] its wall time in seconds (shown under the results)."""
    started = time.perf_counter()
    context["hits"] = search(*args)
    context["elapsed"] = time.perf_counter() - started

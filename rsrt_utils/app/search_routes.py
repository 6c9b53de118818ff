"""Search pages and API over collections: text queries, "more like this" by upload or by item, item pages, files."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.datastructures import UploadFile

from ..image_files import ImageReadError, max_image_pixels, open_rgb
from ..logsafe import scrub
from .audit_runs import list_audit_runs
from .pages import FORM_OVERHEAD_BYTES, UPLOAD_PATH, error_response, render, timed_search
from .safety import UploadTooLarge, is_safe_relative_id
from .shelf import UnknownCollection
from .uploads import MAX_UPLOAD_BYTES, BadUpload, check_image, saved_upload

router = APIRouter()
DEFAULT_K, MAX_K = 24, 100
MAX_QUERY_CHARS = 1000
THUMB_SIZES = (256, 768)


def _clamp_k(k: int) -> int:
    return min(max(int(k), 1), MAX_K)


def _collection_names(request: Request) -> tuple[list[str], str]:
    """(collection names, why there are none) — the search module may not be installed yet."""
    try:
        return request.app.state.collections.names(), ""
    except ImportError as error:
        return [], f"search is not available: {error}"


def _hits_json(hits) -> list[dict]:
    rows = [{"rank": h.rank, "image_id": h.image_id, "score": round(float(h.score), 6),
             "descriptions": list(h.descriptions)} for h in hits]
    return [{**row, "place": h.place} if h.place is not None else row for row, h in zip(rows, hits)]


def _collection_item(request: Request, name: str, image_id: str):
    """(collection, item) for a path-style id; UnknownCollection / 404 LookupError for anything not in it."""
    collection = request.app.state.collections.get(name)
    if not is_safe_relative_id(image_id):
        raise UnknownCollection(f"no image {image_id!r} in collection {name!r}")
    try:
        return collection, collection.item(image_id)
    except KeyError:
        raise UnknownCollection(f"no image {image_id!r} in collection {name!r}") from None


def _file_of(request: Request, name: str, image_id: str) -> Path:
    """The image file, only when the id is an item of the collection and the file lies inside its images_dir."""
    collection, _ = _collection_item(request, name, image_id)
    path = collection.file_for(image_id)
    inside = path is not None and path.resolve().is_relative_to(Path(collection.images_dir).resolve())
    if not inside or not path.is_file():
        raise UnknownCollection(f"no file for image {image_id!r} in collection {name!r}")
    return path


def _search_context(request: Request, name: str | None, **extra) -> dict:
    names, unavailable = _collection_names(request)
    name = name or (names[0] if names else None)
    collection = request.app.state.collections.get(name) if name else None
    return {"names": names, "unavailable": unavailable, "name": name, "collection": collection, "hits": None,
            "query": "", "k": DEFAULT_K, "error": "", "elapsed": None, "query_label": "",
            "max_mb": MAX_UPLOAD_BYTES // (1 << 20), "max_mp": max_image_pixels() // 1_000_000, **extra}


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    """The start page: the collections to search and the study runs to audit."""
    names, unavailable = _collection_names(request)
    root = request.app.state.outputs_root
    return render(request, "index.html", {"names": names, "unavailable": unavailable,
                                          "runs": list_audit_runs(root), "outputs_root": root,
                                          "index_root": request.app.state.collections.root})


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, collection: str | None = None, q: str = "", k: int = DEFAULT_K, bbox: str = "",
                date_from: str = Query("", alias="from"), date_to: str = Query("", alias="to")):
    """The query box and, given a query, the result grid (a plain GET form: results can be bookmarked); for a
    collection of chips, a box and dates to filter by and a map of the hits' footprints."""
    from ..geo.places import PlaceTimeFilter

    context = _search_context(request, collection, query=q, k=_clamp_k(k), bbox=bbox, date_from=date_from,
                              date_to=date_to, basemap=request.app.state.basemap)
    if not q.strip() or context["collection"] is None:
        return render(request, "search.html", context)
    if len(q) > MAX_QUERY_CHARS:
        context["error"] = f"the query has {len(q)} characters; shorten it to at most {MAX_QUERY_CHARS}"
        return render(request, "search.html", context, 400)
    try:
        where = PlaceTimeFilter.parse(bbox or None, date_from or None, date_to or None)
        timed_search(context, context["collection"].search_text, q, context["k"], where)
    except ValueError as error:
        context["error"] = str(error)
        return render(request, "search.html", context, 400)
    context["map_data"] = _map_data(context["name"], context["hits"], where)
    return render(request, "search.html", context)


def _map_data(name: str, hits, where) -> str | None:
    """What the map draws, as JSON (an attribute of the map, escaped by the template): each placed hit's footprint,
    quicklook and item page, and the box filter (None if no hit has a place)."""
    import json
    from urllib.parse import quote

    placed = [h for h in hits if h.place and h.place.get("lonlat")]
    if not placed:
        return None
    base = f"/collections/{quote(name, safe='')}"
    return json.dumps({"hits": [{"rank": h.rank, "image_id": h.image_id, "score": round(float(h.score), 4),
                      "lonlat": h.place["lonlat"], "bbox": h.place["bbox"], "datetime": h.place.get("datetime"),
                      "thumb": f"{base}/thumbs/{quote(h.image_id)}", "item": f"{base}/items/{quote(h.image_id)}"}
                     for h in placed],
            "box": list(where.bbox) if where and where.bbox else None})


@router.get("/api/collections")
def api_collections(request: Request):
    """Names of the collections (JSON)."""
    names, unavailable = _collection_names(request)
    return {"collections": names, "unavailable": unavailable or None}


@router.get("/api/collections/{name}/search")
def api_search(request: Request, name: str, q: str, k: int = 10, bbox: str | None = None,
               date_from: str | None = Query(None, alias="from"), date_to: str | None = Query(None, alias="to"),
               format: str = "json"):
    """Text search as JSON: rank, image_id, score and descriptions of each hit (and its place, for chips of scenes);
    bbox=W,S,E,N and from= / to= dates filter first; format=geojson gives a FeatureCollection of footprints."""
    from ..geo.places import PlaceTimeFilter, hits_geojson

    if not q.strip() or len(q) > MAX_QUERY_CHARS:
        return error_response(request, 400, f"give a query of 1 to {MAX_QUERY_CHARS} characters in ?q=")
    if format not in ("json", "geojson"):
        return error_response(request, 400, f"format {format!r} is unknown: use json or geojson")
    try:
        where = PlaceTimeFilter.parse(bbox, date_from, date_to)
        collection = request.app.state.collections.get(name)
        hits = _hits_json(collection.search_text(q, k=_clamp_k(k), where=where))
    except ValueError as error:
        return error_response(request, 400, str(error))
    if format == "geojson":
        return hits_geojson(hits)
    return {"collection": name, "query": q, "hits": hits}


async def _read_upload_form(request: Request) -> tuple[str, int, bytes, str]:
    """(collection, k, file bytes, file name) of the upload form; BadUpload / UploadTooLarge when unusable."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES:
        raise UploadTooLarge(MAX_UPLOAD_BYTES)
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        name, k = str(form.get("collection") or ""), str(form.get("k") or DEFAULT_K)
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadUpload("no file was chosen; pick an image file, then press 'Find similar'")
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        return name, _clamp_k(int(k)) if k.isdigit() else DEFAULT_K, data, upload.filename


def _search_by_image(collection, data: bytes, filename: str, k: int):
    with saved_upload(data, check_image(data, filename)) as path:
        return collection.search_image(path, k=k)


@router.post(UPLOAD_PATH, response_class=HTMLResponse)
async def search_by_upload(request: Request):
    """"More like this" for an uploaded image: checked first, then described by the collection's captioner."""
    try:
        name, k, data, filename = await _read_upload_form(request)
    except BadUpload as error:
        return render(request, "search.html", await run_in_threadpool(_search_context, request, None, error=str(error)), 400)
    context = await run_in_threadpool(_search_context, request, name or None, k=k,
                                      query_label=f"images like your upload {filename!r}")
    try:
        await run_in_threadpool(timed_search, context, _search_by_image, context["collection"], data, filename, k)
    except BadUpload as error:
        context["error"] = str(error)
        return render(request, "search.html", context, 400)
    except (ValueError, RuntimeError) as error:
        context["error"] = f"Your image {filename!r} could not be described: {scrub(str(error))}"
        return render(request, "search.html", context, 400)
    return render(request, "search.html", context)


@router.get("/collections/{name}/items/{image_id:path}", response_class=HTMLResponse)
def item_page(request: Request, name: str, image_id: str):
    """One image with all its descriptions (the variants that were embedded)."""
    collection, item = _collection_item(request, name, image_id)
    return render(request, "item.html", {"name": name, "collection": collection, "item": item})


@router.post("/collections/{name}/similar/{image_id:path}", response_class=HTMLResponse)
def similar_page(request: Request, name: str, image_id: str, k: int = DEFAULT_K):
    """"More like this" for an image of the collection itself (a POST: describing an image may cost an API call)."""
    path = _file_of(request, name, image_id)
    context = _search_context(request, name, k=_clamp_k(k), query_label=f"images like {image_id}")
    try:
        timed_search(context, context["collection"].search_image, path, context["k"])
    except (ValueError, RuntimeError) as error:
        context["error"] = f"{image_id!r} could not be described: {scrub(str(error))}"
        return render(request, "search.html", context, 400)
    return render(request, "search.html", context)


@lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime_ns: int, size: int) -> tuple[bytes | None, str | None]:
    """(JPEG bytes of the image at most `size` px a side, None) or (None, why it cannot be shown); made once per file
    version, failures included, so a large or bad file costs its decoding once."""
    try:
        image = open_rgb(path, max_side=size)
    except ImageReadError as error:
        return None, error.reason
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue(), None


@router.get("/collections/{name}/thumbs/{image_id:path}")
def thumbnail(request: Request, name: str, image_id: str, size: int = THUMB_SIZES[0]):
    """A JPEG thumbnail of a collection image (any format the browser cannot show is converted)."""
    path = _file_of(request, name, image_id)
    data, reason = _thumbnail(str(path), path.stat().st_mtime_ns, size if size in THUMB_SIZES else THUMB_SIZES[0])
    if data is None:
        return error_response(request, 422, f"image {image_id!r} of collection {name!r} cannot be shown: {reason}")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})


@router.get("/collections/{name}/files/{image_id:path}")
def original_file(request: Request, name: str, image_id: str):
    """The original file, only for an item of the collection whose file lies inside its folder."""
    return FileResponse(_file_of(request, name, image_id))

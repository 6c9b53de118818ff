"""Image loading for captioning: content hashes (for cache keys) and JPEG data URLs (for the API)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Iterable

from ..fileutil import file_sha256 as shared_file_sha256
from ..image_files import ImageReadError, open_rgb
from .backend import CaptionRequest

DEFAULT_JPEG_QUALITY = 90  # the authors' setting
ImageLoadError = ImageReadError  # the name the captioning backends catch


def _check_exists(path: Path | str | None, image_id: str | None = None) -> Path:
    if path is None:
        raise ImageLoadError(None, f"image {image_id!r} has no pixel file; restrict the dataset to images with "
                             "pixels (Dataset.with_images()) or add the image to the data store")
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(path, "the file does not exist; check the data root (--data-root) or re-run the data import")
    return path


def file_sha256(path: Path | str) -> str:
    """sha256 of the file's bytes (the image identity in cache keys); a clear error if it is missing."""
    return shared_file_sha256(_check_exists(path))


def jpeg_bytes(path: Path | str, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """The image decoded and re-encoded as RGB JPEG at `quality` (1-95); ImageLoadError names a bad file."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality {quality!r} is out of range; use 1-100 (the authors used 90)")
    rgb = open_rgb(path)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def jpeg_data_url(path: Path | str, quality: int = DEFAULT_JPEG_QUALITY) -> str:
    """The image as a `data:image/jpeg;base64,...` URL, as the chat API takes it."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(path, quality)).decode("ascii")


def _as_request(item) -> CaptionRequest:
    if isinstance(item, CaptionRequest):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2:
        image_id, path = item
        return CaptionRequest(str(image_id), Path(path) if path is not None else None)
    if hasattr(item, "image_id") and hasattr(item, "image_path"):  # data-layer ImageRecord
        return CaptionRequest(item.image_id, item.image_path, scene_class=getattr(item, "scene_class", None))
    raise TypeError(f"cannot make a caption request from {item!r}; pass CaptionRequest, (image_id, path) or ImageRecord")


def build_requests(items: Iterable) -> list[CaptionRequest]:
    """Caption requests with content hashes filled in; unreadable files keep image_sha256=None (they fail later)."""
    requests = []
    for item in items:
        request = _as_request(item)
        if request.image_sha256 is None and request.image_path is not None and Path(request.image_path).is_file():
            request = CaptionRequest(request.image_id, Path(request.image_path), file_sha256(request.image_path),
                                     request.scene_class)
        requests.append(request)
    return requests

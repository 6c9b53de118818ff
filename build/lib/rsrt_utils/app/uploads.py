"""Query images uploaded for "more like this": checked (size, pixels, readable) before any captioner sees them."""

from __future__ import annotations

import io
import tempfile
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..image_files import max_image_pixels

MAX_UPLOAD_BYTES = 10 * (1 << 20)
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp", "GIF": ".gif"}


class BadUpload(ValueError):
    """The uploaded file cannot be used as a query image; the message says why and what to do."""


def check_image(data: bytes, filename: str) -> str:
    """The image format of the upload ('JPEG', ...); BadUpload if it is empty, too large, not an image or too big."""
    shown = repr(filename or "the upload")
    if not data:
        raise BadUpload(f"{shown} is empty; choose an image file (JPEG, PNG, TIFF, ...)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadUpload(f"{shown} has {len(data) / (1 << 20):.1f} MB; upload an image of at most "
                        f"{MAX_UPLOAD_BYTES // (1 << 20)} MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            limit = max_image_pixels()  # the project's one pixel limit
            if width * height > limit:
                raise BadUpload(f"{shown} has {width}×{height} pixels; downscale it to at most "
                                f"{limit / 1e6:.0f} megapixels")
            image.load()
            fmt = image.format
    except BadUpload:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadUpload(f"{shown} is not an image that can be read ({type(error).__name__}); upload a JPEG, PNG "
                        "or TIFF file") from None
    if fmt not in SUFFIXES:
        raise BadUpload(f"{shown} is a {fmt} image; upload one of {', '.join(SUFFIXES)}")
    return fmt


@contextmanager
def saved_upload(data: bytes, fmt: str):
    """The upload as a temporary file with the suffix of its format (deleted afterwards)."""
    with tempfile.TemporaryDirectory(prefix="rsrt-query-") as folder:
        path = Path(folder) / f"query{SUFFIXES[fmt]}"
        path.write_bytes(data)
        yield path

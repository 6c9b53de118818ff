"""Reading image files one at a time, safely: one pixel limit for the whole project, one error per bad file.

Every place that decodes an image file (captioning backends, image features, CLIP embeddings, thumbnails, audit
sheets, uploads) goes through `open_rgb` or `image_problem`, so an unreadable, empty, truncated or oversized file
becomes one `ImageReadError` naming that file and the reason, and never the error of its neighbours.

The pixel limit (width x height) is checked from the file's header, before any pixel is decoded. Default
64 megapixels (8000 x 8000, about 190 MB of RGB once decoded); set RSRT_MAX_IMAGE_PIXELS to change it.
"""

from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
MAX_PIXELS_ENV = "RSRT_MAX_IMAGE_PIXELS"


class ImageReadError(ValueError):
    """An image file that cannot or should not be decoded; `path` and `reason` name the file and why."""

    def __init__(self, path: Path | str | None, reason: str):
        self.path, self.reason = (str(path) if path is not None else None), reason
        super().__init__(f"image file {self.path!r} cannot be read: {reason}")


def max_image_pixels() -> int:
    """The pixel limit in force (RSRT_MAX_IMAGE_PIXELS, else DEFAULT_MAX_IMAGE_PIXELS)."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a positive whole number of pixels; "
                         f"unset it or give e.g. {DEFAULT_MAX_IMAGE_PIXELS}")
    return value


@contextmanager
def opened_image(path: Path | str | None) -> Iterator:
    """The PIL image of `path`, opened lazily (header read, size checked, nothing decoded yet)."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        raise ImageReadError(None, "there is no pixel file for this image")
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "the file does not exist; check the folder or data root")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes); replace it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:  # PIL's own guard, far above ours: our limit, in our words
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        raise ImageReadError(path, _over_the_limit(f"{int(pixels[1]):,} pixels" if pixels else "its size")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"not an image that can be decoded ({type(error).__name__}); replace it "
                             "with a JPEG, PNG or TIFF file") from None
    with image:
        _check_pixels(path, image.size)
        yield image


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    limit = max_image_pixels()
    if width * height > limit:
        raise ImageReadError(path, _over_the_limit(f"{width}x{height} = {width * height:,} pixels", limit))


def _over_the_limit(size: str, limit: int | None = None) -> str:
    return (f"{size} is over the limit of {limit or max_image_pixels():,} ({MAX_PIXELS_ENV}); downscale or tile it, "
            "or raise the limit")


def open_rgb(path: Path | str | None, max_side: int | None = None):
    """The decoded RGB image (a new PIL image); with `max_side`, shrunk to fit (JPEGs decoded at reduced scale)."""
    with opened_image(path) as image:
        try:
            if max_side:
                image.draft("RGB", (max_side, max_side))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
            rgb = image.convert("RGB")
            if max_side:
                rgb.thumbnail((max_side, max_side))
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageReadError(path, f"the pixels cannot be decoded ({type(error).__name__}: {error}); the file is "
                                 "truncated or damaged: replace it") from None
    return rgb


def raise_for_failures(paths: Sequence, failures: dict[int, str]) -> None:
    """ImageReadError naming how many of `paths` could not be read and the first of them (nothing if none)."""
    if failures:
        first = min(failures)
        raise ImageReadError(paths[first], f"{failures[first]} ({len(failures)} of {len(paths)} file(s) unreadable)")


def image_problem(path: Path | str | None) -> str | None:
    """Why the file cannot be used as an image, from its header alone (cheap), or None if it looks readable."""
    try:
        with opened_image(path):
            return None
    except ImageReadError as error:
        return str(error)

"""One scene in, chips out: windows read one at a time (never the whole scene), the bands the captioner sees, a stated
8-bit stretch, and each chip's footprint, ground sample distance and acquisition time.

What a captioner sees (the same for every backend): the chip's three bands — RGB by colour interpretation, else the
bands named (e.g. Sentinel-2 B4 B3 B2) or numbered — each mapped linearly from the scene's [p_low, p_high] percentiles
(default 2 and 98, from a decimated read of the valid pixels) to 0..255 and clipped; nodata pixels are black. One band
is shown as grey.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

GEO_EXTRA = "pip install 'rsrt[geo]'"
SCENE_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
STRETCH_SAMPLE_SIDE = 1024  # the percentiles come from a read of at most this many pixels on the long side
GDAL_CACHE_MB = 64  # GDAL's block cache while chipping: one row of 512 px tiles of a 4-band Sentinel-2 scene (46 MB)
METRES_PER_DEGREE = 111_320.0


class GeoReadError(ValueError):
    """A scene (or one chip of it) that cannot be used; names the file and the fix."""

    def __init__(self, path: Path | str, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"scene {self.path!r}: {reason}")


def require_rasterio():
    """rasterio, or an ImportError saying which extra brings it."""
    try:
        import rasterio
    except ImportError:
        raise ModuleNotFoundError(f"reading GeoTIFF / COG / JPEG 2000 scenes needs rasterio: {GEO_EXTRA}",
                                  name="rasterio") from None
    return rasterio


@dataclass(frozen=True)
class ChipSpec:
    """How scenes are cut: chip side in pixels ("px") or metres on the ground ("m"), overlap as a fraction of the side,
    the three bands shown, the stretch percentiles and the largest share of nodata a kept chip may have."""

    size: float = 256
    unit: str = "px"
    overlap: float = 0.0
    bands: tuple = ()
    percentiles: tuple[float, float] = (2.0, 98.0)
    max_nodata: float = 0.5

    def __post_init__(self):
        if self.unit not in ("px", "m"):
            raise ValueError(f"chip unit {self.unit!r} is unknown: use 'px' (pixels) or 'm' (metres on the ground)")
        if not (isinstance(self.size, (int, float)) and self.size > 0):
            raise ValueError(f"chip size {self.size!r} must be a positive number of {self.unit}, e.g. 256")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"chip overlap {self.overlap!r} must be a fraction in [0, 1), e.g. 0.25")
        if not 0 <= self.max_nodata <= 1:
            raise ValueError(f"max_nodata {self.max_nodata!r} must be a fraction in [0, 1], e.g. 0.5")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"stretch percentiles {self.percentiles!r} must satisfy 0 <= low < high <= 100, e.g. (2, 98)")
        if len(self.bands) not in (0, 1, 3):
            raise ValueError(f"bands {self.bands!r}: give three (red, green, blue), one (grey) or none (RGB by colour "
                             "interpretation)")

    @classmethod
    def parse_size(cls, text: str, **kwargs) -> "ChipSpec":
        """"256" or "256px" -> pixels; "960m" -> metres on the ground."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(px|m)?\s*", str(text))
        if not match:
            raise ValueError(f"chip size {text!r} is not understood: give pixels (e.g. 256 or 256px) or metres (960m)")
        return cls(size=float(match[1]), unit=match[2] or "px", **kwargs)


@dataclass(frozen=True)
class Chip:
    """One chip of a scene: its window, footprint (scene CRS and WGS84 lon/lat), ground sample distance, time."""

    chip_id: str
    scene: str
    window: tuple[int, int, int, int]  # column offset, row offset, width, height (pixels of the scene)
    crs: str | None
    footprint: list | None             # closed ring in the scene's CRS
    lonlat: list | None                # closed ring in WGS84 longitude / latitude
    bbox: tuple | None                 # (west, south, east, north) in degrees
    gsd_m: float | None
    datetime: str | None
    nodata_fraction: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Georef:
    """Where a scene's pixels lie: its CRS and geotransform, from the file, or, for a file without one, from the lon/lat
    box its STAC item gives (north up, WGS84)."""

    crs: object | None
    transform: object
    width: int
    height: int
    name: str

    @classmethod
    def of(cls, src, item_bbox: Sequence[float] | None = None) -> "Georef":
        if src.crs is None and item_bbox:
            from rasterio.crs import CRS
            from rasterio.transform import from_bounds

            return cls(CRS.from_epsg(4326), from_bounds(*item_bbox, src.width, src.height), src.width, src.height, src.name)
        return cls(src.crs, src.transform, src.width, src.height, src.name)


def open_scene(path: Path | str):
    """The rasterio dataset of `path` (GeoReadError naming the file if it cannot be opened)."""
    rasterio = require_rasterio()
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():  # an ungeoreferenced scene is reported by the archive (chips without a place)
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as error:
        raise GeoReadError(path, f"not a raster that can be opened ({error}); give a GeoTIFF, COG or JPEG 2000 file") from None


def band_indexes(src, bands: Sequence = ()) -> list[int]:
    """1-based band indexes to show: `bands` by number or by name (description or colour interpretation), else the
    red, green and blue bands, else the first three (or the only one)."""
    names = {}
    for index, (description, interp) in enumerate(zip(src.descriptions, src.colorinterp), start=1):
        for name in (description, interp.name):
            if name:
                names.setdefault(str(name).lower(), index)
    if bands:
        indexes = []
        for band in bands:
            index = int(band) if isinstance(band, int) or str(band).isdigit() else names.get(str(band).lower())
            if index is None or not 1 <= index <= src.count:
                available = ", ".join(f"{i}" + (f" ({d})" if d else "") for i, d in enumerate(src.descriptions, start=1))
                raise GeoReadError(src.name, f"band {band!r} does not exist; the scene has {src.count} band(s): "
                                             f"{available}")
            indexes.append(index)
        return indexes
    rgb = [names.get(c) for c in ("red", "green", "blue")]
    if all(rgb):
        return rgb
    return [1, 2, 3] if src.count >= 3 else [1]


def ground_sample_distance(georef: Georef) -> float | None:
    """Metres per pixel (the mean of the two axes), None without a CRS."""
    if georef.crs is None:
        return None
    xres, yres = abs(georef.transform.a), abs(georef.transform.e)
    if georef.crs.is_projected:
        factor = georef.crs.linear_units_factor[1]
        return float((xres + yres) / 2 * factor)
    latitude = math.radians(georef.transform.f + georef.transform.e * georef.height / 2)
    return float((xres * math.cos(latitude) + yres) / 2 * METRES_PER_DEGREE)


def chip_side_px(src, spec: ChipSpec, georef: Georef | None = None) -> int:
    """The chip side in scene pixels (from metres through the ground sample distance), checked against the scene."""
    if spec.unit == "m":
        gsd = ground_sample_distance(georef or Georef.of(src))
        if gsd is None:
            raise GeoReadError(src.name, f"a chip size in metres ({spec.size:g} m) needs a georeferenced scene; this one "
                                         f"has no CRS: give the size in pixels")
        side = int(round(spec.size / gsd))
    else:
        side = int(round(spec.size))
    if side < 1 or side > min(src.width, src.height):
        raise GeoReadError(src.name, f"chip side {side} px is larger than the scene ({src.width} x {src.height} px); "
                                     f"give a smaller chip size")
    return side


def chip_windows(src, spec: ChipSpec, georef: Georef | None = None) -> list[tuple[int, int, int, int]]:
    """Every full chip window (col_off, row_off, side, side) on a grid with the spec's overlap; the last row and column
    are moved in to end at the scene's edge, so the whole scene is covered."""
    side = chip_side_px(src, spec, georef)
    step = max(1, int(round(side * (1 - spec.overlap))))

    def offsets(extent: int) -> list[int]:
        starts = list(range(0, extent - side + 1, step))
        if starts[-1] + side < extent:
            starts.append(extent - side)
        return starts
    return [(col, row, side, side) for row in offsets(src.height) for col in offsets(src.width)]


def scene_stretch(src, indexes: Sequence[int], spec: ChipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per shown band, the (low, high) percentiles of the scene's valid pixels, from a decimated read (bounded memory:
    COG overviews are used when present); if a damaged tile breaks that read, from the blocks that can be read."""
    from rasterio.errors import RasterioError

    scale = max(1.0, max(src.width, src.height) / STRETCH_SAMPLE_SIDE)
    shape = (len(indexes), max(1, int(src.height / scale)), max(1, int(src.width / scale)))
    try:
        data = src.read(list(indexes), out_shape=shape).astype(np.float64)
        valid = src.dataset_mask(out_shape=shape[1:]) > 0
        samples = [band[valid] if valid.any() else band.ravel() for band in data]
    except RasterioError:
        samples = _samples_from_readable_blocks(src, indexes, scale)
    low, high = [], []
    for values in samples:
        lo, hi = np.percentile(values, spec.percentiles) if values.size else (0.0, 1.0)
        low.append(lo)
        high.append(hi if hi > lo else lo + 1.0)
    return np.array(low), np.array(high)


def _samples_from_readable_blocks(src, indexes: Sequence[int], scale: float) -> list[np.ndarray]:
    """Per band, the valid pixels of every block that can be read, decimated by `scale`."""
    from rasterio.errors import RasterioError

    step = max(1, int(round(scale)))
    parts: list[list[np.ndarray]] = [[] for _ in indexes]
    for _, window in src.block_windows(1):
        try:
            data = src.read(list(indexes), window=window)[:, ::step, ::step]
            valid = src.dataset_mask(window=window)[::step, ::step] > 0
        except RasterioError:
            continue
        for band, part in zip(data, parts):
            part.append(band[valid].astype(np.float64))
    return [np.concatenate(part) if part else np.array([]) for part in parts]


def to_8bit(data: np.ndarray, valid: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(bands, h, w) values -> (h, w, 3) uint8 by the linear stretch [low, high] -> [0, 255]; nodata black."""
    scaled = (data.astype(np.float64) - low[:, None, None]) / (high - low)[:, None, None]
    image = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    if image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
    image = np.moveaxis(image, 0, -1)
    image[~valid] = 0
    return image


def footprint(georef: Georef, window: tuple[int, int, int, int]) -> tuple[list | None, list | None, tuple | None]:
    """(ring in the scene's CRS, ring in lon/lat, lon/lat bbox) of a window; (None, None, None) without a CRS."""
    if georef.crs is None:
        return None, None, None
    from rasterio.warp import transform

    col, row, width, height = window
    corners = [(col, row), (col, row + height), (col + width, row + height), (col + width, row), (col, row)]  # CCW
    xs, ys = zip(*(georef.transform * corner for corner in corners))
    try:
        lons, lats = transform(georef.crs, "EPSG:4326", list(xs), list(ys))
    except Exception as error:  # rasterio raises CRSError or GDAL's CPLE_* errors (no common public base class)
        raise GeoReadError(georef.name, f"its CRS ({georef.crs.to_string() or 'a local CRS'}) cannot be transformed to WGS84 lon/lat ({error}); "
                                     f"reproject the scene (e.g. gdalwarp -t_srs EPSG:4326)") from None
    if not all(map(math.isfinite, [*lons, *lats])):
        raise GeoReadError(georef.name, f"its CRS ({georef.crs}) gives no finite lon/lat for this window; reproject the scene")
    ring = [[round(x, 3), round(y, 3)] for x, y in zip(xs, ys)]
    lonlat = [[round(x, 7), round(y, 7)] for x, y in zip(lons, lats)]
    bbox = (min(lons), min(lats), max(lons), max(lats))
    return ring, lonlat, tuple(round(v, 7) for v in bbox)


def scene_datetime(src) -> str | None:
    """The acquisition time from the file's tags (TIFFTAG_DATETIME or ACQUISITIONDATETIME), ISO 8601, else None."""
    tags = src.tags()
    raw = tags.get("ACQUISITIONDATETIME") or tags.get("TIFFTAG_DATETIME")
    if not raw:
        return None
    match = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T]?(\d{2})?:?(\d{2})?:?(\d{2})?", raw)
    if not match:
        return None
    y, m, d, hh, mm, ss = (g or "00" for g in match.groups())
    return f"{y}-{m}-{d}T{hh}:{mm}:{ss}Z"


def iter_chips(path: Path | str, spec: ChipSpec, scene_id: str, datetime: str | None = None,
               item_bbox: Sequence[float] | None = None) -> Iterator[tuple[Chip, np.ndarray | None, str | None]]:
    """(chip, 8-bit RGB pixels or None, why it was left out or failed, or None) for every window of the scene; a chip
    that is mostly nodata is left out, a chip whose pixels cannot be read (a corrupt tile) fails alone; item_bbox (a
    STAC item's lon/lat box) places a file that has no georeference of its own."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20), open_scene(path) as src:  # bytes (a small int is bytes)
        indexes = band_indexes(src, spec.bands)
        low, high = scene_stretch(src, indexes, spec)
        when = datetime or scene_datetime(src)
        georef = Georef.of(src, item_bbox)
        gsd = ground_sample_distance(georef)
        crs = georef.crs.to_string() if georef.crs else None
        for window in chip_windows(src, spec, georef):
            ring, lonlat, bbox = footprint(georef, window)
            chip_id = f"{scene_id}/r{window[1]}_c{window[0]}"
            try:
                box = Window(*window)
                data = src.read(indexes, window=box)
                valid = src.dataset_mask(window=box) > 0
            except RasterioError as error:
                chip = Chip(chip_id, scene_id, window, crs, ring, lonlat, bbox, gsd, when, 1.0)
                yield chip, None, f"the pixels of this window cannot be read ({error}); the file is damaged here"
                continue
            nodata = round(float(1 - valid.mean()), 4)
            chip = Chip(chip_id, scene_id, window, crs, ring, lonlat, bbox, gsd, when, nodata)
            if nodata > spec.max_nodata:
                yield chip, None, f"nodata {nodata:.0%} > max_nodata {spec.max_nodata:.0%}"
                continue
            yield chip, to_8bit(data, valid, low, high), None

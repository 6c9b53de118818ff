"""Real test scenes: mosaics of AID-150 pixels written as GeoTIFF / COG with a real UTM CRS and geotransform (8-bit RGB,
and 16-bit 4-band with nodata borders), so every geo test reads real remote-sensing pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsrt_utils.paths import shared_mirror_dir

rasterio = pytest.importorskip("rasterio", reason="the geo extra (rasterio) is not installed: pip install 'rsrt[geo]'")
from rasterio.transform import from_origin  # noqa: E402

MIRROR = shared_mirror_dir()
AID = MIRROR / "aid150" / "images" if MIRROR else None
UTM_33N = "EPSG:32633"
ORIGIN = (500_000.0, 5_000_000.0)  # metres, UTM 33N (about 15 E, 45.1 N)
GSD = 2.0  # metres per pixel
TILE = 150  # AID-150 side


def aid_tiles(n: int) -> list[np.ndarray]:
    """n real AID-150 images (RGB uint8, 150 x 150), from distinct classes (skip when the mirror is absent)."""
    if AID is None or not AID.is_dir():
        pytest.skip("the real AID-150 images (../shared/data/aid150 or RSRT_MIRROR_DIR) are absent")
    from PIL import Image

    classes = sorted(p for p in AID.iterdir() if p.is_dir())
    paths = [sorted(c.glob("*.jpg"))[i // len(classes)] for i, c in zip(range(n), classes * (n // len(classes) + 1))]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def mosaic(rows: int, cols: int) -> np.ndarray:
    """(3, rows*150, cols*150) uint8 of real AID-150 tiles."""
    tiles = aid_tiles(rows * cols)
    grid = [np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1) for r in range(rows)]
    return np.moveaxis(np.concatenate(grid, axis=0), -1, 0)


def write_rgb(path: Path, rows: int = 4, cols: int = 4, datetime: str | None = "2024:06:01 10:30:00") -> Path:
    """An 8-bit RGB GeoTIFF in UTM 33N at 2 m, with an acquisition time tag."""
    data = mosaic(rows, cols)
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": 3, "dtype": "uint8",
               "crs": UTM_33N, "transform": from_origin(*ORIGIN, GSD, GSD), "photometric": "RGB"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if datetime:
            dst.update_tags(TIFFTAG_DATETIME=datetime)
    return path


def write_uint16_4band(path: Path, rows: int = 4, cols: int = 4, border: int = 150, cog: bool = False) -> Path:
    """A 16-bit 4-band (B4 B3 B2 B8 by description; the order of a Sentinel-2 stack is not RGB) GeoTIFF with nodata 0
    on a `border`-pixel frame; as a COG with overviews when asked."""
    rgb = mosaic(rows, cols).astype(np.uint16) * 40 + 100
    nir = rgb.mean(axis=0, keepdims=True).astype(np.uint16)
    data = np.concatenate([nir, rgb[2:3], rgb[1:2], rgb[0:1]])  # stored as B8, B2, B3, B4
    data[:, :border, :] = 0
    data[:, :, :border] = 0
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": 4, "dtype": "uint16",
               "crs": UTM_33N, "transform": from_origin(*ORIGIN, GSD, GSD), "nodata": 0, "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    target = path.with_suffix(".plain.tif") if cog else path
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("B8", "B2", "B3", "B4")
    if cog:
        from rasterio.shutil import copy

        copy(target, path, driver="COG", overviews="AUTO", blocksize=256)
        target.unlink()
    return path


def window_rgb(rows: int, cols: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """The true RGB pixels of a mosaic window (to check what a chip shows)."""
    col, row, width, height = window
    return np.moveaxis(mosaic(rows, cols)[:, row:row + height, col:col + width], 0, -1)


ROWS = COLS = 4  # the searchable mosaic: 16 AID-150 scenes of 16 classes


def tile_classes() -> list[str]:
    """The AID class of each mosaic tile, row by row (aid_tiles takes one image per class in sorted order)."""
    classes = sorted(p.name for p in AID.iterdir() if p.is_dir())
    return [classes[k % len(classes)] for k in range(ROWS * COLS)]


def build_geo_collection(root: Path, name: str) -> list[str]:
    """`rsrt index build ROOT/scenes --chip 150` over a 4 x 4 mosaic (one chip per AID scene), captioned from a
    corpus that names each chip's true class; RSRT_INDEX_DIR must point at ROOT/indexes. Returns the tile classes."""
    import json

    from rsrt_utils.cli import main
    from rsrt_utils.geo.archive import chip_scenes, read_chips, scenes_in_folder
    from rsrt_utils.geo.raster import ChipSpec

    scenes = root / "scenes"
    scenes.mkdir()
    write_rgb(scenes / "mosaic.tif", ROWS, COLS)
    chips = root / "indexes" / name / "chips"
    chip_scenes(scenes_in_folder(scenes), chips, ChipSpec(TILE), progress=False)  # the build finds them unchanged
    classes = tile_classes()
    corpus = root / "corpus.jsonl"
    with corpus.open("w") as handle:
        for file, chip in read_chips(chips).items():
            col, row = chip["window"][:2]
            label = classes[(row // TILE) * COLS + col // TILE].lower()
            variants = [{"one_sentence": f"An aerial view of a {label}.", "feature": f"{label} seen from the {side}",
                         "caption": f"A remote-sensing image of a {label} area, {side} part."}
                        for side in ("north", "south", "east", "west", "centre")]
            handle.write(json.dumps({"image_id": file, "variants": variants}) + "\n")
    code = main(["index", "build", str(scenes), "--name", name, "--chip", str(TILE), "--captioner", "import",
                 "--corpus", str(corpus), "--encoder", "hashing:4096", "--quiet"])
    assert code == 0, "the geo collection was not built"
    return classes

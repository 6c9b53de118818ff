"""Chipping a Sentinel-2-sized scene: a 10980 x 10980 4-band uint16 COG read window by window, against reading it whole.

Usage: python benchmarks/bench_geo_chips.py [--side 10980] [--chip 256] [--out FILE]
The scene is made from real AID-150 pixels (a mosaic repeated to fill the side, scaled to uint16, a near-infrared band
added, a nodata frame of 300 px), written as a DEFLATE COG with 512 px tiles and overviews in a temporary folder (UTM
33N, 10 m). Each measurement runs in a fresh process and reports its own peak resident memory (VmHWM):
  windowed   rsrt_utils.geo.archive.chip_scenes: every 256 px chip read by its window, stretched, written as PNG
  read-only  the same windows read and stretched, nothing written (the reading cost alone)
  whole      the scene read into memory at once (what a non-windowed reader does before cutting anything)
GDAL's block cache is rsrt_utils.geo.raster.GDAL_CACHE_MB in every mode. Writes benchmarks/results/geo_chips.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "geo_chips.json"
sys.path.insert(0, str(HERE.parent))

MEASURE = r'''
import json, sys, time
from pathlib import Path
mode, scene, chip, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
start = time.perf_counter()
if mode == "whole":
    import rasterio
    from rsrt_utils.geo.raster import GDAL_CACHE_MB
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20), rasterio.open(scene) as src:  # the same block cache as chipping
        data = src.read()
    n = 0
elif mode == "windowed":
    from rsrt_utils.geo.archive import Scene, chip_scenes
    from rsrt_utils.geo.raster import ChipSpec
    summary = chip_scenes([Scene(scene, "s2")], out, ChipSpec(chip, bands=("B4", "B3", "B2")), progress=False)
    n = summary.chips + summary.left_out
else:
    from rsrt_utils.geo.raster import ChipSpec, iter_chips
    n = sum(1 for _ in iter_chips(scene, ChipSpec(chip, bands=("B4", "B3", "B2")), "s2"))
seconds = time.perf_counter() - start
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this process only
print(json.dumps({"seconds": round(seconds, 2), "chips": n, "peak_rss_mb": round(peak / 1024, 1)}))
'''


def make_scene(path: Path, side: int) -> None:
    """A side x side 4-band uint16 COG from real AID-150 pixels (B8 B2 B3 B4, nodata 0 on a 300 px frame)."""
    import numpy as np
    import rasterio
    from rasterio.shutil import copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from tests.geo.scenes import mosaic

    tile = mosaic(6, 6).astype(np.uint16) * 40 + 100  # 900 x 900 real pixels
    plain = path.with_suffix(".plain.tif")
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 4, "dtype": "uint16", "crs": "EPSG:32633",
               "transform": from_origin(500_000, 5_000_000, 10, 10), "nodata": 0, "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate", "BIGTIFF": "YES"}
    with rasterio.open(plain, "w", **profile) as dst:
        dst.descriptions = ("B8", "B2", "B3", "B4")
        for row in range(0, side, 900):
            for col in range(0, side, 900):
                h, w = min(900, side - row), min(900, side - col)
                rgb = tile[:, :h, :w]
                block = np.concatenate([rgb.mean(axis=0, keepdims=True).astype(np.uint16), rgb[2:3], rgb[1:2], rgb[0:1]])
                if row < 300 or col < 300:
                    block = block.copy()
                    block[:, :max(0, 300 - row), :] = 0
                    block[:, :, :max(0, 300 - col)] = 0
                dst.write(block, window=Window(col, row, w, h))
    copy(plain, path, driver="COG", overviews="AUTO", blocksize=512, compress="deflate", BIGTIFF="YES")
    plain.unlink()


def measure(mode: str, scene: Path, chip: int, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run([sys.executable, "-c", MEASURE, mode, str(scene), str(chip), str(out)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10980)
    parser.add_argument("--chip", type=int, default=256)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--scene", type=Path, default=None, help="reuse a scene made by an earlier run (kept there)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scene = args.scene or Path(tmp) / "s2.tif"
        started = time.perf_counter()
        made = None
        if not scene.is_file():
            make_scene(scene, args.side)
            made = round(time.perf_counter() - started, 1)
        results = {mode: measure(mode, scene, args.chip, Path(tmp) / f"chips-{mode}") for mode in ("read-only", "windowed", "whole")}
        size_mb = scene.stat().st_size / 1e6
    for mode in ("read-only", "windowed"):
        results[mode]["chips_per_second"] = round(results[mode]["chips"] / results[mode]["seconds"], 1)
    record = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "scene": {"side": args.side, "bands": 4, "dtype": "uint16", "cog_mb": round(size_mb, 1),
                        "uncompressed_mb": round(args.side ** 2 * 8 / 1e6, 1), "made_in_seconds": made,
                        "pixels": "real AID-150 mosaic repeated, DEFLATE COG, 512 px tiles, overviews"},
              "chip": args.chip, **results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Image-embedding throughput of the CLIP baseline (images/s), cold and from the on-disk cache.

Models: a tiny randomly initialised CLIP (always; 32-px input, measures the pipeline's overhead:
hashing, JPEG decoding, preprocessing, SQLite writes) and every real CLIP `loadable_clip_models()`
finds offline (e.g. ViT-B/32). Images: the real RSICD test scenes found in AID-150 when the mirror
is present, else synthetic 150x150 JPEGs. Writes benchmarks/results/clip_throughput.json.

Cold = empty cache (hash + decode + preprocess + embed + SQLite write); cached = the second run;
model only = preprocess + embed of already decoded images. Medians over --repeats runs after a warm-up
batch (the machine may be shared, so every run's time is kept too).

  python benchmarks/bench_clip_throughput.py [--n-images N] [--batch-size 64] [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rsrt_utils.baselines.clip_models import (
    HFClipBackend,
    loadable_clip_models,
    make_clip_backend,
    resolve_device,
    save_tiny_random_clip,
)
from rsrt_utils.data import load_dataset
from rsrt_utils.image_encoders.cache import CachedImageEncoder, load_rgb
from rsrt_utils.paths import shared_mirror_dir

RESULTS = Path(__file__).resolve().parent / "results" / "clip_throughput.json"


def benchmark_images(n_images: int | None, scratch: Path) -> tuple[list[Path], str]:
    """Real AID-150 paths of the RSICD test scenes, or synthetic JPEGs when the mirror is absent."""
    mirror = shared_mirror_dir()
    if mirror is not None:
        dataset = load_dataset("rsicd", split="test", root=mirror).with_images()
        paths = [im.image_path for im in dataset.images][:n_images]
        return paths, f"real: RSICD test scenes found in AID-150 ({mirror}), 150x150 JPEG"
    rng = np.random.default_rng(0)
    folder = scratch / "synthetic"
    folder.mkdir()
    paths = []
    for i in range(n_images or 1027):
        paths.append(folder / f"synthetic_{i}.jpg")
        Image.fromarray(rng.integers(0, 256, size=(150, 150, 3), dtype=np.uint8)).save(paths[-1], quality=90)
    return paths, "synthetic: random 150x150 JPEGs (mirror absent)"


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def time_once(backend, paths: list[Path], scratch: Path) -> dict:
    """One cold (empty cache), cached (second run) and model-only (images already decoded) timing."""
    cache_root = Path(tempfile.mkdtemp(dir=scratch, prefix="cache-"))
    cold_s = _timed(lambda: CachedImageEncoder(backend, cache_root, progress=False).encode_paths(paths))
    warm = CachedImageEncoder(backend, cache_root, progress=False)
    cached_s = _timed(lambda: warm.encode_paths(paths))
    assert warm.last_stats["computed"] == 0, warm.last_stats
    images = [load_rgb(p) for p in paths]
    model_s = _timed(lambda: backend.encode_images(images))
    return {"cold_s": cold_s, "cached_s": cached_s, "model_only_s": model_s}


def time_model(backend, paths: list[Path], scratch: Path, repeats: int) -> dict:
    """Median over repeats (after a warm-up batch) of the three timings, with images/s."""
    backend.encode_images([load_rgb(p) for p in paths[:backend.batch_size]])  # warm-up: first-call costs
    trials = [time_once(backend, paths, scratch) for _ in range(repeats)]
    result = {"model": backend.name, "batch_size": backend.batch_size, "repeats": repeats}
    for key in ("cold_s", "cached_s", "model_only_s"):
        values = [trial[key] for trial in trials]
        median = float(np.median(values))
        result[key] = round(median, 3)
        result[key.replace("_s", "_images_per_s")] = round(len(paths) / median, 1)
        result[key + "_all"] = [round(v, 3) for v in values]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=None, help="default: all 1027 real scenes (or 1027 synthetic)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timings are medians over this many runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-clip-") as tmp:
        scratch = Path(tmp)
        paths, image_source = benchmark_images(args.n_images, scratch)
        tiny = HFClipBackend(str(save_tiny_random_clip(scratch / "tiny")), device, args.batch_size)
        runs = [dict(time_model(tiny, paths, scratch, args.repeats), note="tiny random CLIP (32 px, 2 layers): pipeline overhead")]
        real_specs = loadable_clip_models(device=device)
        for spec in real_specs:
            runs.append(dict(time_model(make_clip_backend(spec, device, args.batch_size), paths, scratch, args.repeats), note=spec))
    report = {"device": device, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "load_average_1_5_15_min": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
              "n_images": len(paths), "images": image_source, "runs": runs,
              "real_clip_models": real_specs or "none loadable offline here (no ViT-B/32 figure measured)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

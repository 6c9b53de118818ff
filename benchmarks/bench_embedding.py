"""Benchmark: embedding throughput of the default text encoder (all-MiniLM-L6-v2) on CPU, cold and cached.

Texts: the real RSICD test captions (5465, from the mirror; synthetic captions when it is absent).
Cold = empty cache folder; cached = a second CachedEncoder over the same folder (the cache reopened).
Target: the cached run takes under 5 % of the cold one.

    python benchmarks/bench_embedding.py             # writes benchmarks/results/embedding.json
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from rsrt_utils.encoders import DEFAULT_TEXT_ENCODER, CachedEncoder, make_text_encoder
from rsrt_utils.paths import shared_mirror_dir

RESULTS = Path(__file__).resolve().parent / "results" / "embedding.json"
TARGET_RATIO = 0.05


def load_texts() -> tuple[list[str], str]:
    """RSICD test captions from the mirror, or 5465 seeded synthetic captions."""
    mirror = shared_mirror_dir()
    if mirror is not None and (mirror / "rsicd").is_dir():
        from rsrt_utils.data import load_dataset

        return load_dataset("rsicd", "test", root=mirror).captions, f"RSICD test captions from {mirror}"
    rng = random.Random(0)
    words = "many green trees buildings road river bridge parking lot cars houses farmland beach sea port ships".split()
    return [" ".join(rng.choices(words, k=rng.randint(6, 14))) + " ." for _ in range(5465)], "synthetic captions"


def timed_encode(encoder, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = encoder.encode(texts)
    return time.perf_counter() - start, vectors


def torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def main() -> None:
    load_before = round(os.getloadavg()[0], 2)  # other processes share the 2 cores: figures scale with it
    texts, origin = load_texts()
    start = time.perf_counter()
    model = make_text_encoder(DEFAULT_TEXT_ENCODER)
    load_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="rsrt-bench-cache-") as cache:
        cold_encoder = CachedEncoder(model, cache_root=Path(cache), progress=False)
        cold_s, cold = timed_encode(cold_encoder, texts)
        cold_stats = dict(cold_encoder.last_stats)
        cached_encoder = CachedEncoder(model, cache_root=Path(cache), progress=False)  # reopened cache
        cached_s, cached = timed_encode(cached_encoder, texts)
        cached_stats = dict(cached_encoder.last_stats)
    assert np.array_equal(cold, cached), "cached vectors differ from the computed ones"
    ratio = cached_s / cold_s
    result = {
        "benchmark": "embedding throughput, cold and cached",
        "encoder": model.name, "texts": origin, "n_texts": len(texts), "n_unique": cold_stats["unique"],
        "model_load_s": round(load_s, 2),
        "cold": {"seconds": round(cold_s, 2), "texts_per_s": round(len(texts) / cold_s, 1),
                 "unique_texts_per_s": round(cold_stats["unique"] / cold_s, 1), "computed": cold_stats["computed"]},
        "cached": {"seconds": round(cached_s, 4), "texts_per_s": round(len(texts) / cached_s, 1),
                   "computed": cached_stats["computed"]},
        "cached_over_cold": round(ratio, 5),
        "target": {"cached_over_cold_below": TARGET_RATIO, "met": ratio < TARGET_RATIO},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch_threads(),
                    "load_avg_1m_before": load_before, "load_avg_1m_after": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

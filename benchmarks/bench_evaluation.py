"""Benchmark: scoring and evaluation at RSICD test size (5465 captions x 1093 images x 5 variants, 384-d).

Times text_to_text_scores and evaluate_scores (n_boot=1000 and n_boot=1 — 0 is rejected — to separate the bootstrap's cost),
median of 5 repeats, and measures peak memory (tracemalloc for numpy allocations; max RSS of a fresh
subprocess). Targets: a full evaluation under 1 s and under 2 GB.

    python benchmarks/bench_evaluation.py            # writes benchmarks/results/evaluation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from rsrt_utils.metrics import evaluate_scores
from rsrt_utils.retrieval import VariantGallery, l2_normalise, text_to_text_scores

N_IMAGES, N_CAPS_PER_IMAGE, N_VARIANTS, DIM, N_CLASSES = 1093, 5, 5, 384, 31
REPEATS = 5
TARGET_SECONDS, TARGET_BYTES = 1.0, 2 * 1024**3
RESULTS = Path(__file__).resolve().parent / "results" / "evaluation.json"


def make_inputs(seed: int = 0) -> dict:
    """Seeded random unit vectors shaped like RSICD test, with separate 1-text image queries for i2t."""
    rng = np.random.default_rng(seed)
    n_caps = N_IMAGES * N_CAPS_PER_IMAGE
    return {
        "captions": l2_normalise(rng.normal(size=(n_caps, DIM))),
        "gallery": VariantGallery(l2_normalise(rng.normal(size=(N_IMAGES, N_VARIANTS, DIM))),
                                  np.ones((N_IMAGES, N_VARIANTS), dtype=bool)),
        "image_queries": VariantGallery(l2_normalise(rng.normal(size=(N_IMAGES, 1, DIM))), np.ones((N_IMAGES, 1), bool)),
        "index": np.repeat(np.arange(N_IMAGES), N_CAPS_PER_IMAGE),
        "classes": [f"class{c}" for c in rng.integers(0, N_CLASSES, size=N_IMAGES)],
    }


def full_evaluation(x: dict, n_boot: int = 1000, image_queries: bool = False) -> dict:
    """What evaluation.evaluate_text_to_text does after embedding: scores, metrics, the other tie policy."""
    t2i, i2t = text_to_text_scores(x["captions"], x["gallery"], x["image_queries"] if image_queries else None)
    result = evaluate_scores(t2i, i2t, x["index"], x["classes"], n_boot=n_boot)
    result["mR_ties_optimistic"] = evaluate_scores(t2i, i2t, x["index"], ties="optimistic", n_boot=1)["mR"]
    return result


def median_seconds(fn, repeats: int = REPEATS) -> dict:
    """Median and all wall times of `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 4), "all_s": [round(t, 4) for t in times]}


def time_stages(x: dict) -> dict:
    t2i, i2t = text_to_text_scores(x["captions"], x["gallery"])
    return {
        "text_to_text_scores": median_seconds(lambda: text_to_text_scores(x["captions"], x["gallery"])),
        "text_to_text_scores_separate_image_queries": median_seconds(
            lambda: text_to_text_scores(x["captions"], x["gallery"], x["image_queries"])),
        "evaluate_scores_n_boot_1000": median_seconds(lambda: evaluate_scores(t2i, i2t, x["index"], x["classes"], n_boot=1000)),
        "evaluate_scores_n_boot_1": median_seconds(lambda: evaluate_scores(t2i, i2t, x["index"], x["classes"], n_boot=1)),
        "evaluate_scores_n_boot_1_no_classes": median_seconds(lambda: evaluate_scores(t2i, i2t, x["index"], n_boot=1)),
        "full_evaluation_n_boot_1000": median_seconds(lambda: full_evaluation(x)),
        "full_evaluation_separate_image_queries": median_seconds(lambda: full_evaluation(x, image_queries=True)),
    }


def tracemalloc_peak(x: dict) -> int:
    """Peak bytes traced (numpy reports its buffers to tracemalloc) during one full evaluation."""
    tracemalloc.start()
    full_evaluation(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def peak_rss_bytes() -> int:
    """Peak resident memory of this process: VmHWM (reset at exec, unlike ru_maxrss, which a child
    inherits from its forked parent), falling back to ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child() -> None:
    """Run in a fresh process: peak RSS after building the inputs and after one full evaluation."""
    x = make_inputs()
    before = peak_rss_bytes()
    full_evaluation(x)
    print(json.dumps({"max_rss_bytes_before": before, "max_rss_bytes_after": peak_rss_bytes()}))


def rss_in_subprocess() -> dict:
    out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["max_rss_delta_bytes"] = info["max_rss_bytes_after"] - info["max_rss_bytes_before"]
    return info


def main() -> None:
    load_before = round(os.getloadavg()[0], 2)  # other processes share the 2 cores: figures scale with it
    x = make_inputs()
    stages = time_stages(x)
    peak = tracemalloc_peak(x)
    rss = rss_in_subprocess()
    total = stages["full_evaluation_n_boot_1000"]["median_s"]
    result = {
        "benchmark": "evaluation at RSICD test size",
        "shape": {"captions": N_IMAGES * N_CAPS_PER_IMAGE, "images": N_IMAGES, "variants": N_VARIANTS, "dim": DIM},
        "repeats": REPEATS, "timings": stages,
        "memory": {"tracemalloc_peak_bytes": peak, **rss},
        "targets": {"seconds": TARGET_SECONDS, "bytes": TARGET_BYTES,
                    "time_met": total < TARGET_SECONDS,
                    "memory_met": max(peak, rss["max_rss_bytes_after"]) < TARGET_BYTES},
        "machine": {"cpus": os.cpu_count(),
                    "load_avg_1m_before": load_before, "load_avg_1m_after": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(),
                    "numpy": np.__version__},
        "reference_mR_random": full_evaluation(x, n_boot=10)["mR"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("timings", "memory", "targets")}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    if parser.parse_args().child:
        child()
    else:
        main()

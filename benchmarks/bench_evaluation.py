"""Benchmark: scoring and evaluation at RSICD test size (5465 captions x 1093 images x 5 variants, 384-d).

Times the shared scoring path (rsrt_utils.scoring: score_texts on texts whose vectors are precomputed, evaluate)
and its parts (text_to_text_scores on vectors; evaluate_scores with n_boot=1000 and n_boot=1 — 0 is rejected — to
separate the bootstrap's cost), median of 5 repeats, and measures peak memory (tracemalloc for numpy allocations;
max RSS of a fresh subprocess). Targets: a full evaluation (score_texts + evaluate) under 1 s and under 2 GB.

    python benchmarks/bench_evaluation.py [--out FILE]   # writes benchmarks/results/evaluation.json
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
from rsrt_utils.retrieval import text_to_text_scores
from rsrt_utils.scoring import PrecomputedEncoder, ScoringSpec, embed_grouped_texts, evaluate, score_texts
from rsrt_utils.vectors import l2_normalise

N_IMAGES, N_CAPS_PER_IMAGE, N_VARIANTS, DIM, N_CLASSES = 1093, 5, 5, 384, 31
REPEATS = 5
TARGET_SECONDS, TARGET_BYTES = 1.0, 2 * 1024**3
RESULTS = Path(__file__).resolve().parent / "results" / "evaluation.json"
SPEC = ScoringSpec(n_variants=N_VARIANTS)  # the study's defaults: caption field, max pooling, random ties, 1000 resamples
BACKEND_SPEC = SPEC.replace(image_query="backend")  # image->text through separate 1-text image queries


class RandomUnitVectors:
    """A stand-in text encoder: seeded random unit vectors, one per text in call order (no model to time)."""

    name = "random-unit-vectors"

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def encode(self, texts) -> np.ndarray:
        return l2_normalise(self.rng.normal(size=(len(texts), DIM)))


def make_inputs(seed: int = 0) -> dict:
    """Texts shaped like RSICD test (with separate 1-text image queries for i2t) behind seeded random unit vectors,
    and the same vectors as arrays for the vector-level stages."""
    rng = np.random.default_rng(seed)
    captions = [f"caption {q}" for q in range(N_IMAGES * N_CAPS_PER_IMAGE)]
    variants = [[f"image {i} variant {v}" for v in range(N_VARIANTS)] for i in range(N_IMAGES)]
    queries = [[f"image {i} query"] for i in range(N_IMAGES)]
    encoder = PrecomputedEncoder(RandomUnitVectors(seed), captions + [t for g in variants + queries for t in g])
    return {
        "texts": {"captions": captions, "variants": variants, "image_queries": queries}, "encoder": encoder,
        "captions": encoder.encode(captions), "gallery": embed_grouped_texts(variants, encoder),
        "image_queries": embed_grouped_texts(queries, encoder),
        "index": np.repeat(np.arange(N_IMAGES), N_CAPS_PER_IMAGE),
        "classes": [f"class{c}" for c in rng.integers(0, N_CLASSES, size=N_IMAGES)],
    }


def shared_scores(x: dict, image_queries: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """score_texts on the benchmark's texts (vectors precomputed): the study's scoring minus the text encoder."""
    t = x["texts"]
    if image_queries:
        return score_texts(t["variants"], t["captions"], x["encoder"], BACKEND_SPEC, t["image_queries"])
    return score_texts(t["variants"], t["captions"], x["encoder"], SPEC)


def full_evaluation(x: dict, n_boot: int = 1000, image_queries: bool = False) -> dict:
    """What the study does after embedding: score_texts, then evaluate (recalls, intervals, per class, other ties)."""
    t2i, i2t = shared_scores(x, image_queries)
    return evaluate(t2i, i2t, x["index"], SPEC.replace(n_boot=n_boot), x["classes"])


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
    """Median wall time of the shared path (score_texts, evaluate, both together) and of its vector-level parts."""
    t2i, i2t = text_to_text_scores(x["captions"], x["gallery"])
    return {
        "text_to_text_scores": median_seconds(lambda: text_to_text_scores(x["captions"], x["gallery"])),
        "text_to_text_scores_separate_image_queries": median_seconds(
            lambda: text_to_text_scores(x["captions"], x["gallery"], x["image_queries"])),
        "score_texts_precomputed_vectors": median_seconds(lambda: shared_scores(x)),
        "score_texts_separate_image_queries": median_seconds(lambda: shared_scores(x, image_queries=True)),
        "evaluate_n_boot_1000": median_seconds(lambda: evaluate(t2i, i2t, x["index"], SPEC, x["classes"])),
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


def main(out: Path = RESULTS) -> None:
    load_before = round(os.getloadavg()[0], 2)  # other processes share the 2 cores: figures scale with it
    x = make_inputs()
    stages = time_stages(x)
    peak = tracemalloc_peak(x)
    rss = rss_in_subprocess()
    total = stages["full_evaluation_n_boot_1000"]["median_s"]
    result = {
        "benchmark": "evaluation at RSICD test size",
        "shape": {"captions": N_IMAGES * N_CAPS_PER_IMAGE, "images": N_IMAGES, "variants": N_VARIANTS, "dim": DIM},
        "full_evaluation": "scoring.score_texts (vectors precomputed) + scoring.evaluate (n_boot 1000, per class, "
                           "mR under the two other tie policies)",
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("timings", "memory", "targets")}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (default: the committed one)")
    args = parser.parse_args()
    if args.child:
        child()
    else:
        main(args.out)

"""Benchmark: a collection of the whole AID-150 folder (10000 images) with the offline default, built and searched.

Offline default = the neighbour captioner on the RSICD train bank (uses in-domain train captions; not zero-shot),
all-MiniLM-L6-v2, the collection's VectorIndex. Measured: a cold build (empty cache folder: bank and gallery image
features, captions, embeddings and index all computed), a second build with no change, text-query latency (median /
p99 over RSICD test captions used as queries, one at a time, encoding included) and image-query latency (the first
query includes loading the captioner; then new images: horizontally flipped AID-150 images, so none is cached).

    RSRT_DATA_DIR=/tmp/x/data RSRT_MIRROR_DIR=../shared/data python benchmarks/bench_index_build.py --scratch /tmp/x/bench
    ... --scratch /tmp/x/bench --reuse-cache   # the same cache again: index rebuilt with the current code, queries re-timed

The data store (rsicd + aid150, for the bank) is filled first by `ensure_store`, timed apart from the build.
Caveat recorded in the results: the bank's RSICD train images are themselves AID-150 images, so those gallery
images are described from their own train captions. Writes benchmarks/results/index_aid150.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

RESULT_PATH = HERE / "results" / "index_aid150.json"
NAME = "aid150"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=None, help="default: <mirror>/aid150/images")
    parser.add_argument("--scratch", type=Path, default=None, help="cache + collections folder, emptied first "
                        "(default: a new temporary folder)")
    parser.add_argument("--queries", type=int, default=200, help="text queries timed one at a time")
    parser.add_argument("--image-queries", type=int, default=10, help="warm image queries after the first")
    parser.add_argument("--query-seed", type=int, default=1, help="which AID-150 images are flipped into query images "
                        "(use another seed with --reuse-cache: a query image described before is answered from cache)")
    parser.add_argument("--reuse-cache", action="store_true", help="keep the scratch cache and rebuild the index with "
                        "the current code (--rebuild: captions and embeddings come from the cache); the cold build of "
                        "an earlier run in --out is kept, marked with the index kind it had")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def latency_stats(seconds: list[float]) -> dict:
    ms = [1000 * s for s in seconds]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2), "p99_ms": round(percentile(ms, 99), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "max_ms": round(max(ms), 2)}


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def text_queries(n: int) -> list[str]:
    """n distinct RSICD test captions (seeded sample): realistic queries, none written for this gallery."""
    import numpy as np

    from rsrt_utils.data import load_dataset

    captions = sorted(set(load_dataset("rsicd", "test").captions))
    picked = np.random.default_rng(0).choice(len(captions), size=min(n, len(captions)), replace=False)
    return [captions[i] for i in picked]


def flipped_images(images: Path, folder: Path, n: int, seed: int) -> list[tuple[Path, str]]:
    """n AID-150 images mirrored left-right (new bytes, new features), with the id of each original."""
    import numpy as np
    from PIL import Image, ImageOps

    originals = sorted(p for p in images.rglob("*.jpg"))
    picked = np.random.default_rng(seed).choice(len(originals), size=n, replace=False)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in picked:
        source = originals[i]
        target = folder / f"flipped_{source.name}"
        with Image.open(source) as image:
            ImageOps.mirror(image.convert("RGB")).save(target, quality=95)
        out.append((target, source.relative_to(images).as_posix()))
    return out


def bank_overlap(manifest: dict) -> int:
    """How many gallery files are byte-identical to an RSICD train (bank) image."""
    from rsrt_utils.data import load_dataset
    from rsrt_utils.fileutil import file_sha256

    bank = {file_sha256(im.image_path) for im in load_dataset("rsicd", "train").with_images().images}
    return sum(f["sha256"] in bank for f in manifest["files"])


def build_phase(images: Path, progress: bool, rebuild: bool = False) -> dict:
    from rsrt_utils.search.build import build_collection

    summary, seconds = timed(build_collection, images, NAME, progress=progress, rebuild=rebuild)
    print(summary.text())
    return {"wall_s": round(seconds, 1), "timings_s": summary.timings, "captioned": summary.captioned,
            "n_indexed": summary.n_indexed, "index_kind": summary.index_kind, "index_reused": summary.index_reused,
            "failed": len(summary.failed)}


def first_builds(args, images: Path) -> dict:
    """The cold build (empty cache), or with --reuse-cache a warm --rebuild plus the earlier run's cold build."""
    if not args.reuse_cache:
        return {"build_cold": build_phase(images, not args.quiet)}
    import json

    earlier = json.loads(args.out.read_text()) if args.out.is_file() else {}
    cold = earlier.get("build_cold")
    if cold is not None:
        cold = {"measured_at": earlier.get("measured_at"), "index_kind": earlier.get("index", {}).get("kind"), **cold}
    return {"build_cold": cold, "build_warm_rebuild": build_phase(images, not args.quiet, rebuild=True)}


def query_phase(collection, queries: list[str], flipped: list[tuple[Path, str]]) -> dict:
    first_text, first_text_s = timed(collection.search_text, queries[0], 10)  # loads the text encoder
    text_s = [timed(collection.search_text, q, 10)[1] for q in queries]
    first_image, first_image_s = timed(collection.search_image, flipped[0][0], 10)  # loads the captioner and its bank
    warm = [timed(collection.search_image, path, 10) for path, _ in flipped[1:]]
    found = [original in [h.image_id for h in hits] for (hits, _), (_, original) in zip([(first_image, 0), *warm], flipped)]
    return {"text": {"first_query_s": round(first_text_s, 2), **latency_stats(text_s),
                     "example": {"query": queries[0], "top": [(h.image_id, round(h.score, 4)) for h in first_text[:3]]}},
            "image": {"first_query_s": round(first_image_s, 2), "warm": latency_stats([s for _, s in warm]),
                      "original_in_top10": f"{sum(found)} of {len(found)}"}}


def one_thread_latency(collection, queries: list[str]) -> dict:
    """Text-query latency again with torch on one intra-op thread, as a query server would set it: on a busy machine
    two threads wait on each other for a one-sentence batch."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return latency_stats([timed(collection.search_text, q, 10)[1] for q in queries])
    finally:
        torch.set_num_threads(before)


def index_recall(collection, queries: list[str]) -> dict:
    """The collection's index against exact max-pooled search on the same vectors: recall@10 and top-1 agreement."""
    import numpy as np

    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.search.index import exact_search

    encoder = CachedEncoder(make_text_encoder(collection.manifest["encoder"]["spec"]), progress=False)
    vectors = encoder.encode([t for item in collection.items for t in item.descriptions])
    owners = np.asarray([i for i, item in enumerate(collection.items) for _ in item.descriptions])
    q = encoder.encode(queries)
    found, exact = collection.index.search(q, 10)[1], exact_search(vectors, owners, q, 10)[1]
    return {"kind": collection.index.kind, "n_queries": len(queries),
            "recall_at_10": round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])), 4),
            "top1_agreement": round(float(np.mean(found[:, 0] == exact[:, 0])), 4)}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    args = parse_args()
    from rsrt_utils.data.store import ensure_store
    from rsrt_utils.fileutil import write_json_atomic
    from rsrt_utils.paths import shared_mirror_dir

    images = args.images or (shared_mirror_dir() or Path("/nonexistent")) / "aid150" / "images"
    if not images.is_dir():
        raise SystemExit(f"AID-150 images not found at {images}; pass --images DIR or set RSRT_MIRROR_DIR")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="rsrt-bench-index-"))
    if not args.reuse_cache:
        shutil.rmtree(scratch / "cache", ignore_errors=True)
    os.environ["RSRT_CACHE_DIR"], os.environ["RSRT_INDEX_DIR"] = str(scratch / "cache"), str(scratch / "cache" / "indexes")
    _, store_s = timed(ensure_store, "rsicd")
    builds = first_builds(args, images)
    again = build_phase(images, not args.quiet)

    from rsrt_utils.search.collection import Collection

    collection, open_s = timed(Collection.open, NAME)
    flipped = flipped_images(images, scratch / f"queries-{args.query_seed}", args.image_queries + 1, args.query_seed)
    texts = text_queries(args.queries)
    queries = query_phase(collection, texts, flipped)
    queries["text_one_torch_thread"] = one_thread_latency(collection, texts)
    result = {
        "what": "collection of the whole AID-150 folder with the offline default: neighbour captioner on the RSICD train "
                "bank (uses in-domain train captions; not zero-shot), all-MiniLM-L6-v2, the collection's VectorIndex",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()},
        "images_dir": str(images), "n_images": collection.n_images, "captioner": collection.captioner,
        "encoder": collection.encoder, "index": collection.manifest["index"],
        "collection_bytes": folder_bytes(collection.folder), "data_store_import_s": round(store_s, 1),
        **builds, "build_no_change": again, "open_s": round(open_s, 2), "queries": queries,
        "index_vs_exact": index_recall(collection, texts),
        "caveat": {"gallery_images_identical_to_a_bank_image": bank_overlap(collection.manifest),
                   "note": "these are described from their own RSICD train captions (their nearest bank image is "
                           "themselves); the figures here are speed, not retrieval quality"},
    }
    write_json_atomic(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

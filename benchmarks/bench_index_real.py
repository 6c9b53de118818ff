"""HNSW against exact search on a REAL collection's description vectors (not synthetic ones).

Usage: python benchmarks/bench_index_real.py --collection aid150 [--queries 500] [--out FILE]
Queries are RSITMD TRAIN captions (no test split is looked at to choose the index setting, and none of them is one of
the RSICD bank's captions), embedded with the collection's encoder; recall@10 is the share
of the exact top-10 images (max-pooled over their variants) that the HNSW index also returns, for several efSearch.
Writes benchmarks/results/index_real.json. Near-duplicate descriptions (caption transfer repeats train captions
across images) make near-ties common, which lowers recall against exact search more than on synthetic vectors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "index_real.json"


def _latencies(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, list[float]]:
    items, times = [], []
    for row in queries:
        start = time.perf_counter()
        items.append(index.search(row[None], k)[1][0])
        times.append(time.perf_counter() - start)
    return np.array(items), times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="aid150")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef", default="128,256,512,1024")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    import torch

    from rsrt_utils.data import load_dataset
    from rsrt_utils.data.store import ensure_store
    from rsrt_utils.encoders import make_text_encoder
    from rsrt_utils.search.collection import Collection
    from rsrt_utils.search.index import VectorIndex, exact_search

    torch.set_num_threads(1)
    collection = Collection.open(args.collection)
    raw = collection.index._index
    vectors = raw.storage.reconstruct_n(0, raw.ntotal) if hasattr(raw, "storage") else raw.reconstruct_n(0, raw.ntotal)
    owners = collection.index._owners
    source = load_dataset("rsitmd", "train", root=ensure_store("rsitmd"))
    picked = np.random.default_rng(0).choice(len(source.captions), args.queries, replace=False)
    queries = make_text_encoder(collection.encoder.removeprefix("st:")).encode([source.captions[i] for i in picked])
    _, exact_items = exact_search(vectors, owners, queries, 10)
    exact = VectorIndex.build(vectors, owners, kind="exact")
    _, times = _latencies(exact, queries[:200])
    rows = [{"index": "exact", "median_ms": round(float(np.median(times)) * 1e3, 2),
             "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 2), "recall@10": 1.0}]
    for ef in (int(e) for e in args.ef.split(",")):
        index = VectorIndex.build(vectors, owners, kind="hnsw", params={"efSearch": ef})
        items, times = _latencies(index, queries)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(items, exact_items)]))
        rows.append({"index": f"hnsw efSearch {ef}", "median_ms": round(float(np.median(times)) * 1e3, 2),
                     "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 2), "recall@10": round(recall, 3)})
    result = {"collection": args.collection, "n_vectors": int(len(vectors)), "n_images": collection.n_images,
              "encoder": collection.encoder, "queries": f"{args.queries} RSITMD train captions (seed 0)", "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"{row['index']:22s} median {row['median_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  recall@10 {row['recall@10']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

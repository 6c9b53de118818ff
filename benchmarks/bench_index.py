"""Benchmark: the search tool's vector index (rsrt_utils.search.index) at 10^4..10^6 description vectors.

Synthetic 384-d unit vectors shaped like sentence embeddings (rsrt_utils.search.synthetic_vectors: five variants per image,
topic clusters; queries are fresh variants of gallery images, never rows), compared with real MiniLM statistics.
For exact search (IndexFlatIP) and every approximate setting tried (HNSW builds x efSearch; IVF-PQ with and without
exact re-ranking x nprobe): build time, resident-memory delta, saved index bytes, save/load time, single-query latency
(median / p99 over one-at-a-time queries, max pooling included) and recall@10 of the pooled ITEMS against exact search.
Every run is appended to the result file (all settings ever tried stay listed); the summary is recomputed from all.

    python benchmarks/bench_index.py                                  # 10^4, 10^5, 10^6, the chosen setting (~10 min)
    python benchmarks/bench_index.py --sizes 1e4,1e5 --hnsw 16:40,32:80 --ef 50,96,128
    python benchmarks/bench_index.py --sizes 1e6 --hnsw 32:80 --ivfpq 1024:48   # one build each at the top size
    python benchmarks/bench_index.py --sizes '' --exact-probes 2e4,5e4  # exact-only latency at more sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np

from rsrt_utils.search import index as vindex
from rsrt_utils.search.index import VectorIndex, exact_search
from rsrt_utils.search.synthetic_vectors import clustered_embeddings, similarity_profile

RESULTS = Path(__file__).resolve().parent / "results" / "index.json"
TARGET = {"n_vectors": 1_000_000, "median_ms_below": 5.0, "recall_at_10_at_least": 0.95}
K = 10
# Real all-MiniLM-L6-v2 statistics, measured here on the published LLaVA descriptions of 1500 RSICD test images
# (benchmarks/bench_archive_embedding.py writes them to results/archive_embedding.json).
REAL_PROFILE_FILE = RESULTS.parent / "archive_embedding.json"


def parse_sizes(text: str) -> list[int]:
    """'1e4,1e5' -> [10000, 100000]; each size a whole number >= 10."""
    sizes = []
    for part in filter(None, text.split(",")):  # '' = no size (e.g. only --exact-probes)
        value = float(part)
        if value < 10 or value != int(value):
            raise argparse.ArgumentTypeError(f"size {part!r} must be a whole number of vectors >= 10")
        sizes.append(int(value))
    return sizes


def parse_pairs(text: str) -> list[tuple[int, int]]:
    """'16:40,32:80' -> [(16, 40), (32, 80)]; '' -> []."""
    try:
        return [tuple(int(v) for v in part.split(":")) for part in text.split(",") if part]  # type: ignore[misc]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give pairs like 16:40,32:80") from None


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def rss_bytes() -> int:
    """Resident memory of this process now (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def timed_build(build) -> tuple[object, dict]:
    """Run build(); its seconds and resident-memory delta."""
    before, start = rss_bytes(), time.perf_counter()
    built = build()
    return built, {"build_s": round(time.perf_counter() - start, 2), "rss_delta_bytes": rss_bytes() - before}


def save_load(index: VectorIndex, scratch: Path) -> dict:
    """Seconds to save and load, saved bytes, and whether the loaded index answers identically."""
    folder = scratch / "saved"
    start = time.perf_counter()
    index.save(folder)
    saved_s = time.perf_counter() - start
    size = sum(f.stat().st_size for f in folder.iterdir())
    start = time.perf_counter()
    VectorIndex.load(folder)
    loaded_s = time.perf_counter() - start
    shutil.rmtree(folder)
    return {"index_bytes": size, "save_s": round(saved_s, 2), "load_s": round(loaded_s, 2)}


def single_queries(index: VectorIndex, queries: np.ndarray) -> tuple[dict, np.ndarray]:
    """Latency of one query at a time (max pooling included): median, p99, mean in ms; and the items found."""
    items = np.empty((len(queries), K), dtype=np.int64)
    times = np.empty(len(queries))
    for i, query in enumerate(queries):
        start = time.perf_counter()
        _, found = index.search(query, K)
        times[i] = time.perf_counter() - start
        items[i] = found[0]
    ms = times * 1000
    return {"median_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3), "n_queries": len(queries)}, items


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> dict:
    """Mean and 5th percentile over queries of |found top-k items & exact top-k items| / k."""
    per_query = np.array([len(set(f) & set(t) - {-1}) / K for f, t in zip(found, truth)])
    return {"recall_at_10": round(float(per_query.mean()), 4), "recall_at_10_p5": round(float(np.percentile(per_query, 5)), 2)}


def measure_exact(data, scratch: Path, n_latency: int) -> tuple[dict, np.ndarray]:
    """Exact index: build, memory, bytes, batched ground truth, single-query latency, check against numpy."""
    index, record = timed_build(lambda: VectorIndex.build(data.vectors, data.owners, kind="exact"))
    start = time.perf_counter()
    scores, truth = index.search(data.queries, K)
    record["batch_search_s"] = round(time.perf_counter() - start, 2)
    record["latency"], _ = single_queries(index, data.queries[:n_latency])
    ref_scores, ref_items = exact_search(data.vectors, data.owners, data.queries[:50], K)
    record["numpy_reference_check"] = {"queries": 50, "items_equal": float((ref_items == truth[:50]).mean()),
                                       "max_score_diff": float(np.abs(ref_scores - scores[:50]).max())}
    record.update(save_load(index, scratch))
    record["own_image_in_top10"] = round(float(np.mean([q in t for q, t in zip(data.query_images, truth)])), 3)
    return record, truth


def measure_hnsw(data, truth, scratch: Path, m: int, ef_construction: int, ef_values: list[int]) -> dict:
    """One HNSW build and an efSearch sweep (efSearch below k x rows-per-item acts as that value)."""
    params = {"M": m, "efConstruction": ef_construction, "efSearch": max(ef_values)}
    index, record = timed_build(lambda: VectorIndex.build(data.vectors, data.owners, kind="hnsw", params=params))
    record.update({"kind": "hnsw", "M": m, "efConstruction": ef_construction})
    record.update(save_load(index, scratch))
    record["sweep"] = []
    for ef in ef_values:
        index.set_ef_search(ef)
        latency, found = single_queries(index, data.queries)
        record["sweep"].append({"efSearch": ef, **latency, **recall_at_k(found, truth)})
        print(f"    hnsw M={m} efC={ef_construction} efSearch={ef}: {latency['median_ms']} ms, "
              f"recall@10 {record['sweep'][-1]['recall_at_10']}", flush=True)
    return record


def build_ivfpq(vectors: np.ndarray, nlist: int, m: int) -> faiss.Index:
    """IVF-PQ (8-bit codes) trained on a sample, wrapped in exact re-ranking over the raw vectors."""
    dim = vectors.shape[1]
    base = faiss.index_factory(dim, f"IVF{nlist},PQ{m}", faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).choice(len(vectors), size=min(len(vectors), 64 * nlist), replace=False)]
    base.train(sample)
    refined = faiss.IndexRefineFlat(base)
    refined.add(vectors)
    return refined


def saved_bytes(index: faiss.Index, scratch: Path) -> int:
    path = scratch / "ivfpq.faiss"
    faiss.write_index(index, str(path))
    size = path.stat().st_size
    path.unlink()
    return size


def measure_ivfpq(data, truth, scratch: Path, nlist: int, m: int, nprobes: list[int], k_factors: list[int]) -> dict:
    """One IVF-PQ build; nprobe x re-ranking factor sweep (k_factor 0 = PQ scores alone, no re-ranking)."""
    if len(data.vectors) < 39 * nlist:
        return {"kind": "ivfpq", "nlist": nlist, "m": m, "skipped": f"{len(data.vectors)} vectors < 39 x nlist to train"}
    refined, record = timed_build(lambda: build_ivfpq(data.vectors, nlist, m))  # the rows are unit vectors already
    base = faiss.downcast_index(refined.base_index)
    record.update({"kind": "ivfpq", "nlist": nlist, "m": m, "code_bytes": int(base.code_size * base.ntotal),
                   "index_bytes": saved_bytes(base, scratch), "index_bytes_with_rerank": saved_bytes(refined, scratch),
                   "sweep": []})
    for nprobe in nprobes:
        base.nprobe = nprobe
        for k_factor in k_factors:
            refined.k_factor = max(1, k_factor)
            index = VectorIndex(refined if k_factor else base, data.owners, "ivfpq", {})
            latency, found = single_queries(index, data.queries)
            record["sweep"].append({"nprobe": nprobe, "rerank_k_factor": k_factor, **latency, **recall_at_k(found, truth)})
            print(f"    ivfpq nlist={nlist} m={m} nprobe={nprobe} rerank={k_factor}: {latency['median_ms']} ms, "
                  f"recall@10 {record['sweep'][-1]['recall_at_10']}", flush=True)
    return record


def measure_size(n_vectors: int, args, scratch: Path) -> dict:
    """Every measurement at one collection size."""
    start = time.perf_counter()
    data = clustered_embeddings(n_vectors // args.variants, args.variants, args.dim, args.queries, seed=args.seed)
    run = {"n_vectors": len(data.vectors), "n_images": int(data.owners.max()) + 1, "dim": args.dim,
           "variants_per_image": args.variants, "n_queries": args.queries, "generate_s": round(time.perf_counter() - start, 1),
           "profile": similarity_profile(data.vectors, data.owners)}
    print(f"{run['n_vectors']} vectors ({run['n_images']} images): generated in {run['generate_s']} s", flush=True)
    run["exact"], truth = measure_exact(data, scratch, args.exact_queries or args.queries)
    print(f"    exact: {run['exact']['latency']['median_ms']} ms median", flush=True)
    run["approximate"] = [measure_hnsw(data, truth, scratch, m, efc, args.ef) for m, efc in args.hnsw]
    run["approximate"] += [measure_ivfpq(data, truth, scratch, nl, m, args.nprobe, args.rerank) for nl, m in args.ivfpq]
    run["peak_rss_bytes"] = peak_rss_bytes()
    return run


def exact_probe(n_vectors: int, args) -> dict:
    """Exact search alone at one size: single-query latency (where exact stops being fast enough)."""
    data = clustered_embeddings(n_vectors // args.variants, args.variants, args.dim, args.queries, seed=args.seed)
    index, record = timed_build(lambda: VectorIndex.build(data.vectors, data.owners, kind="exact"))
    record["latency"], _ = single_queries(index, data.queries)
    print(f"  exact probe {len(data.vectors)}: {record['latency']['median_ms']} ms median", flush=True)
    return {"n_vectors": len(data.vectors), **record}


def best_meeting_target(configs: list[dict]) -> dict | None:
    """The fastest approximate setting with recall@10 >= the target's bar, over every build given."""
    options = [{**{k: v for k, v in cfg.items() if k != "sweep"}, **point}
               for cfg in configs for point in cfg.get("sweep", [])
               if point["recall_at_10"] >= TARGET["recall_at_10_at_least"]]
    return min(options, key=lambda o: o["median_ms"]) if options else None


def chosen_setting(configs: list[dict]) -> dict | None:
    """The latest measurement of the index's own constants (HNSW_M / HNSW_EF_CONSTRUCTION / HNSW_EF_SEARCH)."""
    points = [{**{k: v for k, v in cfg.items() if k != "sweep"}, **point} for cfg in configs
              if cfg.get("kind") == "hnsw" and (cfg["M"], cfg["efConstruction"]) == (vindex.HNSW_M, vindex.HNSW_EF_CONSTRUCTION)
              for point in cfg["sweep"] if point["efSearch"] == vindex.HNSW_EF_SEARCH]
    return points[-1] if points else None


def _runs_by_size(results: dict) -> dict[int, list[tuple[dict, dict]]]:
    """n_vectors -> [(run entry, size record)] in the order they were run."""
    grouped: dict[int, list[tuple[dict, dict]]] = {}
    for entry in results["runs"]:
        for run in entry.get("sizes", []):
            grouped.setdefault(run["n_vectors"], []).append((entry, run))
    return grouped


def _exact_timings(results: dict) -> list[dict]:
    """Every exact single-query median measured, with the FAISS threads and load it was measured under."""
    rows = []
    for entry in results["runs"]:
        used = entry["machine"].get("single_query_threads", entry["machine"]["faiss_threads"])  # older runs: one setting
        context = {"threads": used, "load_avg_1m_before": entry["machine"]["load_avg_1m_before"]}
        records = [(r["n_vectors"], r["exact"]) for r in entry.get("sizes", [])] + \
                  [(p["n_vectors"], p) for p in entry.get("exact_probes", [])]
        rows += [{"n_vectors": n, **context, "median_ms": rec["latency"]["median_ms"],
                  "n_queries": rec["latency"]["n_queries"]} for n, rec in records]
    return sorted(rows, key=lambda r: (r["threads"], r["n_vectors"]))


def summarise(results: dict) -> dict:
    """Per size: exact (most queries timed) vs the best approximate build of ALL runs; where exact stops being fast."""
    by_size = {}
    for n, pairs in sorted(_runs_by_size(results).items()):
        # the exact record with the most timed queries, the latest of those (it runs the current search code)
        exact = max(enumerate(pairs), key=lambda ip: (ip[1][1]["exact"]["latency"]["n_queries"], ip[0]))[1][1]["exact"]
        configs = [{**cfg, "threads": entry["machine"]["faiss_threads"]} for entry, run in pairs for cfg in run["approximate"]]
        best = best_meeting_target(configs)
        exact_ms = exact["latency"]["median_ms"]
        chosen = chosen_setting(configs)
        by_size[str(n)] = {"exact_median_ms": exact_ms, "exact_p99_ms": exact["latency"]["p99_ms"],
                           "exact_index_bytes": exact["index_bytes"], "best_approximate": best,
                           "speedup_exact_over_best": round(exact_ms / best["median_ms"], 1) if best else None,
                           "chosen": chosen,
                           "speedup_exact_over_chosen": round(exact_ms / chosen["median_ms"], 1) if chosen else None}
    timings = _exact_timings(results)
    fast_up_to = {}
    for row in timings:
        if row["median_ms"] < TARGET["median_ms_below"]:
            fast_up_to[str(row["threads"])] = max(fast_up_to.get(str(row["threads"]), 0), row["n_vectors"])
    top = by_size.get(str(TARGET["n_vectors"]), {}).get("chosen")
    return {"by_size": by_size, "exact_timings": timings, "exact_fast_enough_up_to_by_threads": fast_up_to,
            "target": {**TARGET, "met": bool(top and top["median_ms"] < TARGET["median_ms_below"]), "setting": top}}


def machine(load_before: float) -> dict:
    return {"cpus": os.cpu_count(), "faiss_threads": vindex.default_threads(),
            "single_query_threads": 1, "single_thread_queries_up_to": vindex.SINGLE_THREAD_QUERIES,
            "faiss": faiss.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "load_avg_1m_before": load_before, "load_avg_1m_after": round(os.getloadavg()[0], 2)}


def _name(setting: dict | None) -> str:
    if not setting:
        return "none"
    if setting["kind"] == "hnsw":
        return f"hnsw M={setting['M']} efC={setting['efConstruction']} ef={setting['efSearch']}"
    return f"ivfpq nlist={setting['nlist']} nprobe={setting['nprobe']} rerank={setting['rerank_k_factor']}"


def print_table(summary: dict) -> None:
    """Per size: exact, the index's chosen HNSW setting, and the fastest setting meeting the recall bar."""
    print(f"\n{'vectors':>9} | {'exact ms med/p99':>17} | {'chosen HNSW ms med/p99':>22} | {'recall@10':>9} | "
          f"{'build s':>7} | {'index MB':>8} | {'exact/chosen':>12} | fastest with recall@10 >= 0.95")
    for n, row in summary["by_size"].items():
        chosen, best = row["chosen"], row["best_approximate"]
        cells = ([f"{chosen['median_ms']} / {chosen['p99_ms']}", chosen["recall_at_10"], chosen["build_s"],
                  round(chosen["index_bytes"] / 1e6)] if chosen else ["not measured", "-", "-", "-"])
        fastest = f"{_name(best)}: {best['median_ms']} ms, {best['recall_at_10']}" if best else "none"
        print(f"{int(n):>9} | {row['exact_median_ms']:>7} / {row['exact_p99_ms']:<7} | {cells[0]:>22} | {cells[1]:>9} | "
              f"{cells[2]:>7} | {cells[3]:>8} | {row['speedup_exact_over_chosen'] or '-':>12} | {fastest}")
    print(f"chosen: {_name(summary['target']['setting'])}; exact search under {TARGET['median_ms_below']} ms median up to "
          f"(single-query threads: vectors) {summary['exact_fast_enough_up_to_by_threads']}; "
          f"target at 10^6: {'met' if summary['target']['met'] else 'NOT met'}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000, 1_000_000], help="vectors, e.g. 1e4,1e5,1e6")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"result file (runs are appended; default {RESULTS})")
    parser.add_argument("--fresh", action="store_true", help="start a new result file instead of appending")
    parser.add_argument("--queries", type=int, default=1000, help="single queries per measurement (default 1000)")
    parser.add_argument("--exact-queries", type=int, default=200, help="single exact queries timed (default 200)")
    parser.add_argument("--hnsw", type=parse_pairs, default=[(vindex.HNSW_M, vindex.HNSW_EF_CONSTRUCTION)],
                        help="HNSW builds M:efConstruction,... (default: the index's chosen setting)")
    parser.add_argument("--ef", type=parse_ints, default=[50, 96, 128, 192, 256], help="efSearch values to sweep")
    parser.add_argument("--ivfpq", type=parse_pairs, default=[], help="IVF-PQ builds nlist:m,... (default none; e.g. 1024:48)")
    parser.add_argument("--nprobe", type=parse_ints, default=[16, 32, 64], help="IVF nprobe values to sweep")
    parser.add_argument("--rerank", type=parse_ints, default=[0, 4], help="IVF-PQ re-ranking k_factor (0 = none)")
    parser.add_argument("--exact-probes", type=parse_sizes, default=[], help="extra sizes for exact-only latency")
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="FAISS threads for builds and batched searches (default: the cores given to us; "
                             "single queries always use one, see SINGLE_THREAD_QUERIES)")
    return parser.parse_args(argv)


def load_results(path: Path, fresh: bool) -> dict:
    if path.exists() and not fresh:
        return json.loads(path.read_text())
    return {"benchmark": "vector index: exact vs approximate, max-pooled items", "target": TARGET, "runs": []}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        os.environ["RSRT_FAISS_THREADS"] = str(args.threads)  # what the index applies to builds and batches
    load_before = round(os.getloadavg()[0], 2)  # the 2 cores are shared: latencies scale with the load
    results = load_results(args.out, args.fresh)
    entry = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "settings": {k: v for k, v in vars(args).items() if k not in ("out", "fresh")}}
    with tempfile.TemporaryDirectory(prefix="rsrt-bench-index-") as scratch:
        entry["sizes"] = [measure_size(n, args, Path(scratch)) for n in args.sizes]
    entry["exact_probes"] = [exact_probe(n, args) for n in args.exact_probes]
    entry["machine"] = machine(load_before)
    results["runs"].append(entry)
    if REAL_PROFILE_FILE.exists():
        results["real_minilm_profile"] = json.loads(REAL_PROFILE_FILE.read_text()).get("profile")
    results["summary"] = summarise(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=int))
    print_table(results["summary"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

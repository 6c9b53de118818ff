"""Benchmark: scale-out on Ray, every ratio measured in one run (results to benchmarks/results/scaleout.json).

  captioning  2000 images against local OpenAI-protocol stand-in servers answering after 0.5 s: the local runner vs
              Ray on one node vs Ray on two nodes, one endpoint vs two (16 requests in flight per endpoint in every
              setting: the local runner's concurrency, or 2 actors x 8), once for each environment the Ray nodes run
              in: a cluster node's install (`pip install rsrt[ray]`, scripts/ensure_env.sh --node) and this checkout's
              development environment (with JupyterLab, whose jsonschema extras make every `import ray` ~1 s slower)
  embedding   VLM paragraphs (the published LLaVA / Qwen-VL descriptions, numbered to make every text new) with
              all-MiniLM-L6-v2: the local path vs one actor vs two actors (one torch thread each) on these 2 cores
  index       adding 1 % new rows to a 10^5- and a 10^6-vector index (and retiring 1 %) vs rebuilding it, and
              recall@10 of the updated index against exact search next to a fresh build's
  tombstones  query latency and recall with 0-60 % of a 10^5-vector index's rows retired vs a fresh index of the
              live rows (the compaction threshold)

Every Ray cluster runs inside a loopback-only network namespace (tests/fakes/loopback_ray.py: `unshare --net`, root).

    python benchmarks/bench_scaleout.py                        # everything (about an hour on 2 cores: captioning ~17 min, embedding ~28)
    python benchmarks/bench_scaleout.py --only index --sizes 1e5
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "scaleout.json"
LATENCY_S = 0.5
IN_FLIGHT_PER_ENDPOINT = 16
ACTORS = 2


# ---------------------------------------------------------------- inside the cluster (run by run_on_loopback_cluster)
def _caption_settings(n_images: int, out: Path, nodes: int) -> dict:
    from rsrt_utils.captioning.api import build_backend
    from rsrt_utils.captioning.runner import caption_images
    from rsrt_utils.scaleout.captioning import caption_on_ray
    from rsrt_utils.scaleout.cluster import connect
    from tests.fakes.keys import fake_key
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.fakes.synthetic_images import make_images

    os.environ.setdefault("OPENAI_API_KEY", fake_key("bench-scaleout"))
    work = Path(tempfile.mkdtemp(prefix="rsrt-bench-"))
    pairs = make_images(work / "img", n_images, size=32)
    results = {"cluster": connect("auto")}
    with FakeOpenAIServer(latency=LATENCY_S) as a, FakeOpenAIServer(latency=LATENCY_S) as b:
        for endpoints in (1, 2):
            urls = [s.base_url for s in (a, b)][:endpoints]
            base = {"backend": "openai-chat", "model": "fake-vlm", "base_url": urls if endpoints > 1 else urls[0]}
            for how in (("local", "ray") if nodes == 1 else ("ray",)):
                a.reset(), b.reset()
                store = work / f"{how}-{endpoints}.jsonl"
                started, wall = time.monotonic(), time.time()
                if how == "local":
                    summary = caption_images(pairs, build_backend({**base, "concurrency": IN_FLIGHT_PER_ENDPOINT}), store,
                                             concurrency=IN_FLIGHT_PER_ENDPOINT, progress=False)
                else:
                    summary = caption_on_ray(pairs, {**base, "concurrency": IN_FLIGHT_PER_ENDPOINT // ACTORS}, store,
                                             actors=ACTORS, progress=False, cpus_per_actor=0.5)
                seconds = time.monotonic() - started
                sent = sorted(r.at - wall for r in a.chat_requests() + b.chat_requests())  # the servers' clocks
                results[f"{how}_{nodes}node_{endpoints}endpoint"] = {
                    "seconds": round(seconds, 1), "images_per_s": round(n_images / seconds, 1), "ok": summary.ok,
                    "requests": len(sent), "first_request_after_s": round(sent[0], 2),
                    "requests_span_s": round(sent[-1] - sent[0], 2)}
                print(how, nodes, endpoints, round(seconds, 1), flush=True)
    out.write_text(json.dumps(results, indent=2))
    return results


def _embedding_settings(n_texts: int, out: Path) -> dict:
    import numpy as np

    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.scaleout.cluster import connect
    from rsrt_utils.scaleout.embedding import RayTextEncoder

    texts = _paragraphs(n_texts)
    results = {"cluster": connect("auto"), "texts": len(texts),
               "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1)}
    spec = "all-MiniLM-L6-v2"
    make_text_encoder(spec).encode(["warm up"])  # the model files unpacked into the cache once
    settings = [("local", lambda: CachedEncoder(make_text_encoder(spec), cache_root=Path(tempfile.mkdtemp()), progress=False)),
                ("ray_1actor", lambda: CachedEncoder(RayTextEncoder(spec, 1), cache_root=Path(tempfile.mkdtemp()), progress=False)),
                ("ray_2actors", lambda: CachedEncoder(RayTextEncoder(spec, 2), cache_root=Path(tempfile.mkdtemp()), progress=False))]
    vectors = {}
    for name, make in settings:
        encoder = make()
        started = time.monotonic()
        vectors[name] = encoder.encode(texts)
        seconds = time.monotonic() - started
        results[name] = {"seconds": round(seconds, 1), "texts_per_s": round(len(texts) / seconds, 1)}
        print(name, round(seconds, 1), flush=True)
    results["max_abs_difference_vs_local"] = {name: float(np.abs(vectors[name] - vectors["local"]).max())
                                              for name in vectors}
    out.write_text(json.dumps(results, indent=2))
    return results


def _paragraphs(n: int) -> list[str]:
    """n distinct VLM paragraphs: the published descriptions, each numbered (cycled as needed)."""
    from rsrt_utils.data.published_corpora import PUBLISHED_CORPORA
    from rsrt_utils.paths import shared_mirror_dir

    mirror = shared_mirror_dir()
    base = []
    for corpus in PUBLISHED_CORPORA.values():
        path = Path(mirror) / corpus.relpath if mirror else None
        if path and path.is_file():
            base += [line.split(" ", 1)[1].strip() for line in path.read_text(encoding="utf-8").splitlines() if " " in line]
    if not base:
        raise SystemExit("the published VLM descriptions are not in ../shared/data (RSRT_MIRROR_DIR); they are the texts")
    return [f"Description {i + 1}. {base[i % len(base)]}" for i in range(n)]


# ---------------------------------------------------------------- on the host
def _index_settings(sizes: list[int]) -> dict:
    import numpy as np

    from rsrt_utils.search.index import VectorIndex, exact_search
    from rsrt_utils.search.synthetic_vectors import clustered_embeddings

    results = {}
    for n_vectors in sizes:
        n_images, share = n_vectors // 5, max(1, n_vectors // 500)  # 1 % of the images = 1 % of the rows
        data = clustered_embeddings(n_images + share, n_queries=200, seed=1)
        base_rows = n_images * 5
        vectors, owners, queries = data.vectors, data.owners, data.queries
        started = time.monotonic()
        index = VectorIndex.build(vectors[:base_rows], owners[:base_rows])
        build_s = time.monotonic() - started
        retired = np.arange(0, n_images, 100)[:share]
        started = time.monotonic()
        index.retire(retired)
        index.add(vectors[base_rows:], owners[base_rows:])
        update_s = time.monotonic() - started
        live = ~np.isin(owners, retired)
        ids = np.unique(owners[live])
        started = time.monotonic()
        fresh = VectorIndex.build(vectors[live], np.searchsorted(ids, owners[live]))
        rebuild_s = time.monotonic() - started
        _, truth = exact_search(vectors[live], np.searchsorted(ids, owners[live]), queries, 10)
        recall = {"updated": _recall(ids[truth], index.search(queries, 10)[1]),
                  "fresh": _recall(ids[truth], ids[fresh.search(queries, 10)[1]])}
        results[str(n_vectors)] = {"kind": index.kind, "params": index.params, "base_build_s": round(build_s, 2),
                                   "add_1pct_and_retire_1pct_s": round(update_s, 3), "rebuild_s": round(rebuild_s, 2),
                                   "speedup": round(rebuild_s / update_s, 1), "recall_at_10": recall,
                                   "retired_fraction": round(index.retired_fraction, 4)}
        print(n_vectors, results[str(n_vectors)], flush=True)
        del index, fresh, data
    return results


def _tombstone_costs(n_vectors: int = 100_000, fractions=(0.0, 0.1, 0.25, 0.4, 0.6)) -> dict:
    """Single-query latency and recall of an index with a share of its rows retired, vs a fresh index of the live
    rows: where compaction pays (COMPACT_RETIRED_FRACTION)."""
    import numpy as np

    from rsrt_utils.search.index import VectorIndex, exact_search
    from rsrt_utils.search.synthetic_vectors import clustered_embeddings

    data = clustered_embeddings(n_vectors // 5, n_queries=300, seed=2)
    rows = {}
    for fraction in fractions:
        index = VectorIndex.build(data.vectors, data.owners)
        retired = np.arange(int(fraction * (n_vectors // 5)))
        index.retire(retired)
        live = ~np.isin(data.owners, retired)
        ids = np.unique(data.owners[live])
        fresh = VectorIndex.build(data.vectors[live], np.searchsorted(ids, data.owners[live]))
        _, truth = exact_search(data.vectors[live], np.searchsorted(ids, data.owners[live]), data.queries, 10)
        row = {}
        for name, idx, to_ids in (("with_retired", index, None), ("fresh", fresh, ids)):
            times, found = [], []
            for q in data.queries:
                started = time.perf_counter()
                items = idx.search(q[None, :], 10)[1][0]
                times.append(time.perf_counter() - started)
                found.append(items if to_ids is None else to_ids[items])
            row[name] = {"median_ms": round(1000 * float(np.median(times)), 3),
                         "p99_ms": round(1000 * float(np.percentile(times, 99)), 3),
                         "recall_at_10": _recall(ids[truth], np.array(found))}
        rows[str(fraction)] = row
        print("tombstones", fraction, row, flush=True)
    return {"n_vectors": n_vectors, "rows": rows}


def _recall(truth, found) -> float:
    """Mean share of the exact top 10 (image ids) found."""
    return round(sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist())) / (10 * len(truth)), 4)


def _caption_ratios(runs: dict) -> dict:
    """Wall-clock ratios (the targets), and the same ratios over the span from first to last request (start excluded)."""
    def ratio(numerator, denominator, field="seconds"):
        return round(runs[numerator][field] / runs[denominator][field], 2)

    ratios = {}
    for suffix, field in (("", "seconds"), ("_requests_span", "requests_span_s")):
        ratios.update({
            f"ray_1node_vs_local_1endpoint{suffix}": ratio("local_1node_1endpoint", "ray_1node_1endpoint", field),
            f"ray_1node_vs_local_2endpoints{suffix}": ratio("local_1node_2endpoint", "ray_1node_2endpoint", field)})
    ratios.update({
        "two_endpoints_vs_one_local": ratio("local_1node_1endpoint", "local_1node_2endpoint"),
        "two_endpoints_vs_one_ray": ratio("ray_1node_1endpoint", "ray_1node_2endpoint"),
        "ray_2nodes_vs_1node_2endpoints": ratio("ray_1node_2endpoint", "ray_2node_2endpoint")})
    return ratios


def _on_cluster(phase: str, nodes: int, args, folder: Path, node_python: Path | None = None) -> dict:
    from tests.fakes.loopback_ray import run_on_loopback_cluster

    out = folder / f"{phase}-{nodes}-{Path(node_python or sys.executable).parent.parent.name}.json"
    done = run_on_loopback_cluster(Path(__file__), ["--inside", phase, "--out", str(out), "--images", str(args.images),
                                                    "--texts", str(args.texts), "--nodes", str(nodes)],
                                   nodes=nodes, timeout=3600, log_dir=folder, node_python=node_python)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"{phase} on {nodes} node(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


NODE_ENVIRONMENTS = {
    "rsrt[ray]": "a cluster node's install as the README gives it: pip install 'rsrt[ray]' (scripts/ensure_env.sh --node)",
    "dev": "this checkout's development environment (.venv: + the notebook and test extras, JupyterLab included)",
}


def _node_python(name: str) -> Path:
    if name == "dev":
        return Path(sys.executable)
    made = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_env.sh"), "--node"], capture_output=True, text=True)
    if made.returncode != 0:
        raise SystemExit(f"the cluster node's environment could not be made:\n{made.stderr[-2000:]}")
    return Path(made.stdout.strip().splitlines()[-1])


def _import_ray_seconds(python: Path, repeats: int = 3) -> float:
    """Median wall-clock of `import ray` in a fresh process of that environment (what every Ray worker pays)."""
    code = "import time; t = time.perf_counter(); import ray; print(time.perf_counter() - t)"
    times = sorted(float(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)
                   for _ in range(repeats))
    return round(times[len(times) // 2], 2)


def _caption_in(name: str, args, folder: Path) -> dict:
    """The captioning settings with the Ray nodes (and so their workers) running in one environment."""
    python = _node_python(name)
    one, two = _on_cluster("captioning", 1, args, folder, python), _on_cluster("captioning", 2, args, folder, python)
    runs = {k: v for k, v in {**one, **two}.items() if k != "cluster"}
    return {"description": NODE_ENVIRONMENTS[name], "import_ray_s": _import_ray_seconds(python), "runs": runs,
            "ratios": _caption_ratios(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("captioning", "embedding", "index", "tombstones"), action="append")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--sizes", default="1e5,1e6", help="index sizes, comma-separated")
    parser.add_argument("--inside", choices=("captioning", "embedding"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--nodes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside == "captioning":
        _caption_settings(args.images, args.out, args.nodes)
        return
    if args.inside == "embedding":
        _embedding_settings(args.texts, args.out)
        return
    chosen = args.only or ["captioning", "embedding", "index", "tombstones"]
    folder = Path(tempfile.mkdtemp(prefix="rsrt-bench-scaleout-"))
    report = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    # every section says when and by which command it was measured (sections may be rerun one at a time)
    stamp = {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "machine": f"{platform.machine()}, {os.cpu_count()} cores",
             "command": " ".join(["python", "benchmarks/bench_scaleout.py", *sys.argv[1:]])}
    for key in ("measured", "machine", "command"):
        report.pop(key, None)
    if "captioning" in chosen:
        report["captioning"] = {**stamp, "images": args.images, "latency_s": LATENCY_S,
                                "in_flight_per_endpoint": IN_FLIGHT_PER_ENDPOINT,
                                "node_environments": {name: _caption_in(name, args, folder) for name in NODE_ENVIRONMENTS},
                                "targets": {"ray_1node_vs_local": ">= 0.9", "two_endpoints_vs_one": ">= 1.8"}}
    if "embedding" in chosen:
        emb = _on_cluster("embedding", 1, args, folder)
        emb["ratios"] = {"two_actors_vs_one": round(emb["ray_1actor"]["seconds"] / emb["ray_2actors"]["seconds"], 2),
                         "two_actors_vs_local": round(emb["local"]["seconds"] / emb["ray_2actors"]["seconds"], 2)}
        emb["targets"] = {"two_actors_vs_one": ">= 1.6"}
        report["embedding"] = {**stamp, **emb}
    if "index" in chosen:
        report["index"] = {**stamp, **_index_settings([int(float(s)) for s in args.sizes.split(",") if s]),
                           "targets": {"speedup_at_1e6": ">= 20"}}
    if "tombstones" in chosen:
        report["tombstones"] = {**stamp, **_tombstone_costs()}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

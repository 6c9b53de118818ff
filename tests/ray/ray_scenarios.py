"""The Ray scale-out checks, run inside a loopback-only two-node cluster (tests/fakes/loopback_ray.py) by
tests/ray/test_ray_scaleout.py; writes one JSON object of measured counts, asserted by the test.

Every count comes from the two local OpenAI-protocol servers' own request logs and from the corpus file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

from rsrt_utils.captioning.api import build_backend
from rsrt_utils.captioning.corpus import CorpusStore
from rsrt_utils.captioning.runner import caption_images
from rsrt_utils.cli import main as rsrt
from rsrt_utils.scaleout.captioning import caption_on_ray
from rsrt_utils.scaleout.cluster import ClusterError, check_workers, connect
from tests.fakes.keys import fake_key
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.synthetic_images import make_images

N = 40
KEY_CANARY = fake_key("canary")  # the driver's API key: must appear in no file Ray or rsrt writes
QUERY_CANARY = fake_key("query-canary")  # a gateway's ?api-key= in the base URL: the same
N_DRIVER = 160  # enough blocks that some are still queued when the driver dies (FLEET_CALLS_PER_ACTOR run at once)


def chat_counts(*servers) -> dict:
    """Requests per image (by its pixels' digest) over the servers."""
    return Counter(r.image_digest for s in servers for r in s.chat_requests())


def corpus_facts(path: Path) -> dict:
    records = list(CorpusStore(path).records())
    keys = Counter(r.cache_key for r in records)
    return {"records": len(records), "ok": sum(r.status == "ok" for r in records),
            "duplicate_keys": sum(n - 1 for n in keys.values()), "keys": sorted(keys)}


def config_of(*servers, **options) -> dict:
    urls = [s.base_url for s in servers]
    return {"backend": "openai-chat", "model": "fake-vlm", "base_url": urls if len(urls) > 1 else urls[0],
            "backoff_base": 0.01, "concurrency": 4, **options}


def fleet_run(work: Path, a, b) -> dict:
    """N images through the fleet on Ray: N ok records, no duplicate, one request per image."""
    pairs = make_images(work / "fleet", N)
    summary = caption_on_ray(pairs, config_of(a, b), work / "fleet.jsonl", actors=2, progress=False)
    counts = chat_counts(a, b)
    return {"summary_ok": summary.ok, **corpus_facts(work / "fleet.jsonl"), "requests": sum(counts.values()),
            "requests_per_server": [len(a.chat_requests()), len(b.chat_requests())],
            "images_asked_twice": sum(n > 1 for n in counts.values())}


def resume_both_ways(work: Path, a) -> dict:
    """A local run resumed on Ray, and a Ray run resumed locally: each second run asks only for the rest."""
    pairs = make_images(work / "resume", N, prefix="r")
    out = {}
    for first, second, name in (("local", "ray", "local_then_ray"), ("ray", "local", "ray_then_local")):
        a.reset()
        store = work / f"{name}.jsonl"
        for how, subset in ((first, pairs[:N // 2]), (second, pairs)):
            if how == "local":
                caption_images(subset, build_backend(config_of(a)), store, concurrency=4, progress=False)
            else:
                caption_on_ray(subset, config_of(a), store, actors=2, progress=False)
        out[name] = {**corpus_facts(store), "requests": len(a.chat_requests())}
    out["same_keys"] = out["local_then_ray"]["keys"] == out["ray_then_local"]["keys"]
    for name in ("local_then_ray", "ray_then_local"):
        out[name].pop("keys")
    return out


def failing_endpoint(work: Path, a, b) -> dict:
    """One server answering 500s: every image answered by the other, the bad one out of rotation and counted."""
    a.reset(), b.reset()
    b.default = "500"
    pairs = make_images(work / "fivehundred", N, prefix="f")
    summary = caption_on_ray(pairs, config_of(a, b, endpoint_max_failures=3), work / "fivehundred.jsonl", actors=2,
                             progress=False)
    b.default = "ok"
    return {"summary_ok": summary.ok, "summary_failed": summary.failed, **corpus_facts(work / "fivehundred.jsonl"),
            "healthy_requests": len(a.chat_requests()), "failing_requests": len(b.chat_requests())}


def _worker_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if "MapWorker" in " ".join(p.info["cmdline"] or [])
            and "CaptionActor" in " ".join(p.info["cmdline"] or [])]


def kill_a_worker(work: Path, a, b) -> dict:
    """SIGKILL one caption actor mid-task: Ray retries its block; no record twice, repeats only of unrecorded images."""
    a.reset(), b.reset()
    a.latency = b.latency = 0.25
    pairs = make_images(work / "killworker", N, prefix="k")
    store = work / "killworker.jsonl"
    killed, at_kill = [], {}

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if len(a.chat_requests()) + len(b.chat_requests()) >= 6 and _worker_pids():
                pid = _worker_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                at_kill["requests"] = len(a.chat_requests()) + len(b.chat_requests())
                at_kill["records"] = store.read_bytes().count(b"\n") if store.exists() else 0
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    summary = caption_on_ray(pairs, config_of(a, b, concurrency=2), store, actors=2, progress=False)
    thread.join()
    a.latency = b.latency = 0.0
    counts = chat_counts(a, b)
    return {"killed": len(killed), "summary_ok": summary.ok, **corpus_facts(store),
            "requests": sum(counts.values()), "images_asked_twice": sum(n > 1 for n in counts.values()),
            "requests_when_killed": at_kill.get("requests"), "records_when_killed": at_kill.get("records")}


DRIVER = """
import sys
from rsrt_utils.scaleout.cluster import connect
from rsrt_utils.scaleout.captioning import caption_on_ray
from tests.fakes.synthetic_images import make_images
connect("auto")
pairs = make_images(__import__("pathlib").Path(sys.argv[1]), int(sys.argv[2]), prefix="d")
config = {"backend": "openai-chat", "model": "fake-vlm", "base_url": sys.argv[3:], "backoff_base": 0.01, "concurrency": 2}
summary = caption_on_ray(pairs, config, sys.argv[1] + ".jsonl", actors=2, progress=False)
print("OK", summary.ok, summary.skipped_done)
"""


def kill_the_driver(work: Path, a, b) -> dict:
    """SIGKILL the driver mid-run, then resume: nothing lost, no record twice, only the in-flight blocks re-sent."""
    a.reset(), b.reset()
    a.latency = b.latency = 0.2
    folder = work / "killdriver"
    command = [sys.executable, "-c", DRIVER, str(folder), str(N_DRIVER), a.base_url, b.base_url]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    store = Path(str(folder) + ".jsonl")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not store.exists() or corpus_facts(store)["records"] < 8):
        time.sleep(0.05)
    sent_at_first_records = len(a.chat_requests()) + len(b.chat_requests())
    while time.monotonic() < deadline and corpus_facts(store)["records"] < N_DRIVER // 4:
        time.sleep(0.05)
    killed_at = time.time()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    time.sleep(1.0)  # requests of the dead driver's actors still in flight land now
    before = corpus_facts(store)["records"]
    asked = [r for s in (a, b) for r in s.chat_requests()]
    sent_before = len(asked)
    answered = sum(r.answered_at is not None and r.answered_at <= killed_at for r in asked)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    a.latency = b.latency = 0.0
    counts = chat_counts(a, b)
    return {"images": N_DRIVER, "records_when_killed": before, "requests_when_killed": sent_before,
            "answered_when_killed": answered, "in_flight_when_killed": sent_before - answered,
            "requests_when_8_recorded": sent_at_first_records, "resume_output": resumed.stdout.strip(),
            **corpus_facts(store), "requests": sum(counts.values()),
            "images_asked_twice": sum(n > 1 for n in counts.values())}


def bad_input(a) -> dict:
    """Each gives one clear line before any image is sent (the servers' logs stay empty)."""
    a.reset()
    out = {}
    for name, args in (("unreachable", ["--ray", "127.0.0.1:9"]), ("malformed_url", ["--base-url", "localhost:8000/v1"]),
                       ("not_an_address", ["--ray", "my cluster"])):
        proc = subprocess.run([sys.executable, "-m", "rsrt_utils", "index", "build", str(WORK / "fleet"), "--name", "x",
                               "--backend", "openai-chat", "--model", "fake-vlm", "--base-url", a.base_url,
                               "--encoder", "hashing:64", "--quiet", *args], capture_output=True, text=True, timeout=120)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        out[name] = {"exit": proc.returncode, "lines": lines[-1:], "n_lines": len(lines)}

    def probe_without_the_project():
        import rsrt_utils_not_installed  # noqa: F401 - what a worker without the project meets

    from rsrt_utils.scaleout import cluster

    real = cluster._import_project
    cluster._import_project = probe_without_the_project
    try:
        check_workers()
        out["workers_cannot_import"] = "no error"
    except ClusterError as error:
        out["workers_cannot_import"] = str(error)
    finally:
        cluster._import_project = real
    out["requests"] = len(a.chat_requests())
    return out


def collection_on_ray(work: Path, a, b) -> dict:
    """`rsrt index build --ray`: captions and embeddings on the cluster equal a local build's."""
    a.reset(), b.reset()
    common = ["--backend", "openai-chat", "--model", "fake-vlm", "--encoder", "hashing:512", "--quiet",
              "--base-url", a.base_url, "--base-url", b.base_url]
    codes = [rsrt(["index", "build", str(work / "fleet"), "--name", "on-ray", "--ray", "auto", *common]),
             rsrt(["index", "build", str(work / "fleet"), "--name", "here", *common])]
    from rsrt_utils.search.collection import Collection

    queries = ["a field seen from above", "buildings and roads"]
    hits = [[[(h.image_id, round(h.score, 5)) for h in Collection.open(name).search_text(q, k=5)] for q in queries]
            for name in ("on-ray", "here")]
    return {"exit_codes": codes, "same_hits": hits[0] == hits[1], "requests": len(a.chat_requests()) + len(b.chat_requests())}


def geo_on_ray(work: Path, a, b) -> dict:
    """`rsrt index build SCENES --chip 150 --ray`: the chips of a georeferenced mosaic (real AID-150 pixels) are the
    items the cluster captions (one request per chip), and the collection equals one built here, places included."""
    from tests.geo.scenes import COLS, ROWS, write_rgb

    a.reset(), b.reset()
    scenes = work / "scenes"
    scenes.mkdir(exist_ok=True)
    write_rgb(scenes / "mosaic.tif", ROWS, COLS)
    common = ["--chip", "150", "--backend", "openai-chat", "--model", "fake-vlm", "--encoder", "hashing:512", "--quiet",
              "--base-url", a.base_url, "--base-url", b.base_url]
    codes = [rsrt(["index", "build", str(scenes), "--name", "geo-on-ray", "--ray", "auto", *common])]
    on_ray = len(a.chat_requests()) + len(b.chat_requests())
    codes.append(rsrt(["index", "build", str(scenes), "--name", "geo-here", *common]))
    from rsrt_utils.search.collection import Collection

    hits = [[(h.image_id, round(h.score, 5), tuple(h.place["bbox"])) for h in Collection.open(name).search_text("a field", k=5)]
            for name in ("geo-on-ray", "geo-here")]
    return {"exit_codes": codes, "chips": ROWS * COLS, "requests_on_ray": on_ray, "same_hits": hits[0] == hits[1],
            "placed": all(h[2] for h in hits[0])}


def canary_key_run(work: Path) -> dict:
    """`rsrt index build --ray` with a canary API key (checked by the server) and a canary `?api-key=` in the URL; the
    test greps every file Ray, the build and the logs wrote for both (tests/ray/test_ray_scaleout.py)."""
    import ray

    key = os.environ["OPENAI_API_KEY"]
    with FakeOpenAIServer(expected_key=key) as server:
        code = rsrt(["index", "build", str(work / "fleet"), "--name", "canary", "--ray", "auto", "--backend", "openai-chat",
                     "--model", "fake-vlm", "--base-url", f"{server.base_url}?api-key={QUERY_CANARY}",
                     "--encoder", "hashing:64", "--quiet"])
        requests = server.chat_requests()
    return {"exit_code": code, "requests": len(requests),
            "authorised": sum(r.headers.get("authorization") == f"Bearer {key}" for r in requests),
            "query_key_sent": sum(r.query.get("api-key") == [QUERY_CANARY] for r in requests),
            "canaries": [key, QUERY_CANARY], "work": str(work),
            "ray_temp_dir": str(Path(ray._private.worker._global_node.get_session_dir_path()).parent)}


def embedding_pool(work: Path) -> dict:
    """Texts embedded by an actor pool equal the local vectors, and land in the driver's cache (a rerun computes 0);
    the study's encoder under `rsrt run --ray` is that pool."""
    import numpy as np

    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.engine import Where
    from rsrt_utils.scaleout.embedding import RayTextEncoder
    from rsrt_utils.study import pipeline
    from rsrt_utils.study.params import parse_params

    texts = [f"scene {i}: a road crosses green fields near {i % 7} white buildings" for i in range(600)]
    pooled = CachedEncoder(RayTextEncoder("hashing:256", 2), cache_root=work / "emb", progress=False)
    on_ray = pooled.encode(texts)
    here = CachedEncoder(make_text_encoder("hashing:256"), cache_root=work / "emb-here", progress=False).encode(texts)
    again = CachedEncoder(RayTextEncoder("hashing:256", 2), cache_root=work / "emb", progress=False)
    again.encode(texts)
    run = pipeline.StudyRun(parse_params({"run_name": "ray-run", "encoder": {"spec": "hashing:256"}}), work / "run",
                            Where("auto", 2))
    study_encoder = pipeline.text_encoder(run)
    return {"computed_first": pooled.last_stats["computed"], "max_abs_difference": float(np.abs(on_ray - here).max()),
            "computed_again": again.last_stats["computed"],
            "study_encoder": type(study_encoder.encoder).__name__}


def study_on_ray(work: Path) -> dict:
    """`rsrt run --ray auto` captions and embeds the smoke study through the cluster's engine: the same metrics as a
    run here, and the corpus artifact says where it ran."""
    runs, cache = {}, os.environ["RSRT_CACHE_DIR"]
    for name, extra in (("here", []), ("on_ray", ["--ray", "auto", "--actors", "2"])):
        folder = work / f"study-{name}"
        os.environ["RSRT_CACHE_DIR"] = str(work / f"cache-{name}")  # each run captions and embeds everything itself
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = rsrt(["run", str(Path(__file__).resolve().parents[2] / "params" / "smoke.yaml"), "--notebooks", "00", "01",
                         "02", "03", "04", "--run-dir", str(folder), "--quiet", *extra])
        artifacts = json.loads((folder / "artifacts.json").read_text()) if (folder / "artifacts.json").is_file() else {}
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
        runs[name] = {"exit_code": code, "stderr": errors.getvalue()[-1500:], "engine": artifacts.get("corpus", {}).get("engine"),
                      "captioned": artifacts.get("corpus", {}).get("summary", {}).get("ok"),
                      "recalls": [metrics.get(k) for k in ("t2i", "i2t", "mR")]}
    os.environ["RSRT_CACHE_DIR"] = cache
    return runs


def vllm_processor(work: Path) -> dict:
    """The vllm backend's Ray Data LLM processor assembled from a local model folder (the engine itself never runs)."""
    from ray.data.llm import build_processor

    from rsrt_utils.captioning.api import build_backend

    model = work / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VL"]}))
    os.environ["HF_HUB_OFFLINE"] = "1"
    backend = build_backend({"backend": "vllm", "model": str(model)})
    processor = build_processor(backend.processor_config(), preprocess=backend.preprocess, postprocess=backend.postprocess)
    return {"stages": processor.list_stage_names()}


WORK = Path(tempfile.mkdtemp(prefix="rsrt-ray-"))


def main(out_path: str) -> None:
    os.environ["OPENAI_API_KEY"] = KEY_CANARY  # set here, after the nodes started: only the driver has it
    os.environ["RSRT_CACHE_DIR"] = str(WORK / "cache")
    os.environ["RSRT_INDEX_DIR"] = str(WORK / "indexes")
    started = time.monotonic()
    results = {"cluster": connect("auto")}
    with FakeOpenAIServer(latency=0.02) as a, FakeOpenAIServer(latency=0.02) as b:
        for name, check in (("fleet", lambda: fleet_run(WORK, a, b)), ("resume", lambda: resume_both_ways(WORK, a)),
                            ("failing_endpoint", lambda: failing_endpoint(WORK, a, b)),
                            ("kill_worker", lambda: kill_a_worker(WORK, a, b)),
                            ("kill_driver", lambda: kill_the_driver(WORK, a, b)),
                            ("collection", lambda: collection_on_ray(WORK, a, b)), ("bad_input", lambda: bad_input(a)),
                            ("geo", lambda: geo_on_ray(WORK, a, b)),
                            ("canary", lambda: canary_key_run(WORK)),
                            ("embedding", lambda: embedding_pool(WORK)),
                            ("study", lambda: study_on_ray(WORK)), ("vllm", lambda: vllm_processor(WORK))):
            t0 = time.monotonic()
            try:
                results[name] = check()
            except Exception as error:  # noqa: BLE001 - reported per check, asserted by the test
                results[name] = {"error": f"{type(error).__name__}: {error}"}
            results[name]["seconds"] = round(time.monotonic() - t0, 1)
    results["seconds"] = round(time.monotonic() - started, 1)
    Path(out_path).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1])

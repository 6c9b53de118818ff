"""Captioning throughput against the fake OpenAI server with a fixed 0.5 s latency per call.

200 images at concurrency 1, 8 and 16 through the real runner and chat backend (HTTP on 127.0.0.1).
Writes benchmarks/results/caption_throughput.json. Usage:
    python benchmarks/bench_caption_throughput.py [--images 200] [--latency 0.5] [--serial-sample N]
--serial-sample N measures concurrency 1 on N images only and extrapolates (stated in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from rsrt_utils.captioning.openai_chat import OpenAIChatBackend  # noqa: E402
from rsrt_utils.captioning.runner import caption_images  # noqa: E402
from tests.fakes.keys import fake_key  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.fakes.synthetic_images import make_images  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "caption_throughput.json"


def measure(server, pairs, concurrency: int, workdir: Path) -> dict:
    store = workdir / f"corpus-c{concurrency}-{len(pairs)}.jsonl"
    backend = OpenAIChatBackend(base_url=server.base_url, concurrency=concurrency, timeout=30.0)
    requests_before = len(server.chat_requests())
    started = time.perf_counter()
    summary = caption_images(pairs, backend, store, concurrency=concurrency, progress=False)
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "images": len(pairs), "ok": summary.ok, "failed": summary.failed,
            "requests": len(server.chat_requests()) - requests_before, "seconds": round(elapsed, 3),
            "images_per_s": round(len(pairs) / elapsed, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--serial-sample", type=int, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", fake_key("benchmark"))
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency=args.latency) as server:
        workdir = Path(tmp)
        pairs = make_images(workdir / "img", args.images)
        runs = []
        serial_pairs = pairs[: args.serial_sample] if args.serial_sample else pairs
        serial = measure(server, serial_pairs, 1, workdir)
        serial["extrapolated_seconds_for_all"] = round(serial["seconds"] * args.images / len(serial_pairs), 3)
        serial["note"] = ("measured on all images" if len(serial_pairs) == len(pairs)
                          else f"measured on {len(serial_pairs)} images, time for {args.images} extrapolated")
        runs.append(serial)
        for concurrency in (8, 16):
            runs.append(measure(server, pairs, concurrency, workdir))
    base = runs[0]["images_per_s"]
    for run in runs:
        run["speedup_vs_concurrency_1"] = round(run["images_per_s"] / base, 2)
    result = {"benchmark": "caption_throughput", "latency_s_per_call": args.latency, "images": args.images,
              "server": "tests/fakes/openai_server.py on 127.0.0.1 (real HTTP, official openai client)",
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              "date": time.strftime("%Y-%m-%d"), "runs": runs}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(f"concurrency {run['concurrency']:>2}: {run['images']} images in {run['seconds']:.1f} s "
              f"= {run['images_per_s']:.2f} img/s, x{run['speedup_vs_concurrency_1']} ({run['ok']} ok, {run['failed']} failed)")
    print(f"written {RESULTS.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()

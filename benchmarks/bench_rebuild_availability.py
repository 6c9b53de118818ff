"""Searches answered by `rsrt serve` while `rsrt index build --rebuild` replaces the collection it serves.

Usage: python benchmarks/bench_rebuild_availability.py [--images 40] [--project DIR] [--out FILE]
Builds a collection of real AID-150 images (an imported corpus of five variants each, hashing:512 encoder), starts
`rsrt serve` on 127.0.0.1, then rebuilds the collection with another encoder (all-MiniLM-L6-v2, a real model: the
rebuild re-embeds every text) while a client searches it in a loop; counts the answers by HTTP status. --project runs
the commands of another checkout (e.g. an older commit) with this environment. Writes
benchmarks/results/rebuild_availability.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "rebuild_availability.json"
AID = Path(os.environ.get("RSRT_MIRROR_DIR", HERE.parent.parent / "shared" / "data")) / "aid150" / "images"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gallery(folder: Path, n: int) -> Path:
    """n AID-150 images and an imported corpus describing each with its class name."""
    images = sorted(AID.rglob("*.jpg"))[:: max(1, len(list(AID.rglob("*.jpg"))) // n)][:n]
    lines = []
    for path in images:
        shutil.copyfile(path, folder / path.name)
        scene = path.parent.name.lower()
        variants = [{"one_sentence": f"an aerial view of a {scene}", "feature": f"{scene} seen from above, view {i}",
                     "caption": f"In this image there is a {scene}; detail {i}."} for i in range(1, 6)]
        lines.append(json.dumps({"image_id": path.name, "variants": variants}))
    corpus = folder.parent / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    return corpus


def rsrt(project: Path, env: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rsrt_utils", *args], cwd=project, env=env, **popen)


def measure(project: Path, n_images: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rsrt-rebuild-"))
    images = work / "images"
    images.mkdir()
    corpus = gallery(images, n_images)
    env = {**os.environ, "PYTHONPATH": str(project), "RSRT_INDEX_DIR": str(work / "indexes"),
           "RSRT_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    build = ["index", "build", str(images), "--name", "live", "--captioner", "import", "--corpus", str(corpus), "--quiet"]
    assert rsrt(project, env, *build, "--encoder", "hashing:512").wait() == 0
    port = free_port()
    server = rsrt(project, env, "serve", "--port", str(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/collections/live/search?q=an+aerial+view+of+a+bridge&k=5"
    statuses: Counter = Counter()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(url, timeout=30) as answer:
                        statuses[answer.status] += 1
                except urllib.error.HTTPError as error:
                    statuses[error.code] += 1
                except (urllib.error.URLError, ConnectionError) as error:
                    statuses[type(error).__name__] += 1

        thread = threading.Thread(target=client)
        thread.start()
        started = time.monotonic()
        code = rsrt(project, env, *build, "--encoder", "st:all-MiniLM-L6-v2", "--rebuild").wait()
        seconds = time.monotonic() - started
        stop.set()
        thread.join()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    total = sum(statuses.values())
    return {"images": n_images, "rebuild_exit_code": code, "rebuild_seconds": round(seconds, 1), "searches": total,
            "answered_200": statuses.get(200, 0), "by_status": {str(k): v for k, v in sorted(statuses.items(), key=str)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--project", type=Path, default=HERE.parent, help="the checkout whose commands run")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not AID.is_dir():
        raise SystemExit(f"AID-150 images not found in {AID}; set RSRT_MIRROR_DIR to the mirror holding aid150/images")
    revision = subprocess.run(["git", "-C", str(args.project), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    result = {"project_revision": revision, **measure(args.project.resolve(), args.images)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

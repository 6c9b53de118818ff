"""SIGKILL a captioning run at several moments, rerun it, and check nothing is lost, duplicated or recomputed."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsrt_utils.captioning.images import jpeg_data_url
from tests.fakes.keys import fake_key
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.synthetic_images import make_images

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = fake_key("kill-resume")
N_IMAGES, CONCURRENCY, LATENCY = 24, 3, 0.15


def ok_image_ids(store: Path) -> set[str]:
    if not store.exists():
        return set()
    ids = set()
    for line in store.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line: the next run cuts it
        if record["status"] == "ok":
            ids.add(record["image_id"])
    return ids


def start_worker(server, image_dir, store, log_dir, run):
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "PYTHONPATH": str(PROJECT_ROOT)}
    out = open(log_dir / f"run{run}.out", "w")
    err = open(log_dir / f"run{run}.err", "w")
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.caption_worker", server.base_url, str(image_dir),
                                str(store), str(CONCURRENCY)], env=env, stdout=out, stderr=err, cwd=PROJECT_ROOT)
    return process, out, err


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the worker"
        time.sleep(0.01)


@pytest.mark.slow
def test_kill_and_resume_loses_and_repeats_nothing(tmp_path):
    pairs = make_images(tmp_path / "img", N_IMAGES)
    digest_of = {image_id: hashlib.sha256(jpeg_data_url(path).encode()).hexdigest()[:16] for image_id, path in pairs}
    store, logs = tmp_path / "corpus.jsonl", tmp_path / "logs"
    logs.mkdir()
    done_at: dict[str, float] = {}  # image -> time by which its record was known to be on disk
    kill_after = [lambda s: len(s.chat_requests()) >= 1,            # before any record
                  lambda s: len(ok_image_ids(store)) >= 5,
                  lambda s: len(ok_image_ids(store)) >= 12]
    with FakeOpenAIServer(latency=LATENCY) as server:
        for run, condition in enumerate(kill_after):
            process, out, err = start_worker(server, tmp_path / "img", store, logs, run)
            wait_until(lambda stop=condition, worker=process: stop(server) or worker.poll() is not None)
            process.send_signal(signal.SIGKILL)
            process.wait()
            out.close(), err.close()
            now = time.time()
            for image_id in ok_image_ids(store):
                done_at.setdefault(image_id, now)
        process, out, err = start_worker(server, tmp_path / "img", store, logs, "final")
        assert process.wait(timeout=60) == 0
        out.close(), err.close()
        requests = server.chat_requests()

    records = [json.loads(line) for line in store.read_text().splitlines()]
    keys = [r["cache_key"] for r in records if r["status"] == "ok"]
    assert len(keys) == len(set(keys)) == N_IMAGES, "every image exactly once"
    assert {r["image_id"] for r in records} == set(digest_of)
    assert len(done_at) >= 12, "the kills happened mid-run"
    for image_id, when in done_at.items():
        late = [r for r in requests if r.image_digest == digest_of[image_id] and r.at > when]
        assert not late, f"{image_id} was recomputed after its record was written"
    # each kill can waste at most the requests in flight
    print(f"kill/resume: {N_IMAGES} images, {len(kill_after)} kills, {len(requests)} requests, {len(keys)} ok records, "
          f"{len(keys) - len(set(keys))} duplicated, {len(done_at)} done before the last kill, none recomputed")
    assert N_IMAGES <= len(requests) <= N_IMAGES + len(kill_after) * CONCURRENCY
    for path in [store, *logs.iterdir()]:
        assert FAKE_KEY not in path.read_text(), f"the API key leaked into {path.name}"
    assert "captioned" in (logs / "runfinal.out").read_text()


@pytest.mark.slow
def test_a_second_writer_on_the_same_corpus_stops_naming_the_first(tmp_path):
    make_images(tmp_path / "img", N_IMAGES)
    store, logs = tmp_path / "corpus.jsonl", tmp_path / "logs"
    logs.mkdir()
    with FakeOpenAIServer(latency=LATENCY) as server:
        first, out1, err1 = start_worker(server, tmp_path / "img", store, logs, "first")
        wait_until(lambda: len(server.chat_requests()) >= 1)
        second, out2, err2 = start_worker(server, tmp_path / "img", store, logs, "second")
        assert second.wait(timeout=60) != 0
        assert first.wait(timeout=60) == 0
        for handle in (out1, err1, out2, err2):
            handle.close()
        requests = server.chat_requests()
    message = (logs / "runsecond.err").read_text()
    assert f"is being written by another process (pid {first.pid} on " in message and "caption_worker" in message
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(requests) == N_IMAGES and len(records) == N_IMAGES, "the second writer did no work at all"
    assert len({r["cache_key"] for r in records}) == N_IMAGES

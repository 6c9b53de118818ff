"""The append-only corpus store, cache keys, and the runner's retry/failure logic (with an in-process backend)."""

import json
import threading
import time

import pytest

from rsrt_utils.captioning.backend import BackendAnswer, BackendFatalError
from rsrt_utils.captioning.corpus import CorpusStore, load_query_texts, load_variants, make_cache_key
from rsrt_utils.captioning.cost import estimate_cost
from rsrt_utils.captioning.runner import caption_images
from rsrt_utils.captioning.schema import CorpusRecord, Variant
from tests.fakes.synthetic_images import make_images


def variant_dicts(tag="", n=5):
    return [{"one_sentence": f"s{tag}{i}", "feature": f"f{tag}{i}", "caption": f"c{tag}{i}"} for i in range(n)]


def record(image_id="a.png", key="k1", status="ok", **extra):
    fields = dict(image_id=image_id, cache_key=key, status=status, backend="test", model="m", prompt_version="p",
                  variants=[Variant(**v) for v in variant_dicts(image_id)] if status == "ok" else [],
                  error=None if status == "ok" else "bad answer: x")
    fields.update(extra)
    return CorpusRecord(**fields)


def test_cache_key_changes_with_everything_that_changes_the_answer():
    base = dict(backend="openai-chat", model="gpt-4.1", prompt_version="v1", settings={"t": 0.3}, mode="variants",
                image_sha256="ab")
    key = make_cache_key(**base)
    assert key == make_cache_key(**{**base, "settings": {"t": 0.3}})
    for change in ({"backend": "x"}, {"model": "gpt-4o"}, {"prompt_version": "v2"}, {"settings": {"t": 0.5}},
                   {"mode": "image_query"}, {"image_sha256": "cd"}):
        assert make_cache_key(**{**base, **change}) != key
    with pytest.raises(ValueError, match="sha256"):
        make_cache_key(**{**base, "image_sha256": None})


def test_append_records_and_done_keys(tmp_path):
    store = CorpusStore(tmp_path / "c.jsonl")
    assert store.append(record("a.png", "k1"))
    assert store.append(record("b.png", "k2", status="failed"))
    assert not store.append(record("a.png", "k1")), "an ok key is never written twice"
    assert store.done_keys() == {"k1"} and store.failed_keys() == {"k2"}
    assert [r.cache_key for r in CorpusStore(tmp_path / "c.jsonl").records()] == ["k1", "k2"]
    assert list(load_variants(tmp_path / "c.jsonl")) == ["a.png"]


def test_torn_last_line_is_cut_and_never_duplicated(tmp_path):
    path = tmp_path / "c.jsonl"
    CorpusStore(path).append(record("a.png", "k1"))
    good = path.read_bytes()
    torn = good + record("b.png", "k2").model_dump_json().encode()[:40]  # a crash mid-write
    path.write_bytes(torn)
    store = CorpusStore(path)
    assert [r.cache_key for r in store.records()] == ["k1"] and path.read_bytes() == torn  # a reader never cuts
    store.acquire()  # the writer does, when it takes the lock
    assert path.read_bytes() == good
    assert store.done_keys() == {"k1"}
    store.append(record("b.png", "k2"))
    assert [r.cache_key for r in store.records()] == ["k1", "k2"]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(record("a.png", "k1").model_dump_json())
    store = CorpusStore(path)
    store.append(record("b.png", "k2"))
    assert store.done_keys() == {"k1", "k2"} and len(path.read_text().splitlines()) == 2


def test_concurrent_appends_keep_whole_lines(tmp_path):
    store = CorpusStore(tmp_path / "c.jsonl")
    threads = [threading.Thread(target=lambda i=i: store.append(record(f"{i}.png", f"k{i}"))) for i in range(40)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    assert len(lines) == 40 and all(json.loads(line)["status"] == "ok" for line in lines)


def test_load_variants_refuses_two_answers_for_one_image(tmp_path):
    store = CorpusStore(tmp_path / "c.jsonl")
    store.append(record("a.png", "k1"))
    store.append(record("a.png", "k2", model="other"))
    with pytest.raises(ValueError, match="two different answers for image 'a.png'"):
        load_variants(tmp_path / "c.jsonl")
    assert list(load_variants(tmp_path / "c.jsonl", model="other")) == ["a.png"]
    store.append(record("q.png", "k3", mode="image_query", variants=[], query_text="a lake"))
    assert load_query_texts(tmp_path / "c.jsonl") == {"q.png": "a lake"}
    with pytest.raises(FileNotFoundError, match="caption-import"):
        load_variants(tmp_path / "missing.jsonl")


class ScriptedBackend:
    """In-process backend: answers from a per-image script of raw texts; counts calls."""

    name, model, prompt_version, label = "scripted", "m", "p1", None

    def __init__(self, script=None, batch_size=1, delay=0.0, fatal=False):
        self.settings = {"x": 1}
        self.batch_size = batch_size
        self.script = script or {}
        self.calls = []
        self.delay = delay
        self.fatal = fatal
        self.lock = threading.Lock()
        self.active = self.max_active = 0

    def answer_batch(self, requests, mode, strict=False):
        with self.lock:
            self.calls.append(([r.image_id for r in requests], strict))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        if self.fatal:
            raise BackendFatalError("key rejected")
        answers = []
        for r in requests:
            todo = self.script.get(r.image_id, [])
            item = todo.pop(0) if todo else json.dumps({"variants": variant_dicts(r.image_id)})
            if item == "raise":
                raise RuntimeError("server exploded")
            answers.append(BackendAnswer(raw_text=item, usage={"prompt_tokens": 10, "completion_tokens": 5}))
        return answers


def test_runner_retries_bad_answers_strictly_and_records_failures(tmp_path):
    pairs = make_images(tmp_path / "img", 4)
    four = json.dumps({"variants": variant_dicts(n=4)})
    backend = ScriptedBackend({"scene_1.png": ["not json"], "scene_2.png": [four, four],
                               "scene_3.png": ["raise"]})
    summary = caption_images(pairs, backend, tmp_path / "c.jsonl", concurrency=2, progress=False)
    assert (summary.ok, summary.failed, summary.retried) == (2, 2, 2)
    assert any("exactly 5 variants, got 4" in reason for reason in summary.failure_reasons)
    assert any("server exploded" in reason for reason in summary.failure_reasons)
    assert sorted(i for ids, strict in backend.calls if strict for i in ids) == ["scene_1.png", "scene_2.png"]
    records = {r.image_id: r for r in CorpusStore(tmp_path / "c.jsonl").records()}
    assert records["scene_1.png"].status == "ok" and records["scene_1.png"].usage["attempts"] == 2
    assert records["scene_1.png"].usage["prompt_tokens"] == 20
    assert records["scene_2.png"].status == "failed" and "got 4" in records["scene_2.png"].error
    assert "scene_2.png" in summary.text() and "failures by reason" in summary.text()


def test_runner_skips_done_and_retries_failed_on_rerun(tmp_path):
    pairs = make_images(tmp_path / "img", 3)
    backend = ScriptedBackend({"scene_0.png": ["bad", "bad"]})
    first = caption_images(pairs, backend, tmp_path / "c.jsonl", progress=False)
    assert (first.ok, first.failed) == (2, 1)
    backend.calls.clear()
    second = caption_images(pairs, backend, tmp_path / "c.jsonl", progress=False)
    assert (second.ok, second.skipped_done) == (1, 2)
    assert backend.calls == [(["scene_0.png"], False)]
    assert len(load_variants(tmp_path / "c.jsonl")) == 3


def test_runner_batches_and_bounds_concurrency(tmp_path):
    pairs = make_images(tmp_path / "img", 10)
    backend = ScriptedBackend(batch_size=4, delay=0.05)
    summary = caption_images(pairs, backend, tmp_path / "c.jsonl", concurrency=2, progress=False)
    assert summary.ok == 10 and sorted(len(ids) for ids, _ in backend.calls) == [2, 4, 4]
    assert backend.max_active <= 2


def test_missing_or_pixel_less_images_fail_without_stopping(tmp_path):
    pairs = make_images(tmp_path / "img", 2) + [("gone.png", tmp_path / "gone.png"), ("nopx.png", None)]
    summary = caption_images(pairs, ScriptedBackend(), tmp_path / "c.jsonl", progress=False)
    assert (summary.ok, summary.failed) == (2, 2)
    assert any("gone.png" in r and "--data-root" in r for r in summary.failure_reasons)
    assert any("no pixel file" in r for r in summary.failure_reasons)


def test_fatal_backend_error_stops_the_run(tmp_path):
    pairs = make_images(tmp_path / "img", 3)
    with pytest.raises(BackendFatalError):
        caption_images(pairs, ScriptedBackend(fatal=True), tmp_path / "c.jsonl", concurrency=1, progress=False)


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="'caption'"):
        caption_images([], ScriptedBackend(), tmp_path / "c.jsonl", mode="caption")


def test_estimate_cost_with_batch_discount():
    prices = {"input_per_1m": 2.0, "output_per_1m": 8.0}
    normal = estimate_cost(1000, prices, {"input": 500, "output": 1000})
    assert normal["usd"] == pytest.approx(1.0 + 8.0)
    batch = estimate_cost(1000, prices, {"input": 500, "output": 1000}, discount=0.5)
    assert batch["usd"] == pytest.approx(4.5) and "50 % discount" in batch["text"]
    with pytest.raises(ValueError, match="output_per_1m"):
        estimate_cost(1, {"input_per_1m": 1}, {"input": 1, "output": 1})


def test_a_file_that_stays_bad_keeps_one_failure_record_over_reruns(tmp_path):
    pairs = make_images(tmp_path / "img", 3)
    backend = ScriptedBackend({"scene_0.png": ["bad"] * 6, "scene_1.png": ["bad", "bad"]})
    path = tmp_path / "c.jsonl"
    for _ in range(3):
        caption_images(pairs, backend, path, progress=False)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 3 and len({r["cache_key"] for r in rows}) == 3, "one record per file, never more"
    by_image = {r["image_id"]: r["status"] for r in rows}
    assert by_image == {"scene_0.png": "failed", "scene_1.png": "ok", "scene_2.png": "ok"}
    assert CorpusStore(path).failed_keys() == {r["cache_key"] for r in rows if r["status"] == "failed"}

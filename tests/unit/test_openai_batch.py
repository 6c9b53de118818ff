"""Batch API mode against the fake server: submit, poll, collect, strict retry, resume after a restart."""

import json

import pytest

from rsrt_utils.captioning.api import make_caption_backend
from rsrt_utils.captioning.corpus import CorpusStore, load_variants
from rsrt_utils.captioning.openai_batch import OpenAIBatchBackend, state_path_for
from rsrt_utils.captioning.runner import caption_images
from tests.fakes.keys import fake_key
from tests.fakes.synthetic_images import make_images

FAKE_KEY = fake_key("batch")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def batch_backend(server, **options):
    return OpenAIBatchBackend(base_url=server.base_url, poll_interval=0.01, backoff_base=0.01, **options)


def test_full_batch_run_writes_one_record_per_image(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 5)
    store = tmp_path / "c.jsonl"
    summary = caption_images(pairs, batch_backend(fake_openai), store, progress=False)
    assert summary.ok == 5 and summary.failed == 0 and summary.usage["prompt_tokens"] > 0
    upload = fake_openai.requests_to("/files", "POST")[0]
    batch_lines = [json.loads(t) for f in fake_openai.files.values() if f["purpose"] == "batch"
                   for t in f["content"].decode().splitlines()]
    assert upload and len(batch_lines) == 5
    keys = {r.cache_key for r in CorpusStore(store).records()}
    assert {line["custom_id"] for line in batch_lines} == keys
    body = batch_lines[0]["body"]
    assert body["model"] == "gpt-4.1" and body["temperature"] == 0.3 and body["response_format"]["type"] == "json_object"
    assert batch_lines[0]["url"] == "/v1/chat/completions"
    assert not state_path_for(store).exists()
    assert FAKE_KEY not in store.read_text()


def test_restart_resumes_polling_instead_of_resubmitting(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 4)
    store = tmp_path / "c.jsonl"
    fake_openai.batch_polls_to_complete = 3
    first = caption_images(pairs, batch_backend(fake_openai, max_wait_s=0), store, progress=False)  # "killed" while waiting
    assert first.ok == 0 and state_path_for(store).exists()
    assert json.loads(state_path_for(store).read_text())["batch_id"].startswith("batch")
    second = caption_images(pairs, batch_backend(fake_openai), store, progress=False)
    assert second.ok == 4
    assert len(fake_openai.requests_to("/batches", "POST")) == 1, "the rerun must not resubmit"
    assert not state_path_for(store).exists()
    third = caption_images(pairs, batch_backend(fake_openai), store, progress=False)
    assert third.skipped_done == 4 and len(fake_openai.requests_to("/batches", "POST")) == 1


def test_only_missing_images_are_submitted(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 6)
    store = tmp_path / "c.jsonl"
    caption_images(pairs[:4], batch_backend(fake_openai), store, progress=False)
    caption_images(pairs, batch_backend(fake_openai), store, progress=False)
    sizes = [len(f["content"].decode().splitlines()) for f in fake_openai.files.values() if f["purpose"] == "batch"]
    assert sizes == [4, 2] and len(load_variants(store)) == 6


def test_bad_answers_go_to_a_strict_second_batch(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 3)
    store = tmp_path / "c.jsonl"
    fake_openai.script("malformed", "ok", "500", "ok")
    summary = caption_images(pairs, batch_backend(fake_openai), store, progress=False)
    assert (summary.ok, summary.failed, summary.retried) == (2, 1, 1)
    assert any("HTTP 500" in reason for reason in summary.failure_reasons)
    second = [json.loads(t) for f in list(fake_openai.files.values()) if f["purpose"] == "batch"
              for t in f["content"].decode().splitlines()][3:]
    assert len(second) == 1 and "IMPORTANT" in second[0]["body"]["messages"][0]["content"][0]["text"]
    rerun = caption_images(pairs, batch_backend(fake_openai), store, progress=False)
    assert rerun.ok == 1 and len(load_variants(store)) == 3


def test_expired_batch_records_the_missing_answers_and_a_rerun_resubmits(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 4)
    store = tmp_path / "c.jsonl"
    fake_openai.batch_final_status = "expired"
    summary = caption_images(pairs, batch_backend(fake_openai), store, progress=False, max_attempts=1)
    assert (summary.ok, summary.failed) == (2, 2)
    assert any("ended expired" in reason for reason in summary.failure_reasons)
    fake_openai.batch_final_status = "completed"
    assert caption_images(pairs, batch_backend(fake_openai), store, progress=False).ok == 2


def test_factory_and_synchronous_answer_batch(fake_openai, tmp_path):
    backend = make_caption_backend({"backend": "openai-batch", "base_url": fake_openai.base_url, "poll_interval": 0.01})
    assert backend.name == "openai-batch"
    from rsrt_utils.captioning.backend import CaptionRequest
    pairs = make_images(tmp_path / "img", 2)
    answers = backend.answer_batch([CaptionRequest(i, p) for i, p in pairs] + [CaptionRequest("x", None)], "image_query")
    assert answers[0].raw_text.startswith("A satellite image") and answers[2].error


def test_a_large_run_is_split_into_files_within_the_api_limits(fake_openai, tmp_path, monkeypatch):
    """The Batch API takes at most 50 000 requests and 200 MB per file: a larger run goes as several batches, one
    after another, every image in exactly one of them (here with limits of 2 requests and of about 3 lines' bytes)."""
    from rsrt_utils.captioning import openai_batch

    pairs = make_images(tmp_path / "img", 5)
    monkeypatch.setattr(openai_batch, "MAX_BATCH_REQUESTS", 2)
    summary = caption_images(pairs, batch_backend(fake_openai), tmp_path / "c.jsonl", progress=False)
    assert summary.ok == 5 and len(fake_openai.requests_to("/batches", "POST")) == 3
    files = [f for f in fake_openai.files.values() if f["purpose"] == "batch"]
    ids = [json.loads(t)["custom_id"] for f in files for t in f["content"].decode().splitlines()]
    assert sorted(len(f["content"].decode().splitlines()) for f in files) == [1, 2, 2] and len(set(ids)) == 5

    one_line = max(len(t) for f in files for t in f["content"].decode().splitlines()) + 1
    monkeypatch.setattr(openai_batch, "MAX_BATCH_REQUESTS", 50_000)
    monkeypatch.setattr(openai_batch, "MAX_BATCH_BYTES", 3 * one_line)
    more = make_images(tmp_path / "more", 7, prefix="more")
    before = len(fake_openai.requests_to("/batches", "POST"))
    second = caption_images(more, batch_backend(fake_openai), tmp_path / "d.jsonl", progress=False)
    assert second.ok == 7 and len(fake_openai.requests_to("/batches", "POST")) - before == 3  # 3 + 3 + 1 lines

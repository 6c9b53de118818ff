"""The OpenAI-compatible chat backend against a real local HTTP server (tests/fakes/openai_server.py)."""

import base64
import io
import logging
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from rsrt_utils.captioning.api import make_caption_backend
from rsrt_utils.captioning.backend import BackendFatalError, CaptionRequest
from rsrt_utils.captioning.corpus import CorpusStore, load_query_texts, load_variants
from rsrt_utils.captioning.openai_chat import OpenAIChatBackend, parse_retry_after
from rsrt_utils.captioning.runner import caption_images
from tests.fakes.keys import fake_key
from tests.fakes.synthetic_images import make_images

FAKE_KEY = fake_key("chat")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def backend_for(server, **options):
    options = {"base_url": server.base_url, "backoff_base": 0.01, "timeout": 5.0, **options}
    return OpenAIChatBackend(**options)


def test_defaults_are_the_authors_settings(fake_openai, tmp_path):
    (image_id, path), = make_images(tmp_path, 1)
    backend = backend_for(fake_openai)
    answer = backend.answer_one(CaptionRequest(image_id, path), "variants")
    assert answer.error is None and answer.usage["prompt_tokens"] > 0
    body = fake_openai.chat_requests()[0].body
    assert body["model"] == "gpt-4.1" and body["temperature"] == 0.3 and body["max_tokens"] == 1800
    assert body["response_format"] == {"type": "json_object"}
    image_part = body["messages"][0]["content"][1]["image_url"]
    assert image_part["detail"] == "high" and image_part["url"].startswith("data:image/jpeg;base64,")
    from PIL import Image
    decoded = Image.open(io.BytesIO(base64.b64decode(image_part["url"].split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (24, 24)
    assert fake_openai.chat_requests()[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert FAKE_KEY not in str(backend.settings)


def test_image_query_mode_sends_the_second_prompt_without_json_format(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 2)
    summary = caption_images(pairs, backend_for(fake_openai), tmp_path / "q.jsonl", mode="image_query", progress=False)
    assert summary.ok == 2
    body = fake_openai.chat_requests()[0].body
    assert "response_format" not in body and "North" in body["messages"][0]["content"][0]["text"]
    assert all(text.startswith("A satellite image") for text in load_query_texts(tmp_path / "q.jsonl").values())


def test_retry_after_seconds_is_honoured(fake_openai, tmp_path):
    (image_id, path), = make_images(tmp_path, 1)
    fake_openai.script("429:0.6")
    answer = backend_for(fake_openai).answer_one(CaptionRequest(image_id, path), "variants")
    first, second = fake_openai.chat_requests()
    assert answer.error is None and answer.usage["http_retries"] == 1
    assert second.at - first.at >= 0.6


def test_retry_after_http_date_is_honoured(fake_openai, tmp_path):
    (image_id, path), = make_images(tmp_path, 1)
    fake_openai.script("429-date:2")
    answer = backend_for(fake_openai).answer_one(CaptionRequest(image_id, path), "variants")
    first, second = fake_openai.chat_requests()
    assert answer.error is None and second.at - first.at >= 0.9  # HTTP dates have one-second resolution


def test_parse_retry_after_forms():
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": format_datetime(now + timedelta(seconds=7), usegmt=True)}, now) == 7.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


def test_server_errors_back_off_then_succeed(fake_openai, tmp_path):
    (image_id, path), = make_images(tmp_path, 1)
    fake_openai.script("500", "502", "503")
    sleeps = []
    backend = backend_for(fake_openai, backoff_base=0.1, sleep=lambda s: sleeps.append(s))
    answer = backend.answer_one(CaptionRequest(image_id, path), "variants")
    assert answer.error is None and answer.usage["http_retries"] == 3
    assert len(sleeps) == 3 and 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2 and 0.2 <= sleeps[2] <= 0.4


def test_retries_are_bounded_and_the_failure_is_recorded(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 2)
    fake_openai.script("500", "500", "500")
    backend = backend_for(fake_openai, max_retries=2)
    summary = caption_images(pairs, backend, tmp_path / "c.jsonl", concurrency=1, progress=False)
    assert (summary.ok, summary.failed) == (1, 1)
    assert any("gave up after 3 attempts" in reason and "HTTP 500" in reason for reason in summary.failure_reasons)


def test_stalled_server_times_out_and_is_retried(fake_openai, tmp_path):
    (image_id, path), = make_images(tmp_path, 1)
    fake_openai.script("stall:1.5")
    started = time.monotonic()
    answer = backend_for(fake_openai, timeout=0.3).answer_one(CaptionRequest(image_id, path), "variants")
    assert answer.error is None and answer.usage["http_retries"] == 1
    assert time.monotonic() - started < 1.4
    fake_openai.script("stall:1", "stall:1")
    failed = backend_for(fake_openai, timeout=0.2, max_retries=1).answer_one(CaptionRequest(image_id, path), "variants")
    assert "timed out after 0.2 s" in failed.error


@pytest.mark.parametrize("status", ["401", "403"])
def test_auth_errors_fail_fast_naming_the_variable_not_the_key(fake_openai, tmp_path, status):
    pairs = make_images(tmp_path / "img", 3)
    fake_openai.default = status
    with pytest.raises(BackendFatalError) as error:
        caption_images(pairs, backend_for(fake_openai), tmp_path / "c.jsonl", concurrency=1, progress=False)
    assert "OPENAI_API_KEY" in str(error.value) and FAKE_KEY not in str(error.value)
    assert len(fake_openai.chat_requests()) == 1, "no retry, no further image after an auth failure"


def test_missing_key_names_the_configured_variable(fake_openai, tmp_path, monkeypatch):
    (image_id, path), = make_images(tmp_path, 1)
    monkeypatch.delenv("MY_KEY", raising=False)
    backend = backend_for(fake_openai, api_key_env="MY_KEY")
    with pytest.raises(BackendFatalError, match="MY_KEY"):
        backend.answer_one(CaptionRequest(image_id, path), "variants")


def test_bad_answers_are_parsed_or_retried_with_the_strict_prompt(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 6)
    fake_openai.script("fenced", "prose", "malformed", "ok", "four", "duplicate", "empty_field", "ok")
    summary = caption_images(pairs, backend_for(fake_openai), tmp_path / "c.jsonl", concurrency=1, progress=False)
    assert (summary.ok, summary.failed, summary.retried) == (5, 1, 3)
    prompts = [r.body["messages"][0]["content"][0]["text"] for r in fake_openai.chat_requests()]
    assert ["IMPORTANT" in p for p in prompts] == [False, False, False, True, False, True, False, True, False]
    assert len(load_variants(tmp_path / "c.jsonl")) == 5


def test_concurrency_limit_is_respected(fake_openai, tmp_path):
    pairs = make_images(tmp_path / "img", 8)
    fake_openai.latency = 0.2
    backend = backend_for(fake_openai, concurrency=2)
    requests = [CaptionRequest(i, p) for i, p in pairs]
    started = time.monotonic()
    answers = backend.answer_batch(requests, "variants")
    assert all(a.error is None for a in answers) and time.monotonic() - started >= 0.75  # 8 calls, 2 at a time


def test_api_key_never_appears_in_corpus_logs_or_summary(fake_openai, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    pairs = make_images(tmp_path / "img", 4)
    fake_openai.script("429:0.05", "500", "malformed")
    summary = caption_images(pairs, backend_for(fake_openai), tmp_path / "c.jsonl", concurrency=2, progress=False)
    fake_openai.default = "401"  # this server echoes the bearer token in its error message
    with pytest.raises(BackendFatalError) as error:
        caption_images(make_images(tmp_path / "more", 1, size=30, prefix="x"), backend_for(fake_openai), tmp_path / "c.jsonl",
                       progress=False)
    texts = [(tmp_path / "c.jsonl").read_text(), caplog.text, summary.text(), str(summary.to_dict()), str(error.value)]
    assert summary.ok == 4
    assert all(FAKE_KEY not in text for text in texts)
    assert all(FAKE_KEY not in str(r.model_dump()) for r in CorpusStore(tmp_path / "c.jsonl").records())


def test_factory_builds_the_chat_backend_for_any_compatible_server(fake_openai):
    backend = make_caption_backend({"backend": "openai-chat", "model": "llava-v1.6", "base_url": fake_openai.base_url,
                                    "concurrency": 4})
    assert backend.model == "llava-v1.6" and backend.settings["base_url"] == fake_openai.base_url
    with pytest.raises(ValueError, match="did you mean 'gpt-4.1'"):
        make_caption_backend({"backend": "openai-chat", "model": "gpt-41"})
    with pytest.raises(ValueError, match="did you mean 'openai-chat'"):
        make_caption_backend({"backend": "openai-chta"})
    with pytest.raises(ValueError, match="did you mean 'temperature'"):
        make_caption_backend({"backend": "openai-chat", "temprature": 0.1})


def test_cli_caption_dry_run_shows_the_cost_then_runs(fake_openai, tmp_path, monkeypatch, capsys):
    import argparse

    import rsrt_utils.data as data
    from rsrt_utils.commands.caption import add_caption_subcommands
    from rsrt_utils.data.dataset import Dataset, ImageRecord

    pairs = make_images(tmp_path / "img", 3)
    images = [ImageRecord(i, "scene", "test", p) for i, p in pairs] + [ImageRecord("nopx.png", "scene", "test", None)]
    dataset = Dataset("rsitmd", "test", images, ["c1", "c2", "c3", "c4"], [0, 1, 2, 3])
    monkeypatch.setattr(data, "load_dataset", lambda name, split, root=None, images_dir=None: dataset)
    parser = argparse.ArgumentParser()
    add_caption_subcommands(parser.add_subparsers(dest="command"))
    out = tmp_path / "c.jsonl"
    args = parser.parse_args(["caption", "--dataset", "rsitmd", "--out", str(out), "--dry-run"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "3 to caption" in printed and "estimated cost $" in printed and not out.exists()
    args = parser.parse_args(["caption", "--dataset", "rsitmd", "--out", str(out), "--base-url", fake_openai.base_url,
                              "--limit", "2", "--concurrency", "2"])
    assert args.func(args) == 0
    assert len(load_variants(out)) == 2 and "captioned 2 image(s)" in capsys.readouterr().out


def test_credentials_in_base_url_never_reach_a_log(fake_openai, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    url = fake_openai.base_url.replace("http://", "http://user:s3cr3t-pass@")
    caption_images(make_images(tmp_path / "img", 2), backend_for(fake_openai, base_url=url), tmp_path / "c.jsonl",
                   progress=False)
    assert len(fake_openai.requests) == 2
    assert "HTTP Request: POST http://***@127.0.0.1" in caplog.text  # the client did log the request
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in (tmp_path / "c.jsonl").read_text()


def test_cli_caption_refuses_a_split_without_pixels_and_bad_limits(tmp_path, monkeypatch, capsys):
    import argparse

    import rsrt_utils.data as data
    from rsrt_utils.commands.caption import add_caption_subcommands
    from rsrt_utils.data.dataset import Dataset, ImageRecord

    no_pixels = Dataset("rsitmd", "test", [ImageRecord("a.tif", "scene", "test", None)], ["c"], [0])
    monkeypatch.setattr(data, "load_dataset", lambda name, split, root=None, images_dir=None: no_pixels)
    parser = argparse.ArgumentParser()
    add_caption_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["caption", "--dataset", "rsitmd", "--out", str(tmp_path / "c.jsonl"), "--dry-run"])
    with pytest.raises(ValueError, match="none of its 1 images has a pixel file here; pass --images-dir DIR"):
        args.func(args)
    for bad in ("0", "-5", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args(["caption", "--dataset", "rsicd", "--limit", bad])
        assert "--limit" in capsys.readouterr().err


def test_cli_caption_says_how_many_images_have_no_pixels(fake_openai, tmp_path, monkeypatch, capsys):
    import argparse

    import rsrt_utils.data as data
    from rsrt_utils.commands.caption import add_caption_subcommands
    from rsrt_utils.data.dataset import Dataset, ImageRecord

    pairs = make_images(tmp_path / "img", 3)
    images = [ImageRecord(i, "scene", "test", p) for i, p in pairs] + [ImageRecord("00017.jpg", "unlabelled", "test", None)]
    monkeypatch.setattr(data, "load_dataset", lambda name, split, root=None, images_dir=None:
                        Dataset("rsicd", "test", images, ["a", "b", "c", "d"], [0, 1, 2, 3]))
    parser = argparse.ArgumentParser()
    add_caption_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["caption", "--dataset", "rsicd", "--out", str(tmp_path / "c.jsonl"), "--dry-run", "--limit", "2"])
    assert args.func(args) == 0
    assert "3 of 4 images have pixels; the 1 without pixels are not captioned; captioning the first 2" in capsys.readouterr().out


def test_records_are_handed_on_as_each_image_is_answered_not_when_the_chunk_is_done(fake_openai, tmp_path):
    from rsrt_utils.captioning.runner import caption_as_answered

    pairs = make_images(tmp_path, 6)
    requests = [CaptionRequest(image_id, path, f"sha-{i}") for i, (image_id, path) in enumerate(pairs)]
    fake_openai.script("stall:1.5")  # the first request to arrive is answered 1.5 s late
    backend = backend_for(fake_openai, concurrency=6)
    started, arrivals = time.monotonic(), []
    for record, _ in caption_as_answered(backend, requests, [f"k{i}" for i in range(6)], "variants", 2):
        arrivals.append((record.cache_key, record.status, time.monotonic() - started))
    assert sorted(key for key, _, _ in arrivals) == [f"k{i}" for i in range(6)]
    assert all(status == "ok" for _, status, _ in arrivals) and len(fake_openai.chat_requests()) == 6
    times = sorted(t for _, _, t in arrivals)
    assert times[-1] >= 1.5 and times[-2] < 1.0, "the five quick answers came out before the stalled one was answered"

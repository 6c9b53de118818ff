"""A fleet of OpenAI-compatible servers behind one openai-chat backend: spread, per-server concurrency, a failing
server taken out of rotation, the report, the cache key and the command line; asserted by the servers' own counts."""

import threading
import time

import pytest

from rsrt_utils.captioning.api import build_backend
from rsrt_utils.captioning.corpus import CorpusStore
from rsrt_utils.captioning.images import build_requests
from rsrt_utils.captioning.runner import caption_images, request_key
from rsrt_utils.cli import main
from tests.fakes.keys import fake_key
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.synthetic_images import make_images

FAKE_KEY = fake_key("fleet")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


@pytest.fixture
def two_servers():
    with FakeOpenAIServer() as first, FakeOpenAIServer() as second:
        yield first, second


def fleet(servers, **options):
    urls = [s.base_url for s in servers]
    return build_backend({"backend": "openai-chat", "model": "fake-vlm", "base_url": urls if len(urls) > 1 else urls[0],
                          "backoff_base": 0.01, **options})


def test_requests_are_spread_over_the_servers_with_a_concurrency_each(two_servers, tmp_path):
    first, second = two_servers
    first.latency = second.latency = 0.3
    pairs = make_images(tmp_path / "img", 12)
    started = time.monotonic()
    caption_images(pairs, fleet(two_servers[:1], concurrency=3), tmp_path / "one.jsonl", concurrency=3, progress=False)
    alone = time.monotonic() - started
    first.reset()
    started = time.monotonic()
    summary = caption_images(pairs, fleet(two_servers, concurrency=3), tmp_path / "c.jsonl", concurrency=3,
                             progress=False)
    elapsed = time.monotonic() - started
    assert summary.ok == 12 and len(first.chat_requests()) == len(second.chat_requests()) == 6
    assert elapsed < 0.75 * alone, f"two servers with 3 in flight each ({elapsed:.2f} s) beat one ({alone:.2f} s)"
    assert [row["requests"] for row in summary.endpoints] == [6, 6] and "endpoint http://127.0.0.1" in summary.text()
    records = list(CorpusStore(tmp_path / "c.jsonl").records())
    assert len({r.cache_key for r in records}) == 12 and len(records) == 12


def test_batches_sharing_the_fleet_finish_in_the_order_they_started(two_servers, tmp_path):
    """A batch started later waits for the slots the earlier one needs, so a killed run loses the newest batches."""
    first, _ = two_servers
    first.latency = 0.2
    backend = fleet(two_servers[:1], concurrency=2)
    batches = [build_requests(make_images(tmp_path / name, 8, prefix=name)) for name in ("a", "b")]
    took = {}

    def run(name, requests):
        started = time.monotonic()
        answers = backend.answer_batch(requests, "variants")
        took[name] = (time.monotonic() - started, sum(a.error is None for a in answers))

    threads = [threading.Thread(target=run, args=(name, requests)) for name, requests in zip("ab", batches)]
    threads[0].start(), time.sleep(0.05), threads[1].start()
    [thread.join() for thread in threads]
    assert took["a"][1] == took["b"][1] == 8 and len(first.chat_requests()) == 16
    assert took["a"][0] < 0.7 * took["b"][0], f"the first batch waits for no later one: {took}"


def test_a_server_answering_500s_is_taken_out_of_rotation_and_reported(two_servers, tmp_path):
    first, second = two_servers
    second.default = "500"
    pairs = make_images(tmp_path / "img", 20)
    backend = fleet(two_servers, concurrency=2, endpoint_max_failures=3)
    summary = caption_images(pairs, backend, tmp_path / "c.jsonl", concurrency=2, progress=False)
    assert summary.ok == 20 and summary.failed == 0, "every image answered by the healthy server"
    assert len(second.chat_requests()) <= 3 + 2, "at most the failures that took it out, plus those in flight"
    assert len(first.chat_requests()) == 20
    report = {row["endpoint"]: row for row in summary.endpoints}
    bad = report[second.base_url]
    assert not bad["in_rotation"] and bad["ok"] == 0 and sum(bad["errors"].values()) == len(second.chat_requests())
    assert "TAKEN OUT OF ROTATION" in summary.text()


def test_the_cache_key_names_the_fleet_not_the_server_that_answered(two_servers, tmp_path):
    pairs = make_images(tmp_path / "img", 1)
    request = build_requests(pairs)[0]
    backend = fleet(two_servers)
    reversed_fleet = build_backend({"backend": "openai-chat", "model": "fake-vlm", "backoff_base": 0.01,
                                    "base_url": [s.base_url for s in reversed(two_servers)]})
    single = build_backend({"backend": "openai-chat", "model": "fake-vlm", "base_url": two_servers[0].base_url})
    assert request_key(backend, request, "variants") == request_key(reversed_fleet, request, "variants")
    assert request_key(backend, request, "variants") != request_key(single, request, "variants")
    assert single.settings["base_url"] == two_servers[0].base_url


def test_the_command_line_takes_several_servers_or_a_file_and_names_a_bad_line(two_servers, tmp_path, capsys,
                                                                               monkeypatch):
    monkeypatch.setenv("RSRT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    make_images(tmp_path / "img", 6)
    listing = tmp_path / "fleet.txt"
    listing.write_text(f"# the fleet\n{two_servers[0].base_url}\n\n{two_servers[1].base_url}\n")
    build = ["index", "build", str(tmp_path / "img"), "--name", "shots", "--backend", "openai-chat", "--model", "fake-vlm",
             "--encoder", "hashing:256", "--quiet", "--base-url", f"@{listing}"]
    assert main(build) == 0
    assert len(two_servers[0].chat_requests()) + len(two_servers[1].chat_requests()) == 6
    assert min(len(two_servers[0].chat_requests()), len(two_servers[1].chat_requests())) >= 2
    listing.write_text(f"{two_servers[0].base_url}\nlocalhost:8000/v1\n")
    with pytest.raises(SystemExit):
        main(build)
    err = capsys.readouterr().err
    assert "fleet.txt line 2" in err and "is not an http(s) URL" in err
    sent = len(two_servers[0].chat_requests()) + len(two_servers[1].chat_requests())
    with pytest.raises(SystemExit):
        main(build[:-2] + ["--base-url", two_servers[0].base_url, "--base-url", "ftp://x/v1"])
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert len(two_servers[0].chat_requests()) + len(two_servers[1].chat_requests()) == sent, "nothing sent"

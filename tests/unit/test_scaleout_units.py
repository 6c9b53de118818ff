"""The Ray engine's parts that need no cluster, tested fast: the address check, a backend's identity, what is sent
(done keys and repeats left out, the runner's own `todo`) and the driver's writing (once per key, counted)."""

from __future__ import annotations

import pytest
from PIL import Image

from rsrt_utils.captioning.backend import CaptionRequest, capability
from rsrt_utils.captioning.corpus import CorpusStore
from rsrt_utils.captioning.runner import RunSummary, make_record, request_key
from rsrt_utils.captioning.schema import Variant
from rsrt_utils.engine import Where
from rsrt_utils.scaleout.captioning import (
    FLEET_CALLS_PER_ACTOR,
    backend_identity,
    identity_of,
    key_variables,
    plain,
    rows_to_send,
    write_records,
)
from rsrt_utils.scaleout.cluster import WorkerSecrets, check_address
from rsrt_utils.scaleout.engine import open_engine
from tests.fakes.keys import fake_key


class Backend:
    name, model, prompt_version, label = "scripted", "m", "p1", "a caveat"
    settings = {"x": 1}


class FleetBackend(Backend):
    fleet, total_concurrency = object(), 12


@pytest.mark.parametrize("address", ["auto", "local", "10.0.0.5:6379", "ray://head:10001", "[::1]:6379"])
def test_accepted_addresses_are_kept(address):
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["my cluster", "10.0.0.5", "http://head:6379", "head:port"])
def test_a_bad_address_is_named_with_the_accepted_forms(address):
    with pytest.raises(ValueError, match=f"--ray {address!r} is not a Ray address.*HOST:PORT"):
        check_address(address)


def test_a_backends_identity_is_what_its_cache_keys_are_made_of():
    identity = backend_identity(Backend())
    assert identity == {"name": "scripted", "model": "m", "prompt_version": "p1", "settings": {"x": 1},
                        "label": "a caveat", "batch_size": 1, "in_flight": 1, "calls_per_actor": 1}
    stand_in = identity_of(identity)
    request = CaptionRequest("a.jpg", None, "ab" * 32)
    assert request_key(stand_in, request, "variants") == request_key(Backend(), request, "variants")
    fleet = backend_identity(FleetBackend())
    assert (fleet["in_flight"], fleet["calls_per_actor"]) == (12, FLEET_CALLS_PER_ACTOR)
    assert capability(Backend(), "batch_size") == 1 and capability(FleetBackend(), "total_concurrency") == 12


def test_rows_leave_out_what_is_done_and_repeats():
    requests = [CaptionRequest(f"{i}.jpg", None, f"{i:064x}") for i in range(4)] + [CaptionRequest("1.jpg", None, f"{1:064x}")]
    identity = backend_identity(Backend())
    done = {request_key(Backend(), requests[0], "variants")}
    summary = RunSummary(total=len(requests))
    rows = rows_to_send(requests, identity, "variants", done, summary)
    assert [r["image_id"] for r in rows] == ["1.jpg", "2.jpg", "3.jpg"] and summary.skipped_done == 2
    assert [r["key"] for r in rows] == [request_key(Backend(), requests[i], "variants") for i in (1, 2, 3)]


def test_the_driver_writes_each_key_once(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    variants = [Variant(one_sentence="A field.", feature="green", caption=f"A green field {k}.") for k in range(5)]
    records = [make_record(Backend(), CaptionRequest(f"{i}.png", image, f"{i:064x}"), f"key-{i}", "variants",
                           {"variants": variants}, None, {}) for i in range(3)]
    batch = {"record": [r.model_dump_json() for r in records], "retries": [0, 1, 0], "path": [str(image)] * 3}
    again = {"record": [records[1].model_dump_json()], "retries": [0], "path": [str(image)]}  # a retried call's repeat
    summary = RunSummary(total=3)

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    with CorpusStore(tmp_path / "corpus.jsonl") as store:
        write_records([batch, again], store, summary, bar)
    assert CorpusStore(tmp_path / "corpus.jsonl").done_keys() == {"key-0", "key-1", "key-2"}
    assert len((tmp_path / "corpus.jsonl").read_text().splitlines()) == 3 and (summary.ok, bar.n) == (3, 3)


def test_a_backends_key_variable_comes_from_its_registry_entry():
    assert key_variables({"backend": "openai-chat"}) == ("OPENAI_API_KEY",)
    assert key_variables({"backend": "openai-chat", "api_key_env": "MY_KEY"}) == ("MY_KEY",)
    assert key_variables({"backend": "neighbour"}) == ()


def test_what_travels_to_a_worker_is_plain_and_masked(monkeypatch):
    assert plain({"dataset": "rsicd", "split_source": {"name": "rsicd", "root": "/d"}, "load_train": print}) == \
        {"dataset": "rsicd", "split_source": {"name": "rsicd", "root": "/d"}}
    secret = fake_key("scaleout-unit")
    secrets = WorkerSecrets((), [f"http://127.0.0.1:8000/v1?api-key={secret}"])
    sealed = secrets.seal({"backend": "openai-chat", "base_url": f"http://127.0.0.1:8000/v1?api-key={secret}"})
    assert secret not in str(sealed) and secrets.unseal(sealed)["base_url"].endswith(secret)
    with pytest.raises(RuntimeError, match="connected Ray cluster"):
        import pickle

        monkeypatch.setenv("RSRT_TEST_KEY", secret)
        pickle.dumps(WorkerSecrets(("RSRT_TEST_KEY",)))


def test_opening_the_local_engine_needs_no_cluster_and_refuses_a_ray_only_backend():
    assert open_engine(Where(), {"backend": "neighbour"}).where == Where()
    with pytest.raises(ValueError, match="'vllm' runs on a Ray cluster: add --ray ADDRESS"):
        open_engine(Where(), {"backend": "vllm", "model": "m"})

"""docs/contributing.md followed literally for a paid HTTP backend, a metric and a web page: each toy one is added in
the files the guide names (here: a module on the path and the registry entries the guide lists) and reaches every
place the guide promises."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from jinja2 import ChoiceLoader, FileSystemLoader
from PIL import Image

from rsrt_utils import metrics_record
from rsrt_utils.app import pages, search_routes
from rsrt_utils.app.server import create_app
from rsrt_utils.captioning.registry import BACKENDS_INFO, BackendInfo, Pricing
from rsrt_utils.cli import main
from rsrt_utils.data import load_dataset
from rsrt_utils.engine import Where
from rsrt_utils.evaluation import human_caption_oracle
from rsrt_utils.evaluation import metrics_record as record_of
from rsrt_utils.scaleout.captioning import key_variables
from rsrt_utils.search.collection import Collection
from rsrt_utils.study import book, pipeline, report
from rsrt_utils.study.params import parse_params
from rsrt_utils.study.smoke import make_smoke_dataset
from tests.fakes.keys import fake_key

KEY = fake_key("toycloud")

# ---------------------------------------------------------------- a paid HTTP backend: its module (file 1 of 2)
TOYCLOUD = '''
"""A toy paid captioning service over HTTP: POST /describe with the image's mean colour, bearer key from TOYCLOUD_KEY."""
import json
import os
import urllib.request

from PIL import Image

from rsrt_utils.captioning.backend import BackendAnswer, BackendFatalError
from rsrt_utils.captioning.schema import Variant


class ToyCloudBackend:
    name, prompt_version, label = "toycloud", "toycloud-v1", None

    def __init__(self, model: str = "toy-1", base_url: str = "http://127.0.0.1:1", concurrency: int = 2):
        self.model, self.base_url, self.settings = model, base_url.rstrip("/"), {}

    def answer_batch(self, requests, mode, strict=False):
        key = os.environ.get("TOYCLOUD_KEY")
        if not key:
            raise BackendFatalError("export TOYCLOUD_KEY=... (the service's key)")
        return [self._one(r, key) for r in requests]

    def _one(self, request, key):
        rgb = Image.open(request.image_path).convert("RGB").resize((1, 1)).getpixel((0, 0))
        ask = urllib.request.Request(f"{self.base_url}/describe", data=json.dumps({"rgb": rgb, "model": self.model}).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        text = json.loads(urllib.request.urlopen(ask, timeout=10).read())["text"]
        return BackendAnswer(variants=[Variant(one_sentence=text, feature=text, caption=f"{text} ({k})") for k in range(5)])
'''

# ... and its registry entry (file 2 of 2), with its own prices, their source and its key variable
TOYCLOUD_INFO = BackendInfo("toycloud", "toycloud_backend", "ToyCloudBackend", True, True, "a toy paid HTTP service",
                            ("model", "base_url", "concurrency"),
                            pricing=Pricing({"toy-1": {"input_per_1m": 1.0, "output_per_1m": 3.0}}, "toy-1",
                                            source="https://toycloud.invalid/pricing", as_of="2026-12"),
                            key_variable="TOYCLOUD_KEY")


class ToyCloud(BaseHTTPRequestHandler):
    """The service: names the dominant colour; records the keys it was sent."""

    keys: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        rgb = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["rgb"]
        type(self).keys.append(self.headers.get("Authorization"))
        colour = ("red", "green", "blue")[int(np.argmax(rgb))]
        body = json.dumps({"text": f"A {colour} field seen from above."}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def toycloud(tmp_path, monkeypatch):
    (tmp_path / "toycloud_backend.py").write_text(TOYCLOUD, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(BACKENDS_INFO, "toycloud", TOYCLOUD_INFO)
    monkeypatch.setenv("RSRT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOYCLOUD_KEY", KEY)
    ToyCloud.keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ToyCloud)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_paid_http_backend_is_priced_keyed_and_checked_by_its_own_entry(toycloud, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for colour, rgb in (("red", (210, 20, 20)), ("green", (20, 170, 30)), ("blue", (20, 50, 210))):
        Image.new("RGB", (16, 16), rgb).save(images / f"{colour}.png")
    build = ["index", "build", str(images), "--name", "toy", "--backend", "toycloud", "--base-url", toycloud,
             "--encoder", "hashing:512", "--quiet"]
    assert main(build + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 to caption" in out and "$0.01 " in out and "toycloud.invalid/pricing" in out, out  # GPT-4.1 rates: $0.03
    assert "2026-12" in out and ToyCloud.keys == []
    assert main(build) == 0, capsys.readouterr().err
    assert ToyCloud.keys == [f"Bearer {KEY}"] * 3, "its key variable reached the service"
    assert Collection.open("toy").search_text("a green field", k=1)[0].image_id == "green.png"
    assert key_variables({"backend": "toycloud"}) == ("TOYCLOUD_KEY",), "under --ray the workers get its key variable"
    assert main(build[:-1] + ["--name", "other", "--model", "toy-2", "--dry-run"]) == 0  # any model name is its own
    assert "no list price for model 'toy-2'" in capsys.readouterr().out

    params = parse_params({"run_name": "toy", "captioner": {"backend": "toycloud", "options": {"base_url": toycloud}}})
    estimate = pipeline.cost_estimate(pipeline.StudyRun(params, tmp_path / "run"), SimpleNamespace(n_images=1000))
    assert estimate["usd"] == round(1000 * (550 * 1.0 + 1000 * 3.0) / 1e6, 4) and "toycloud.invalid" in estimate["text"]
    mine = parse_params({"run_name": "toy", "captioner": {"backend": "toycloud", "options": {"base_url": toycloud},
                                                          "prices": {"input_per_1m": 0.0, "output_per_1m": 1.0}}})
    assert pipeline.cost_estimate(pipeline.StudyRun(mine, tmp_path / "run"), SimpleNamespace(n_images=1000))["usd"] == 1.0


# ---------------------------------------------------------------- a metric: one Metric in metrics_record.METRICS
def median_rank_t2i(t2i, i2t, caption_image_index, ties):
    """The median rank of each text query's image (1 = first)."""
    own = t2i[np.arange(len(caption_image_index)), caption_image_index]
    return float(np.median((t2i > own[:, None]).sum(axis=1) + 1))


@pytest.fixture
def toy_metric(monkeypatch):
    monkeypatch.setattr(metrics_record, "METRICS", [metrics_record.Metric("median_rank_t2i", median_rank_t2i)])
    return "median_rank_t2i"


def test_a_metric_reaches_metrics_json_summary_csv_the_book_and_the_oracle(toy_metric, tmp_path, monkeypatch):
    monkeypatch.setenv("RSRT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    outputs = tmp_path / "outputs"
    run = pipeline.open_run("smoke", str(outputs / "smoke"), {"encoder.spec": "hashing:512", "evaluation.n_boot": 20})
    dataset = pipeline.prepare_dataset(run)
    pipeline.build_corpus(run, dataset, progress=False)
    pipeline.score_run(run, dataset)
    record = pipeline.evaluate_run(run, dataset)
    assert json.loads(run.folder.metrics.read_text())[toy_metric] == record[toy_metric] == 1.0  # metrics.json
    run.folder.mark_complete({"params_digest": run.params.digest()})

    summary = report.build_report(outputs)["table"]
    assert list(summary.columns)[list(summary.columns).index("mR_i2t") + 1] == toy_metric  # summary.csv, after mR's
    assert summary["mR_t2i"].tolist() == [record["mR_t2i"]]
    assert summary[toy_metric].tolist() == [1.0]
    front = book.headline_table([run.folder])
    assert front[toy_metric].tolist() == [1.0]  # the book's front page

    smoke = make_smoke_dataset(tmp_path / "data" / "smoke")
    test = load_dataset("smoke", "test", annotations=smoke, images_dir=smoke / "images")
    oracle = human_caption_oracle(test, run.engine().encoder("hashing:512", progress=False), n_boot=10)
    assert isinstance(oracle[toy_metric], float)  # the oracle's record, averaged over its rounds
    assert record_of(oracle, test, "oracle", "hashing:512", "max")[toy_metric] == oracle[toy_metric]


def test_a_record_the_schema_does_not_know_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'median_rank_t2i'"):
        metrics_record.write_record({"dataset": "x", "split": "test", "n_images": 1, "captioner": "c", "pooling": "max",
                                     "t2i": {}, "i2t": {}, "mR": 1.0, "ci95": {}, "median_rank_t2i": 2.0},
                                    tmp_path / "metrics.json")
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------- a web page: a template, a route, a menu entry
def test_a_web_page_is_a_template_a_route_and_a_menu_entry(tmp_path, monkeypatch):
    (tmp_path / "toy.html").write_text('{% extends "base.html" %}{% block content %}<h1>Toy page</h1>'
                                       '<p>{{ message }}</p>{% endblock %}', encoding="utf-8")
    monkeypatch.setattr(pages.templates.env, "loader", ChoiceLoader([pages.templates.env.loader,
                                                                     FileSystemLoader(tmp_path)]))
    monkeypatch.setattr(pages, "NAV", pages.NAV + [("toy", "/toy", "Toy")])
    monkeypatch.setitem(pages.templates.env.globals, "nav", pages.NAV)
    monkeypatch.setattr(search_routes.router, "routes", list(search_routes.router.routes))

    @search_routes.router.get("/toy")
    def toy_page(request):
        return pages.render(request, "toy.html", {"section": "toy", "message": "hello"})

    toy_page.__annotations__["request"] = search_routes.Request
    with TestClient(create_app(tmp_path / "outputs", tmp_path / "indexes"), base_url="http://127.0.0.1") as client:
        page = client.get("/toy")
        assert page.status_code == 200 and "<h1>Toy page</h1>" in page.text and "hello" in page.text
        assert '<a href="/toy" class="active">Toy</a>' in page.text  # its menu entry, marked on its own page
        assert '<a href="/toy" >Toy</a>' in client.get("/search").text  # and on every other page
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_where_names_the_engine_a_study_run_passes_to_its_notebooks():
    assert Where.parse(Where("127.0.0.1:6379", 3).spec) == Where("127.0.0.1:6379", 3)
    assert Where.parse("local") == Where() and Where().spec == "local"
    with pytest.raises(ValueError, match="'ray somewhere'"):
        Where.parse("ray somewhere")
    with pytest.raises(ValueError, match="--actors 0"):
        Where("auto", 0)

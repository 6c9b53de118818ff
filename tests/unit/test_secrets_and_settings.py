"""Secrets by value, one redaction for every URL shown, settings checked before work, and errors that keep the
app's security headers."""

from __future__ import annotations

import pickle

import pytest
from fastapi.testclient import TestClient

from rsrt_utils.captioning.api import check_base_url
from rsrt_utils.cli import main
from rsrt_utils.image_files import image_problem
from rsrt_utils.logsafe import Typed, redact, scrub
from rsrt_utils.scaleout.cluster import WorkerSecrets
from tests.fakes.bad_images import png_claiming
from tests.fakes.keys import fake_key

SECRET = fake_key("url")


@pytest.mark.parametrize("url", [f"bob://{SECRET}@127.0.0.1:8000/v1", f"127.0.0.1:8000/v1?api-key={SECRET}",
                                 f"user:{SECRET}@127.0.0.1:8000/v1", f"localhost:8000/v1?token={SECRET}&x=1",
                                 f"ftp://u:{SECRET}@host/v1"],
                         ids=["unknown scheme", "key in query", "no scheme", "token in query", "ftp"])  # ids hold no key
def test_a_malformed_base_url_is_named_without_its_secret(url, capsys):
    with pytest.raises(ValueError, match="is not an http") as error:
        check_base_url(url)
    assert SECRET not in str(error.value) and "***" in str(error.value)
    with pytest.raises(SystemExit):  # argparse checks --base-url and exits 2
        main(["index", "build", ".", "--name", "x", "--backend", "openai-chat", "--model", "m", "--base-url", url])
    printed = capsys.readouterr()
    assert SECRET not in printed.err + printed.out and "is not an http(s) URL" in printed.err


def test_redaction_keeps_ordinary_text_and_addresses():
    for text in ("http://127.0.0.1:8000/v1", "mail alice@example.com today", "/home/me/data", "max_tokens=900"):
        assert redact(text) == text


def test_only_values_that_are_secrets_are_masked(monkeypatch, tmp_path):
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("OLDPWD", "/srv/projects/rsrt-2026")
    token = fake_key("service")
    monkeypatch.setenv("MY_SERVICE_TOKEN", token)
    monkeypatch.setenv("FEATURE_FLAG_SECRET", "yes")  # too short to be a credential
    text = f"working in {tmp_path}, before /srv/projects/rsrt-2026, token {token}, flag yes"
    assert scrub(text) == f"working in {tmp_path}, before /srv/projects/rsrt-2026, token ***, flag yes"
    assert scrub(Typed(text)) == text, "what a person typed is never rewritten"


def test_worker_secrets_never_show_or_pickle_their_values(monkeypatch):
    key = fake_key("worker")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.delenv("OTHER_KEY", raising=False)
    secrets = WorkerSecrets(("OPENAI_API_KEY", "OTHER_KEY"))
    assert repr(secrets) == "WorkerSecrets(OPENAI_API_KEY)" and key not in str(secrets)
    with pytest.raises(RuntimeError, match="only to the workers of a connected Ray cluster"):
        pickle.dumps(secrets)  # values never go into a pickle: on a cluster a handle to the job's keeper does
    empty = pickle.loads(pickle.dumps(WorkerSecrets(("OTHER_KEY",))))
    assert repr(empty) == "WorkerSecrets(none)"
    monkeypatch.delenv("OPENAI_API_KEY")
    secrets.install()  # in the driver's own process (the local path)
    import os

    assert os.environ["OPENAI_API_KEY"] == key


def test_an_image_over_pillows_own_guard_is_refused_with_the_projects_limit(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(20000, 20000))
    problem = image_problem(path)
    assert "400,000,000 pixels is over the limit of 64,000,000 (RSRT_MAX_IMAGE_PIXELS)" in problem
    assert "decompression bomb" not in problem.lower()


def test_serve_checks_its_settings_before_it_starts(monkeypatch, capsys):
    monkeypatch.setenv("RSRT_MAX_IMAGE_PIXELS", "abc")
    assert main(["serve", "--port", "1"]) == 2  # returns at once: no server was started
    assert "RSRT_MAX_IMAGE_PIXELS='abc'" in capsys.readouterr().err


def test_an_unexpected_error_answers_500_with_the_security_headers_and_no_secret(tmp_path, monkeypatch):
    from rsrt_utils.app.server import SECURITY_HEADERS, create_app

    server_key = fake_key("server")
    monkeypatch.setenv("OPENAI_API_KEY", server_key)
    app = create_app(tmp_path / "outputs", tmp_path / "indexes")

    @app.get("/boom")
    def boom():
        raise RuntimeError(f"exploded with {server_key} inside")

    answer = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500 and server_key not in answer.text and "RuntimeError" in answer.text
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value


def test_a_dataset_folder_rsrt_did_not_make_is_never_replaced(tmp_path):
    from rsrt_utils.data.store import DataStoreError, import_from_folder

    mine = tmp_path / "store" / "rsitmd"
    mine.mkdir(parents=True)
    (mine / "my-notes.txt").write_text("keep me")
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataStoreError, match="rsrt did not make it"):
        import_from_folder(tmp_path / "mirror", ["rsitmd"], tmp_path / "store", overwrite=True, progress=False)
    assert (mine / "my-notes.txt").read_text() == "keep me"


def test_a_folder_in_the_smoke_datasets_place_is_never_replaced(tmp_path):
    from rsrt_utils.fileutil import NotOurFolder
    from rsrt_utils.study.smoke import make_smoke_dataset

    root = tmp_path / "smoke"
    root.mkdir()
    (root / "thesis.tex").write_text("keep me")
    with pytest.raises(NotOurFolder, match="rsrt did not make it"):
        make_smoke_dataset(root)
    assert (root / "thesis.tex").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["smoke"]
    assert (make_smoke_dataset(tmp_path / "fresh") / "SMOKE_COMPLETE.json").is_file()


def test_server_urls_travel_to_workers_masked_and_come_back_whole():
    gateway_key = fake_key("gateway")
    url = f"http://gw.example:8000/v1?api-key={gateway_key}&api-version=2"
    secrets = WorkerSecrets(urls=[url, "http://plain:9000/v1"])
    config = {"backend": "openai-chat", "base_url": [url, "http://plain:9000/v1"], "model": "m"}
    sealed = secrets.seal(config)
    assert gateway_key.encode() not in pickle.dumps(sealed) and sealed["base_url"] == [
        "http://gw.example:8000/v1?api-key=***&api-version=2", "http://plain:9000/v1"]
    assert secrets.unseal(sealed) == config and config["base_url"][0] == url, "the caller's config is never changed"
    assert secrets.unseal(secrets.seal({**config, "base_url": url}))["base_url"] == url

"""A bad file costs only itself; secrets in URLs stay secret; CSV cells never run as formulas (issue 18's regressions).

The bad files are made here: random bytes, zero bytes, a truncated JPEG and a PNG whose header claims 20000x20000.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsrt_utils.captioning.corpus import CorpusStore
from rsrt_utils.captioning.openai_batch import OpenAIBatchBackend
from rsrt_utils.captioning.openai_chat import OpenAIChatBackend
from rsrt_utils.captioning.runner import caption_images
from rsrt_utils.cli import main
from rsrt_utils.image_encoders.cache import CachedImageEncoder
from rsrt_utils.image_files import DEFAULT_MAX_IMAGE_PIXELS, ImageReadError, image_problem, max_image_pixels, open_rgb
from rsrt_utils.logsafe import is_secret_name, redact
from rsrt_utils.spreadsheet import escape_cell, read_frame, unescape_cell, write_frame
from tests.fakes.bad_images import plant_bad_files, png_claiming
from tests.fakes.keys import fake_key
from tests.fakes.synthetic_images import make_images

FAKE_KEY = fake_key("isolation")
URL_SECRETS = ("u5er-name", "pa55-w0rd-91", "qu3ry-k3y-77")


@pytest.fixture
def folder(tmp_path) -> tuple[Path, dict[str, str], list[str]]:
    """Six good JPEGs and one bad file of each kind; (folder, {bad name: reason word}, good names)."""
    root = tmp_path / "images"
    good = []
    for image_id, path in make_images(tmp_path / "png", 6, size=48):
        target = root / Path(image_id).with_suffix(".jpg").name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").save(target, quality=95)
        good.append(target.name)
    bad = plant_bad_files(root)
    return root, bad, good


def requests_of(root: Path) -> list[tuple[str, Path]]:
    return [(p.name, p) for p in sorted(root.iterdir())]


# ---------------------------------------------------------------- reading one file
def test_each_kind_of_bad_file_gets_its_own_reason(folder):
    root, bad, good = folder
    for name, word in bad.items():
        with pytest.raises(ImageReadError) as caught:
            open_rgb(root / name)
        assert caught.value.path == str(root / name) and word in caught.value.reason, (name, caught.value)
    assert open_rgb(root / good[0]).size == (48, 48) and image_problem(root / good[0]) is None
    assert "limit" in image_problem(root / "bomb.png") and "empty" in image_problem(root / "empty.png")


def test_the_pixel_limit_is_one_setting_checked_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(9000, 9000))  # 81 MP: over the default, yet only a few bytes
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS and "81,000,000 pixels" in image_problem(path)
    monkeypatch.setenv("RSRT_MAX_IMAGE_PIXELS", "100000000")
    assert image_problem(path) is None
    monkeypatch.setenv("RSRT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="RSRT_MAX_IMAGE_PIXELS='lots'"):
        max_image_pixels()


# ---------------------------------------------------------------- every backend and cache over a folder with bad files
class MeanColour:
    """A real (tiny) image encoder: the normalised mean colour plus a constant."""

    name = "mean-colour-v1"

    def encode_images(self, images, progress=False):
        rows = np.asarray([np.append(np.asarray(im, dtype=np.float32).mean(axis=(0, 1)), 100.0) for im in images])
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_image_embedding_cache_keeps_the_readable_images(folder, tmp_path):
    root, bad, good = folder
    paths = [p for _, p in requests_of(root)]
    encoder = CachedImageEncoder(MeanColour(), cache_root=tmp_path / "cache", write_batch=256, progress=False)
    vectors, failures = encoder.encode_available(paths)
    assert vectors.shape == (len(good), 4) and sorted(paths[i].name for i in failures) == sorted(bad)
    assert all(word in failures[[p.name for p in paths].index(name)] for name, word in bad.items())
    with pytest.raises(ImageReadError, match=r"4 of 10 file\(s\) unreadable"):
        encoder.encode_paths(paths)
    assert encoder.last_stats["computed"] == 0, "the readable images were cached by the first call"


def test_image_feature_cache_keeps_the_readable_images(folder, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="image features need efficientnet_lite_pytorch")
    from rsrt_utils.image_encoders.efficientnet import ImageFeatureExtractor

    root, bad, good = folder
    paths = [p for _, p in requests_of(root)]
    extractor = ImageFeatureExtractor(cache_root=tmp_path / "features", batch_size=64, progress=False)
    features, failures = extractor.extract_available(paths)
    assert features.shape[0] == len(good) and sorted(paths[i].name for i in failures) == sorted(bad)
    assert np.allclose(features, extractor.extract([root / g for g in good]))


def test_openai_chat_describes_the_good_images_and_names_each_bad_one(folder, tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    root, bad, good = folder
    backend = OpenAIChatBackend(base_url=fake_openai.base_url, backoff_base=0.01)
    summary = caption_images(requests_of(root), backend, tmp_path / "c.jsonl", progress=False)
    assert (summary.ok, summary.failed) == (len(good), len(bad))
    assert len(fake_openai.chat_requests()) == len(good), "no request is sent for a bad file"
    failed = {r.image_id: r.error for r in CorpusStore(tmp_path / "c.jsonl").records() if r.status == "failed"}
    assert set(failed) == set(bad) and all(name in failed[name] for name in bad)
    assert all(f"{name}: {root / name}" in summary.text() for name in bad)


def test_openai_batch_submits_only_the_good_images(folder, tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    root, bad, good = folder
    backend = OpenAIBatchBackend(base_url=fake_openai.base_url, poll_interval=0.01, backoff_base=0.01)
    summary = caption_images(requests_of(root), backend, tmp_path / "c.jsonl", progress=False)
    lines = [json.loads(t) for f in fake_openai.files.values() if f["purpose"] == "batch"
             for t in f["content"].decode().splitlines()]
    assert (summary.ok, summary.failed, len(lines)) == (len(good), len(bad), len(good))


class BatchWideFailure:
    """A backend whose batched call fails as a whole when any image of the batch is bad (as PIL's batch stacking does);
    alone, a good image is described."""

    name, model, prompt_version, label, settings, batch_size = "batchy", "m", "v1", None, {}, 64

    def __init__(self):
        self.calls = []

    def answer_batch(self, requests, mode, strict=False):
        from rsrt_utils.captioning.backend import BackendAnswer

        self.calls.append(len(requests))
        images = [open_rgb(r.image_path) for r in requests]  # raises for the first bad file
        return [BackendAnswer(query_text=f"an image of {im.size[0]} pixels") for im in images]


def test_a_batch_that_fails_as_a_whole_is_retried_one_image_at_a_time(folder, tmp_path, monkeypatch):
    root, bad, good = folder
    monkeypatch.setattr("rsrt_utils.captioning.runner.image_problem", lambda path: None)  # let bad files reach it
    backend = BatchWideFailure()
    summary = caption_images(requests_of(root), backend, tmp_path / "c.jsonl", mode="image_query", progress=False)
    assert (summary.ok, summary.failed) == (len(good), len(bad)) and backend.calls[0] == len(good) + len(bad)
    for record in CorpusStore(tmp_path / "c.jsonl").records():
        if record.status == "failed":
            assert record.image_id in bad and record.image_id in record.error, "each failure names its own file"


# ---------------------------------------------------------------- secrets in URLs
def test_url_secrets_are_redacted_wherever_they_are_written():
    text = (f"POST http://{URL_SECRETS[0]}:{URL_SECRETS[1]}@host/v1/chat?api-key={URL_SECRETS[2]}&x=1 and "
            f"https://h/o?sig={URL_SECRETS[2]} ?sas_token={URL_SECRETS[2]}#f")
    clean = redact(text)
    assert not any(s in clean for s in URL_SECRETS) and "&x=1" in clean and "api-key=***" in clean
    assert is_secret_name("api_key") and is_secret_name("OPENAI_API_KEY") and is_secret_name("sig")
    assert not is_secret_name("max_tokens") and not is_secret_name("api_key_env")


def test_a_run_with_secrets_in_its_url_writes_them_nowhere(folder, tmp_path, fake_openai, monkeypatch, capsys, caplog):
    """Index a folder through a base URL holding user-info and ?api-key=: grep everything written for the secrets."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("RSRT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    root, bad, good = folder
    user, password, key = URL_SECRETS
    url = fake_openai.base_url.replace("http://", f"http://{user}:{password}@") + f"?api-key={key}"
    fake_openai.script("400")  # a failure is recorded too: its reason must be clean
    caplog.set_level(logging.DEBUG)
    code = main(["index", "build", str(root), "--name", "leak", "--captioner", "openai-chat", "--base-url", url,
                 "--encoder", "hashing:64", "--quiet"])
    out = capsys.readouterr()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "png" not in p.parts and "images" not in p.parts]
    assert any(p.name.endswith(".lock") for p in written) and any(p.name == "corpus.jsonl" for p in written)
    everything = "\n".join(p.read_text("utf-8", "replace") for p in written) + out.out + out.err + caplog.text
    assert not [s for s in URL_SECRETS + (FAKE_KEY,) if s in everything]
    lock = next(p for p in written if p.name == "corpus.jsonl.lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600 and f"pid {os.getpid()}" in lock.read_text()
    assert code == 1 and "5 of 10 image(s) indexed" in out.out, "exit 1: some files failed (the bad ones, one 400)"
    assert all(r.query.get("api-key") == [key] for r in fake_openai.chat_requests())


# ---------------------------------------------------------------- CSV cells
@pytest.mark.parametrize("typed", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''@x",
                                   "'plain", "plain", "3", ""])
def test_csv_cells_never_start_a_formula_and_read_back_as_typed(typed, tmp_path):
    stored = escape_cell(typed)
    assert not stored.startswith(("=", "+", "-", "@", "\t", "\r")) and unescape_cell(stored) == typed
    import pandas as pd

    path = write_frame(pd.DataFrame({"notes": [typed], "n": [3]}), tmp_path / "s.csv")
    assert read_frame(path, dtype=str, keep_default_na=False).at[0, "notes"] == typed

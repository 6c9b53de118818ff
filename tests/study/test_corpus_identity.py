"""A corpus has one identity and one location, and a record is used only for the bytes it was made from
(a real local OpenAI-protocol server counts the requests; the smoke benchmark gives the pixels)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from PIL import Image

from rsrt_utils.captioning.corpus import CorpusStore
from rsrt_utils.study import pipeline as rs
from tests.fakes.keys import fake_key

FAKE_KEY = fake_key("identity")


@pytest.fixture
def paid_run(study_env, tmp_path, fake_openai, monkeypatch):
    """Open a smoke run captioned by the openai-chat backend on the local server (images_dir optional)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)

    def make(name: str, images_dir=None, **captioner):
        dataset = {"name": "smoke", "split": "test", **({"images_dir": str(images_dir)} if images_dir else {})}
        params = {"run_name": name, "dataset": dataset, "encoder": {"spec": "hashing:512"}, "evaluation": {"n_boot": 10},
                  "captioner": {"backend": "openai-chat", "options": {"base_url": fake_openai.base_url, "backoff_base": 0.01},
                                "concurrency": 4, **captioner},
                  "retrieval": {"field": "all"}, "clip": {"enabled": False}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(params))
        run = rs.open_run(str(path))
        return run, rs.prepare_dataset(run)

    return make


def _copy_images_with(tmp_path, dataset, change):
    """A copy of the smoke images folder where the first test image is changed by `change(path)`."""
    source = dataset.images[0].image_path.parent
    copy = tmp_path / f"images-{change.__name__}"
    shutil.copytree(source, copy)
    change(copy / dataset.images[0].image_id)
    return copy


def reencoded(path):
    Image.open(path).convert("RGB").save(path, quality=60)


def truncated(path):
    path.write_bytes(path.read_bytes()[:200])


def test_new_pixels_recaption_exactly_that_image_and_the_old_run_is_unharmed(paid_run, fake_openai, tmp_path):
    original, dataset = paid_run("original")
    rs.build_corpus(original, dataset, progress=False)
    assert len(fake_openai.chat_requests()) == dataset.n_images
    changed, changed_dataset = paid_run("reencoded", _copy_images_with(tmp_path, dataset, reencoded))
    rs.build_corpus(changed, changed_dataset, progress=False)
    assert len(fake_openai.chat_requests()) == dataset.n_images + 1, "only the changed image is captioned again"
    assert original.artifacts()["corpus"]["corpus"] == changed.artifacts()["corpus"]["corpus"]  # one corpus file
    first = dataset.image_ids[0]
    old, new = rs.corpus_variants(original, dataset)[first], rs.corpus_variants(changed, changed_dataset)[first]
    assert old != new  # the fake server answers from the image bytes: each run reads its own record
    assert rs.corpus_variants(original, dataset)[dataset.image_ids[1]] == rs.corpus_variants(changed, changed_dataset)[dataset.image_ids[1]]
    rs.build_corpus(original, dataset, progress=False)  # and the original run still resumes without any call
    assert len(fake_openai.chat_requests()) == dataset.n_images + 1


def test_a_stale_record_is_never_used_for_bytes_that_changed(paid_run, fake_openai, tmp_path):
    original, dataset = paid_run("intact")
    rs.build_corpus(original, dataset, progress=False)
    broken, broken_dataset = paid_run("truncated", _copy_images_with(tmp_path, dataset, truncated))
    info = rs.build_corpus(broken, broken_dataset, progress=False)
    assert info["summary"]["failed"] == 1
    texts, missing = rs.gallery_texts(broken, broken_dataset)
    assert missing == [dataset.image_ids[0]] and texts[0] == [""]
    rs.score_run(broken, broken_dataset)
    assert rs.evaluate_run(broken, broken_dataset)["missing_captions"] == 1


def test_a_params_file_can_name_an_existing_corpus(paid_run, fake_openai, tmp_path):
    run, dataset = paid_run("named", corpus_path=str(tmp_path / "mine.jsonl"))
    rs.build_corpus(run, dataset, progress=False)
    assert run.artifacts()["corpus"]["corpus"] == str(tmp_path / "mine.jsonl")
    assert len(list(CorpusStore(tmp_path / "mine.jsonl").records())) == dataset.n_images
    again, _ = paid_run("named-again", corpus_path=str(tmp_path / "mine.jsonl"))
    rs.build_corpus(again, dataset, progress=False)
    assert len(fake_openai.chat_requests()) == dataset.n_images

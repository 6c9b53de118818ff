"""`rsrt run` checks params, paths and backend options before any notebook, reports a failing notebook in one line,
and marks a run complete only when every notebook ran in this attempt and wrote metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsrt_utils.study.report import collect_metrics
from rsrt_utils.study.run_folder import COMPLETE_MARK, FAILED_MARK, RunFolder

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout


def rsrt(study_dirs, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RSRT_DATA_DIR": str(study_dirs["data"]), "RSRT_CACHE_DIR": str(study_dirs["cache"]),
           "RSRT_OUTPUTS_DIR": str(study_dirs["outputs"]), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "rsrt_utils", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=env, timeout=900)


@pytest.mark.parametrize("overrides, named", [
    (["captioner.backend=openai-chat", "captioner.options={base_url: 'htp:/x'}"], "base_url 'htp:/x' is not an http(s) URL"),
    (["captioner.backend=openai-chat", "captioner.options={temprature: 0.1}"], "did you mean 'temperature'"),
    (["captioner.options={k: 1, n_variant: 5}"], "did you mean 'n_variants'"),
    (["dataset.images_dir=/no/such/folder"], "dataset.images_dir: /no/such/folder does not exist"),
])
def test_bad_options_and_paths_are_one_line_before_any_notebook(study_dirs, overrides, named):
    args = ["run", "params/smoke.yaml", "--quiet", "--set", "run_name=preflight"]
    for override in overrides:
        args += ["--set", override]
    result = rsrt(study_dirs, *args)
    assert result.returncode == 2
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (study_dirs["outputs"] / "preflight" / "notebooks").exists(), "a notebook ran before the check"


def test_partial_and_failed_attempts_are_not_complete_and_not_reported(study_dirs, tmp_path):
    partial = rsrt(study_dirs, "run", "params/smoke.yaml", "--quiet", "--set", "run_name=partial", "--notebooks", "00")
    assert partial.returncode == 0 and "incomplete" in partial.stdout
    assert not (study_dirs["outputs"] / "partial" / COMPLETE_MARK).exists()

    done = rsrt(study_dirs, "run", "params/smoke.yaml", "--quiet", "--set", "run_name=rerun")
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = study_dirs["outputs"] / "rerun"
    assert RunFolder(run_dir).is_complete() and "rerun" in set(collect_metrics(study_dirs["outputs"])["run_name"])

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image_id": "x.jpg"}\n')  # exists (passes the pre-check) but holds nothing importable
    failed = rsrt(study_dirs, "run", "params/smoke.yaml", "--quiet", "--set", "run_name=rerun",
                  "--set", "captioner.backend=import", "--set", f"captioner.corpus_path={bad}", "--set", "captioner.options={}")
    assert failed.returncode == 2
    last = failed.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("rsrt run: error: 01_captioning.ipynb failed in cell ")
    assert "ValueError: " in last[0] and "holds no image to import" in last[0] and "full traceback in" in last[0]
    assert (run_dir / "metrics.json").is_file(), "the old figures stay on disk ..."
    assert not RunFolder(run_dir).is_complete() and json.loads((run_dir / FAILED_MARK).read_text())["notebook"] == "01_captioning.ipynb"
    assert "rerun" not in set(collect_metrics(study_dirs["outputs"])["run_name"]), "... but are never reported"

"""The study end to end through `rsrt run` (papermill), on data the tests make themselves.

The smoke benchmark is built so that its result is known in advance: every test image has a train
twin with the same captions, so the 1-nearest-neighbour captioner recovers each image's own captions
and every recall is 100 %. Any wiring error (misaligned ids, wrong split, wrong direction) breaks it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rsrt_utils.study.notebook_runner import list_notebooks
from tests.fakes.keys import fake_key

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout


def subprocess_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(extra or {})
    return env

SECRET = fake_key("never-write-me")


def rsrt(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "rsrt_utils", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env=subprocess_env(env), timeout=timeout)
    assert result.returncode == 0, f"rsrt {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def smoke_run(study_dirs):
    env = {"RSRT_DATA_DIR": str(study_dirs["data"]), "RSRT_CACHE_DIR": str(study_dirs["cache"]),
           "RSRT_OUTPUTS_DIR": str(study_dirs["outputs"]), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    rsrt("run", "params/smoke.yaml", "--quiet", env=env)
    return study_dirs["outputs"] / "smoke"


def test_smoke_metrics_have_the_known_values(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert metrics["dataset"] == "smoke" and metrics["split"] == "test"
    assert metrics["n_images"] == 18
    assert metrics["n_queries"] == {"t2i": 90, "i2t": 18}
    assert metrics["t2i"] == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0}
    assert metrics["i2t"] == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0}
    assert metrics["mR"] == 100.0 and metrics["ci95"]["mR"] == [100.0, 100.0]
    assert metrics["captioner"].startswith("neighbour:")
    assert metrics["label"] == "uses in-domain train captions; not zero-shot"
    assert metrics["encoder"] == "st:all-MiniLM-L6-v2" and metrics["pooling"] == "max"
    assert metrics["params"]["captioner"]["options"]["k"] == 1
    assert metrics["missing_captions"] == 0


def test_smoke_run_records_everything_needed_to_trace_it(smoke_run):
    executed = {p.name for p in (smoke_run / "notebooks").glob("*.ipynb")}
    assert executed == {nb.name for nb in list_notebooks()}
    provenance = json.loads((smoke_run / "provenance.json").read_text())
    assert provenance["packages"]["torch"] and "revision" in provenance["git"]
    assert (smoke_run / "params.resolved.yaml").read_text().startswith("run_name: smoke")
    assert json.loads((smoke_run / "RUN_COMPLETE.json").read_text())["params_digest"]


def test_smoke_run_draws_every_figure(smoke_run):
    figures = {p.stem for p in (smoke_run / "figures").glob("*.png")}
    expected = {"00_class_samples", "02_embedding_projection", "03_example_queries", "04_comparison", "04_per_class",
                "06_ablation_n_variants", "06_ablation_pooling", "06_ablation_field", "06_ablation_encoder",
                "06_ablation_captioner"}
    assert expected <= figures
    for name in expected:
        assert (smoke_run / "figures" / f"{name}.png").stat().st_size > 10_000


def test_smoke_ablations_are_tables_with_intervals(smoke_run):
    pooling = pd.read_csv(smoke_run / "ablations" / "pooling.csv")
    assert list(pooling["setting"]) == ["max", "mean", "top2-mean"]
    assert pooling.loc[pooling["setting"] == "max", "mR"].item() == 100.0
    encoders = pd.read_csv(smoke_run / "ablations" / "encoder.csv")
    assert set(encoders["setting"]) == {"st:all-MiniLM-L6-v2", "hashing:512"}
    assert (encoders["ci_low"] <= encoders["mR"]).all() and (encoders["mR"] <= encoders["ci_high"]).all()
    captioners = pd.read_csv(smoke_run / "ablations" / "captioner.csv")
    assert "human-caption oracle (ceiling)" in set(captioners["setting"])


def test_smoke_audit_files_are_written(smoke_run):
    audit = smoke_run / "audit"
    assert (audit / "audit_sheet.html").is_file()
    sheet = pd.read_csv(audit / "scoring_sheet.csv")
    assert len(sheet) == 6 * 5  # audit.n_images = 6, five variants each
    assert {"correct_objects", "hallucinated_objects", "direction_errors", "completeness_1to5"} <= set(sheet.columns)


def test_report_aggregates_the_run(smoke_run, study_dirs):
    summary = pd.read_csv(study_dirs["outputs"] / "report" / "summary.csv")
    row = summary[summary["run_name"] == "smoke"].iloc[0]
    assert row["mR"] == 100.0 and row["n_images"] == 18
    assert (study_dirs["outputs"] / "report" / "comparison.png").is_file()


def test_sweep_skips_complete_runs(study_dirs, tmp_path):
    env = {"RSRT_DATA_DIR": str(study_dirs["data"]), "RSRT_CACHE_DIR": str(study_dirs["cache"]),
           "RSRT_OUTPUTS_DIR": str(tmp_path), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    sweep = tmp_path / "sweep.yaml"
    notebooks = "['00', '01', '02', '03', '04']"  # the run is these notebooks; 04 writes metrics.json
    sweep.write_text(f"base: {PROJECT_ROOT / 'params/smoke.yaml'}\ngrid:\n  retrieval.pooling: [max, mean]\nnotebooks: {notebooks}\n")
    first = rsrt("sweep", str(sweep), "--quiet", env=env).stdout
    assert first.count("done") == 2
    second = rsrt("sweep", str(sweep), "--quiet", env=env).stdout
    assert second.count("skipped (complete)") == 2
    partial = tmp_path / "partial.yaml"  # a run of notebook 00 alone writes no metrics: never complete, never skipped
    partial.write_text(f"base: {PROJECT_ROOT / 'params/smoke.yaml'}\ngrid:\n  retrieval.pooling: [max]\nnotebooks: ['00']\n")
    rsrt("sweep", str(partial), "--quiet", env=env)
    assert rsrt("sweep", str(partial), "--quiet", env=env).stdout.count("skipped (complete)") == 0


def test_paid_backends_never_write_the_api_key(fake_openai, study_dirs, tmp_path):
    """GPT-4.1 captions and OpenAI embeddings against a local server speaking the protocol: the key is
    sent to the server (so it was really used) but appears in no file the run writes."""
    env = {"RSRT_DATA_DIR": str(study_dirs["data"]), "RSRT_CACHE_DIR": str(tmp_path / "cache"),
           "RSRT_OUTPUTS_DIR": str(tmp_path / "outputs"), "MPLBACKEND": "Agg", "OPENAI_API_KEY": SECRET}
    base = fake_openai.base_url
    rsrt("run", "params/smoke.yaml", "--quiet", "--notebooks", "00", "01", "02", "03", "04",
         "--set", "run_name=smoke-openai", "--set", "captioner.backend=openai-chat",
         "--set", f"captioner.options={{base_url: '{base}', backoff_base: 0.01}}", "--set", "captioner.concurrency=4",
         "--set", "encoder.spec=openai:text-embedding-3-small", "--set", f"encoder.options={{base_url: '{base}'}}",
         env=env)
    assert any(SECRET in str(r.headers.get("authorization", "")) for r in fake_openai.chat_requests())
    metrics = json.loads((tmp_path / "outputs" / "smoke-openai" / "metrics.json").read_text())
    assert metrics["captioner"] == "openai-chat:gpt-4.1" and metrics["encoder"] == "openai:text-embedding-3-small"
    assert metrics["n_images"] == 18
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []


def test_oracle_run_needs_no_pixels_and_matches_the_library(study_dirs, tmp_path):
    """The annotation-only path (as for RSITMD): every notebook runs, and the notebook's metrics equal a
    direct call of the oracle on the same data."""
    from rsrt_utils.data import load_dataset
    from rsrt_utils.encoders import CachedEncoder, make_text_encoder
    from rsrt_utils.evaluation import human_caption_oracle
    from rsrt_utils.study.smoke import make_smoke_dataset

    env = {"RSRT_DATA_DIR": str(study_dirs["data"]), "RSRT_CACHE_DIR": str(study_dirs["cache"]),
           "RSRT_OUTPUTS_DIR": str(tmp_path), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    rsrt("run", "params/smoke.yaml", "--quiet", "--set", "run_name=smoke-oracle", "--set", "captioner.backend=oracle",
         "--set", "dataset.require_images=false", "--set", "encoder.spec=hashing:512", env=env)
    metrics = json.loads((tmp_path / "smoke-oracle" / "metrics.json").read_text())
    root = make_smoke_dataset(study_dirs["data"] / "smoke")
    dataset = load_dataset("smoke", "test", annotations=root, images_dir=root / "images")
    direct = human_caption_oracle(dataset, CachedEncoder(make_text_encoder("hashing:512"), cache_root=tmp_path / "c"), n_boot=200)
    assert metrics["captioner"].startswith("human-caption oracle")
    assert (metrics["t2i"], metrics["i2t"], metrics["mR"]) == (direct["t2i"], direct["i2t"], direct["mR"])
    assert (tmp_path / "smoke-oracle" / "figures" / "03_example_queries.png").is_file()

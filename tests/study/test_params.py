"""Params files: every shipped file validates; typos and bad values are errors that name them."""

from pathlib import Path

import pytest
import yaml

from rsrt_utils.study.notebook_runner import sweep_runs
from rsrt_utils.study.params import ParamsError, load_params, parse_params
from tests.fakes.keys import fake_key

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout

PARAMS = sorted((PROJECT_ROOT / "params").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.stem for p in PARAMS])
def test_every_shipped_params_file_validates(path):
    params = load_params(path)
    assert params.run_name
    assert len(params.digest()) == 12


def test_required_runs_are_shipped():
    names = {p.stem for p in PARAMS}
    assert {"default", "rsitmd_oracle", "paper_gpt41_rsitmd", "paper_gpt41_rsicd", "smoke"} <= names
    default = load_params(PROJECT_ROOT / "params/default.yaml")
    assert (default.dataset.name, default.captioner.backend, default.encoder.spec) == ("rsicd", "neighbour", "all-MiniLM-L6-v2")
    paper = load_params(PROJECT_ROOT / "params/paper_gpt41_rsitmd.yaml")
    assert (paper.captioner.model, paper.encoder.spec) == ("gpt-4.1", "openai:text-embedding-3-small")


def test_typo_in_key_is_named_with_a_suggestion():
    data = yaml.safe_load((PROJECT_ROOT / "params/smoke.yaml").read_text())
    data["retrieval"]["poolng"] = "max"
    with pytest.raises(ParamsError, match=r"retrieval\.poolng: unknown key; did you mean 'pooling'\?"):
        parse_params(data, "x.yaml")


def test_bad_value_is_named():
    data = yaml.safe_load((PROJECT_ROOT / "params/smoke.yaml").read_text())
    data["retrieval"]["pooling"] = "maxx"
    data["evaluation"]["n_boot"] = 0
    with pytest.raises(ParamsError) as info:
        parse_params(data, "x.yaml")
    message = str(info.value)
    assert "retrieval.pooling" in message and "'maxx'" in message
    assert "evaluation.n_boot" in message


def test_api_key_is_not_a_params_key():
    data = yaml.safe_load((PROJECT_ROOT / "params/smoke.yaml").read_text())
    data["captioner"]["api_key"] = fake_key("should-not-be-here")
    with pytest.raises(ParamsError, match="captioner.api_key: unknown key"):
        parse_params(data, "x.yaml")


def test_overrides_and_invalid_yaml(tmp_path):
    params = load_params(PROJECT_ROOT / "params/smoke.yaml", {"retrieval.pooling": "mean", "run_name": "x1"})
    assert (params.retrieval.pooling, params.run_name) == ("mean", "x1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: a\ndescription: oops: colon\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="does not exist"):
        load_params(tmp_path / "missing.yaml")


def test_sweep_expands_the_grid_and_validates_each_combination(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": str(PROJECT_ROOT / "params/smoke.yaml"),
                                     "grid": {"retrieval.pooling": ["max", "mean"], "retrieval.n_variants": [1, 3]}}, sort_keys=False))
    runs = sweep_runs(sweep)
    assert len(runs) == 4
    names = {overrides["run_name"] for _, overrides, _ in runs}
    assert "smoke__pooling=mean,n_variants=3" in names
    sweep.write_text(yaml.safe_dump({"base": str(PROJECT_ROOT / "params/smoke.yaml"), "grid": {"retrieval.pooling": ["best"]}}))
    with pytest.raises(ParamsError, match="retrieval.pooling"):
        sweep_runs(sweep)

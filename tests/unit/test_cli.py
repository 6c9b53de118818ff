"""The `rsrt` command line, run as a real subprocess (`python -m rsrt_utils`)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from foundation_helpers import write_amfmn_per_caption

from rsrt_utils.cli import build_parser, main

PROJECT = Path(__file__).resolve().parents[2]


def _rsrt(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "rsrt_utils", *args], capture_output=True, text=True, cwd=PROJECT,
                          env=full_env, timeout=timeout)


def _subcommand_paths(parser: argparse.ArgumentParser, prefix: tuple = ()) -> list[tuple[str, ...]]:
    """Every (sub)command path the parser knows, e.g. ('data', 'import')."""
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths.append(prefix + (name,))
                paths.extend(_subcommand_paths(child, prefix + (name,)))
    return paths


def test_top_level_help():
    out = _rsrt("--help")
    assert out.returncode == 0, out.stderr
    assert "data" in out.stdout and "oracle" in out.stdout


def test_every_subcommand_help_exits_zero(capsys):
    """In process (the entry point itself runs in a subprocess in test_cli_help.py): every help exits 0."""
    paths = _subcommand_paths(build_parser())
    assert {("data",), ("data", "import"), ("data", "download"), ("data", "status"), ("data", "validate"),
            ("oracle",), ("index", "build"), ("caption",)} <= set(paths)
    for path in paths:
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        out = capsys.readouterr()
        assert exit_info.value.code == 0, (path, out.err)
        assert out.out.startswith("usage: rsrt " + " ".join(path)), path


@pytest.fixture
def annotations(tmp_path) -> Path:
    images = {f"farm_{i}.jpg": [f"word{i} alpha{i}", f"word{i} beta{i}", f"word{i} gamma{i}"] for i in range(6)}
    images["farm_5.jpg"][2] = "  "  # a blank caption, dropped by the loader
    images["farm_5.jpg"].append("word5 delta5")
    return write_amfmn_per_caption(tmp_path / "ann", "test", images)


def test_data_validate_prints_a_json_report(annotations):
    out = _rsrt("data", "validate", "--annotations", str(annotations))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n_images"] == 6 and report["n_captions"] == 18
    assert report["matches_standard"] is False  # --dataset defaults to rsitmd; 6 images is not the standard split
    assert report["notes"] == ["dropped 1 blank caption(s)"]


def test_oracle_writes_metrics_json(annotations, tmp_path):
    env = {"RSRT_OUTPUTS_DIR": str(tmp_path / "out"), "RSRT_CACHE_DIR": str(tmp_path / "cache")}
    out = _rsrt("oracle", "--annotations", str(annotations), "--encoder", "hashing:256", "--n-boot", "50", env=env)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "out" / "oracle-rsitmd-test" / "metrics.json"
    record = json.loads(path.read_text())
    for key in ("dataset", "split", "n_images", "n_queries", "captioner", "encoder", "pooling", "t2i", "i2t", "mR",
                "ci95", "params"):
        assert key in record, key
    for direction in ("t2i", "i2t"):
        assert set(record[direction]) == {"R@1", "R@5", "R@10"}
    assert "mR" in record["ci95"] and record["encoder"] == "hashing:256" and record["pooling"] == "max"
    assert record["n_images"] == 6 and record["split"] == "test"
    assert record["params"]["n_boot"] == 50 and record["params"]["annotations"] == str(annotations)
    assert list((tmp_path / "cache" / "embeddings").glob("*.sqlite"))
    assert "mR" in out.stdout


def test_oracle_error_is_reported_not_a_traceback(tmp_path):
    images = {"a_1.jpg": ["x y", "x z"], "b_2.jpg": ["p q"]}
    ann = write_amfmn_per_caption(tmp_path / "ann", "test", images)
    env = {"RSRT_OUTPUTS_DIR": str(tmp_path / "out"), "RSRT_CACHE_DIR": str(tmp_path / "cache")}
    out = _rsrt("oracle", "--annotations", str(ann), "--encoder", "hashing:64", "--n-boot", "10", env=env)
    assert out.returncode == 2
    assert "rsrt oracle: error:" in out.stderr and "Traceback" not in out.stderr

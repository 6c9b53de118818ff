"""Fixtures of the study-layer tests: data, cache and outputs in temporary folders shared by the session."""

import pytest


@pytest.fixture(scope="session")
def study_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    dirs = {name: root / name for name in ("data", "cache", "outputs")}
    for path in dirs.values():
        path.mkdir()
    return dirs


@pytest.fixture
def study_env(study_dirs, monkeypatch):
    """Point the project's data/cache/outputs at the session's temporary folders (also for subprocesses)."""
    monkeypatch.setenv("RSRT_DATA_DIR", str(study_dirs["data"]))
    monkeypatch.setenv("RSRT_CACHE_DIR", str(study_dirs["cache"]))
    monkeypatch.setenv("RSRT_OUTPUTS_DIR", str(study_dirs["outputs"]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return study_dirs

"""Each entry point works with only its extra's packages installed: the core (data, metrics, captioning over HTTP,
text encoders, index; `rsrt caption / index / search`) with every extra's packages unimportable, and a command of an
extra refused with the install line when its packages are missing."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from tests.fakes.keys import fake_key
from tests.fakes.openai_server import FakeOpenAIServer
from tests.install.extras import blocked_modules, run_without

PROJECT = Path(__file__).resolve().parents[2]
AID = Path(__file__).resolve().parents[3] / "shared" / "data" / "aid150" / "images"
CONTRACTS = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
CORE = next(c for c in CONTRACTS if c["id"] == "lean-core")["source_modules"]
KEY = fake_key("core-install")


def core_modules() -> list[str]:
    """Every module of the core packages (the lean-core contract's sources)."""
    found = []
    for name in CORE:
        path = PROJECT / Path(*name.split("."))
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        found += [".".join(f.relative_to(PROJECT).with_suffix("").parts).removesuffix(".__init__") for f in files]
    return found


def rsrt_without(blocked: set[str], args: list[str], env: dict) -> tuple[int, str]:
    code = f"import sys\nfrom rsrt_utils.cli import main\nsys.exit(main({args!r}))"
    result = run_without(blocked, code, env=env, cwd=env["HOME"])
    return result.returncode, result.stdout + result.stderr


@pytest.fixture()
def core_env(tmp_path):
    return {**os.environ, "HOME": str(tmp_path), "RSRT_INDEX_DIR": str(tmp_path / "indexes"),
            "RSRT_CACHE_DIR": str(tmp_path / "cache"), "OPENAI_API_KEY": KEY, "PYTHONPATH": str(PROJECT)}


def test_the_blocked_set_holds_every_extras_package_and_none_of_the_cores():
    blocked = blocked_modules()
    assert {"papermill", "matplotlib", "fastapi", "uvicorn", "sphinx", "ray", "jupyterlab"} <= blocked
    assert not {"numpy", "torch", "sentence_transformers", "faiss", "openai", "pydantic", "PIL"} & blocked


def test_every_core_module_imports_without_any_extra():
    modules = core_modules()
    assert len(modules) >= 50
    result = run_without(blocked_modules(), "import importlib\nfor m in %r:\n    importlib.import_module(m)\nprint('ok')"
                         % modules, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.skipif(not AID.is_dir(), reason="the AID-150 images of ../shared/data are not here")
def test_caption_index_and_search_run_on_the_core_alone(tmp_path, core_env):
    folder = tmp_path / "images"
    folder.mkdir()
    for source in ("Port/port_1.jpg", "River/river_1.jpg", "Stadium/stadium_1.jpg"):
        shutil.copyfile(AID / source, folder / Path(source).name)
    blocked = blocked_modules()
    with FakeOpenAIServer(expected_key=KEY) as server:
        code, out = rsrt_without(blocked, ["index", "build", str(folder), "--name", "core", "--backend", "openai-chat",
                                           "--base-url", server.base_url, "--encoder", "hashing:512", "--quiet"], core_env)
        assert code == 0, out
        assert len(server.chat_requests()) == 3
    code, out = rsrt_without(blocked, ["search", "core", "a dense area", "--k", "2", "--json"], core_env)
    assert code == 0, out
    assert [hit["rank"] for hit in json.loads(out[out.index("["):])] == [1, 2]


@pytest.mark.parametrize("args, extra", [(["serve", "--port", "1"], "app"), (["run", "smoke"], "study"),
                                         (["caption", "--dataset", "rsicd", "--backend", "openai-chat", "--ray", "local"],
                                          "ray")])
def test_a_command_of_a_missing_extra_names_the_install_line(args, extra, core_env):
    kept = tuple(e for e in ("study", "app", "ray") if e != extra)
    code, out = rsrt_without(blocked_modules(kept), args, core_env)
    assert code == 2, out
    assert f"pip install 'rsrt[{extra}]'" in out, out


def test_commands_help_runs_on_the_core(core_env):
    for args in (["--help"], ["caption", "--help"], ["index", "build", "--help"], ["search", "--help"]):
        code, out = rsrt_without(blocked_modules(), args, core_env)
        assert code == 0 and "usage: rsrt" in out, (args, out)


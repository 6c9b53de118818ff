"""The package installed as a wheel (not editable) into a new environment and run from an unrelated folder: it
captions, indexes, searches and runs the smoke study with nothing written inside site-packages or the checkout; data,
cache, indexes and outputs go to the user's folders and the working directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tests.fakes.keys import fake_key
from tests.fakes.openai_server import FakeOpenAIServer

PROJECT = Path(__file__).resolve().parents[2]
MIRROR = PROJECT.parent / "shared" / "data"
KEY = fake_key("wheel")

pytestmark = pytest.mark.slow


def files_under(folder: Path) -> dict[str, float]:
    """Every file under `folder` (bytecode caches left out: Python writes them beside any module it imports)."""
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A new virtual environment with the wheel installed; the dependencies come from the test's environment (a
    path entry after its own site-packages, so the wheel's rsrt_utils is the one imported)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # the tracked files, so that building writes nothing into the checkout either
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, target, follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"),
                    str(source)], check=True, capture_output=True, timeout=600)
    wheel, = (work / "dist").glob("rsrt-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=600)  # the console script `rsrt` too
    home, cwd = work / "home", work / "somewhere"
    home.mkdir()
    cwd.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "OPENAI_API_KEY": KEY, "MPLBACKEND": "Agg",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return {"site": site, "venv": venv, "home": home, "cwd": cwd, "env": env}


def rsrt(installed, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["rsrt", *args], cwd=installed["cwd"], env=installed["env"], capture_output=True, text=True,
                          timeout=900)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    where = subprocess.run(["python", "-c", "import rsrt_utils, sys; print(rsrt_utils.__file__)"], cwd=installed["cwd"],
                           env=installed["env"], capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(installed["site"])), where
    shipped = installed["site"] / "rsrt_utils" / "study"
    assert len(list((shipped / "notebooks").glob("*.ipynb"))) == 10 and (shipped / "params" / "smoke.yaml").is_file()
    assert (shipped / "docs" / "method.md").is_file() and (shipped / "results" / "vlm_quality.json").is_file()
    assert not (shipped / "notebooks").is_symlink(), "package data is copied into the wheel, not linked"


@pytest.mark.skipif(not (MIRROR / "aid150").is_dir(), reason="the benchmark mirror ../shared/data is not here")
def test_caption_index_search_and_the_smoke_study_run_from_anywhere(installed):
    site_before, checkout_before = files_under(installed["site"]), files_under(PROJECT / "rsrt_utils")
    started = time.time()
    result = rsrt(installed, "data", "import", "--from", str(MIRROR), "--datasets", "rsicd", "aid150")
    assert result.returncode == 0, result.stderr
    with FakeOpenAIServer(expected_key=KEY) as server:
        result = rsrt(installed, "caption", "--dataset", "rsicd", "--backend", "openai-chat", "--base-url", server.base_url,
                      "--limit", "3")
        assert result.returncode == 0, result.stderr
        images = installed["cwd"] / "my-images"
        images.mkdir()
        for source in sorted((MIRROR / "aid150" / "images" / "Port").glob("*.jpg"))[:3]:
            shutil.copyfile(source, images / source.name)
        result = rsrt(installed, "index", "build", "my-images", "--name", "mine", "--backend", "openai-chat",
                      "--base-url", server.base_url, "--encoder", "hashing:512", "--quiet")
        assert result.returncode == 0, result.stderr
        assert len(server.chat_requests()) == 6
    result = rsrt(installed, "search", "mine", "a harbour with boats", "--k", "2")
    assert result.returncode == 0 and "port_" in result.stdout, result.stdout + result.stderr
    result = rsrt(installed, "run", "params/smoke.yaml", "--set", "encoder.spec=hashing:512", "--quiet")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke: mR 100.0" in result.stdout

    user = installed["home"] / ".local" / "share" / "rsrt"
    assert (user / "data" / "rsicd").is_dir() and (user / "indexes" / "mine" / "manifest.json").is_file()
    assert (installed["home"] / ".cache" / "rsrt").is_dir(), "caches in the user's cache folder"
    assert (installed["cwd"] / "outputs" / "smoke" / "metrics.json").is_file(), "outputs in the working directory"
    assert files_under(installed["site"]) == site_before, "nothing written inside site-packages"
    changed = [p for p, mtime in files_under(PROJECT / "rsrt_utils").items() if mtime >= started]
    assert set(files_under(PROJECT / "rsrt_utils")) == set(checkout_before) and not changed, "nor in the checkout"
    assert not [p for p in PROJECT.glob("*") if p.stat().st_mtime >= started and p.name in ("data", "cache", "outputs")]

"""The published VLM corpora (LLaVA, Qwen-VL; Caption2CLIP @ ed97c376) from the real mirror: import, download from a
local HTTP server serving the mirror, full coverage of both test splits, and one VLM params file through `rsrt run`."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rsrt_utils.captioning.published_import import build_published_corpus
from rsrt_utils.data import load_dataset
from rsrt_utils.data.published_corpora import PUBLISHED_CORPORA
from rsrt_utils.data.store import MANIFEST, DataStoreError, download, import_from_folder
from rsrt_utils.paths import shared_mirror_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout

MIRROR = shared_mirror_dir()
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(MIRROR is None or not (MIRROR / "vlm_captions").is_dir(),
                                 reason="the mirror's vlm_captions/ (../shared/data or RSRT_MIRROR_DIR) is absent")]
EXPECTED = {"rsicd": 1093, "rsitmd": 452}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    import_from_folder(MIRROR, ["vlm_captions"], store=store, progress=False)
    return store


def test_import_checks_every_published_file_against_the_registry(store):
    manifest = json.loads((store / "vlm_captions" / MANIFEST).read_text())
    assert manifest["files"] == {c.relpath: c.sha256 for c in PUBLISHED_CORPORA.values()}


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
@pytest.mark.parametrize("name", sorted(PUBLISHED_CORPORA))
def test_every_test_image_has_exactly_one_description(store, tmp_path, monkeypatch, name, dataset):
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path))
    ids = load_dataset(dataset, "test", root=MIRROR).image_ids
    path, report = build_published_corpus(name, dataset, "test", ids, store)
    assert (report.images, report.descriptions, report.uncovered, report.bad_lines) == (EXPECTED[dataset], EXPECTED[dataset], [], [])
    lines = path.read_text().splitlines()
    assert len(lines) == EXPECTED[dataset] and {json.loads(line)["image_id"] for line in lines} == set(ids)


class _MirrorServer:
    """Serves the mirror's published files at the upstream layout <base>/<owner>/<repo>/<commit>/<path> on 127.0.0.1."""

    def __init__(self, routes: dict[str, bytes]):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_from_the_pinned_commit_layout(tmp_path):
    routes = {f"/{c.repository.replace('@', '/')}/{c.upstream_path}": (MIRROR / c.relpath).read_bytes()
              for c in PUBLISHED_CORPORA.values()}
    server = _MirrorServer(routes)
    try:
        download(["vlm_captions"], store=tmp_path / "store", base_url=server.base_url, progress=False, workers=2)
        for corpus in PUBLISHED_CORPORA.values():
            assert (tmp_path / "store" / corpus.relpath).read_bytes() == (MIRROR / corpus.relpath).read_bytes()
        first = next(iter(routes))
        routes[first] = routes[first][:-10]  # a truncated file is refused and nothing is stored
        with pytest.raises(DataStoreError, match="does not match the pinned"):
            download(["vlm_captions"], store=tmp_path / "other", base_url=server.base_url, progress=False, retries=1)
        assert not (tmp_path / "other" / "vlm_captions").exists()
    finally:
        server.close()


def ablation_cells(path) -> set[str]:
    """Every cell of an ablation table, as read back by the project's CSV reader."""
    from rsrt_utils.spreadsheet import read_frame

    return {str(v) for v in read_frame(path, dtype=str, keep_default_na=False).to_numpy().ravel()}


def test_a_vlm_params_file_runs_through_rsrt_run(tmp_path):
    env = {**os.environ, "RSRT_DATA_DIR": str(tmp_path / "data"), "RSRT_CACHE_DIR": str(tmp_path / "cache"),
           "RSRT_OUTPUTS_DIR": str(tmp_path / "outputs"), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    args = ["run", "params/vlm_both_rsitmd.yaml", "--quiet", "--set", "dataset.limit_images=40",
            "--set", "ablations.encoders=[all-MiniLM-L6-v2]", "--set", "evaluation.n_boot=50"]
    result = subprocess.run([sys.executable, "-m", "rsrt_utils", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "outputs" / "vlm-both-rsitmd"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_images"] == 40 and metrics["n_queries"] == {"t2i": 200, "i2t": 40}
    assert metrics["captioner"] == "published:llava+qwenvl" and metrics["missing_captions"] == 0
    assert metrics["label"].startswith("zero-shot") and 0 < metrics["mR"] < 100
    captioners = ablation_cells(run_dir / "ablations" / "captioner.csv")
    assert "published:llava" in captioners and "published:qwenvl" in captioners
    granularity = ablation_cells(run_dir / "ablations" / "granularity.csv")
    assert "sentences, max" in granularity and "paragraph, mean" in granularity
    data_notebook = (run_dir / "notebooks" / "00_data.ipynb").read_text()
    assert "this figure needs pixels and is skipped" in data_notebook
    assert json.loads((run_dir / "artifacts.json").read_text())["corpus"]["sources"][0]["source"].startswith("RayzedWang/Caption2CLIP@ed97c376")


def test_the_committed_shared_scene_list_is_the_data_layers_rule_applied_to_the_real_captions(store, tmp_path, monkeypatch):
    from rsrt_utils.captioning.corpus import load_variants
    from rsrt_utils.data.overlap import find_shared_images, same_scene_by_pixels
    from rsrt_utils.encoders import make_text_encoder
    from rsrt_utils.study.quality import load_overlap

    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path))
    a, b = (load_dataset(name, "test", root=MIRROR) for name in ("rsitmd", "rsicd"))

    def by_vlm(dataset):
        paths = {name: build_published_corpus(name, dataset.name, "test", dataset.image_ids, store)[0] for name in PUBLISHED_CORPORA}
        loaded = {name: load_variants(path) for name, path in paths.items()}  # read each corpus once
        return {name: [variants[i][0].caption for i in dataset.image_ids] for name, variants in loaded.items()}

    found = find_shared_images(a, b, by_vlm(a), by_vlm(b), make_text_encoder("all-MiniLM-L6-v2"), same_scene_by_pixels(b))
    committed = load_overlap()
    key = lambda row: (row["rsitmd"], row["rsicd"], row["rare_captions"], row["exact_captions"], row["basis"],  # noqa: E731
                       sorted(row["description_support"]))
    assert [key(r) for r in found["pairs"]] == [key(r) for r in committed["pairs"]]
    assert len(found["pairs"]) == committed["n_pairs"] and found["dropped"] == committed["dropped"]
    assert ("church_80.tif", "church_76.jpg") in {(r["rsitmd"], r["rsicd"]) for r in found["pairs"]}, \
        "two long unique captions shared verbatim: the reviewer's example"

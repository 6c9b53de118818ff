"""Import from a fake mirror and download from a real local HTTP server, with checksum tables written by the test."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from foundation_helpers import write_checksum_table, write_mirror

from rsrt_utils.data import load_dataset, sources
from rsrt_utils.data.published_corpora import PublishedCorpus
from rsrt_utils.data.store import MANIFEST, DataStoreError, download, import_from_folder, is_complete, store_status

RSITMD = {
    "rsitmd/precomp_amfmn/test_caps.txt": b"a plane\ntwo planes\nsand\n",
    "rsitmd/precomp_amfmn/test_filename.txt": b"airport_1.jpg\nairport_1.jpg\nbeach_2.jpg\n",
    "rsitmd/Transferdataset_rsitmd.json": json.dumps([{"split": "test", "captions": ["x"], "file_path": "a_1.jpg"}]).encode(),
}
RSICD = {
    "rsicd/precomp_amfmn/test_caps.txt": b"one\ntwo\n",
    "rsicd/precomp_amfmn/test_filename.txt": b"farmland_1.jpg\n",
    "rsicd/rsicd_to_aid150.tsv": b"rsicd_filename\tsplit\taid150_relpath\n",
}
AID150 = {f"aid150/images/Farmland/farmland_{i}.jpg": bytes([i]) * (100 + i) for i in range(1, 4)}
VLM = {"vlm_captions/caption2clip/toy/Toy.txt": b"rsicd_farmland_1.jpg Fields in rows.\nrsitmd_airport_1.png A runway.\n"}
TABLES = {"rsitmd": RSITMD, "rsicd": RSICD, "aid150": AID150, "vlm_captions": VLM}


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    """A fake mirror of every store dataset, checksum tables and a published-corpus registry computed from it."""
    tables = tmp_path / "checksums"
    for dataset, files in TABLES.items():
        write_checksum_table(tables, dataset, files)
    monkeypatch.setattr(sources, "CHECKSUM_DIR", tables)
    (relpath, data), = VLM.items()
    toy = PublishedCorpus("toy", "Toy-VL", "someone/Toy@" + "ab" * 20, "captions/Toy.txt", relpath,
                          _sha(data), len(data))
    monkeypatch.setattr(sources, "PUBLISHED_CORPORA", {"toy": toy})
    return write_mirror(tmp_path / "mirror", {rel: data for files in TABLES.values() for rel, data in files.items()})


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _assert_nothing_complete(store: Path, dataset: str) -> None:
    assert not is_complete(dataset, store)
    assert not (store / dataset).exists()
    assert not list(store.rglob(MANIFEST))
    assert not list(store.glob(".staging-*"))  # no half-filled staging folder either


def test_complete_import_writes_manifest(mirror, tmp_path):
    store = tmp_path / "store"
    done = import_from_folder(mirror, list(TABLES), store=store, progress=False)  # the datasets this mirror holds
    assert set(done) == set(TABLES)
    for dataset, files in TABLES.items():
        manifest = json.loads((store / dataset / MANIFEST).read_text())
        assert manifest["dataset"] == dataset and manifest["origin"].startswith("import:")
        assert manifest["files"] == {rel: sources.sha256_of(mirror / rel) for rel in files}
        for rel, data in files.items():
            assert (store / rel).read_bytes() == data
    assert not list(store.glob(".staging-*"))
    assert store_status(store)["aid150"] == {"complete": True, "files": 3, "origin": f"import:{mirror.resolve()}",
                                             "created": manifest["created"]}
    ds = load_dataset("rsitmd", "test", root=store)
    assert ds.image_ids == ["airport_1.jpg", "beach_2.jpg"]


def test_import_is_skipped_when_complete_unless_overwrite(mirror, tmp_path):
    store = tmp_path / "store"
    import_from_folder(mirror, ["rsitmd"], store=store, progress=False)
    marker = store / "rsitmd" / "extra.txt"
    marker.write_text("left alone")
    import_from_folder(mirror, ["rsitmd"], store=store, progress=False)
    assert marker.exists()
    import_from_folder(mirror, ["rsitmd"], store=store, overwrite=True, progress=False)
    assert not marker.exists() and is_complete("rsitmd", store)
    assert not list(store.glob("rsitmd.old-*"))


def test_corrupt_file_names_the_file_and_writes_nothing(mirror, tmp_path):
    (mirror / "rsitmd/precomp_amfmn/test_caps.txt").write_bytes(b"a plane\ntwo planes\nSAND\n")
    store = tmp_path / "store"
    with pytest.raises(DataStoreError, match=r"rsitmd/precomp_amfmn/test_caps.txt: sha256 .* does not match"):
        import_from_folder(mirror, ["rsitmd"], store=store, progress=False)
    _assert_nothing_complete(store, "rsitmd")
    assert not list(store.glob(".staging-*"))


def test_missing_file_names_the_file_and_writes_nothing(mirror, tmp_path):
    (mirror / "aid150/images/Farmland/farmland_2.jpg").unlink()
    store = tmp_path / "store"
    with pytest.raises(DataStoreError, match=r"(?s)1 of 3 files failed.*aid150/images/Farmland/farmland_2.jpg: not found"):
        import_from_folder(mirror, ["aid150"], store=store, progress=False)
    _assert_nothing_complete(store, "aid150")


def test_unknown_dataset_and_missing_source(mirror, tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        import_from_folder(mirror, ["coco"], store=tmp_path / "store", progress=False)
    with pytest.raises(DataStoreError, match="no such folder"):
        import_from_folder(tmp_path / "nowhere", store=tmp_path / "store", progress=False)


def _copy_failing_after(n: int, exc: BaseException):
    real, calls = shutil.copyfile, []

    def copy(src, dst, *args, **kwargs):
        calls.append(src)
        if len(calls) > n:
            raise exc
        return real(src, dst, *args, **kwargs)
    return copy


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_import_leaves_nothing_complete(mirror, tmp_path, monkeypatch, exc):
    store = tmp_path / "store"
    monkeypatch.setattr(shutil, "copyfile", _copy_failing_after(1, exc))
    with pytest.raises((DataStoreError, KeyboardInterrupt)):
        import_from_folder(mirror, ["aid150"], store=store, progress=False)
    _assert_nothing_complete(store, "aid150")
    monkeypatch.undo()
    monkeypatch.setattr(sources, "CHECKSUM_DIR", tmp_path / "checksums")
    import_from_folder(mirror, ["aid150"], store=store, progress=False)  # a rerun completes
    assert is_complete("aid150", store)


def test_interrupted_overwrite_keeps_the_old_complete_copy(mirror, tmp_path, monkeypatch):
    store = tmp_path / "store"
    import_from_folder(mirror, ["aid150"], store=store, progress=False)
    before = (store / "aid150" / MANIFEST).read_text()
    monkeypatch.setattr(shutil, "copyfile", _copy_failing_after(2, OSError("boom")))
    with pytest.raises(DataStoreError, match="boom"):
        import_from_folder(mirror, ["aid150"], store=store, overwrite=True, progress=False)
    assert (store / "aid150" / MANIFEST).read_text() == before
    assert len(list((store / "aid150").rglob("*.jpg"))) == 3


class _Server:
    """A real HTTP server on 127.0.0.1 serving path -> bytes (404 for anything else)."""

    def __init__(self, routes: dict[str, bytes]):
        self.routes, self.requests = routes, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/raw"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _routes(mirror: Path, base_url: str, datasets) -> dict[str, bytes]:
    """Upstream URL layout <base>/<owner>/<repo>/<commit>/<path>, built with SourceFile.url."""
    routes = {}
    for dataset in datasets:
        for item in sources.source_files(dataset):
            url = item.url(base_url)
            if url is not None:
                routes[urlsplit(url).path] = (mirror / item.relpath).read_bytes()
    return routes


@pytest.fixture
def server(mirror):
    with _Server({}) as srv:
        srv.routes.update(_routes(mirror, srv.base_url, TABLES))
        yield srv


def test_download_from_local_http_server(mirror, server, tmp_path):
    store = tmp_path / "store"
    download(store=store, base_url=server.base_url, progress=False, workers=2)
    for dataset, files in TABLES.items():
        manifest = json.loads((store / dataset / MANIFEST).read_text())
        assert manifest["origin"] == f"download:{server.base_url}"
        expected = {rel for rel in files if rel != "rsicd/rsicd_to_aid150.tsv"}  # mirror-only: no public source
        assert set(manifest["files"]) == expected
        for rel in expected:
            assert (store / rel).read_bytes() == files[rel]
    assert any(p.startswith("/raw/xiaoyuan1996/AMFMN/c09bcfba90e8283f98317af3c0e35005c3587925/AMFMN/data/rsitmd_precomp/")
               for p in server.requests)
    assert load_dataset("rsitmd", "test", root=store).captions == ["a plane", "two planes", "sand"]


def test_download_404_names_the_url(mirror, server, tmp_path):
    missing = next(p for p in server.routes if p.endswith("farmland_3.jpg"))
    del server.routes[missing]
    store = tmp_path / "store"
    with pytest.raises(DataStoreError, match=r"farmland_3.jpg.*HTTP 404"):
        download(["aid150"], store=store, base_url=server.base_url, progress=False, retries=1)
    _assert_nothing_complete(store, "aid150")
    assert server.requests.count(missing) == 1  # a 404 is not retried


def test_download_corrupted_response(mirror, server, tmp_path):
    path = next(p for p in server.routes if p.endswith("test_filename.txt") and "rsicd" in p)
    server.routes[path] = b"farmland_1.jpg\nfarmland_1.jpg\n"
    store = tmp_path / "store"
    with pytest.raises(DataStoreError, match=r"rsicd/precomp_amfmn/test_filename.txt: sha256"):
        download(["rsicd"], store=store, base_url=server.base_url, progress=False)
    _assert_nothing_complete(store, "rsicd")


def test_source_file_url_layout():
    item = sources.SourceFile("rsitmd/precomp_amfmn/test_caps.txt", "0" * 64, 1,
                              sources.upstream_of("rsitmd/precomp_amfmn/test_caps.txt"))
    assert item.url("http://h/base/") == ("http://h/base/xiaoyuan1996/AMFMN/c09bcfba90e8283f98317af3c0e35005c3587925/"
                                          "AMFMN/data/rsitmd_precomp/test_caps.txt")
    assert sources.SourceFile("rsicd/rsicd_to_aid150.tsv", "", 0, sources.upstream_of("rsicd/rsicd_to_aid150.tsv")).url() is None
    with pytest.raises(ValueError, match="no public source"):
        sources.upstream_of("other/file.txt")


def test_staging_left_by_a_killed_process_is_removed_by_the_next_import(mirror, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store = tmp_path / "store"
    abandoned = store / f".staging-rsitmd-{dead.stdout.strip()}"
    (abandoned / "precomp_amfmn").mkdir(parents=True)
    (abandoned / "precomp_amfmn" / "test_caps.txt").write_bytes(b"half")
    alive = store / f".staging-rsitmd-{os.getppid()}"  # another import still running: never touched
    alive.mkdir()
    import_from_folder(mirror, ["rsitmd"], store=store, progress=False)
    assert not abandoned.exists() and is_complete("rsitmd", store)
    assert alive.exists()

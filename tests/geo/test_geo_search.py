"""A georeferenced mosaic of real AID-150 scenes indexed through `rsrt index build --chip`, searched with and without a
box and a date range; the hits' footprints contain the chips' true positions (rsrt_utils.geo + search)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsrt_utils.cli import main
from rsrt_utils.geo.archive import read_chips
from tests.geo.scenes import COLS, GSD, ORIGIN, ROWS, TILE, UTM_33N, build_geo_collection


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo")
    mp = pytest.MonkeyPatch()
    mp.setenv("RSRT_INDEX_DIR", str(root / "indexes"))
    classes = build_geo_collection(root, "geo")
    yield {"root": root, "classes": classes}
    mp.undo()


def search(capsys, *args) -> dict | list:
    capsys.readouterr()
    assert main(["search", "geo", *args]) == 0
    return json.loads(capsys.readouterr().out)


def true_lonlat(tile: int) -> tuple[float, float]:
    """The lon/lat of a tile's centre, from the mosaic's own geotransform."""
    from rasterio.warp import transform

    row, col = divmod(tile, COLS)
    x, y = ORIGIN[0] + (col + 0.5) * TILE * GSD, ORIGIN[1] - (row + 0.5) * TILE * GSD
    lons, lats = transform(UTM_33N, "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def inside(point, ring) -> bool:
    lons, lats = zip(*ring)
    return min(lons) <= point[0] <= max(lons) and min(lats) <= point[1] <= max(lats)


def test_a_text_query_finds_the_chip_and_its_footprint_holds_the_true_position(collection, capsys):
    bridge = collection["classes"].index("Bridge")
    geojson = search(capsys, "a bridge", "--k", "3", "--format", "geojson")
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 3
    first = geojson["features"][0]
    assert first["properties"]["rank"] == 1 and first["properties"]["scene"] == "mosaic.tif"
    assert first["properties"]["datetime"] == "2024-06-01T10:30:00Z" and first["properties"]["gsd_m"] == GSD
    ring = first["geometry"]["coordinates"][0]
    assert first["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 5
    assert inside(true_lonlat(bridge), ring), "the bridge chip's footprint holds the bridge tile's true centre"
    for other in range(ROWS * COLS):
        if other != bridge:
            assert not inside(true_lonlat(other), ring)


def test_a_box_keeps_only_chips_that_meet_it_and_loses_no_hit_inside_it(collection, capsys):
    bridge = collection["classes"].index("Bridge")
    everything = search(capsys, "a bridge", "--k", "16", "--json")
    lon, lat = true_lonlat(bridge)
    away = true_lonlat(ROWS * COLS - 1)  # the opposite corner's tile
    box = f"{away[0] - 0.0005},{away[1] - 0.0005},{away[0] + 0.0005},{away[1] + 0.0005}"
    boxed = search(capsys, "a bridge", "--k", "16", "--bbox", box, "--json")
    west, south, east, north = map(float, box.split(","))
    assert boxed and all(not (h["place"]["bbox"][0] > east or h["place"]["bbox"][2] < west or h["place"]["bbox"][1] > north
                              or h["place"]["bbox"][3] < south) for h in boxed)
    assert all(not inside((lon, lat), h["place"]["lonlat"]) for h in boxed), "the bridge lies outside the box"
    expected = [h["image_id"] for h in everything if h["image_id"] in {b["image_id"] for b in boxed}]
    assert [h["image_id"] for h in boxed] == expected, "filtered = the unfiltered ranking restricted to the box"
    assert [h["rank"] for h in boxed] == list(range(1, len(boxed) + 1))


def test_a_date_range_filters_by_acquisition_time(collection, capsys):
    assert search(capsys, "a bridge", "--from", "2025-01-01", "--json") == []
    within = search(capsys, "a bridge", "--from", "2024-05-01", "--to", "2024-06-01", "--json")
    assert len(within) == 10 and all(h["place"]["datetime"] == "2024-06-01T10:30:00Z" for h in within)


def test_bad_filters_and_a_collection_without_places_get_clear_errors(collection, capsys):
    for args, message in ((["--bbox", "15,45"], "not four numbers"), (["--bbox", "15,46,16,45"], "south >= north"),
                          (["--from", "yesterday"], "'yesterday' is not understood"),
                          (["--from", "2024-07-01", "--to", "2024-06-01"], "starts after it ends")):
        capsys.readouterr()
        assert main(["search", "geo", "a bridge", *args]) == 2
        assert message in capsys.readouterr().err
    chips = read_chips(collection["root"] / "indexes" / "geo" / "chips")
    assert len(chips) == ROWS * COLS and np.isclose(next(iter(chips.values()))["gsd_m"], GSD)
    plain = collection["root"] / "plain"
    plain.mkdir()
    corpus = collection["root"] / "plain.jsonl"
    first = next(iter(chips))
    (plain / "one.png").write_bytes((collection["root"] / "indexes" / "geo" / "chips" / first).read_bytes())
    variants = [{"one_sentence": f"A bridge {n}.", "feature": f"bridge {n}", "caption": f"A bridge, view {n}."} for n in range(5)]
    corpus.write_text(json.dumps({"image_id": "one.png", "variants": variants}) + "\n")
    assert main(["index", "build", str(plain), "--name", "plain", "--captioner", "import", "--corpus", str(corpus),
                 "--encoder", "hashing:4096", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "plain", "a bridge", "--bbox", "14,44,16,46"]) == 2
    assert "has no places or times" in capsys.readouterr().err
    assert main(["index", "build", str(collection["root"] / "scenes"), "--name", "bad", "--chip", "5000"]) == 2
    assert "chip side 5000 px is larger than the scene" in capsys.readouterr().err


def test_the_json_api_filters_by_box_and_date_and_answers_geojson(collection):
    pytest.importorskip("fastapi", reason="the app extra (fastapi) is not installed")
    from fastapi.testclient import TestClient

    from rsrt_utils.app.server import create_app

    base = "http://127.0.0.1:8000"
    with TestClient(create_app(collection["root"] / "outputs", collection["root"] / "indexes"), base_url=base) as client:
        everything = client.get("/api/collections/geo/search", params={"q": "a bridge", "k": 16}).json()["hits"]
        away = true_lonlat(ROWS * COLS - 1)
        box = f"{away[0] - 0.0005},{away[1] - 0.0005},{away[0] + 0.0005},{away[1] + 0.0005}"
        boxed = client.get("/api/collections/geo/search", params={"q": "a bridge", "k": 16, "bbox": box}).json()["hits"]
        assert boxed and len(boxed) < len(everything) and all("lonlat" in h["place"] for h in boxed)
        geojson = client.get("/api/collections/geo/search", params={"q": "a bridge", "k": 2, "from": "2024-06-01",
                                                                     "format": "geojson"}).json()
        assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 2
        bad = client.get("/api/collections/geo/search", params={"q": "a bridge", "bbox": "1,2,3"})
        assert bad.status_code == 400 and "not four numbers" in bad.text
        assert client.get("/api/collections/geo/search", params={"q": "x", "to": "soon"}).status_code == 400


def test_a_rebuild_recaptions_only_the_chips_of_a_changed_scene_and_retires_a_removed_ones(tmp_path, monkeypatch, capsys):
    from rsrt_utils.geo.archive import chip_scenes, scenes_in_folder
    from rsrt_utils.geo.raster import ChipSpec
    from tests.geo.scenes import write_rgb

    monkeypatch.setenv("RSRT_INDEX_DIR", str(tmp_path / "indexes"))
    scenes, chips, corpus = tmp_path / "scenes", tmp_path / "indexes" / "inc" / "chips", tmp_path / "corpus.jsonl"
    scenes.mkdir()
    write_rgb(scenes / "a.tif", 2, 2)
    write_rgb(scenes / "b.tif", 2, 3, datetime="2023:03:04 05:06:07")

    def build() -> str:
        chip_scenes(scenes_in_folder(scenes), chips, ChipSpec(TILE), progress=False)
        lines = [json.dumps({"image_id": f, "variants": [{"one_sentence": f"Chip {f} {n}.", "feature": f"part {n}",
                                                          "caption": f"A chip, view {n}."} for n in range(5)]})
                 for f in read_chips(chips)]
        corpus.write_text("\n".join(lines) + "\n")
        capsys.readouterr()
        assert main(["index", "build", str(scenes), "--name", "inc", "--chip", str(TILE), "--captioner", "import",
                     "--corpus", str(corpus), "--encoder", "hashing:4096", "--quiet"]) == 0
        return capsys.readouterr().out

    assert "files: 10 new, 0 changed, 0 removed, 0 unchanged; 10 to caption" in build()
    assert "files: 0 new, 0 changed, 0 removed, 10 unchanged; 0 to caption" in build()
    write_rgb(scenes / "b.tif", 2, 2, datetime="2023:03:04 05:06:07")  # b changes: 2 x 2 tiles of other scenes
    (scenes / "a.tif").unlink()
    second = build()
    assert "4 chip(s) kept" in second
    assert "files: 0 new, 4 changed, 6 removed, 0 unchanged; 4 to caption" in second, second


def test_a_basemap_is_checked_and_only_its_origin_is_admitted_by_the_page_policy(collection):
    pytest.importorskip("fastapi", reason="the app extra (fastapi) is not installed")
    from fastapi.testclient import TestClient

    from rsrt_utils.app.server import create_app

    for bad in ("tile.example.org/{z}/{x}/{y}.png", "https://tiles.example.org/{z}/{x}.png",
                "https://tiles.example.org/{z}/{x}/{y}.png; script-src *"):
        with pytest.raises(ValueError, match="basemap"):
            create_app(collection["root"] / "outputs", collection["root"] / "indexes", basemap=bad)
    basemap = "https://tiles.example.org:8443/osm/{z}/{x}/{y}.png"
    app = create_app(collection["root"] / "outputs", collection["root"] / "indexes", basemap=basemap)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        page = client.get("/search", params={"collection": "geo", "q": "a bridge"})
        policy = page.headers["content-security-policy"]
        assert "img-src 'self' data: https://tiles.example.org:8443;" in policy and "script-src 'self';" in policy
        assert f'data-basemap="{basemap}"' in page.text and 'id="map"' in page.text
    with TestClient(create_app(collection["root"] / "outputs", collection["root"] / "indexes"),
                    base_url="http://127.0.0.1:8000") as client:
        page = client.get("/search", params={"collection": "geo", "q": "a bridge"})
        assert "tiles.example.org" not in page.headers["content-security-policy"] and 'data-basemap=""' in page.text

"""Scenes in, chips out: windows, footprints, bands, the 8-bit stretch, nodata, bad input (rsrt_utils.geo)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsrt_utils.geo.archive import CHIPS_MANIFEST, Scene, chip_scenes, read_chips, scenes_in_folder
from rsrt_utils.geo.raster import ChipSpec, GeoReadError, iter_chips
from tests.geo.scenes import GSD, ORIGIN, UTM_33N, rasterio, window_rgb, write_rgb, write_uint16_4band


def chips_of(path, spec, scene_id="scene"):
    return list(iter_chips(path, spec, scene_id))


def test_an_rgb_geotiff_is_cut_into_chips_that_cover_it_with_their_footprint_gsd_and_time(tmp_path):
    path = write_rgb(tmp_path / "scene.tif")
    chips = chips_of(path, ChipSpec(256, percentiles=(0, 100)))
    assert [c.window for c, _, _ in chips][:4] == [(0, 0, 256, 256), (256, 0, 256, 256), (344, 0, 256, 256), (0, 256, 256, 256)]
    assert len(chips) == 9, "600 px in 256 px chips: 0, 256 and 344 (the last moved in to the edge) on each axis"
    chip, pixels, problem = chips[4]
    assert problem is None and chip.crs == UTM_33N and chip.gsd_m == GSD and chip.datetime == "2024-06-01T10:30:00Z"
    x0, y0 = ORIGIN[0] + 256 * GSD, ORIGIN[1] - 256 * GSD
    assert chip.footprint[0] == [x0, y0] and chip.footprint[2] == [x0 + 256 * GSD, y0 - 256 * GSD]
    west, south, east, north = chip.bbox
    assert 14.9 < west < east < 15.1 and 45.0 < south < north < 45.2, "UTM 33N at 500 km E, 5000 km N is near 15 E 45.1 N"
    truth = window_rgb(4, 4, chip.window)
    lo, hi = truth.min(), truth.max()
    assert np.abs(pixels.astype(int) - np.rint((truth - lo) / (hi - lo) * 255)).max() <= 1, "0-100 stretch: min-max"


def test_a_chip_size_in_metres_follows_the_ground_sample_distance_and_overlap_adds_chips(tmp_path):
    path = write_rgb(tmp_path / "scene.tif")
    chips = chips_of(path, ChipSpec.parse_size("300m"))
    assert {c.window[2] for c, _, _ in chips} == {150} and len(chips) == 16
    overlapping = chips_of(path, ChipSpec(256, overlap=0.5))
    assert len(overlapping) == 16 and overlapping[1][0].window[0] == 128


def test_uint16_bands_are_chosen_by_name_stretched_to_8_bits_and_nodata_chips_are_left_out(tmp_path):
    path = write_uint16_4band(tmp_path / "s2.tif")
    chips = chips_of(path, ChipSpec(256, bands=("B4", "B3", "B2")))
    kept = [(c, p) for c, p, problem in chips if problem is None]
    left_out = [c for c, p, problem in chips if problem and problem.startswith("nodata")]
    assert {c.window[:2] for c in left_out} == {(0, 0), (256, 0), (344, 0), (0, 256), (0, 344)}
    assert all(c.nodata_fraction > 0.5 for c in left_out) and len(kept) == 4
    chip, pixels = next((c, p) for c, p in kept if c.window[:2] == (256, 256))
    truth = window_rgb(4, 4, chip.window)
    for band in range(3):
        assert np.corrcoef(pixels[..., band].ravel(), truth[..., band].ravel())[0, 1] > 0.98, "B4 B3 B2 is red green blue"
    assert pixels.dtype == np.uint8 and pixels.shape == (256, 256, 3)
    assert pixels.max() > 200, "the 98th percentile maps to 255"
    framed = write_uint16_4band(tmp_path / "framed.tif", border=100)
    top = next((c, p) for c, p, problem in chips_of(framed, ChipSpec(256, bands=("B4", "B3", "B2"))) if c.window[:2] == (256, 0))
    assert top[0].nodata_fraction == pytest.approx(100 / 256, abs=1e-3) and top[1] is not None, "39 % nodata: kept"
    assert (top[1][:100] == 0).all() and top[1][100:].mean() > 20, "nodata pixels are black, the rest is the scene"


def test_bad_input_gets_a_clear_error_naming_the_value_and_the_fix(tmp_path):
    path = write_uint16_4band(tmp_path / "s2.tif")
    with pytest.raises(GeoReadError, match=r"band 'B9' does not exist; the scene has 4 band\(s\): 1 \(B8\)"):
        chips_of(path, ChipSpec(256, bands=("B9", "B3", "B2")))
    with pytest.raises(GeoReadError, match="chip side 1000 px is larger than the scene"):
        chips_of(path, ChipSpec(1000))
    for bad, message in ((dict(unit="km"), "unit 'km'"), (dict(overlap=1.0), "overlap 1.0"),
                         (dict(bands=("B4", "B3")), "give three"), (dict(percentiles=(98, 2)), "low < high")):
        with pytest.raises(ValueError, match=message):
            ChipSpec(256, **bad)
    with pytest.raises(ValueError, match="'12 km' is not understood"):
        ChipSpec.parse_size("12 km")
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(GeoReadError, match="not a raster that can be opened"):
        chips_of(broken, ChipSpec(64))


def test_an_ungeoreferenced_tiff_is_chipped_without_a_place_and_said_so(tmp_path):
    from PIL import Image

    from tests.geo.scenes import mosaic

    Image.fromarray(np.moveaxis(mosaic(2, 2), 0, -1)).save(tmp_path / "photo.tif")
    with pytest.raises(GeoReadError, match="needs a georeferenced scene"):
        chips_of(tmp_path / "photo.tif", ChipSpec.parse_size("100m"))
    summary = chip_scenes(scenes_in_folder(tmp_path), tmp_path / "chips", ChipSpec(150), progress=False)
    assert summary.without_place == ["photo.tif"] and summary.chips == 4
    assert all(c["footprint"] is None and c["bbox"] is None for c in read_chips(tmp_path / "chips").values())


def test_a_cog_with_overviews_is_read_by_windows_and_a_corrupt_tile_fails_only_its_chip(tmp_path):
    path = write_uint16_4band(tmp_path / "s2_cog.tif", border=0, cog=True)
    with rasterio.open(path) as src:
        assert src.overviews(1)[0] == 2 and src.block_shapes[0] == (256, 256)
        offsets = [int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1) or 0) for r in range(2) for c in range(2)]
    good = [c for c, p, problem in chips_of(path, ChipSpec(256, bands=(4, 3, 2))) if problem is None]
    assert len(good) == 9
    data = bytearray(path.read_bytes())
    start = offsets[0]
    data[start + 16:start + 2000] = bytes(1984)  # the first tile's compressed stream, broken
    path.write_bytes(bytes(data))
    results = chips_of(path, ChipSpec(256, bands=(4, 3, 2)))
    failed = [c.window for c, p, problem in results if problem and "cannot be read" in problem]
    assert failed == [(0, 0, 256, 256)] and len(results) == 9, "only the chip on the broken tile fails"


def test_chipping_a_folder_is_incremental_per_scene_and_never_deletes_what_it_did_not_make(tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_rgb(scenes / "a.tif", 2, 2)
    write_rgb(scenes / "b.tif", 2, 2, datetime="2023:01:02 03:04:05")
    out = tmp_path / "chips"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    first = chip_scenes(scenes_in_folder(scenes), out, ChipSpec(150), progress=False)
    assert (first.new, first.chips) == (2, 8)
    again = chip_scenes(scenes_in_folder(scenes), out, ChipSpec(150), progress=False)
    assert (again.new, again.changed, again.unchanged, again.chips) == (0, 0, 2, 8)
    write_rgb(scenes / "a.tif", 3, 2)  # changed: 3 x 2 tiles
    (scenes / "b.tif").unlink()
    third = chip_scenes(scenes_in_folder(scenes), out, ChipSpec(150), progress=False)
    assert (third.changed, third.removed, third.chips) == (1, 1, 6)
    records = read_chips(out)
    assert len(records) == 6 and all((out / f).is_file() for f in records)
    assert sorted(p.name for p in out.rglob("*.png")) == sorted(f.split("/")[-1] for f in records)
    assert (out / "mine.txt").read_text() == "a user's file"
    manifest = json.loads((out / CHIPS_MANIFEST).read_text())
    assert list(manifest["scenes"]) == ["a.tif"]


def test_stac_items_give_scenes_with_their_time(tmp_path):
    pystac = pytest.importorskip("pystac")
    from datetime import datetime, timezone

    from rsrt_utils.geo.stac import scenes_from_stac

    write_rgb(tmp_path / "a.tif", 2, 2, datetime=None)
    item = pystac.Item("scene-a", geometry=None, bbox=None, datetime=datetime(2022, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
                       properties={})
    item.add_asset("visual", pystac.Asset(href="a.tif", media_type=pystac.MediaType.COG, roles=["data"]))
    collection = pystac.ItemCollection([item])
    target = tmp_path / "items.json"
    target.write_text(json.dumps(collection.to_dict(transform_hrefs=False)))
    scenes = scenes_from_stac(target)
    assert scenes == [Scene(tmp_path / "a.tif", "scene-a", "2022-05-06T07:08:09Z")]
    chips = chip_scenes(scenes, tmp_path / "chips", ChipSpec(150), progress=False)
    assert chips.chips == 4 and {c["datetime"] for c in read_chips(tmp_path / "chips").values()} == {"2022-05-06T07:08:09Z"}
    with pytest.raises(ValueError, match="no asset with role 'data' or key 'visual'"):
        item.assets.clear()
        target.write_text(json.dumps(pystac.ItemCollection([item]).to_dict(transform_hrefs=False)))
        scenes_from_stac(target)


def test_a_jpeg_2000_scene_is_chipped_with_its_georeference(tmp_path):
    from rasterio.shutil import copy

    copy(write_rgb(tmp_path / "scene.tif", 2, 2), tmp_path / "scene.jp2", driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE=True)
    (tmp_path / "scene.tif").unlink()
    summary = chip_scenes(scenes_in_folder(tmp_path), tmp_path / "chips", ChipSpec(150), progress=False)
    records = list(read_chips(tmp_path / "chips").values())
    assert summary.chips == 4 and not summary.without_place and {r["crs"] for r in records} == {UTM_33N}
    assert records[0]["footprint"][0] == [ORIGIN[0], ORIGIN[1]]


def test_a_crs_that_cannot_be_transformed_to_lon_lat_is_named_with_the_fix(tmp_path):
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    local = CRS.from_wkt('ENGCRS["site grid",EDATUM["site"],CS[Cartesian,2],AXIS["x",east,LENGTHUNIT["metre",1]],'
                         'AXIS["y",north,LENGTHUNIT["metre",1]]]')
    path = tmp_path / "site.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=300, count=3, dtype="uint8", crs=local,
                       transform=from_origin(0, 300, 1, 1)) as dst:
        dst.write(np.full((3, 300, 300), 100, dtype=np.uint8))
    with pytest.raises(GeoReadError, match="cannot be transformed to WGS84 lon/lat .* reproject the scene"):
        chips_of(path, ChipSpec(150))
    summary = chip_scenes(scenes_in_folder(tmp_path), tmp_path / "chips", ChipSpec(150), progress=False)
    assert summary.chips == 0 and "cannot be transformed" in summary.failed["site.tif"]


def test_a_stac_catalogue_is_walked_and_each_item_is_a_scene(tmp_path):
    pystac = pytest.importorskip("pystac")
    from datetime import datetime, timezone

    from rsrt_utils.geo.stac import scenes_from_stac

    catalog = pystac.Catalog("archive", "two scenes")
    for n, day in ((1, 3), (2, 4)):
        folder = tmp_path / "catalog" / f"scene-{n}"
        folder.mkdir(parents=True)
        write_rgb(folder / "image.tif", 2, 2, datetime=None)
        item = pystac.Item(f"scene-{n}", geometry=None, bbox=None, properties={},
                           datetime=datetime(2021, 1, day, tzinfo=timezone.utc))
        item.add_asset("image", pystac.Asset(href="./image.tif", roles=["data"]))
        catalog.add_item(item)
    catalog.normalize_hrefs(str(tmp_path / "catalog"))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    scenes = scenes_from_stac(tmp_path / "catalog" / "catalog.json")
    assert [(s.scene_id, s.datetime, s.path.name) for s in scenes] == \
        [("scene-1", "2021-01-03T00:00:00Z", "image.tif"), ("scene-2", "2021-01-04T00:00:00Z", "image.tif")]
    summary = chip_scenes(scenes, tmp_path / "chips", ChipSpec(150), progress=False)
    assert summary.chips == 8 and summary.new == 2


def test_a_stac_item_places_a_file_that_has_no_georeference_of_its_own(tmp_path):
    pystac = pytest.importorskip("pystac")
    from datetime import datetime, timezone

    from PIL import Image

    from rsrt_utils.geo.stac import scenes_from_stac
    from tests.geo.scenes import mosaic

    Image.fromarray(np.moveaxis(mosaic(2, 2), 0, -1)).save(tmp_path / "photo.tif")
    box = (10.0, 50.0, 10.004, 50.004)
    ring = [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]], [box[0], box[1]]]
    item = pystac.Item("photo", geometry={"type": "Polygon", "coordinates": [ring]}, bbox=None, properties={},
                       datetime=datetime(2020, 2, 3, tzinfo=timezone.utc))  # the box comes from the geometry
    item.add_asset("data", pystac.Asset(href="photo.tif", roles=["data"]))
    (tmp_path / "items.json").write_text(json.dumps(pystac.ItemCollection([item]).to_dict(transform_hrefs=False)))
    summary = chip_scenes(scenes_from_stac(tmp_path / "items.json"), tmp_path / "chips", ChipSpec(150), progress=False)
    chips = sorted(read_chips(tmp_path / "chips").values(), key=lambda c: (c["window"][1], c["window"][0]))
    assert summary.chips == 4 and not summary.without_place
    assert chips[0]["crs"] == "EPSG:4326" and chips[0]["bbox"] == pytest.approx((10.0, 50.002, 10.002, 50.004))
    assert chips[-1]["bbox"] == pytest.approx((10.002, 50.0, 10.004, 50.002)), "north up: the last chip is south-east"

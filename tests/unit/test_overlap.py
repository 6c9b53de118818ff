"""Shared scenes between two test splits, found by the data layer's stated rule (rsrt_utils.data.overlap)."""

from __future__ import annotations

import numpy as np

from rsrt_utils.data.dataset import Dataset, ImageRecord
from rsrt_utils.data.overlap import MIN_SHARED_CAPTIONS, find_shared_images, shared_image_ids
from rsrt_utils.encoders.hashing_backend import HashingEncoder


def dataset(name: str, captions_by_image: dict[str, list[str]]) -> Dataset:
    images = [ImageRecord(i, i.split("_")[0], "test", None) for i in captions_by_image]
    captions = [c for cs in captions_by_image.values() for c in cs]
    owners = np.array([n for n, cs in enumerate(captions_by_image.values()) for _ in cs])
    return Dataset(name, "test", images, captions, owners)


A = dataset("rsitmd", {"port_1": ["Many boats are in the port.", "boats near a pier", "a harbour with ships", "x1", "x2"],
                       "farm_1": ["green fields", "a farm", "crops in rows", "a barn", "a tractor"],
                       "road_1": ["a road", "cars on a road", "a highway", "a car", "a lane"]})
B = dataset("rsicd", {"port_9": ["many  boats are in the port", "Boats near a pier.", "a harbour with ships", "y", "z"],
                      "farm_9": ["green fields", "wheat", "a farm house", "soil", "trees"],
                      "road_9": ["asphalt", "a bridge", "a river", "sand", "grass"]})


def test_shared_captions_after_normalisation_make_a_pair_only_from_the_threshold_up():
    rows = find_shared_images(A, B)
    assert MIN_SHARED_CAPTIONS == 3 and [(r["rsitmd"], r["rsicd"], r["shared_captions"]) for r in rows] == \
        [("port_1", "port_9", 3)], "farm_1 and farm_9 share one caption only: not the same scene by this rule"


def test_identical_or_near_identical_descriptions_of_one_vlm_make_a_pair():
    descriptions_a = {"llava": ["boats moored in a port", "fields of wheat", "a road crosses the scene"]}
    descriptions_b = {"llava": ["a harbour at dusk", "a farm with a barn", "A road crosses the scene."]}
    rows = find_shared_images(A, B, descriptions_a, descriptions_b, HashingEncoder(dim=256))
    pairs = {(r["rsitmd"], r["rsicd"]): r for r in rows}
    assert pairs[("road_1", "road_9")]["identical_description"] == ["llava"]
    assert pairs[("road_1", "road_9")]["description_cosine"]["llava"] >= 0.99
    assert pairs[("road_1", "road_9")]["shared_captions"] == 0 and pairs[("port_1", "port_9")]["shared_captions"] == 3
    assert shared_image_ids(rows, "rsitmd") == {"port_1", "road_1"}
    assert shared_image_ids(rows, "rsicd") == {"port_9", "road_9"}

"""Shared scenes between two test splits, found by the data layer's stated rule (rsrt_utils.data.overlap)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rsrt_utils.data.dataset import Dataset, ImageRecord
from rsrt_utils.data.overlap import (
    MAX_HOLDERS,
    MIN_RARE_CAPTIONS,
    find_shared_images,
    pixel_correlation,
    rare_caption_matches,
    shared_image_ids,
)
from rsrt_utils.encoders.hashing_backend import HashingEncoder

COMMON = "many buildings are in a dense residential area"


def dataset(name: str, captions_by_image: dict[str, list[str]]) -> Dataset:
    images = [ImageRecord(i, i.split("_")[0], "test", None) for i in captions_by_image]
    captions = [c for cs in captions_by_image.values() for c in cs]
    owners = np.array([n for n, cs in enumerate(captions_by_image.values()) for _ in cs])
    return Dataset(name, "test", images, captions, owners)


A = dataset("rsitmd", {"port_1": ["Many boats are moored in the old port beside a long pier.", "a harbour with ships and cranes",
                                  COMMON, "x1"],
                       "farm_1": ["green fields with a red barn in the middle", COMMON, "a tractor"],
                       "road_1": ["a road", "cars on a road", COMMON]})
B = dataset("rsicd", {"port_9": ["many  boats are moored in the old prot beside a long pier", "A harbour with ships and cranes.",
                                 "y"],
                      "farm_9": ["green fields with a red barn in the middle", "wheat", COMMON],
                      "road_9": ["a road", COMMON, "sand"], "road_8": ["a road", COMMON], "dense_1": [COMMON]})


def pairs_of(result: dict) -> dict[tuple[str, str], dict]:
    return {(r["rsitmd"], r["rsicd"]): r for r in result["pairs"]}


def test_two_rare_captions_matched_exactly_or_near_identically_make_a_pair():
    pairs = pairs_of(find_shared_images(A, B))
    assert MIN_RARE_CAPTIONS == 2 and list(pairs) == [("port_1", "port_9")]
    row = pairs[("port_1", "port_9")]
    assert (row["rare_captions"], row["exact_captions"], row["basis"]) == (2, 1, "captions"), \
        "the pier caption has a typo (prot): near-identical, not exact"


def test_a_caption_held_by_more_images_than_max_holders_is_no_evidence():
    evidence = rare_caption_matches(A, B)
    road_1, road_9, road_8 = 2, 2, 3
    assert MAX_HOLDERS == 2 and evidence[(road_1, road_9)] == evidence[(road_1, road_8)] == {"a road": True}, \
        "held by two RSICD images: rare, one caption for each pair (not a pair by itself)"
    assert all(COMMON not in captions for captions in evidence.values()), "held by four RSICD images: never evidence"


def test_one_rare_caption_needs_a_vlm_description_to_support_it_and_a_description_alone_is_never_enough():
    descriptions_a = {"llava": ["boats in a port", "A farm with a red barn.", "a road crosses the scene"]}
    descriptions_b = {"llava": ["a harbour at dusk", "a farm with a red barn", "a bridge over a river", "a parking lot",
                                "A farm with a red barn"]}  # dense_1 shares only the common caption with farm_1
    result = find_shared_images(A, B, descriptions_a, descriptions_b, HashingEncoder(dim=256))
    pairs = pairs_of(result)
    assert pairs[("farm_1", "farm_9")]["basis"] == "one caption + description"
    assert pairs[("farm_1", "farm_9")]["description_support"] == {"llava": 1.0}
    assert ("farm_1", "dense_1") not in pairs, "identical descriptions but no rare caption: not a pair"
    assert ("road_1", "road_9") not in pairs, "one rare caption without a description supporting it: not a pair"
    assert shared_image_ids(result["pairs"], "rsitmd") == {"port_1", "farm_1"}


def test_an_image_paired_twice_keeps_the_stronger_pair_unless_pixels_show_one_scene():
    a = dataset("rsitmd", {"stadium_1": ["a red track around a green football field with stands", "two rows of white stands",
                                         "a parking lot beside a stadium full of cars"]})
    b = dataset("rsicd", {"stadium_8": ["a red track around a green football field with stands", "two rows of white stands",
                                        "a parking lot beside a stadium full of cars"],
                          "stadium_9": ["a red track around a green football field with stands", "two rows of white stands"]})
    result = find_shared_images(a, b)
    assert [(r["rsicd"], r["rare_captions"]) for r in result["pairs"]] == [("stadium_8", 3)]
    assert [r["rsicd"] for r in result["dropped"]] == ["stadium_9"]
    assert "paired more strongly with stadium_8" in result["dropped"][0]["dropped_because"]
    both = find_shared_images(a, b, same_scene_b=lambda j1, j2: True)
    assert [r["rsicd"] for r in both["pairs"]] == ["stadium_8", "stadium_9"] and not both["dropped"]


def test_pixel_correlation_is_high_for_one_scene_and_low_for_another(tmp_path):
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (150, 150, 3)).astype(np.uint8)
    noisy = np.clip(scene + rng.normal(0, 8, scene.shape), 0, 255).astype(np.uint8)
    other = rng.integers(0, 255, (150, 150, 3)).astype(np.uint8)
    for name, pixels in (("scene", scene), ("noisy", noisy), ("other", other)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    assert pixel_correlation(tmp_path / "scene.png", tmp_path / "noisy.png") > 0.9
    assert abs(pixel_correlation(tmp_path / "scene.png", tmp_path / "other.png")) < 0.2

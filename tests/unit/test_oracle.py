"""The human-caption oracle on a handmade dataset whose recalls are worked out by hand (hashing encoder)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from foundation_helpers import make_dataset

from rsrt_utils.data import Dataset
from rsrt_utils.encoders.hashing_backend import HashingEncoder
from rsrt_utils.evaluation import human_caption_oracle

ENCODER = HashingEncoder(4096)


def _groups() -> list[list[str]]:
    """12 images x 2 captions. By hand (cosines of bag-of-words counts):

    images 0-7: both captions share one unique word -> cosine 0.5 with own, 0 with every other image;
    image 8: 'golf hotel' / 'golf india'; image 9: 'juliet kilo' / 'juliet hotel hotel'
      cos(golf hotel, juliet hotel hotel) = 2/(sqrt2*sqrt5) = 0.632 > cos(golf hotel, golf india) = 0.5,
      cos(juliet kilo, juliet hotel hotel) = 0.316 > 0 = cos(juliet kilo, golf india);
    images 10, 11: no word in common with anything -> all scores 0 (exact ties).
    """
    groups = [[f"own{i} left{i}", f"own{i} right{i}"] for i in range(8)]
    groups += [["golf hotel", "golf india"], ["juliet kilo", "juliet hotel hotel"]]
    groups += [["lima mike", "november oscar"], ["papa quebec", "romeo sierra"]]
    return groups


def _check_no_hash_collisions(groups):
    tokens = sorted({t for g in groups for c in g for t in re.findall(r"[a-z0-9]+", c.lower())})
    buckets = {ENCODER._bucket(t)[0] for t in tokens}
    assert len(buckets) == len(tokens), "fixture precondition: every word in its own hash bucket"


def _dataset(interleaved: bool = False) -> Dataset:
    groups = _groups()
    _check_no_hash_collisions(groups)
    names = [f"{'ab'[i % 2]}class_{i}.jpg" for i in range(12)]
    ds = make_dataset(groups, names)
    if interleaved:  # captions listed as all first captions, then all second captions
        order = np.r_[np.arange(0, 24, 2), np.arange(1, 24, 2)]
        ds = Dataset(ds.name, ds.split, ds.images, [ds.captions[q] for q in order], ds.caption_image_index[order])
    return ds


@pytest.mark.parametrize("interleaved", [False, True])
def test_oracle_by_hand_pessimistic(interleaved):
    """k=1: text->image misses image 8 (rank 1) at R@1 and 10, 11 (rank 11, ties) everywhere; image->text misses
    9 at R@1 and 10, 11. k=2 mirrors it (9 then 8). So R@1 = 9/12 = 75, R@5 = R@10 = 10/12 = 83.33 both ways."""
    result = human_caption_oracle(_dataset(interleaved), ENCODER, ties="pessimistic", n_boot=200)
    expected = {"R@1": 75.0, "R@5": 83.33, "R@10": 83.33}
    assert result["t2i"] == expected and result["i2t"] == expected
    assert result["mR"] == 80.56  # (75 + 83.33 + 83.33) / 3
    assert [run["mR"] for run in result["per_k"]] == [80.56, 80.56]
    assert result["n_images"] == 12 and result["n_queries"]["t2i"] == 12
    lo, hi = result["ci95"]["mR"]
    assert lo <= result["mR"] <= hi


def test_oracle_optimistic_ties_recover_the_tied_images():
    """Images 10 and 11 tie with every image at 0: optimistic rank 0, so R@5/R@10 = 100 and R@1 = 11/12."""
    result = human_caption_oracle(_dataset(), ENCODER, ties="optimistic", n_boot=50)
    assert result["t2i"] == {"R@1": 91.67, "R@5": 100.0, "R@10": 100.0}
    assert result["i2t"] == result["t2i"]


def test_oracle_random_ties_give_the_expected_hit_rates():
    """Default ties: images 10 and 11 tie with all 12 candidates at 0, so their own one is first with
    probability 1/12, in the top 5 with 5/12, in the top 10 with 10/12; the other images are as above."""
    result = human_caption_oracle(_dataset(), ENCODER, n_boot=50)
    expected = {"R@1": round((9 + 2 / 12) / 12 * 100, 2), "R@5": round((10 + 10 / 12) / 12 * 100, 2),
                "R@10": round((10 + 20 / 12) / 12 * 100, 2)}
    assert result["t2i"] == expected and result["i2t"] == expected
    assert result["mR"] == 87.96


def test_oracle_per_class_rows():
    result = human_caption_oracle(_dataset(), ENCODER, n_boot=20)
    classes = {row["scene_class"] for row in result["per_class"]}
    assert classes == {"aclass", "bclass"}


def test_oracle_needs_equal_caption_counts():
    ds = make_dataset([["a b", "a c", "a d"], ["e f", "e g"]])
    with pytest.raises(ValueError, match=r"same number \(>= 2\) of captions.*\[2, 3\]"):
        human_caption_oracle(ds, ENCODER, n_boot=10)
    with pytest.raises(ValueError, match=r"\[1\]"):
        human_caption_oracle(make_dataset([["a"], ["b"]]), ENCODER, n_boot=10)

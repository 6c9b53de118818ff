"""The neighbour captioner on real RSICD test scenes with AID-150 pixels (seeded, stratified subset).

A full run (1027 test images against the 8973-image train bank) is the benchmark's job
(benchmarks/bench_neighbour_captioner.py). Here a stratified subset keeps a cold run under
~3 minutes on 2 cores: 10 test images and 100 train-bank images per scene class. Features and
embeddings go to the project cache (paths.cache_dir()), so reruns take seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from rsrt_utils.paths import shared_mirror_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from neighbour_presets import BASELINE_SETTINGS, QUERY_VARIANTS  # noqa: E402

MIRROR = shared_mirror_dir()
pytestmark = pytest.mark.skipif(
    MIRROR is None or not (MIRROR / "aid150" / "images").is_dir() or not (MIRROR / "rsicd").is_dir(),
    reason="the read-only data mirror ../shared/data (rsicd/ and aid150/images/) is absent; set RSRT_MIRROR_DIR to run")

TEST_PER_CLASS = 10
BANK_PER_CLASS = 100
SEED = 0


def stratified(dataset, per_class: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    classes = np.asarray(dataset.image_classes)
    picked = []
    for name in sorted(set(classes)):
        members = np.flatnonzero(classes == name)
        picked.extend(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    return sorted(picked)


@pytest.fixture(scope="module")
def setting():
    from rsrt_utils.captioning.neighbour import NeighbourCaptioner, TrainBank
    from rsrt_utils.data import load_dataset
    from rsrt_utils.encoders import DEFAULT_TEXT_ENCODER, CachedEncoder, make_text_encoder

    test = load_dataset("rsicd", split="test", root=MIRROR).with_images()
    train = load_dataset("rsicd", split="train", root=MIRROR).with_images()
    test = test.subset(stratified(test, TEST_PER_CLASS, SEED), note="integration-test subset")
    train = train.subset(stratified(train, BANK_PER_CLASS, SEED), note="integration-test bank subset")
    encoder = CachedEncoder(make_text_encoder(DEFAULT_TEXT_ENCODER), progress=False)
    bank = TrainBank.from_dataset(train, image_model=BASELINE_SETTINGS["image_model"])
    captioner = NeighbourCaptioner(bank, text_encoder=encoder, **BASELINE_SETTINGS)
    return test, train, bank, captioner


def test_subset_is_real_rsicd(setting):
    test, train, bank, _ = setting
    assert 250 <= test.n_images <= 300 and len(test.captions) == 5 * test.n_images
    assert bank.n_images == train.n_images >= 2500
    assert not set(bank.image_ids) & {im.image_id for im in test.images}  # the bank never holds test images


def test_variants_are_train_captions_and_labelled(setting):
    from rsrt_utils.captioning.backend import CaptionRequest

    test, train, _, captioner = setting
    requests = [CaptionRequest(im.image_id, im.image_path) for im in test.images[:20]]
    answers = captioner.answer_batch(requests, "variants")
    train_captions = set(train.captions)
    assert all(len(a.variants) == 5 and all(v.one_sentence in train_captions for v in a.variants) for a in answers)
    assert captioner.label == "uses in-domain train captions; not zero-shot"


def test_neighbours_mostly_share_the_scene_class(setting):
    from rsrt_utils.captioning.neighbour import nearest_neighbours

    test, _, bank, captioner = setting
    features = captioner.image_extractor.extract([im.image_path for im in test.images])
    index, _ = nearest_neighbours(features, bank.features, 10)
    bank_classes = np.asarray([name.split("_")[0] for name in bank.image_ids])
    share = float((bank_classes[index] == np.asarray(test.image_classes)[:, None]).mean())
    assert share > 0.5, f"only {share:.0%} of top-10 neighbours share the scene class (about 70 % expected)"


def test_retrieval_is_far_above_chance(setting):
    from rsrt_utils.captioning.backend import CaptionRequest
    from rsrt_utils.scoring import ScoringSpec, evaluate, score_texts

    test, _, _, captioner = setting
    requests = [CaptionRequest(im.image_id, im.image_path, scene_class=im.scene_class) for im in test.images]
    answers = captioner.answer_batch(requests, "variants")  # one batch: the subset is smaller than captioner.batch_size
    spec = ScoringSpec(n_variants=BASELINE_SETTINGS["n_variants"], n_query_variants=QUERY_VARIANTS["baseline"], n_boot=200)
    t2i, i2t = score_texts([a.variants for a in answers], test.captions, captioner.text_encoder, spec)
    result = evaluate(t2i, i2t, test.caption_image_index, spec)
    chance_r10 = 100 * 10 / test.n_images
    assert result["t2i"]["R@10"] > 4 * chance_r10 and result["i2t"]["R@10"] > 4 * chance_r10, result
    assert result["mR"] >= 15.0, result  # sanity floor for this 300-image gallery / 3000-image bank


def test_default_features_and_class_vote_find_more_same_class_neighbours(setting):
    """The defaults' multilayer features and train-label class vote must beat plain Lite0 neighbours on class agreement."""
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS, TrainBank, class_restricted_neighbours
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    test, train, bank, captioner = setting
    assert bank.has_classes and len(bank.class_names) == len(set(train.image_classes))
    truth = np.asarray(test.image_classes)[:, None]
    plain_index, _ = class_restricted_neighbours(captioner.image_extractor.extract([im.image_path for im in test.images]),
                                                 bank, 10, vote_k=0)
    extractor = make_image_extractor(DEFAULT_SETTINGS["image_model"], progress=False)
    default_bank = TrainBank.from_dataset(train, extractor=extractor)
    features = extractor.extract([im.image_path for im in test.images])
    voted_index, _ = class_restricted_neighbours(features, default_bank, 10, vote_k=DEFAULT_SETTINGS["class_vote_k"])
    classes = np.asarray(bank.classes)
    plain, voted = float((classes[plain_index] == truth).mean()), float((classes[voted_index] == truth).mean())
    assert voted > plain + 0.05, (plain, voted)


def test_default_whitening_finds_more_same_class_neighbours_and_votes_better(setting):
    """PCA whitening fitted on the bank (the default) must beat raw multilayer features on this subset: top-10
    neighbours of the test image's scene class more often, and a more accurate class vote (seed 0 measured:
    0.645 -> 0.661 and 0.813 -> 0.850 at whiten_dim 512)."""
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS, TrainBank, class_vote, nearest_neighbours, whitened_bank
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    test, train, _, _ = setting
    extractor = make_image_extractor(DEFAULT_SETTINGS["image_model"], progress=False)
    bank = TrainBank.from_dataset(train, extractor=extractor)
    queries = extractor.extract([im.image_path for im in test.images])
    whitening, white = whitened_bank(bank, DEFAULT_SETTINGS["whiten_dim"])
    truth, classes = np.asarray(test.image_classes), np.asarray(bank.classes)

    def agreement(search_bank, features) -> tuple[float, float]:
        index, _ = nearest_neighbours(features, search_bank.features, 10)
        voted = np.asarray(search_bank.class_names)[class_vote(features, search_bank, DEFAULT_SETTINGS["class_vote_k"])]
        return float((classes[index] == truth[:, None]).mean()), float((voted == truth).mean())

    (raw_purity, raw_vote), (white_purity, white_vote) = agreement(bank, queries), agreement(white, whitening.apply(queries))
    assert white_purity > raw_purity and white_vote >= raw_vote + 0.02, (raw_purity, white_purity, raw_vote, white_vote)

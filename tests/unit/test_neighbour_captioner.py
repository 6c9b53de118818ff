"""NeighbourCaptioner on a tiny synthetic train bank where the right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsrt_utils.captioning.backend import CaptionBackend, CaptionRequest
from rsrt_utils.captioning.neighbour import (
    NEIGHBOUR_LABEL,
    NeighbourCaptioner,
    TrainBank,
    consensus_captions,
    consensus_scores,
    nearest_neighbours,
)
from rsrt_utils.captioning.schema import VariantSet
from rsrt_utils.encoders import make_text_encoder

DIM = 8
AIRPORT = ["many planes are parked at the airport near the runway", "planes parked beside the airport terminal",
           "an airport with planes and a long runway", "several planes stand at the airport", "the airport has two runways"]
RIVER = ["a river flows through green farmland", "a winding river crosses the farmland",
         "green fields lie on both sides of the river", "a river with trees along its banks", "a blue river and farmland"]
FOREST = ["dense green forest covers the area", "a large forest of dark green trees", "trees of a dense forest",
          "the forest is thick and green", "a forest with a few clearings"]


class FakeExtractor:
    """Stands in for ImageFeatureExtractor: features looked up by file name."""

    model_name = "fake-encoder"
    identity = "fake-encoder|test"

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table
        self.calls = 0

    def extract(self, paths):
        self.calls += 1
        rows = np.stack([self.table[Path(p).name] for p in paths]).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def extract_available(self, paths):
        return self.extract(paths), {}


def unit(*hot: tuple[int, float]) -> np.ndarray:
    vector = np.full(DIM, 0.01, dtype=np.float32)
    for index, value in hot:
        vector[index] = value
    return vector


@pytest.fixture
def bank() -> TrainBank:
    """Three scene clusters (airport -> axis 0, river -> axis 1, forest -> axis 2), four images each."""
    rng = np.random.default_rng(0)
    features, captions, ids = [], [], []
    for axis, pool in enumerate((AIRPORT, RIVER, FOREST)):
        for j in range(4):
            features.append(unit((axis, 1.0)) + rng.normal(0, 0.05, DIM).astype(np.float32))
            captions.append([pool[(j + i) % 5] for i in range(4)])
            ids.append(f"{pool[0].split()[1]}_{j}.jpg")
    return TrainBank(ids, np.stack(features), captions, name="synthetic-train")


@pytest.fixture
def encoder():
    return make_text_encoder("hashing:512")


def make_captioner(bank, encoder, table, **settings) -> NeighbourCaptioner:
    return NeighbourCaptioner(bank, text_encoder=encoder, image_extractor=FakeExtractor(table), **settings)


def requests_for(*names: str) -> list[CaptionRequest]:
    return [CaptionRequest(image_id=n, image_path=Path(f"/nowhere/{n}")) for n in names]


def test_variants_come_from_the_right_scene(bank, encoder):
    table = {"q_airport.jpg": unit((0, 1.0)), "q_river.jpg": unit((1, 1.0)), "q_forest.jpg": unit((2, 1.0))}
    captioner = make_captioner(bank, encoder, table, k=4, tau=None, n_variants=5, tta=False)
    answers = captioner.answer_batch(requests_for("q_airport.jpg", "q_river.jpg", "q_forest.jpg"), "variants")
    for answer, pool in zip(answers, (AIRPORT, RIVER, FOREST)):
        assert len(answer.variants) == 5
        assert {v.one_sentence for v in answer.variants} == set(pool)
        VariantSet(variants=answer.variants)  # distinct, complete: passes the corpus quality checks


def test_fields_hold_only_the_chosen_caption(bank, encoder):
    captioner = make_captioner(bank, encoder, {"q.jpg": unit((1, 1.0))}, k=4, n_variants=3, paragraph_size=0)
    variant = captioner.answer_batch(requests_for("q.jpg"))[0].variants[0]
    assert variant.one_sentence == variant.feature == variant.caption
    assert variant.one_sentence in RIVER


def test_default_class_vote_is_off_without_bank_labels_and_on_with_them(bank, encoder):
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS

    assert make_captioner(bank, encoder, {}).settings["class_vote_k"] == 0  # unlabelled bank: recorded as off
    labelled_bank = TrainBank(bank.image_ids, bank.features, bank.captions, classes=["c"] * bank.n_images)
    assert make_captioner(labelled_bank, encoder, {}).settings["class_vote_k"] == DEFAULT_SETTINGS["class_vote_k"] > 0


def test_consensus_prefers_the_central_caption():
    """Two near-copies and an outlier: the outlier must rank last."""
    texts = ["planes at the airport runway", "planes parked at the airport runway", "a red car on a street"]
    bank = TrainBank(["a.jpg"], np.ones((1, DIM), np.float32), [texts])
    vectors = bank.caption_vectors(make_text_encoder("hashing:512"))
    chosen = consensus_captions(np.ones((1, DIM), np.float32), bank, vectors, k=1, tau=None, n=3)[0]
    assert bank.caption_texts[chosen[-1]] == "a red car on a street"


def test_consensus_score_is_mean_similarity_to_the_others():
    vectors = np.eye(3, dtype=np.float32)
    vectors[2] = [0.6, 0.8, 0.0]
    cand = np.array([[0, 1, 2, -1]])
    weights = np.array([[1.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    scores = consensus_scores(vectors, cand, weights)[0]
    assert np.allclose(scores[:3], [(0 + 0.6) / 2, (0 + 0.8) / 2, (0.6 + 0.8) / 2])
    assert scores[3] == -np.inf


def test_similarity_weighting_lets_the_nearest_image_win(encoder):
    """Nearest neighbour shows planes; two farther ones show a river. Unweighted, the majority wins;
    with a small tau the nearest image's captions win."""
    features = np.stack([unit((0, 1.0)), unit((0, 0.5), (1, 1.0)), unit((0, 0.5), (1, 1.1))])
    bank = TrainBank(["near.jpg", "far1.jpg", "far2.jpg"], features, [AIRPORT[:3], RIVER[:3], RIVER[2:5]])
    table = {"q.jpg": unit((0, 1.0), (1, 0.2))}
    unweighted = make_captioner(bank, encoder, table, k=3, tau=None, n_variants=1).answer_batch(requests_for("q.jpg"))
    weighted = make_captioner(bank, encoder, table, k=3, tau=0.01, n_variants=1).answer_batch(requests_for("q.jpg"))
    assert unweighted[0].variants[0].one_sentence in RIVER
    assert weighted[0].variants[0].one_sentence in AIRPORT


def test_duplicate_captions_are_merged(encoder):
    captions = [["a dense forest", "a dense forest", "a dense forest"], ["a dense forest", "dark trees in a forest"]]
    bank = TrainBank(["f1.jpg", "f2.jpg"], np.stack([unit((2, 1.0)), unit((2, 0.9))]), captions)
    answer = make_captioner(bank, encoder, {"q.jpg": unit((2, 1.0))}, k=2, n_variants=5).answer_batch(requests_for("q.jpg"))[0]
    assert [v.one_sentence for v in answer.variants] == ["a dense forest", "dark trees in a forest"]


def test_image_query_mode_returns_the_best_consensus_caption(bank, encoder):
    table = {"q.jpg": unit((2, 1.0))}
    captioner = make_captioner(bank, encoder, table, k=4, n_variants=5)
    variants = captioner.answer_batch(requests_for("q.jpg"), "variants")[0].variants
    query = captioner.answer_batch(requests_for("q.jpg"), "image_query")[0]
    assert query.variants is None
    assert query.query_text == variants[0].one_sentence


def test_query_variant_count_is_not_a_captioner_setting(bank, encoder):
    """How many variants an image->text query pools over belongs to the study (retrieval.n_query_variants): changing
    it must not change the captioner's settings, hence its cache keys."""
    with pytest.raises(TypeError):
        make_captioner(bank, encoder, {}, n_query_captions=2)
    assert "n_query_captions" not in make_captioner(bank, encoder, {}).settings


def test_backend_contract_and_settings(bank, encoder):
    captioner = make_captioner(bank, encoder, {}, k=7, tau=0.05, n_variants=10, tta=True)
    assert isinstance(captioner, CaptionBackend)
    assert captioner.name == "neighbour" and captioner.label == NEIGHBOUR_LABEL == "uses in-domain train captions; not zero-shot"
    for key, value in {"k": 7, "tau": 0.05, "n_variants": 10, "tta": True}.items():
        assert captioner.settings[key] == value
    assert captioner.settings["text_encoder"] == "hashing:512" and captioner.settings["bank"] == bank.identity
    other = make_captioner(bank, encoder, {}, k=8, tau=0.05, n_variants=10, tta=True)
    assert other.settings != captioner.settings


def test_batch_is_one_feature_call(bank, encoder):
    table = {f"q{i}.jpg": unit((i % 3, 1.0)) for i in range(9)}
    captioner = make_captioner(bank, encoder, table, k=4)
    answers = captioner.answer_batch(requests_for(*table), "variants")
    assert len(answers) == 9 and captioner.image_extractor.calls == 1
    pools = (AIRPORT, RIVER, FOREST)
    assert all(a.variants[0].one_sentence in pools[i % 3] for i, a in enumerate(answers))


def test_nearest_neighbours_are_sorted():
    bank_features = np.eye(4, dtype=np.float32)
    index, sims = nearest_neighbours(np.array([[0.1, 0.9, 0.5, 0.0]], np.float32), bank_features, k=3)
    assert index.tolist() == [[1, 2, 0]] and np.all(np.diff(sims[0]) <= 0)


def test_bad_settings_name_the_value(bank, encoder):
    with pytest.raises(ValueError, match="tau must be > 0"):
        make_captioner(bank, encoder, {}, tau=0.0)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        make_captioner(bank, encoder, {}, k=0)
    with pytest.raises(ValueError, match="mode 'caption' is not known"):
        make_captioner(bank, encoder, {"q.jpg": unit((0, 1.0))}).answer_batch(requests_for("q.jpg"), "caption")
    answers = make_captioner(bank, encoder, {"q.jpg": unit((0, 1.0))}).answer_batch(
        [CaptionRequest("x", None), *requests_for("q.jpg")])
    assert "'x' has no pixel file" in answers[0].error and answers[1].error is None and answers[1].variants


def test_bank_must_come_from_train():
    class TestSplit:
        split = "test"
        name = "rsicd"
        images = []

    with pytest.raises(ValueError, match="TRAIN split, got split 'test'"):
        TrainBank.from_dataset(TestSplit())


def test_bank_rejects_images_without_captions():
    with pytest.raises(ValueError, match="have no caption"):
        TrainBank(["a.jpg"], np.ones((1, DIM), np.float32), [[" "]])


def test_nearest_bonus_lifts_the_nearest_images_captions(encoder):
    """Unweighted, the river majority wins; a bonus on the nearest neighbour's own captions puts them first."""
    features = np.stack([unit((0, 1.0)), unit((0, 0.5), (1, 1.0)), unit((0, 0.5), (1, 1.1))])
    bank = TrainBank(["near.jpg", "far1.jpg", "far2.jpg"], features, [AIRPORT[:3], RIVER[:3], RIVER[2:5]])
    table = {"q.jpg": unit((0, 1.0), (1, 0.2))}
    plain = make_captioner(bank, encoder, table, k=3, tau=None, n_variants=5, nearest_bonus=0.0)
    bonus = make_captioner(bank, encoder, table, k=3, tau=None, n_variants=5, nearest_bonus=10.0)
    assert plain.answer_batch(requests_for("q.jpg"))[0].variants[0].one_sentence in RIVER
    variants = [v.one_sentence for v in bonus.answer_batch(requests_for("q.jpg"))[0].variants]
    assert len(variants) == 5 and set(variants[:3]) == set(AIRPORT[:3]) and set(variants[3:]) <= set(RIVER)
    assert bonus.settings["nearest_bonus"] == 10.0 and bonus.settings != plain.settings
    with pytest.raises(ValueError, match="nearest_bonus must be >= 0"):
        make_captioner(bank, encoder, table, nearest_bonus=-0.1)


def test_bank_and_query_image_encoder_must_match(bank, encoder):
    other = TrainBank(bank.image_ids, bank.features, bank.captions, feature_identity="efficientnet-lite2|w|x")
    with pytest.raises(ValueError, match="efficientnet-lite2.*fake-encoder"):
        make_captioner(other, encoder, {})


def labelled(bank: TrainBank, classes: list[str]) -> TrainBank:
    return TrainBank(bank.image_ids, bank.features, bank.captions, name=bank.name, classes=classes)


def test_class_vote_restricts_neighbours_to_the_voted_class(encoder):
    """Image 0 is the single nearest one but mislabelled; the weighted vote of the 4 nearest says 'a', so the
    restricted neighbours are the class-a images, and the k places are filled from other classes when 'a' runs out."""
    features = np.stack([unit((0, 1.0), (1, 0.02)), unit((0, 1.0), (1, 0.3)), unit((0, 1.0), (1, 0.35)),
                         unit((0, 1.0), (1, 0.4)), unit((1, 1.0))])
    captions = [[AIRPORT[0]], [AIRPORT[1]], [AIRPORT[2]], [AIRPORT[3]], [RIVER[0]]]
    bank = TrainBank([f"i{j}.jpg" for j in range(5)], features, captions, classes=["b", "a", "a", "a", "b"])
    from rsrt_utils.captioning.neighbour import class_restricted_neighbours, class_vote

    query = unit((0, 1.0))[None, :]
    predicted = class_vote(query, bank, vote_k=4, tau=1.0)  # a flat vote: three 'a' against one 'b'
    assert bank.class_names[predicted[0]] == "a"
    index, sims = class_restricted_neighbours(query, bank, k=4, vote_k=4)
    assert sorted(index[0, :3].tolist()) == [1, 2, 3] and index[0, 3] == 0  # class first, then the best other
    assert np.allclose(sims, query @ bank.features[index[0]].T / np.linalg.norm(query))  # true similarities kept
    plain, _ = class_restricted_neighbours(query, bank, k=4, vote_k=0)
    assert plain[0, 0] == 0


def test_an_asked_for_class_vote_needs_bank_labels(bank, encoder):
    with pytest.raises(ValueError, match="class_vote_k=10 needs scene labels"):
        make_captioner(bank, encoder, {}, class_vote_k=10)
    with pytest.raises(ValueError, match="one non-empty label per image"):
        labelled(bank, ["x"] * (bank.n_images - 1) + [""])
    with pytest.raises(ValueError, match="class_vote_k must be >= 0"):
        make_captioner(labelled(bank, ["x"] * bank.n_images), encoder, {}, class_vote_k=-1)


def test_the_query_images_own_label_is_never_used(bank, encoder):
    """Only the bank's train labels vote: a wrong scene_class on the request must not change the answer."""
    classes = [name.split("_")[0] for name in bank.image_ids]
    table = {"q.jpg": unit((0, 1.0), (1, 0.6))}
    captioner = make_captioner(labelled(bank, classes), encoder, table, k=4, class_vote_k=4)
    right = captioner.answer_batch([CaptionRequest("q.jpg", Path("/nowhere/q.jpg"), scene_class="airport")])
    wrong = captioner.answer_batch([CaptionRequest("q.jpg", Path("/nowhere/q.jpg"), scene_class="river")])
    assert right[0].variants == wrong[0].variants
    assert {v.one_sentence for v in right[0].variants} <= set(AIRPORT)
    assert captioner.settings["class_vote_k"] == 4 and "classes" in captioner.settings["bank"]


def test_paragraph_variants_join_the_other_top_captions():
    from rsrt_utils.captioning.neighbour import paragraph_variants

    captions = ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]
    variants = paragraph_variants(captions, n_variants=5, paragraph_size=4)
    assert [v.one_sentence for v in variants] == captions[:5] and all(v.feature == v.one_sentence for v in variants)
    assert variants[0].caption == "c0 c1 c2 c3" and variants[2].caption == "c2 c0 c1 c3"
    assert variants[4].caption == "c4 c0 c1 c2 c3"  # outside the top 4: itself, then all four
    assert [v.caption for v in paragraph_variants(captions, 3, 0)] == ["c0", "c1", "c2"]
    VariantSet(variants=variants)


def test_paragraph_captioner_answers_pass_the_corpus_checks(bank, encoder):
    table = {"q.jpg": unit((2, 1.0))}
    answer = make_captioner(bank, encoder, table, k=4, n_variants=5, paragraph_size=8).answer_batch(requests_for("q.jpg"))[0]
    VariantSet(variants=answer.variants)
    assert all(v.caption.startswith(v.one_sentence) and len(v.caption) > len(v.one_sentence) for v in answer.variants)
    assert all(s in FOREST for v in answer.variants for s in [v.one_sentence])


def test_too_few_distinct_captions_widen_the_neighbourhood(encoder):
    """The two nearest images repeat one sentence: with k = 2 the captioner must look further to find five variants."""
    features = np.stack([unit((0, 1.0)), unit((0, 1.0), (1, 0.1))] + [unit((0, 1.0), (1, 0.3 + 0.1 * j)) for j in range(3)])
    captions = [[AIRPORT[0]] * 5, [AIRPORT[0]] * 5] + [[AIRPORT[1 + j], RIVER[j]] for j in range(3)]
    bank = TrainBank([f"i{j}.jpg" for j in range(5)], features, captions)
    vectors = bank.caption_vectors(encoder)
    chosen = consensus_captions(unit((0, 1.0))[None, :], bank, vectors, k=2, tau=None, n=5)[0]
    assert len({bank.caption_texts[c] for c in chosen}) == 5
    assert bank.caption_texts[chosen[0]] == AIRPORT[0]  # the widened vote still puts the nearest images' sentence first
    answer = make_captioner(bank, encoder, {"q.jpg": unit((0, 1.0))}, k=2).answer_batch(requests_for("q.jpg"))[0]
    VariantSet(variants=answer.variants)


def test_paragraphs_do_not_widen_the_neighbourhood(encoder):
    """Widening is only for the five variants: a paragraph may hold fewer than paragraph_size captions."""
    features = np.stack([unit((0, 1.0), (1, 0.05 * j)) for j in range(4)])
    captions = [[AIRPORT[j], RIVER[j]] for j in range(3)] + [[FOREST[0], FOREST[1]]]
    bank = TrainBank([f"i{j}.jpg" for j in range(4)], features, captions)
    answer = make_captioner(bank, encoder, {"q.jpg": unit((0, 1.0))}, k=3, paragraph_size=8).answer_batch(requests_for("q.jpg"))[0]
    used = {s for v in answer.variants for s in [v.one_sentence, *[c for c in AIRPORT + RIVER + FOREST if c in v.caption]]}
    assert used <= set(AIRPORT[:3] + RIVER[:3])  # six distinct captions among k = 3 neighbours: no widening to image 3
    VariantSet(variants=answer.variants)


def test_full_whitening_decorrelates_the_bank():
    """power 1: the projected, centred bank features have orthonormal columns (identity covariance up to n)."""
    from rsrt_utils.captioning.neighbour import FeatureWhitening

    rng = np.random.default_rng(1)
    features = rng.normal(size=(200, 12)) * np.linspace(10, 0.5, 12)  # very unequal variances
    whitening = FeatureWhitening.fit(features, dim=6, power=1.0)
    projected = (features - whitening.mean) @ whitening.projection
    np.testing.assert_allclose(projected.T @ projected, np.eye(6), atol=1e-3)
    assert np.allclose(np.linalg.norm(whitening.apply(features), axis=1), 1.0, atol=1e-5)


def scene_bank_with_a_loud_nuisance(n_per_class: int = 60, seed: int = 2) -> tuple[TrainBank, np.ndarray, np.ndarray]:
    """(bank, query features, query classes): the class is a small signal on axis 2; axes 0 and 1 carry loud noise
    that no class shares, so raw cosine neighbours mostly ignore the class and whitened ones find it."""
    rng = np.random.default_rng(seed)

    def draw(n: int, sign: float) -> np.ndarray:
        rows = rng.normal(0, 0.01, (n, DIM))
        rows[:, :2] = rng.normal(0, 30.0, (n, 2))
        rows[:, 2] = sign * 0.3
        rows[:, 3] = 50.0
        return rows.astype(np.float32)

    features = np.concatenate([draw(n_per_class, +1), draw(n_per_class, -1)])
    classes = ["airport"] * n_per_class + ["river"] * n_per_class
    captions = [[AIRPORT[i % 5]] if c == "airport" else [RIVER[i % 5]] for i, c in enumerate(classes)]
    bank = TrainBank([f"img_{i}.jpg" for i in range(len(classes))], features, captions, classes=classes)
    queries = np.concatenate([draw(20, +1), draw(20, -1)])
    return bank, l2_rows(queries), np.asarray(["airport"] * 20 + ["river"] * 20)


def l2_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_whitening_finds_neighbours_a_loud_nuisance_direction_hides():
    from rsrt_utils.captioning.neighbour import WHITENING_POWER, whitened_bank

    bank, queries, truth = scene_bank_with_a_loud_nuisance()
    labels = np.asarray(bank.classes)

    def purity(search_bank: TrainBank, q: np.ndarray) -> float:
        index, _ = nearest_neighbours(q, search_bank.features, 5)
        return float((labels[index] == truth[:, None]).mean())

    full, full_bank = whitened_bank(bank, 4, power=1.0)
    shrunk, shrunk_bank = whitened_bank(bank, 4, power=WHITENING_POWER)
    assert full_bank.classes == bank.classes and full_bank.caption_texts == bank.caption_texts
    assert "pca-whiten4-power1.0" in full_bank.feature_identity
    raw_purity = purity(bank, queries)
    shrunk_purity, full_purity = purity(shrunk_bank, shrunk.apply(queries)), purity(full_bank, full.apply(queries))
    assert full_purity > 0.95 > 0.7 > raw_purity  # full whitening recovers the class (dim 4 keeps its axis)
    assert shrunk_purity > raw_purity + 0.05  # the default shrunk whitening helps part of the way


def test_default_whitening_is_off_for_a_small_bank_and_an_asked_for_one_must_fit(bank, encoder):
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS

    assert DEFAULT_SETTINGS["whiten_dim"] > bank.n_images
    captioner = make_captioner(bank, encoder, {})
    assert captioner.settings["whiten_dim"] == 0 and captioner.settings["whitening_power"] is None  # recorded as off
    with pytest.raises(ValueError, match=r"whiten_dim must be between 1 and 8 .* got 64.*0 \(no whitening\)"):
        make_captioner(bank, encoder, {}, whiten_dim=64)
    with pytest.raises(ValueError, match="whiten_dim must be >= 0"):
        make_captioner(bank, encoder, {}, whiten_dim=-1)


def test_default_whitening_is_on_for_a_large_bank(encoder):
    from rsrt_utils.captioning.neighbour import DEFAULT_SETTINGS

    dim = DEFAULT_SETTINGS["whiten_dim"]
    rng = np.random.default_rng(3)
    n = 2 * dim
    bank = TrainBank([f"i{i}.jpg" for i in range(n)], rng.normal(size=(n, dim + 8)).astype(np.float32),
                     [[AIRPORT[i % 5]] for i in range(n)])
    captioner = NeighbourCaptioner(bank, text_encoder=encoder, image_extractor=FakeExtractor({}))
    assert captioner.settings["whiten_dim"] == dim


def test_whitened_captioner_searches_the_whitened_bank(encoder):
    """The captioner's answers equal consensus over the whitened bank's neighbours, and differ from the raw ones."""
    from rsrt_utils.captioning.neighbour import whitened_bank

    bank, queries, _ = scene_bank_with_a_loud_nuisance()
    table = {f"q{i}.jpg": q for i, q in enumerate(queries)}
    settings = dict(k=5, tau=0.05, n_variants=1, class_vote_k=0, paragraph_size=0, nearest_bonus=0.0)
    answers = make_captioner(bank, encoder, table, whiten_dim=4, **settings).answer_batch(requests_for(*table))
    raw = make_captioner(bank, encoder, table, whiten_dim=0, **settings).answer_batch(requests_for(*table))
    whitening, white = whitened_bank(bank, 4)
    expected = consensus_captions(whitening.apply(queries), white, white.caption_vectors(encoder), 5, 0.05, 1)
    assert [a.variants[0].one_sentence for a in answers] == [white.caption_texts[row[0]] for row in expected]
    assert [a.variants[0].one_sentence for a in answers] != [a.variants[0].one_sentence for a in raw]


def test_a_bank_built_without_tta_is_refused_for_tta_queries(bank, encoder, tmp_path):
    from rsrt_utils.image_encoders.efficientnet import make_image_extractor

    plain = make_image_extractor("efficientnet-lite0", tta=False, cache_root=tmp_path).identity
    no_tta_bank = TrainBank(bank.image_ids, bank.features, bank.captions, feature_identity=plain)
    NeighbourCaptioner(no_tta_bank, text_encoder=encoder, image_model="efficientnet-lite0", tta=False, cache_root=tmp_path)
    with pytest.raises(ValueError, match="no-tta.*tta-flip-rot180.*image_model, tta"):
        NeighbourCaptioner(no_tta_bank, text_encoder=encoder, image_model="efficientnet-lite0", tta=True, cache_root=tmp_path)

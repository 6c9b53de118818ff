"""The neighbour captioner (caption transfer): an offline, image-grounded, training-free captioner.

For a gallery image: embed it with a frozen image encoder (default: EfficientNet-Lite0 "multilayer",
the L2-normalised pooled outputs of its last three stages and its head, see image_features), find
its k nearest images in a TRAIN bank, and pick captions from the neighbours' human captions by
*consensus*: a candidate caption's score is its mean text similarity (frozen text encoder, default
all-MiniLM-L6-v2) to the other candidates, each vote weighted by its neighbour's image similarity
w_j = exp((s_j - s_max) / tau) (tau = None: unweighted), plus `nearest_bonus` for the nearest
neighbour's own captions. Identical caption strings are merged (their votes still count), so the
chosen captions are distinct, best first.
Class vote (class_vote_k > 0): the neighbours are restricted to the scene class that wins a
similarity-weighted vote (exp((s_j - s_max) / 0.05)) among the class_vote_k nearest bank images;
the labels are the TRAIN images' scene classes (the query image's own label is never read).
Whitening (whiten_dim > 0): before any neighbour search, bank and query features are PCA-whitened
with a projection fitted on the bank's features alone (top whiten_dim components, shrunk by
singular value ** 0.5, then L2-normalised; FeatureWhitening). It evens out the few dominant
directions of ImageNet features.
It uses in-domain train captions (and, with the class vote, train scene labels), so it is NOT
zero-shot: its label says so wherever it appears.

Variant fields. Variant i holds consensus caption i as `one_sentence` and `feature`; its `caption`
(the detailed paragraph) is caption i followed by the other captions among the image's top
`paragraph_size` consensus captions (paragraph_size 0: caption i alone). Retrieval embeds the
`caption` field. A paragraph describes the image with several of its neighbours' sentences, and two
gallery images rarely share a whole paragraph, so far fewer exact score ties than with single
captions (which many gallery images share). Nothing but train captions enters a variant.

Directions. `n_variants` variants form the gallery (text->image, max-pooled); how many of them an
image->text query pools over is the study's `retrieval.n_query_variants` (one owner, not a captioner
setting). Mode "image_query" returns the single best consensus caption as the image's query text.

The defaults were chosen on validation splits held out from TRAIN, never on test: the procedure,
what was tried and the figures are in docs/neighbour_captioner.md and benchmarks/results/neighbour_tuning*.json.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..image_files import ImageReadError
from ..vectors import l2_normalise
from .backend import MODES, BackendAnswer, CaptionRequest, Mode
from .schema import Variant

if TYPE_CHECKING:
    from ..data.dataset import Dataset

NEIGHBOUR_LABEL = "uses in-domain train captions; not zero-shot"
NEIGHBOUR_PROMPT_VERSION = "neighbour-consensus-v2.2"  # v2: class vote, paragraphs; .1: widen only for the variants; .2: whitening

# Chosen on the train validation split (see docs/neighbour_captioner.md and benchmarks/results/neighbour_tuning*.json).
DEFAULT_SETTINGS = {"k": 10, "tau": 0.08, "n_variants": 5, "tta": False, "nearest_bonus": 0.1,
                    "image_model": "efficientnet-lite0-multilayer", "class_vote_k": 20, "paragraph_size": 12, "whiten_dim": 512}
CLASS_VOTE_TAU = 0.05  # temperature of the similarity-weighted class vote (fixed, not tuned)
WHITENING_POWER = 0.5  # shrinkage of the PCA whitening: 0 = projection only, 1 = full whitening (fixed, not tuned)
MIN_IMAGES_PER_WHITENED_DIM = 2  # the default whitening is on only for banks with at least 2 * whiten_dim images
_PAIRWISE_BUDGET = 40_000_000  # floats per consensus block (batch x candidates x candidates)


@dataclass
class TrainBank:
    """Train images (L2-normalised features) and their human captions, with caption embeddings on demand."""

    image_ids: list[str]
    features: np.ndarray
    captions: list[list[str]]
    name: str = "bank"
    feature_identity: str = ""
    classes: list[str] | None = None  # train scene labels (optional): used by the class vote

    def __post_init__(self) -> None:
        self.features = l2_normalise(self.features)
        if self.features.shape[0] != len(self.image_ids) or len(self.captions) != len(self.image_ids):
            raise ValueError(f"TrainBank needs one feature row and one caption list per image: {len(self.image_ids)} ids, "
                             f"{self.features.shape[0]} feature rows, {len(self.captions)} caption lists")
        empty = [self.image_ids[i] for i, caps in enumerate(self.captions) if not any(c.strip() for c in caps)]
        if empty:
            raise ValueError(f"{len(empty)} bank image(s) have no caption (first: {empty[0]}); drop them before building the bank")
        if self.classes is not None:
            self.classes = [str(c) if c else "" for c in self.classes]
            if len(self.classes) != len(self.image_ids) or not all(self.classes):
                raise ValueError(f"TrainBank classes need one non-empty label per image ({len(self.image_ids)} images, "
                                 f"{len(self.classes)} labels, {sum(not c for c in self.classes)} empty); pass classes=None")
        flat = [(i, c) for i, caps in enumerate(self.captions) for c in caps if c.strip()]
        self.caption_owner = np.asarray([i for i, _ in flat], dtype=np.int64)
        self.caption_texts = [c for _, c in flat]
        uniques, self.caption_text_id = np.unique(np.asarray(self.caption_texts, dtype=object), return_inverse=True)
        self.unique_texts = list(uniques)
        counts = np.bincount(self.caption_owner, minlength=len(self.image_ids))
        self.caption_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.caption_count = counts
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def identity(self) -> str:
        """Short fingerprint of the bank's images and captions (part of the captioner's cache key)."""
        digest = hashlib.sha256("\x00".join(self.image_ids + self.caption_texts + (self.classes or [])).encode()).hexdigest()[:16]
        labels = f":{len(set(self.classes))}classes" if self.classes else ""
        return f"{self.name}:{self.n_images}img:{len(self.caption_texts)}cap{labels}:{digest}"

    @property
    def has_classes(self) -> bool:
        return self.classes is not None

    @cached_property
    def class_names(self) -> list[str]:
        return sorted(set(self.classes or []))

    @cached_property
    def class_codes(self) -> np.ndarray:
        """Per bank image, the index of its class in class_names."""
        lookup = {name: i for i, name in enumerate(self.class_names)}
        return np.asarray([lookup[c] for c in self.classes or []], dtype=np.int64)

    @classmethod
    def from_dataset(cls, dataset, extractor=None, cache_root: Path | None = None, tta: bool = False,
                     image_model: str | None = None) -> "TrainBank":
        """Bank from a dataset split with pixels (e.g. `load_dataset("rsicd", "train").with_images()`).

        Without an extractor, features come from `image_model` (default: DEFAULT_SETTINGS["image_model"]).
        """
        if getattr(dataset, "split", "train") != "train":
            raise ValueError(f"the neighbour bank must come from the TRAIN split, got split {dataset.split!r}; "
                             "use load_dataset(name, split='train').with_images()")
        images = [im for im in dataset.images if im.image_path is not None]
        if len(images) != len(dataset.images):
            raise ValueError(f"{len(dataset.images) - len(images)} bank images have no pixels; call dataset.with_images() first")
        if extractor is None:
            from ..image_encoders.efficientnet import make_image_extractor
            extractor = make_image_extractor(image_model or DEFAULT_SETTINGS["image_model"], tta=tta, cache_root=cache_root)
        features = extractor.extract([im.image_path for im in images])
        from ..data.dataset import UNLABELLED

        classes = dataset.image_classes  # used only when every bank image has a real scene label
        return cls([im.image_id for im in images], features, dataset.captions_by_image(),
                   name=f"{dataset.name}-{dataset.split}", feature_identity=extractor.identity,
                   classes=classes if all(c and c != UNLABELLED for c in classes) else None)

    def subset(self, indices: Sequence[int], name: str | None = None) -> "TrainBank":
        """A bank of some of these images (e.g. the 90 % left after holding out validation images)."""
        indices = np.asarray(indices, dtype=np.int64)
        return TrainBank([self.image_ids[i] for i in indices], self.features[indices], [self.captions[i] for i in indices],
                         name or f"{self.name}-subset", self.feature_identity,
                         None if self.classes is None else [self.classes[i] for i in indices])

    def with_features(self, features: np.ndarray, feature_identity: str) -> "TrainBank":
        """The same images, captions and labels with other features (e.g. whitened); caption embeddings are shared."""
        bank = TrainBank(self.image_ids, features, self.captions, self.name, feature_identity, self.classes)
        bank._vectors = self._vectors
        return bank

    def caption_vectors(self, text_encoder) -> np.ndarray:
        """(n_captions, dim) L2-normalised embeddings of every bank caption (unique texts embedded once)."""
        key = getattr(text_encoder, "name", repr(text_encoder))
        if key not in self._vectors:
            unique_vectors = l2_normalise(text_encoder.encode(self.unique_texts))
            self._vectors[key] = unique_vectors[self.caption_text_id]
        return self._vectors[key]


@dataclass(frozen=True)
class FeatureWhitening:
    """PCA whitening of image features, fitted on the bank's features alone (unsupervised; no labels, no query
    images): x -> l2((x - mean) @ V[:, :dim] / s[:dim] ** power). Shrunk whitening (power 0.5) evens out the few
    dominant directions of ImageNet features; neighbours share the scene class more often."""

    mean: np.ndarray
    projection: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, dim: int, power: float = WHITENING_POWER) -> "FeatureWhitening":
        features = np.asarray(features, dtype=np.float64)
        check_whiten_dim(features, dim)
        mean = features.mean(axis=0)
        _, singular, vt = np.linalg.svd(features - mean, full_matrices=False)
        if singular[dim - 1] <= 1e-6 * singular[0]:
            raise ValueError(f"the bank's features span fewer than whiten_dim={dim} dimensions; pass a smaller whiten_dim "
                             "or 0 (no whitening)")
        return cls(mean.astype(np.float32), (vt[:dim].T / singular[:dim] ** power).astype(np.float32))

    def apply(self, features: np.ndarray) -> np.ndarray:
        return l2_normalise((np.asarray(features, dtype=np.float32) - self.mean) @ self.projection)


def check_whiten_dim(features: np.ndarray, dim: int) -> None:
    """A whitening dimension must fit the bank: 1 .. min(images - 1, feature size)."""
    limit = min(features.shape[0] - 1, features.shape[1])
    if not 1 <= dim <= limit:
        raise ValueError(f"whiten_dim must be between 1 and {limit} for a bank of {features.shape[0]} images with "
                         f"{features.shape[1]}-d features, got {dim}; pass a smaller whiten_dim or 0 (no whitening)")


def whitened_bank(bank: "TrainBank", dim: int, power: float = WHITENING_POWER) -> tuple[FeatureWhitening | None, "TrainBank"]:
    """(whitening fitted on the bank, the bank with whitened features); (None, bank) for dim 0."""
    if not dim:
        return None, bank
    whitening = FeatureWhitening.fit(bank.features, dim, power)
    identity = f"{bank.feature_identity}|pca-whiten{dim}-power{power}"
    return whitening, bank.with_features(whitening.apply(bank.features), identity)


def default_whiten_dim(bank: "TrainBank") -> int:
    """DEFAULT_SETTINGS' whiten_dim when the bank is large enough to fit it (>= 2 images per dimension), else 0."""
    dim = DEFAULT_SETTINGS["whiten_dim"]
    return dim if bank.n_images >= MIN_IMAGES_PER_WHITENED_DIM * dim and bank.features.shape[1] >= dim else 0


def nearest_neighbours(query_features: np.ndarray, bank_features: np.ndarray, k: int,
                       allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the k most cosine-similar bank images per query, best first.

    allowed: optional (n_queries, n_bank) mask; disallowed bank images come only after every allowed one
    (they fill the k places when fewer than k are allowed) and keep their true similarity.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, bank_features.shape[0])
    sims = l2_normalise(query_features) @ bank_features.T
    ranking = sims if allowed is None else np.where(allowed, sims, sims - 10.0)  # cosines lie in [-1, 1]
    part = np.argpartition(-ranking, k - 1, axis=1)[:, :k]
    part_rank = np.take_along_axis(ranking, part, axis=1)
    order = np.argsort(-part_rank, axis=1, kind="stable")
    index = np.take_along_axis(part, order, axis=1)
    return index, np.take_along_axis(sims, index, axis=1)


def class_vote(query_features: np.ndarray, bank: "TrainBank", vote_k: int, tau: float = CLASS_VOTE_TAU) -> np.ndarray:
    """Each query's predicted scene class (an index into bank.class_names): the class with the largest
    similarity-weighted vote, exp((s_j - s_max) / tau), among its vote_k nearest bank images."""
    if not bank.has_classes:
        raise ValueError("the class vote needs scene labels for the bank images (TrainBank(classes=...)); this bank has none: "
                         "build it from a dataset with scene classes, or set class_vote_k=0")
    index, sims = nearest_neighbours(query_features, bank.features, vote_k)
    weights = neighbour_weights(sims, tau)
    votes = np.zeros((len(index), len(bank.class_names)), dtype=np.float64)
    np.add.at(votes, (np.repeat(np.arange(len(index)), index.shape[1]), bank.class_codes[index].ravel()), weights.ravel())
    return votes.argmax(axis=1)


def class_restricted_neighbours(query_features: np.ndarray, bank: "TrainBank", k: int,
                                vote_k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest bank images, restricted to each query's voted scene class (vote_k = 0: unrestricted)."""
    if not vote_k:
        return nearest_neighbours(query_features, bank.features, k)
    predicted = class_vote(query_features, bank, vote_k)
    return nearest_neighbours(query_features, bank.features, k, allowed=bank.class_codes[None, :] == predicted[:, None])


def neighbour_weights(similarities: np.ndarray, tau: float | None) -> np.ndarray:
    """exp((s_j - s_max) / tau) per neighbour (ones when tau is None)."""
    if tau is None:
        return np.ones_like(similarities, dtype=np.float32)
    if tau <= 0:
        raise ValueError(f"tau must be > 0 (or None for unweighted consensus), got {tau}")
    return np.exp((similarities - similarities[:, :1]) / tau).astype(np.float32)


def candidate_captions(bank: TrainBank, neighbour_index: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Padded (batch, L) caption indices of the neighbours' captions (-1 = padding) and their weights."""
    counts = bank.caption_count[neighbour_index]
    width = int(counts.sum(axis=1).max())
    cand = np.full((len(neighbour_index), width), -1, dtype=np.int64)
    cand_w = np.zeros((len(neighbour_index), width), dtype=np.float32)
    for row, (images, w) in enumerate(zip(neighbour_index, weights)):
        idx = np.concatenate([np.arange(bank.caption_start[i], bank.caption_start[i] + bank.caption_count[i]) for i in images])
        cand[row, :len(idx)] = idx
        cand_w[row, :len(idx)] = np.repeat(w, bank.caption_count[images])
    return cand, cand_w


def consensus_scores(vectors: np.ndarray, cand: np.ndarray, cand_w: np.ndarray) -> np.ndarray:
    """Weighted mean similarity of each candidate to the OTHER candidates; -inf on padding."""
    emb = vectors[np.maximum(cand, 0)] * (cand >= 0)[..., None]
    sims = np.matmul(emb, emb.transpose(0, 2, 1))
    votes = (sims * cand_w[:, None, :]).sum(axis=2) - cand_w  # drop the self-vote (self-similarity 1)
    total = cand_w.sum(axis=1, keepdims=True) - cand_w
    score = votes / np.maximum(total, 1e-12)
    return np.where(cand >= 0, score, -np.inf)


def rank_distinct(bank: TrainBank, cand: np.ndarray, scores: np.ndarray, n: int) -> list[list[int]]:
    """Per row, the caption indices of the n best-scoring DISTINCT caption texts, best first."""
    order = np.argsort(-scores, axis=1, kind="stable")
    chosen: list[list[int]] = []
    for row, ranking in enumerate(order):
        picked, seen = [], set()
        for j in ranking:
            c = cand[row, j]
            if c < 0 or not np.isfinite(scores[row, j]):
                break
            text_id = bank.caption_text_id[c]
            if text_id not in seen:
                seen.add(text_id)
                picked.append(int(c))
                if len(picked) == n:
                    break
        chosen.append(picked)
    return chosen


def nearest_own_mask(bank: TrainBank, cand: np.ndarray, neighbour_index: np.ndarray) -> np.ndarray:
    """(batch, L) True where the candidate is a caption of the row's NEAREST neighbour (first column)."""
    owner = bank.caption_owner[np.maximum(cand, 0)]
    return (owner == neighbour_index[:, :1]) & (cand >= 0)


def consensus_captions(query_features: np.ndarray, bank: TrainBank, caption_vectors: np.ndarray, k: int,
                       tau: float | None, n: int,
                       nearest_bonus: float = 0.0, class_vote_k: int = 0, min_distinct: int | None = None) -> list[list[int]]:
    """For each query image, the bank caption indices of its (up to) n consensus captions, best first (vectorised in blocks).

    nearest_bonus > 0 adds that amount to the consensus score of the nearest neighbour's own captions
    (consensus scores are mean cosines, so 0.1 lifts them over moderately better consensus captions;
    a large bonus puts them first): variants become less shared between gallery images.
    class_vote_k > 0 restricts the neighbours to the scene class voted by the class_vote_k nearest bank
    images (train labels; see class_vote).
    An image whose k neighbours hold fewer than min_distinct (default n) distinct captions (e.g. ten train
    images that all repeat one sentence) is redone with 2k neighbours, and so on.
    """
    if nearest_bonus < 0:
        raise ValueError(f"nearest_bonus must be >= 0, got {nearest_bonus}")
    if class_vote_k < 0:
        raise ValueError(f"class_vote_k must be >= 0 (0 = no class vote), got {class_vote_k}")
    neighbour_index, neighbour_sims = class_restricted_neighbours(query_features, bank, k, class_vote_k)
    weights = neighbour_weights(neighbour_sims, tau)
    per_query = int(bank.caption_count[neighbour_index].sum(axis=1).max()) if len(neighbour_index) else 1
    block = max(1, _PAIRWISE_BUDGET // max(per_query * per_query, 1))
    chosen: list[list[int]] = []
    for start in range(0, len(neighbour_index), block):
        stop = start + block
        cand, cand_w = candidate_captions(bank, neighbour_index[start:stop], weights[start:stop])
        scores = consensus_scores(caption_vectors, cand, cand_w)
        if nearest_bonus:
            scores = scores + nearest_bonus * nearest_own_mask(bank, cand, neighbour_index[start:stop])
        chosen.extend(rank_distinct(bank, cand, scores, n))
    needed = n if min_distinct is None else min(min_distinct, n)
    short = [row for row, picked in enumerate(chosen) if len(picked) < needed]
    if short and k < bank.n_images:  # too few distinct captions among k neighbours: widen to 2k for those images only
        wider = consensus_captions(query_features[short], bank, caption_vectors, min(2 * k, bank.n_images), tau, n,
                                   nearest_bonus, class_vote_k, min_distinct)
        for row, picked in zip(short, wider):
            chosen[row] = picked
    return chosen


def paragraph_variants(captions: Sequence[str], n_variants: int, paragraph_size: int = 0) -> list[Variant]:
    """Variants from consensus captions (best first): variant i has caption i as one_sentence and feature; its
    `caption` (the detailed paragraph) is caption i followed by the other captions among the top paragraph_size
    (paragraph_size 0: caption i alone). Images rarely share a whole paragraph, so fewer exact score ties."""
    variants = []
    for sentence in captions[:n_variants]:
        others = [c for c in captions[:paragraph_size] if c != sentence]
        variants.append(Variant(one_sentence=sentence, feature=sentence, caption=" ".join([sentence, *others])))
    return variants


def _default_text_encoder():
    from ..encoders import DEFAULT_TEXT_ENCODER, CachedEncoder, make_text_encoder
    return CachedEncoder(make_text_encoder(DEFAULT_TEXT_ENCODER), progress=False)


class NeighbourCaptioner:
    """Caption-transfer backend ("neighbour"): variants = consensus captions of the image's train neighbours."""

    name = "neighbour"
    label = NEIGHBOUR_LABEL
    prompt_version = NEIGHBOUR_PROMPT_VERSION

    def __init__(self, bank: TrainBank | Dataset, text_encoder=None, image_extractor=None, k: int | None = None,
                 tau: float | None | str = "default", n_variants: int | None = None, tta: bool | None = None,
                 batch_size: int = 1024,
                 cache_root: Path | None = None, nearest_bonus: float | None = None, image_model: str | None = None,
                 class_vote_k: int | None = None, paragraph_size: int | None = None, whiten_dim: int | None = None):
        pick = lambda value, key: DEFAULT_SETTINGS[key] if value is None else value  # noqa: E731
        self.tta = bool(pick(tta, "tta"))
        if not isinstance(bank, TrainBank):  # a train split: its features come from this captioner's own image settings
            bank = TrainBank.from_dataset(bank.with_images(), image_model=pick(image_model, "image_model"), tta=self.tta,
                                          cache_root=cache_root)
        self.bank = bank
        self.k = int(pick(k, "k"))
        self.tau = DEFAULT_SETTINGS["tau"] if tau == "default" else tau
        self.n_variants = int(pick(n_variants, "n_variants"))
        self.nearest_bonus = float(pick(nearest_bonus, "nearest_bonus"))
        # The default class vote needs bank labels; without them it is off (recorded in settings), asked-for it is an error.
        self.class_vote_k = int(class_vote_k if class_vote_k is not None else
                                DEFAULT_SETTINGS["class_vote_k"] if bank.has_classes else 0)
        self.paragraph_size = int(pick(paragraph_size, "paragraph_size"))
        # The default whitening needs a bank of >= 2 * whiten_dim images; a smaller bank is not whitened (recorded).
        self.whiten_dim = int(whiten_dim if whiten_dim is not None else default_whiten_dim(bank))
        self._check_settings()
        if self.class_vote_k and not bank.has_classes:
            raise ValueError(f"class_vote_k={self.class_vote_k} needs scene labels for the bank images, and bank {bank.name!r} "
                             "has none; build the bank from a dataset with scene classes or pass class_vote_k=0")
        self.batch_size = batch_size
        self._whitened: tuple[FeatureWhitening | None, TrainBank] | None = None
        if self.whiten_dim:  # a whiten_dim the bank cannot fit fails here, before any image is read (the fit is lazy)
            check_whiten_dim(bank.features, self.whiten_dim)
        self.text_encoder = text_encoder or _default_text_encoder()
        if image_extractor is None:
            from ..image_encoders.efficientnet import make_image_extractor
            image_extractor = make_image_extractor(pick(image_model, "image_model"), tta=self.tta, cache_root=cache_root,
                                                   progress=False)
        self.image_extractor = image_extractor
        if bank.feature_identity and bank.feature_identity != self.image_extractor.identity:
            raise ValueError(f"the bank's features come from {bank.feature_identity!r} but the query images would be "
                             f"embedded as {self.image_extractor.identity!r}; build the bank with the same image encoder "
                             f"and settings (image_model, tta)")
        self.model = f"caption-transfer:{self.image_extractor.model_name}+{self.text_encoder.name}"
        self.settings = {"k": self.k, "tau": self.tau, "n_variants": self.n_variants, "tta": self.tta,
                         "nearest_bonus": self.nearest_bonus, "class_vote_k": self.class_vote_k,
                         "paragraph_size": self.paragraph_size, "whiten_dim": self.whiten_dim,
                         "whitening_power": WHITENING_POWER if self.whiten_dim else None,
                         "image_encoder": self.image_extractor.identity, "text_encoder": self.text_encoder.name,
                         "bank": bank.identity, "bank_features": bank.feature_identity}

    def _check_settings(self) -> None:
        for key in ("k", "n_variants"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("class_vote_k", "paragraph_size", "whiten_dim"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 (0 = off), got {getattr(self, key)}")
        if self.tau is not None and not self.tau > 0:
            raise ValueError(f"tau must be > 0 or None (unweighted), got {self.tau!r}")
        if not self.nearest_bonus >= 0:
            raise ValueError(f"nearest_bonus must be >= 0, got {self.nearest_bonus!r}")

    def choose(self, query_features: np.ndarray, n: int, min_distinct: int | None = None) -> list[list[str]]:
        """The (up to) n consensus caption texts per query image (from precomputed image features); fewer than
        min_distinct (default n) among the k neighbours widens the neighbourhood."""
        whitening, bank = self._search_space()
        if whitening is not None:
            query_features = whitening.apply(query_features)
        vectors = bank.caption_vectors(self.text_encoder)
        chosen = consensus_captions(query_features, bank, vectors, self.k, self.tau, n,
                                    self.nearest_bonus, self.class_vote_k, min_distinct)
        return [[bank.caption_texts[c] for c in row] for row in chosen]

    def _search_space(self) -> tuple[FeatureWhitening | None, TrainBank]:
        """(whitening, bank searched for neighbours), fitted once on the bank's features."""
        if self._whitened is None:
            self._whitened = whitened_bank(self.bank, self.whiten_dim)
        return self._whitened

    def answer_batch(self, requests: Sequence[CaptionRequest], mode: Mode = "variants", strict: bool = False) -> list[BackendAnswer]:
        """Variants (mode "variants") or query text (mode "image_query") for each request, same order."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(MODES)}")
        answers: list[BackendAnswer | None] = [None] * len(requests)
        for i, request in enumerate(requests):
            if request.image_path is None:
                answers[i] = BackendAnswer(error=f"image {request.image_id!r} has no pixel file; the neighbour "
                                           "captioner needs pixels")
        readable = [i for i, answer in enumerate(answers) if answer is None]
        if not readable:
            return answers
        features, failures = self.image_extractor.extract_available([requests[i].image_path for i in readable])
        for position, reason in failures.items():
            request = requests[readable[position]]
            answers[readable[position]] = BackendAnswer(error=str(ImageReadError(request.image_path, reason)))
        described = [i for position, i in enumerate(readable) if position not in failures]
        if not described:
            return answers
        n = max(self.n_variants, self.paragraph_size) if mode == "variants" else 1
        # Widen only to find the variants the schema needs; a paragraph may hold fewer than paragraph_size captions.
        chosen = self.choose(features, n, min_distinct=self.n_variants if mode == "variants" else None)
        for i, captions in zip(described, chosen):
            if mode == "variants":
                answers[i] = BackendAnswer(variants=paragraph_variants(captions, self.n_variants, self.paragraph_size))
            else:
                answers[i] = BackendAnswer(query_text=" ".join(captions))
        return answers


# ---------------------------------------------------------------- the registry's hooks: the bank, by name
BANK_SPLIT = "train"  # a bank is always a TRAIN split: the test split's captions are never transferred


def check_bank_option(config: dict) -> dict:
    """A bank given by name must be a train split of a known dataset ('rsicd-train'); a bank object passes."""
    from ..data.registry import DATASETS

    bank = config.get("bank")
    if isinstance(bank, str):
        dataset, _, split = bank.rpartition("-")
        if split != BANK_SPLIT or dataset not in DATASETS:
            raise ValueError(f"neighbour bank {bank!r} is not known; name a train split ("
                             f"{', '.join(d + '-train' for d in DATASETS)}) or pass a TrainBank")
    return config


def neighbour_resources(config: dict, context) -> dict:
    """The config with its bank loaded (default: the context dataset's train split) and the study's text encoder."""
    options = check_bank_option(dict(config))
    bank = options.get("bank")
    if bank is None or isinstance(bank, str):
        options["bank"] = _train_split(bank.rpartition("-")[0] if bank else context.dataset, context)
    if context.text_encoder is not None:
        options.setdefault("text_encoder", context.text_encoder)
    return options


def _train_split(dataset: str, context):
    """The TRAIN split with pixels, as the study's params configure it (context.load_train) or from the store."""
    import sys

    from ..data import load_dataset
    from ..data.store import ensure_store

    if context.load_train is not None and dataset == context.dataset:
        return context.load_train()
    if context.split_source and dataset == context.dataset:  # as the caller reads it (a Ray worker: plain values)
        train = load_dataset(split=BANK_SPLIT, **context.split_source).with_images()
    else:
        train = load_dataset(dataset, split=BANK_SPLIT, root=context.data_root or ensure_store(dataset)).with_images()
    print(f"neighbour captioner bank: {train.coverage_note()} ({NEIGHBOUR_LABEL})", file=sys.stderr)
    return train

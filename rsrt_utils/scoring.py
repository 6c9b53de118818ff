"""The one scoring path: an image's variant texts + the query captions + a `ScoringSpec` -> score matrices and metrics.

The study (notebooks 03/04), its ablations, the human-caption oracle, the neighbour captioner's tuning and the
benchmarks all call `score_texts` and `evaluate`; nothing else turns texts into the protocol's figures.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .metrics import DEFAULT_TIES, TIE_POLICIES, duplicate_aware_relevance, evaluate_scores
from .retrieval import POOLINGS, VariantGallery, text_to_text_scores

FIELDS = ("one_sentence", "feature", "caption", "all")
GRANULARITIES = ("paragraph", "sentences")
IMAGE_QUERIES = ("variants", "backend")
DEFAULT_FIELD = "all"      # a VLM's structured variants are embedded whole (a backend may say otherwise: registry)
IMAGE_QUERY_VARIANTS = 2   # an image query is its first two variants (chosen on the captioner's train validation splits)


@dataclass(frozen=True)
class ScoringSpec:
    """How texts become scores and figures: built once from the params (`from_params`), changed with `replace`."""

    field: str = "caption"
    granularity: str = "paragraph"
    n_variants: int = 5              # text->image pools over an image's first n variants
    n_query_variants: int | None = None  # image->text pools over its first n (None: the same n_variants)
    pooling: str = "max"
    image_query: str = "variants"    # "backend": the captioner's own image-query text stands for the image
    ties: str = DEFAULT_TIES
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, choices in (("field", self.field, FIELDS), ("granularity", self.granularity, GRANULARITIES),
                                     ("pooling", self.pooling, POOLINGS), ("image_query", self.image_query, IMAGE_QUERIES),
                                     ("ties", self.ties, TIE_POLICIES)):
            if value not in choices:
                raise ValueError(f"scoring {name} {value!r} is not known; choose one of {', '.join(choices)}")
        for name in ("n_variants", "n_boot"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"scoring {name} must be >= 1, got {getattr(self, name)}")
        if self.n_query_variants is not None and self.n_query_variants < 1:
            raise ValueError(f"scoring n_query_variants must be >= 1 (or None for n_variants), got {self.n_query_variants}")

    @classmethod
    def from_params(cls, params) -> "ScoringSpec":
        """The spec of a study run (RunParams): retrieval, evaluation and captioner.image_query."""
        r, e = params.retrieval, params.evaluation
        return cls(field=r.field, granularity=r.granularity, n_variants=r.n_variants, n_query_variants=r.n_query_variants,
                   pooling=r.pooling, image_query=params.captioner.image_query, ties=e.ties, n_boot=e.n_boot, seed=e.seed)

    def replace(self, **changes) -> "ScoringSpec":
        return dataclasses.replace(self, **changes)

    @property
    def query_variants(self) -> int:
        return self.n_query_variants or self.n_variants


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_sentences(text: str) -> list[str]:
    """The sentences of a paragraph (split after . ! ? followed by a capital or digit); never empty."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]
    return parts or [text]


def variant_texts(variants: Sequence, field: str, granularity: str = "paragraph") -> list[str]:
    """The texts embedded for an image: each variant's field (a plain string is taken as it is), whole or as sentences."""
    texts = [v if isinstance(v, str) else v.text(field) for v in variants]
    if granularity == "sentences":
        texts = [s for t in texts for s in split_sentences(t)]
    return texts


def image_texts(variants_by_image: Sequence[Sequence], spec: ScoringSpec, n: int | None = None) -> list[list[str]]:
    """Each image's texts under the spec (first n variants, default spec.n_variants); an image without any gets one
    empty text, so a captioning failure counts against recall instead of vanishing."""
    n = n or spec.n_variants
    return [variant_texts(list(v)[:n], spec.field, spec.granularity) or [""] for v in variants_by_image]


def embed_grouped_texts(groups: Sequence[Sequence[str]], encoder) -> VariantGallery:
    """Embed each image's texts (any number per image) into a VariantGallery."""
    flat = [text for group in groups for text in group]
    index = [i for i, group in enumerate(groups) for _ in group]
    return VariantGallery.from_groups(encoder.encode(flat), index, n_groups=len(groups))


def score_texts(variants_by_image: Sequence[Sequence], captions: Sequence[str], encoder, spec: ScoringSpec,
                image_query_texts: Sequence[Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(t2i, i2t) score matrices: captions against each image's first n_variants texts (text->image), and each image
    against the captions through its first n_query_variants texts, or `image_query_texts` when the captioner wrote its
    own (spec.image_query == "backend")."""
    if spec.image_query == "backend" and image_query_texts is None:
        raise ValueError("scoring image_query 'backend' needs the captioner's image-query texts (image_query_texts)")
    gallery = embed_grouped_texts(image_texts(variants_by_image, spec), encoder)
    if spec.image_query == "backend":
        queries = embed_grouped_texts([list(q) or [""] for q in image_query_texts], encoder)
    elif spec.query_variants != spec.n_variants:
        queries = embed_grouped_texts(image_texts(variants_by_image, spec, spec.query_variants), encoder)
    else:
        queries = None
    return text_to_text_scores(encoder.encode(list(captions)), gallery, queries, spec.pooling)


def evaluate(t2i: np.ndarray, i2t: np.ndarray, caption_image_index: Sequence[int], spec: ScoringSpec,
             image_classes: Sequence[str] | None = None, captions: Sequence[str] | None = None) -> dict:
    """The protocol's record: recalls, mR, bootstrap intervals, per-class table, mR under the other tie policies,
    and (given the caption texts) mR counting identical captions as relevant — a diagnostic, not the protocol."""
    result = evaluate_scores(t2i, i2t, caption_image_index, image_classes, ties=spec.ties, n_boot=spec.n_boot, seed=spec.seed,
                             other_ties=True)
    if captions is not None:
        relevant = duplicate_aware_relevance(captions, caption_image_index, t2i.shape[1])
        result["mR_duplicates_relevant"] = evaluate_scores(t2i, i2t, caption_image_index, ties=spec.ties, n_boot=1,
                                                           relevant=relevant)["mR"]
    return result


def score_and_evaluate(dataset, variants_by_image: Sequence[Sequence], encoder, spec: ScoringSpec,
                       image_query_texts: Sequence[Sequence[str]] | None = None) -> dict:
    """`score_texts` then `evaluate` on a dataset split (its captions are the queries)."""
    if len(variants_by_image) != dataset.n_images:
        raise ValueError(f"{len(variants_by_image)} gallery entries for {dataset.n_images} images of "
                         f"{dataset.name} {dataset.split}")
    t2i, i2t = score_texts(variants_by_image, dataset.captions, encoder, spec, image_query_texts)
    return evaluate(t2i, i2t, dataset.caption_image_index, spec, dataset.image_classes)


class PrecomputedEncoder:
    """Wraps an encoder with texts embedded once up front (e.g. every caption of a split): repeated scoring of the
    same texts (the oracle's rounds, a tuning grid) reads them back instead of embedding again."""

    def __init__(self, encoder, texts: Sequence[str]):
        self.encoder, self.name = encoder, encoder.name
        unique = list(dict.fromkeys(texts))
        self._vectors = dict(zip(unique, np.asarray(encoder.encode(unique), dtype=np.float32))) if unique else {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, np.asarray(self.encoder.encode(missing), dtype=np.float32)))
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

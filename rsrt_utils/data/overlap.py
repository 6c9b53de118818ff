"""Images two test splits share (RSITMD test and RSICD test hold some of the same scenes), found from their captions.

RULE (caption evidence; see RULE below for the sentence the results files carry):
  An image i of split A and an image j of split B are the same scene when at least MIN_RARE_CAPTIONS distinct captions
  of j are matched by captions of i, counting only RARE matches: a caption of i matches a caption of B exactly (after
  normalise_text) or near-identically (difflib ratio >= NEAR_IDENTICAL_RATIO on the normalised characters: typos and
  light edits), and it is rare when every B image holding any caption it matches is one of at most MAX_HOLDERS images.
  One rare match counts as a pair only when a VLM's descriptions of the two support it (identical, or cosine >=
  MIN_DESCRIPTION_COSINE; looked up for those pairs only): VLM similarity supports, it never makes a pair alone (LLaVA writes near-identical paragraphs
  for different scenes). Where one image is paired with two images of the other split, pixels decide if both of those
  have them (they are one scene if their pixels correlate >= SAME_SCENE_PIXEL_CORRELATION); otherwise the pair with
  more evidence is kept and the other one listed as dropped.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Callable, Mapping, Sequence

import numpy as np

MIN_RARE_CAPTIONS = 2
MAX_HOLDERS = 2
NEAR_IDENTICAL_RATIO = 0.85
MIN_DESCRIPTION_COSINE = 0.99
SAME_SCENE_PIXEL_CORRELATION = 0.9
_SHINGLE_WORDS = 2  # near-identical candidates share at least _MIN_SHINGLE_SHARE of the shorter one's word pairs
_MIN_SHINGLE_SHARE = 0.3
RULE = (f"same scene if >= {MIN_RARE_CAPTIONS} distinct captions of the other image are matched exactly (lower-cased, "
        f"spaces collapsed, final full stop dropped) or near-identically (character ratio >= {NEAR_IDENTICAL_RATIO}) "
        f"by rare captions (all the images holding what a caption matches are <= {MAX_HOLDERS}); one such caption "
        f"only with a VLM's descriptions supporting it (identical or cosine >= {MIN_DESCRIPTION_COSINE}, "
        f"all-MiniLM-L6-v2); VLM similarity alone never; an image paired twice keeps the pair with more evidence "
        f"unless the two others' pixels show one scene (correlation >= {SAME_SCENE_PIXEL_CORRELATION})")


def normalise_text(text: str) -> str:
    """Lower-cased, spaces collapsed, final full stop dropped: how captions and descriptions are compared."""
    return " ".join(text.lower().split()).rstrip(" .")


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[k:k + _SHINGLE_WORDS]) for k in range(max(1, len(words) - _SHINGLE_WORDS + 1))}


class _CaptionIndex:
    """The normalised captions of one split, their holders, and a word-pair index for near-identical lookups."""

    def __init__(self, dataset):
        self.holders: dict[str, set[int]] = defaultdict(set)
        for text, owner in zip(dataset.captions, dataset.caption_image_index):
            self.holders[normalise_text(text)].add(int(owner))
        self.keys = list(self.holders)
        self._shingles = [_shingles(key) for key in self.keys]
        self._by_shingle: dict[tuple, list[int]] = defaultdict(list)
        for k, shingles in enumerate(self._shingles):
            for shingle in shingles:
                self._by_shingle[shingle].append(k)

    def matches(self, text: str) -> set[str]:
        """The captions equal or near-identical to the normalised `text`."""
        found = {text} if text in self.holders else set()
        shingles, shared = _shingles(text), defaultdict(int)
        for shingle in shingles:
            for k in self._by_shingle.get(shingle, ()):
                shared[k] += 1
        for k, count in shared.items():
            key = self.keys[k]
            if key in found or count < _MIN_SHINGLE_SHARE * min(len(shingles), len(self._shingles[k])):
                continue
            matcher = difflib.SequenceMatcher(None, text, key)
            if matcher.real_quick_ratio() >= NEAR_IDENTICAL_RATIO and matcher.quick_ratio() >= NEAR_IDENTICAL_RATIO \
                    and matcher.ratio() >= NEAR_IDENTICAL_RATIO:  # the two cheap upper bounds first
                found.add(key)
        return found


def rare_caption_matches(a, b) -> dict[tuple[int, int], dict[str, bool]]:
    """{(image in a, image in b): {caption of b matched by a rare caption of the a image: matched exactly}}."""
    index = _CaptionIndex(b)
    evidence: dict[tuple[int, int], dict[str, bool]] = defaultdict(dict)
    own = defaultdict(set)
    for text, owner in zip(a.captions, a.caption_image_index):
        own[int(owner)].add(normalise_text(text))
    for i, texts in own.items():
        for text in texts:
            matched = index.matches(text)
            holders = set().union(*(index.holders[m] for m in matched)) if matched else set()
            if not 0 < len(holders) <= MAX_HOLDERS:
                continue
            for caption in matched:
                for j in index.holders[caption]:
                    evidence[(i, j)][caption] = evidence[(i, j)].get(caption, False) or caption == text
    return dict(evidence)


def description_support(descriptions_a: Mapping[str, Sequence[str]], descriptions_b: Mapping[str, Sequence[str]],
                        pairs, encoder) -> dict[tuple[int, int], dict[str, float]]:
    """{pair: {vlm: cosine of its two descriptions}} for the pairs where a VLM's descriptions are identical or close."""
    support: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    pairs = sorted(pairs)
    for vlm in sorted(descriptions_a):
        left = [descriptions_a[vlm][i] for i, _ in pairs]
        right = [descriptions_b[vlm][j] for _, j in pairs]
        cosine = np.ones(len(pairs))
        if encoder is not None and pairs:
            from ..vectors import l2_normalise

            embed = lambda texts: l2_normalise(np.asarray(encoder.encode(texts), dtype=np.float32))  # noqa: E731
            cosine = (embed(left) * embed(right)).sum(axis=1)
        for pair, x, y, c in zip(pairs, left, right, cosine):
            identical = normalise_text(x) == normalise_text(y)
            if identical or (encoder is not None and c >= MIN_DESCRIPTION_COSINE):
                support[pair][vlm] = 1.0 if identical else round(float(c), 4)
    return dict(support)


def find_shared_images(a, b, descriptions_a: Mapping[str, Sequence[str]] | None = None,
                       descriptions_b: Mapping[str, Sequence[str]] | None = None, encoder=None,
                       same_scene_b: Callable[[int, int], bool | None] | None = None) -> dict:
    """The pairs of images of `a` and `b` that RULE calls the same scene, with their evidence, and the pairs dropped.

    descriptions_*: {vlm name: one description per image, in image order}; encoder: a text encoder with
    `encode(texts)` for the description cosine; same_scene_b(j1, j2): whether two images of `b` are one scene by their
    pixels (None where either has none). Returns {"pairs": [...], "dropped": [...]}."""
    matches = rare_caption_matches(a, b)
    single = {pair for pair, captions in matches.items() if len(captions) == 1}  # only these need a VLM's support
    support = description_support(descriptions_a or {}, descriptions_b or {}, single, encoder)
    candidates = {pair for pair, captions in matches.items() if captions}
    rows = []
    for (i, j) in sorted(candidates):
        captions = matches[(i, j)]
        n, described = len(captions), support.get((i, j), {})
        if n >= MIN_RARE_CAPTIONS or described:
            rows.append({a.name: a.image_ids[i], b.name: b.image_ids[j], "rare_captions": n,
                         "exact_captions": sum(captions.values()), "description_support": described,
                         "basis": "captions" if n >= MIN_RARE_CAPTIONS else "one caption + description", "_ij": (i, j)})
    kept, dropped = _resolve_contradictions(rows, a.name, b.name, same_scene_b)
    strip = lambda row: {k: v for k, v in row.items() if k != "_ij"}  # noqa: E731
    return {"pairs": [strip(r) for r in kept], "dropped": [strip(r) for r in dropped]}


def _strength(row: dict) -> tuple:
    return row["rare_captions"], row["exact_captions"], max(row["description_support"].values(), default=0.0)


def _resolve_contradictions(rows: list[dict], name_a: str, name_b: str, same_scene_b) -> tuple[list, list]:
    """Keep, for an image paired with several others, the strongest pair and those the pixels show are one scene with
    it; the rest are dropped with the reason."""
    kept, dropped = list(rows), []
    for side in (name_a, name_b):
        groups = defaultdict(list)
        for row in kept:
            groups[row[side]].append(row)
        for group in (g for g in groups.values() if len(g) > 1):
            best = max(group, key=_strength)
            for row in group:
                if row is best:
                    continue
                one_scene = side == name_a and same_scene_b is not None and same_scene_b(best["_ij"][1], row["_ij"][1])
                if not one_scene:
                    kept.remove(row)
                    dropped.append({**row, "dropped_because": f"{row[side]} is paired more strongly with "
                                                              f"{best[name_b if side == name_a else name_a]}"})
    return kept, dropped


def pixel_correlation(path_1, path_2, size: int = 64) -> float:
    """Pearson correlation of two images' grey pixels at `size` x `size`: about 1 for the same scene."""
    from PIL import Image

    grey = [np.asarray(Image.open(p).convert("L").resize((size, size)), dtype=np.float64).ravel()
            for p in (path_1, path_2)]
    return float(np.corrcoef(*grey)[0, 1])


def same_scene_by_pixels(dataset) -> Callable[[int, int], bool | None]:
    """same_scene(j1, j2) for two images of `dataset` by their pixels (None when either has none)."""
    paths = [im.image_path for im in dataset.images]

    def same_scene(j1: int, j2: int) -> bool | None:
        if paths[j1] is None or paths[j2] is None:
            return None
        return pixel_correlation(paths[j1], paths[j2]) >= SAME_SCENE_PIXEL_CORRELATION
    return same_scene


def shared_image_ids(rows: Sequence[dict], dataset_name: str) -> set[str]:
    """The ids of `dataset_name`'s images that appear in any shared pair."""
    return {row[dataset_name] for row in rows}

"""Images two test splits share (RSITMD test and RSICD test hold some of the same scenes), found from their texts.

RULE: an image of split A and an image of split B are the same scene if
  (1) they share at least MIN_SHARED_CAPTIONS human captions, compared after lower-casing, collapsing spaces and
      dropping a final full stop; or
  (2) one VLM gave both the same description (the same normalisation); or
  (3) one VLM's descriptions of the two have a cosine of at least MIN_DESCRIPTION_COSINE (all-MiniLM-L6-v2).
The rule is inclusive on purpose: an image wrongly listed is only left out of the split a setting is chosen on,
which can make the choice noisier but never optimistic.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np

MIN_SHARED_CAPTIONS = 3
MIN_DESCRIPTION_COSINE = 0.99
RULE = (f"same scene if the two images share >= {MIN_SHARED_CAPTIONS} human captions (lower-cased, spaces collapsed, "
        f"final full stop dropped), or one VLM gave both the same description, or one VLM's two descriptions have "
        f"cosine >= {MIN_DESCRIPTION_COSINE} (all-MiniLM-L6-v2)")


def normalise_text(text: str) -> str:
    """Lower-cased, spaces collapsed, final full stop dropped: how captions and descriptions are compared."""
    return " ".join(text.lower().split()).rstrip(" .")


def shared_caption_counts(a, b) -> Counter:
    """{(image index in a, image index in b): number of normalised human captions the two share}."""
    owners_b: dict[str, set[int]] = {}
    for text, owner in zip(b.captions, b.caption_image_index):
        owners_b.setdefault(normalise_text(text), set()).add(int(owner))
    counts: Counter = Counter()
    seen = set()
    for text, owner in zip(a.captions, a.caption_image_index):
        key = normalise_text(text)
        for other in owners_b.get(key, ()):
            if (int(owner), other, key) not in seen:  # a caption repeated within one image counts once
                seen.add((int(owner), other, key))
                counts[(int(owner), other)] += 1
    return counts


def _description_pairs(descriptions_a: Sequence[str], descriptions_b: Sequence[str], encoder) -> tuple[set, dict]:
    """(pairs with identical descriptions, {pair: cosine} of pairs at or above the cosine threshold)."""
    index_b: dict[str, list[int]] = {}
    for j, text in enumerate(descriptions_b):
        index_b.setdefault(normalise_text(text), []).append(j)
    identical = {(i, j) for i, text in enumerate(descriptions_a) for j in index_b.get(normalise_text(text), [])}
    close = {}
    if encoder is not None:
        from ..vectors import l2_normalise

        cosine = l2_normalise(np.asarray(encoder.encode(list(descriptions_a)), dtype=np.float32)) @ \
            l2_normalise(np.asarray(encoder.encode(list(descriptions_b)), dtype=np.float32)).T
        for i, j in zip(*np.nonzero(cosine >= MIN_DESCRIPTION_COSINE)):
            close[(int(i), int(j))] = round(float(cosine[i, j]), 4)
    return identical, close


def find_shared_images(a, b, descriptions_a: Mapping[str, Sequence[str]] | None = None,
                       descriptions_b: Mapping[str, Sequence[str]] | None = None, encoder=None) -> list[dict]:
    """Pairs of images of datasets `a` and `b` that RULE calls the same scene, with the evidence for each.

    descriptions_*: {vlm name: one description per image, in image order} (the same VLM names on both sides);
    encoder: a text encoder with `encode(texts)` (for the cosine part of the rule)."""
    evidence: dict[tuple[int, int], dict] = {}

    def note(pair, key, value):
        evidence.setdefault(pair, {"shared_captions": 0, "identical_description": [], "description_cosine": {}})
        entry = evidence[pair]
        if key == "identical_description":
            entry[key].append(value)
        elif key == "description_cosine":
            entry[key].update(value)
        else:
            entry[key] = value

    captions = shared_caption_counts(a, b)
    for pair, count in captions.items():
        if count >= MIN_SHARED_CAPTIONS:
            note(pair, "shared_captions", count)
    for vlm in sorted(descriptions_a or {}):
        identical, close = _description_pairs(descriptions_a[vlm], descriptions_b[vlm], encoder)
        for pair in identical:
            note(pair, "identical_description", vlm)
        for pair, cosine in close.items():
            note(pair, "description_cosine", {vlm: cosine})
    rows = []
    for (i, j), entry in sorted(evidence.items()):
        entry["shared_captions"] = captions.get((i, j), 0)
        rows.append({a.name: a.image_ids[i], b.name: b.image_ids[j], **entry})
    return rows


def shared_image_ids(rows: Sequence[dict], dataset_name: str) -> set[str]:
    """The ids of `dataset_name`'s images that appear in any shared pair."""
    return {row[dataset_name] for row in rows}

"""Automatic caption checks, the cheap counterparts of the hand audit: length, diversity across variants, scene-class
mentions and words the human captions do not support."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..captioning.schema import VARIANT_FIELDS, Variant
from ..data.dataset import Dataset

STOPWORDS = frozenset("""
a an the and or but of in on at to from by with without into onto over under above below near next beside besides
between among around along across through behind front is are was were be been being has have had it its this that
these those there here which who whom whose what where when while as than then so such some many much more most few
several lot lots very also can could may might will would shall should do does did not no one two three four five
other others each both all any either neither same own only just about like image picture photo scene area view shows
shown showing seen visible appears appear located situated part parts of kind type we see aerial satellite
for towards toward another away further likely possibly perhaps overall their they them its it's into upon
""".split())


DIRECTION_WORDS = frozenset("""
north south east west northern southern eastern western northeast northwest southeast southwest northeastern
northwestern southeastern southwestern northward southward eastward westward left right top bottom upper lower
centre center central middle side sides corner corners edge edges
""".split())


_WORD = re.compile(r"[a-z]+")


# Scene classes whose file-name prefix is not itself the word a caption would use (the rest: the prefix).
CLASS_WORDS = {"denseresidential": ("residential",), "mediumresidential": ("residential",),
               "sparseresidential": ("residential",), "baseballfield": ("baseball",), "bareland": ("bare", "barren"),
               "railwaystation": ("railway", "train", "station"), "storagetanks": ("tank",),
               "center": ("center", "centre"), "commercial": ("commercial",), "industrial": ("industrial", "factory"),
               "meadow": ("meadow", "grassland"), "port": ("port", "harbor", "harbour"), "viaduct": ("viaduct",),
               "boat": ("boat", "ship"), "intersection": ("intersection", "crossroad"), "plane": ("plane", "airplane")}


def class_words(scene_class: str) -> tuple[str, ...]:
    """Words that name a scene class in a caption (singular forms)."""
    return CLASS_WORDS.get(scene_class, (singular(scene_class),))


def class_mentions(text: str, scene_class: str, all_classes: Sequence[str]) -> tuple[bool, list[str]]:
    """(the image's own class is named, the other scene classes the text names) — a wrong-scene signal."""
    words = {singular(w) for w in _WORD.findall(text.lower())}
    own = set(class_words(scene_class))
    others = sorted(c for c in set(all_classes) - {scene_class, "unlabelled"} if set(class_words(c)) & words - own)
    return bool(own & words), others


def content_words(text: str) -> list[str]:
    """Lowercase alphabetic tokens of length >= 2, minus stopwords and direction/position words."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS and w not in DIRECTION_WORDS]


def singular(word: str) -> str:
    """A light plural folding so that 'trees' and 'tree' match (ies->y, sses/xes/ches/shes->-es, s->'')."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _jaccard_distance(a: set[str], b: set[str]) -> float:
    union = a | b
    return 1.0 - len(a & b) / len(union) if union else 0.0


def _variant_key(variant: Variant) -> str:
    return " ".join(variant.text("all").lower().split())


def check_image_variants(variants: Sequence[Variant], human_captions: Sequence[str], scene_class: str | None = None,
                         all_classes: Sequence[str] = ()) -> dict:
    """Lengths, diversity, duplicates, unsupported words and scene-class words of one image's variants."""
    record: dict = {"n_variants": len(variants)}
    for name in VARIANT_FIELDS:
        lengths = [len(v.text(name).split()) for v in variants if name in v.present_fields()]
        if lengths or any(v.is_structured for v in variants):
            record[f"mean_words_{name}"] = float(np.mean(lengths)) if lengths else 0.0
    word_sets = [set(_WORD.findall(v.text("all").lower())) for v in variants]
    pairs = list(itertools.combinations(word_sets, 2))
    record["diversity"] = float(np.mean([_jaccard_distance(a, b) for a, b in pairs])) if pairs else float("nan")
    keys = [_variant_key(v) for v in variants]
    record["n_duplicate_variants"] = len(keys) - len(set(keys))
    supported = {singular(w) for c in human_captions for w in content_words(c)}
    unsupported: dict[str, None] = {}
    for variant in variants:
        for word in content_words(variant.text("all")):
            if singular(word) not in supported:
                unsupported.setdefault(word, None)
    record["n_unsupported_words"] = len(unsupported)
    record["unsupported_words"] = sorted(unsupported)
    if scene_class and scene_class != "unlabelled":
        text = " ".join(v.text("all") for v in variants)
        record["class_word_present"], record["other_classes_named"] = class_mentions(text, scene_class, all_classes)
    return record


def automatic_caption_checks(dataset: Dataset, corpus: Mapping[str, Sequence[Variant]]) -> pd.DataFrame:
    """Per captioned image: mean words per field, diversity (mean pairwise 1 - Jaccard of word sets), duplicate
    variants, and content words the variants use that none of the image's human captions uses.

    Words are compared after a light plural folding ('trees' ~ 'tree'); the listed words are as the variants wrote them.
    Images of the dataset that have no corpus entry are skipped; use `summarise_caption_checks` for totals.
    """
    captions = dataset.captions_by_image()
    records = []
    for i, image in enumerate(dataset.images):
        if image.image_id not in corpus:
            continue
        variants = as_variants(image.image_id, corpus[image.image_id])
        records.append({"image_id": image.image_id, "scene_class": image.scene_class,
                        **check_image_variants(variants, captions[i], image.scene_class, dataset.image_classes)})
    if not records:
        raise ValueError(f"none of the {dataset.n_images} images of {dataset.name} {dataset.split} is in the corpus "
                         f"({len(corpus)} entries); check that the corpus ids are image file names like "
                         f"{dataset.images[0].image_id if dataset.images else 'x.jpg'!r}")
    return pd.DataFrame(records)


def summarise_caption_checks(checks: pd.DataFrame, top: int = 20) -> dict[str, pd.DataFrame]:
    """'means': the mean of every numeric check across images; 'top_unsupported_words': word, n_images, share_of_images."""
    numeric = checks.select_dtypes(["number", "bool"]).astype(float)
    if "other_classes_named" in checks:
        numeric["names_another_class"] = checks["other_classes_named"].map(lambda v: bool(v) if isinstance(v, list) else np.nan)
    means = numeric.mean().to_frame("mean").T.assign(n_images=len(checks)).reset_index(drop=True)
    counter = Counter(word for words in checks["unsupported_words"] for word in words)
    top_words = pd.DataFrame(counter.most_common(top), columns=["word", "n_images"])
    top_words["share_of_images"] = top_words["n_images"] / max(len(checks), 1)
    return {"means": means, "top_unsupported_words": top_words}


def as_variants(image_id: str, values: Sequence) -> list[Variant]:
    try:
        return [v if isinstance(v, Variant) else Variant.model_validate(v) for v in values]
    except Exception as error:  # pydantic's message names the field
        raise ValueError(f"corpus entry for image {image_id!r} is not a list of variants: {error}") from error

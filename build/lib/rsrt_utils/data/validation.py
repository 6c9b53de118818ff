"""Validation report: counts against the standard test splits, blank and duplicate captions, pixel coverage."""

from __future__ import annotations

from collections import Counter, defaultdict

from .dataset import Dataset
from .registry import standard_test_split


def validation_report(dataset: Dataset, raw_blank_captions: int | None = None) -> dict:
    """Facts a reader checks before trusting a figure; `matches_standard` is None for non-test splits."""
    by_text: dict[str, set[int]] = defaultdict(set)
    for caption, i in zip(dataset.captions, dataset.caption_image_index):
        by_text[caption.strip().lower()].add(int(i))
    within = sum(len(group) - len(set(c.strip().lower() for c in group)) for group in dataset.captions_by_image())
    shared = {text: imgs for text, imgs in by_text.items() if len(imgs) > 1}
    counts = Counter(c.strip().lower() for c in dataset.captions)
    standard = standard_test_split(dataset.name) if dataset.split == "test" else None
    report = {
        "dataset": dataset.name,
        "split": dataset.split,
        "source": dataset.source,
        "n_images": dataset.n_images,
        "n_captions": len(dataset.captions),
        "standard": standard,
        "matches_standard": None if standard is None else (
            dataset.n_images == standard["images"] and len(dataset.captions) == standard["captions"]),
        "blank_captions": sum(1 for c in dataset.captions if not c.strip()),
        "distinct_captions": len(counts),
        "duplicate_captions_within_images": int(within),
        "captions_shared_across_images": len(shared),
        "instances_of_shared_captions": int(sum(counts[t] for t in shared)),
        "most_shared_caption": max(shared.items(), key=lambda kv: len(kv[1]), default=(None, set()))[0],
        "max_images_sharing_a_caption": max((len(v) for v in shared.values()), default=1),
        "images_with_pixels": sum(im.image_path is not None for im in dataset.images),
        "captions_per_image": dict(Counter(len(g) for g in dataset.captions_by_image())),
        "scene_classes": len(set(dataset.image_classes)),
        "notes": list(dataset.notes),
    }
    if raw_blank_captions is not None:
        report["blank_captions_in_source"] = raw_blank_captions
    return report

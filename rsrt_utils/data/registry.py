"""The benchmark datasets, described once: annotation sources, the store datasets each needs, the standard test
split sizes and where its pixels come from. The loader, the store, validation, the CLI and the params read this."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchmarkDataset:
    """One benchmark: its annotation sources (name -> path inside a store or mirror; the first is the default)."""

    name: str
    annotation_sources: dict[str, str]
    store_needs: tuple[str, ...]        # store datasets (rsrt data import/download) it is loaded from
    test_images: int                    # the standard test split: images and captions
    test_captions: int
    pixels: str                         # where its pixels come from here
    store_files: tuple[str, ...] = ()   # annotation files of the store dataset of the same name (checksummed)


SPLITS = ("train", "test")
AID150_MAPPING = "rsicd/rsicd_to_aid150.tsv"   # RSICD file name -> AID-150 scene (mirror-only; rebuilt by name)
AID150_IMAGES = "aid150/images"

DATASETS_INFO = {
    "rsitmd": BenchmarkDataset("rsitmd", {"amfmn": "rsitmd/precomp_amfmn", "json": "rsitmd/Transferdataset_rsitmd.json"},
                               ("rsitmd",), 452, 2260, "none in the store (give --images-dir / dataset.images_dir)",
                               tuple(f"rsitmd/precomp_amfmn/{s}_{k}.txt" for s in ("test", "train") for k in ("caps", "filename"))
                               + ("rsitmd/Transferdataset_rsitmd.json",)),
    "rsicd": BenchmarkDataset("rsicd", {"amfmn": "rsicd/precomp_amfmn"}, ("rsicd", "aid150"), 1093, 5465,
                              "AID-150 scenes (150x150 downscaled AID) for the class-named images, via rsicd_to_aid150.tsv",
                              tuple(f"rsicd/precomp_amfmn/{s}_{k}.txt" for s in ("test", "train") for k in ("caps", "filename"))
                              + (AID150_MAPPING,)),
}
DATASETS = tuple(DATASETS_INFO)
STANDARD_TEST_SPLITS = {d.name: {"images": d.test_images, "captions": d.test_captions} for d in DATASETS_INFO.values()}

"""The benchmark datasets, one record each: annotation sources and their public upstream (checksums in
`checksums/<name>.tsv`), the store datasets each needs, the standard test split sizes, where its pixels come from,
the published caption corpora that describe its test images and the published figures quoted for it. The loader,
the store, the sources, validation, the CLI, the params, the literature table and the quality chapter read this;
adding a dataset = its record here + its checksum table + a test (docs/contributing.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

AMFMN = "xiaoyuan1996/AMFMN@c09bcfba90e8283f98317af3c0e35005c3587925"
SHSA = "hocker-sy/SHSA@9941748c57814a78e74284cb25c20a2b1d23c3b7"
TESTTENSOR = "zlima/testtensor@f6a0f74645eab10754425bff50747e508290dee1"


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
    # (relpath prefix in the store, owner/repo@commit, path prefix upstream) of its store files
    upstream: tuple[tuple[str, str, str], ...] = ()
    mirror_only: tuple[str, ...] = ()   # store files with no public source (the loader rebuilds them when absent)
    published_corpora: dict[str, str] = field(default_factory=dict)  # corpus name -> line prefix of its images there
    published_mr: dict[str, float] = field(default_factory=dict)     # system (literature.py) -> quoted mR, percent
    published_recalls: dict[str, dict] = field(default_factory=dict)  # system -> {"t2i R@1": ...} where quoted
    pixel_store: str | None = None      # a PIXEL_STORES entry its images' pixels come from (matched by file name)


@dataclass(frozen=True)
class PixelStore:
    """A store dataset that only holds pixels for a benchmark (AID-150 for RSICD's class-named images)."""

    name: str
    upstream: tuple[tuple[str, str, str], ...]
    images: str                         # the folder of its images inside a store or mirror (<class>/<file>.jpg)
    mapping: str | None = None          # a table: benchmark file name -> image, when names differ (else by name)

    @property
    def image_glob(self) -> str:
        return f"{self.images}/*/*.jpg"


SPLITS = ("train", "test")
AID150_MAPPING = "rsicd/rsicd_to_aid150.tsv"   # RSICD file name -> AID-150 scene (mirror-only; rebuilt by name)
AID150_IMAGES = "aid150/images"


def _amfmn_files(folder: str) -> tuple[str, ...]:
    return tuple(f"{folder}/{s}_{k}.txt" for s in ("test", "train") for k in ("caps", "filename"))


DATASETS_INFO = {record.name: record for record in (
    BenchmarkDataset(
        "rsitmd", {"amfmn": "rsitmd/precomp_amfmn", "json": "rsitmd/Transferdataset_rsitmd.json"}, ("rsitmd",), 452, 2260,
        "none in the store (give --images-dir / dataset.images_dir)",
        _amfmn_files("rsitmd/precomp_amfmn") + ("rsitmd/Transferdataset_rsitmd.json",),
        upstream=(("rsitmd/precomp_amfmn/", AMFMN, "AMFMN/data/rsitmd_precomp/"),
                  ("rsitmd/Transferdataset_rsitmd.json", SHSA, "data/data/RSITMD/Transferdataset_rsitmd.json")),
        published_corpora={"llava": "rsitmd_", "qwenvl": "rsitmd_"},
        published_mr={"TRSLLaVA (GPT-4.1 captions, T2T)": 42.62, "zero-shot CLIP (paper's baseline)": 23.86,
                      "CLIP ViT-B/32": 24.19, "GeoRSCLIP ViT-B/32": 35.68, "GeoRSCLIP ViT-B/32 zero-shot (RS5M README)": 35.33,
                      "GeoRSCLIP ViT-H/14": 40.38, "AMFMN": 29.72, "GaLR": 31.41, "PIR": 38.24,
                      "RemoteCLIP ViT-B/32": 49.38, "GeoRSCLIP-FT": 51.81,
                      "RemoteCLIP ViT-B/32 (SkyScript protocol)": 44.25},
        published_recalls={"CLIP ViT-B/32": {"i2t R@1": 9.51, "i2t R@5": 23.01, "i2t R@10": 32.74,
                                             "t2i R@1": 8.81, "t2i R@5": 27.88, "t2i R@10": 43.19}}),
    BenchmarkDataset(
        "rsicd", {"amfmn": "rsicd/precomp_amfmn"}, ("rsicd", "aid150"), 1093, 5465,
        "AID-150 scenes (150x150 downscaled AID) for the class-named images, via rsicd_to_aid150.tsv",
        _amfmn_files("rsicd/precomp_amfmn") + (AID150_MAPPING,),
        upstream=(("rsicd/precomp_amfmn/", AMFMN, "AMFMN/data/rsicd_precomp/"),),
        mirror_only=(AID150_MAPPING,),
        published_corpora={"llava": "rsicd_", "qwenvl": "rsicd_"}, pixel_store="aid150",
        published_mr={"TRSLLaVA (GPT-4.1 captions, T2T)": 31.33, "CLIP ViT-B/32": 15.74, "GeoRSCLIP ViT-B/32": 26.18,
                      "GeoRSCLIP ViT-B/32 zero-shot (RS5M README)": 26.06, "GeoRSCLIP ViT-H/14": 28.48, "AMFMN": 16.42,
                      "GaLR": 18.96, "PIR": 24.46, "RemoteCLIP ViT-B/32": 35.26, "GeoRSCLIP-FT": 38.87}),
)}
PIXEL_STORES = {"aid150": PixelStore("aid150", (("aid150/images/", TESTTENSOR, "AID/"),), AID150_IMAGES, AID150_MAPPING)}
DATASETS = tuple(DATASETS_INFO)
STANDARD_TEST_SPLITS = {d.name: {"images": d.test_images, "captions": d.test_captions} for d in DATASETS_INFO.values()}


def benchmark(name: str) -> BenchmarkDataset:
    """The record of a benchmark dataset; ValueError naming the known ones (with a "did you mean")."""
    from ..suggest import did_you_mean

    if name not in DATASETS_INFO:
        raise ValueError(f"dataset {name!r} is not known{did_you_mean(name, DATASETS_INFO)}; choose one of "
                         f"{', '.join(DATASETS_INFO)}")
    return DATASETS_INFO[name]


def standard_test_split(name: str) -> dict | None:
    """{"images", "captions"} of a benchmark's standard test split (None for a dataset of one's own)."""
    record = DATASETS_INFO.get(name)
    return {"images": record.test_images, "captions": record.test_captions} if record else None

"""Real small data for the web-app tests: a collection of eight AID-150 images and a study run's audit folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rsrt_utils.captioning.schema import Variant
from rsrt_utils.data.dataset import Dataset, ImageRecord
from rsrt_utils.paths import shared_mirror_dir
from rsrt_utils.study import audit, audit_scoring, audit_sheets

SCRIPT = "<script>alert('x')</script>"
COLLECTION = "aid-sample"
RUN = "toy-run"
# Eight AID-150 scenes (looked at before writing their texts): two phrases each, as a captioner might write them.
PHRASES = {
    "Airport/airport_1.jpg": ("an airport terminal with aprons and taxiways", "a large airport building beside a runway"),
    "Airport/airport_2.jpg": ("many white airplanes parked at an airport apron", "planes stand near a terminal building"),
    "Beach/beach_1.jpg": ("a sandy beach with white waves of the sea", "waves break on a long yellow sand beach " + SCRIPT),
    "Beach/beach_2.jpg": ("a narrow beach between dark sea water and sand", "the shore of a calm sea with a sand strip"),
    "Bridge/bridge_1.jpg": ("a highway bridge crosses a green river", "two roads on a bridge over the water with cars"),
    "Bridge/bridge_2.jpg": ("a long bridge spans a wide river with trees", "a river crossed by a bridge near the bank"),
    "Forest/forest_1.jpg": ("a dense dark green forest with a curved dirt road", "a red earth track through thick trees"),
    "Forest/forest_2.jpg": ("a dense forest of dark trees", "thick woodland canopy covers the whole area"),
}
VIEWS = ("in the centre of the scene", "seen from directly above", "filling most of the image", "in clear daylight",
         "with sharp detail")
SIDES = ("North", "South", "East", "West", "Centre")
HUMAN = {"Airport": ["many planes are parked in an airport", "an airport with a terminal & runways " + SCRIPT],
         "Beach": ["yellow beach near the blue ocean", "white waves on the beach"],
         "Bridge": ["a bridge is over a river", "a bridge with cars on it crosses the river"],
         "Forest": ["many green trees form a dense forest", "a forest with a road through it"]}


def aid_images_dir() -> Path:
    """AID-150's images in the benchmark mirror; the test is skipped with the reason when they are not here."""
    mirror = shared_mirror_dir()
    folder = mirror / "aid150" / "images" if mirror else None
    if folder is None or not all((folder / image_id).is_file() for image_id in PHRASES):
        pytest.skip(f"AID-150 images not found (looked in {folder or 'RSRT_MIRROR_DIR / ../shared/data'}/aid150/images); "
                    "set RSRT_MIRROR_DIR to the benchmark mirror")
    return folder


def copy_images(target: Path) -> Path:
    """The eight AID-150 files copied into target/<Class>/<file> (a scratch folder, never the repository)."""
    source = aid_images_dir()
    for image_id in PHRASES:
        (target / image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / image_id, target / image_id)
    return target


def build_sample_collection(images_dir: Path, index_root: Path, work: Path) -> str:
    """Collection COLLECTION over images_dir, captioned by the import captioner, embedded by feature hashing."""
    from rsrt_utils.search.build import build_collection

    corpus = work / "corpus.jsonl"
    lines = (json.dumps({"image_id": i, "variants": [v.model_dump() for v in variants(i)]}) + "\n" for i in PHRASES)
    corpus.write_text("".join(lines), encoding="utf-8")
    build_collection(images_dir, COLLECTION, captioner={"backend": "import", "path": str(corpus)},
                     encoder="hashing:4096", root=index_root, progress=False)
    return COLLECTION


def variants(image_id: str) -> list[Variant]:
    """Five distinct structured variants of one image, built from its two phrases."""
    first, second = PHRASES[image_id]
    return [Variant(one_sentence=(first, second)[k % 2].capitalize() + ".", feature=f"{SIDES[k]}: {second}.",
                    caption=f"{first.capitalize()}, {VIEWS[k]}. {second.capitalize()}.") for k in range(5)]


def write_study_run(outputs_root: Path, images_dir: Path, run: str = RUN) -> Path:
    """A study run's audit folder as prepare_audit writes it: audit_items.json, audit_sheet.html and an empty
    scoring_sheet.csv."""
    images, captions, owners = [], [], []
    for n, image_id in enumerate(PHRASES):
        scene_class = image_id.split("/")[0].lower()
        images.append(ImageRecord(image_id, scene_class, "test", images_dir / image_id))
        captions += HUMAN[image_id.split("/")[0]]
        owners += [n, n]
    dataset = Dataset("aid-sample", "test", images, captions, np.array(owners))
    items = audit.build_audit_items(dataset, {i: variants(i) for i in PHRASES}, list(range(len(images))))
    folder = outputs_root / run / "audit"
    sheet = audit.audit_sheet(items, f"Caption audit: {run}", dataset.coverage_note(),
                              pixel_note="Pixels: the 150×150 AID-150 scene.", all_classes=dataset.image_classes)
    audit.write_audit_items(sheet, folder / "audit_items.json")
    audit_sheets.write_audit_sheet_html(sheet, folder / "audit_sheet.html")
    audit_scoring.write_scoring_sheet(items, folder / "scoring_sheet.csv")
    return folder


NEIGHBOUR_COLLECTION = "aid-neighbour"


def neighbour_captioner(images_dir: Path) -> dict:
    """The neighbour captioner on a tiny bank: the eight images as TRAIN images, five captions each, k = 1."""
    from rsrt_utils.captioning.neighbour import TrainBank
    from rsrt_utils.encoders import make_text_encoder

    records, captions, owners = [], [], []
    for n, image_id in enumerate(PHRASES):
        scene = image_id.split("/")[0]
        first, second = PHRASES[image_id]
        records.append(ImageRecord(image_id, scene.lower(), "train", images_dir / image_id))
        captions += [first, second, *HUMAN[scene], f"{scene.lower()} scene: {first}"]
        owners += [n] * 5
    bank = TrainBank.from_dataset(Dataset("aid-bank", "train", records, captions, np.array(owners)))
    return {"backend": "neighbour", "bank": bank, "text_encoder": make_text_encoder("hashing:4096"), "k": 1,
            "class_vote_k": 0}


def build_neighbour_collection(images_dir: Path, index_root: Path):
    """Collection NEIGHBOUR_COLLECTION (searchable by image) and the caption backend the app needs for it."""
    from rsrt_utils.captioning.api import build_backend
    from rsrt_utils.search.build import build_collection
    from rsrt_utils.search.layout import captioner_config

    config = neighbour_captioner(images_dir)
    build_collection(images_dir, NEIGHBOUR_COLLECTION, captioner=config, encoder="hashing:4096", root=index_root,
                     progress=False)
    return build_backend(captioner_config(config))

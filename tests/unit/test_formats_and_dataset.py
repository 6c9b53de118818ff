"""Every annotation format from tiny handmade files; detection, errors, Dataset re-indexing, validation report."""

from __future__ import annotations

import numpy as np
import pytest
from foundation_helpers import (
    make_dataset,
    write_amfmn_per_caption,
    write_amfmn_per_image,
    write_json,
    write_karpathy,
    write_lines,
)

from rsrt_utils.data import (
    AnnotationFormatError,
    Dataset,
    detect_format,
    load_dataset,
    read_annotations,
    scene_class_of,
    validation_report,
)
from rsrt_utils.data.formats import read_amfmn_precomp

TEST_IMAGES = {"airport_1.jpg": ["a plane", "two planes"], "beach_2.jpg": ["sand and sea", "waves"]}
FIVE = {f"farmland_{i}.jpg": [f"field {i} caption {k}" for k in range(5)] for i in range(3)}


def _as_tuples(raw):
    return [(r.filename, r.split, r.captions) for r in raw]


def test_amfmn_one_filename_per_caption(tmp_path):
    folder = write_amfmn_per_caption(tmp_path / "p", "test", TEST_IMAGES)
    assert detect_format(folder) == "amfmn-precomp"
    assert _as_tuples(read_annotations(folder, "test")) == [
        ("airport_1.jpg", "test", ["a plane", "two planes"]), ("beach_2.jpg", "test", ["sand and sea", "waves"])]


def test_amfmn_one_filename_per_image(tmp_path):
    folder = write_amfmn_per_image(tmp_path / "p", "train", FIVE)
    raw = read_annotations(folder, "train")
    assert [r.filename for r in raw] == list(FIVE)
    assert raw[1].captions == [f"field 1 caption {k}" for k in range(5)]  # lines 5..9


def test_amfmn_strips_whitespace_and_crlf(tmp_path):
    folder = tmp_path / "p"
    (folder).mkdir()
    (folder / "test_caps.txt").write_bytes(b"  a plane \r\nwaves\r\n")
    (folder / "test_filename.txt").write_bytes(b"a_1.jpg\r\nb_2.jpg\r\n")
    assert _as_tuples(read_amfmn_precomp(folder, "test")) == [("a_1.jpg", "test", ["a plane"]), ("b_2.jpg", "test", ["waves"])]


def test_amfmn_inconsistent_counts(tmp_path):
    folder = tmp_path / "p"
    write_lines(folder / "test_caps.txt", [f"c{i}" for i in range(7)])
    write_lines(folder / "test_filename.txt", ["a_1.jpg", "b_1.jpg", "c_1.jpg"])
    with pytest.raises(AnnotationFormatError, match="7 caption lines and 3 filename lines"):
        read_annotations(folder, "test")


def test_amfmn_missing_split_file(tmp_path):
    folder = write_amfmn_per_caption(tmp_path / "p", "test", TEST_IMAGES)
    with pytest.raises(AnnotationFormatError, match="train_caps.txt"):
        read_annotations(folder, "train")


def test_karpathy_json(tmp_path):
    path = write_karpathy(tmp_path / "dataset_rsicd.json", [
        ("a_1.jpg", "train", ["x"]), ("b_2.jpg", "val", ["y "]), ("c_3.jpg", "test", ["z", "w"])])
    assert detect_format(path) == "karpathy-json"
    assert _as_tuples(read_annotations(path, "test")) == [("c_3.jpg", "test", ["z", "w"])]
    # 'train' includes 'val' (as in AMFMN's merged train)
    assert [r.filename for r in read_annotations(path, "train")] == ["a_1.jpg", "b_2.jpg"]
    assert read_annotations(path, "train")[1].captions == ["y"]


def test_karpathy_entry_without_sentences(tmp_path):
    path = write_json(tmp_path / "dataset_x.json", {"images": [{"filename": "a.jpg", "split": "test"}]})
    with pytest.raises(AnnotationFormatError, match="sentences"):
        read_annotations(path, "test")


def test_record_list_split_captions_file_path(tmp_path):
    path = write_json(tmp_path / "t.json", [
        {"split": "test", "captions": ["one", "two"], "file_path": "images/dir/a_1.tif", "id": 0},
        {"split": "train", "captions": ["three"], "file_path": "images/b_2.tif", "id": 1}])
    assert detect_format(path) == "record-list"
    assert _as_tuples(read_annotations(path, "test")) == [("a_1.tif", "test", ["one", "two"])]


def test_record_list_image_caption_without_split(tmp_path):
    path = write_json(tmp_path / "r.json", [{"image": "a_1.jpg", "caption": ["p", "q"]}, {"image": "b_1.jpg", "caption": "r"}])
    assert _as_tuples(read_annotations(path, "test")) == [("a_1.jpg", "test", ["p", "q"]), ("b_1.jpg", "test", ["r"])]


def test_record_without_name_names_its_keys(tmp_path):
    path = write_json(tmp_path / "r.json", [{"caption": ["p"], "split": "test", "tokens": []}])
    with pytest.raises(AnnotationFormatError, match=r"record 0 has keys \['caption', 'split', 'tokens'\]"):
        read_annotations(path, "test")


def test_split_absent_names_the_splits_found(tmp_path):
    path = write_json(tmp_path / "r.json", [{"split": "train", "captions": ["p"], "file_path": "a.jpg"}])
    with pytest.raises(AnnotationFormatError, match=r"no images in split 'test'.*\['train'\]"):
        read_annotations(path, "test")


@pytest.mark.parametrize("name, content, pattern", [
    ("notes.txt", "hello", r"unknown annotation file type '\.txt'"),
    ("d.json", '{"annotations": []}', r"neither a Karpathy dict.*starts with"),
    ("missing.json", None, "does not exist"),
])
def test_unknown_formats(tmp_path, name, content, pattern):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnnotationFormatError, match=pattern):
        detect_format(path)


def test_folder_without_pairs_lists_what_it_found(tmp_path):
    write_lines(tmp_path / "p" / "test_caps.txt", ["x"])
    (tmp_path / "p" / "readme.md").write_text("x")
    with pytest.raises(AnnotationFormatError, match=r"found \['readme.md', 'test_caps.txt'\]"):
        detect_format(tmp_path / "p")


def test_load_dataset_from_annotations_and_images_dir(tmp_path):
    folder = write_amfmn_per_caption(tmp_path / "p", "test", {**TEST_IMAGES, "00017.jpg": ["numeric", ""]})
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "beach_2.jpg").write_bytes(b"\xff\xd8")
    ds = load_dataset("mine", "test", annotations=folder, images_dir=tmp_path / "img")
    assert ds.image_ids == ["airport_1.jpg", "beach_2.jpg", "00017.jpg"]
    assert ds.image_classes == ["airport", "beach", "unlabelled"]
    assert ds.captions == ["a plane", "two planes", "sand and sea", "waves", "numeric"]  # the blank is dropped
    assert ds.caption_image_index.tolist() == [0, 0, 1, 1, 2]
    assert ds.notes == ["dropped 1 blank caption(s)"]
    assert [im.image_path for im in ds.images] == [None, tmp_path / "img" / "beach_2.jpg", None]
    kept = load_dataset("mine", "test", annotations=folder, drop_blank=False)
    assert len(kept.captions) == 6 and kept.notes == []


def test_load_dataset_rejects_duplicate_images(tmp_path):
    path = write_json(tmp_path / "r.json", [{"image": "a_1.jpg", "caption": ["p"]}, {"image": "a_1.jpg", "caption": ["q"]}])
    with pytest.raises(AnnotationFormatError, match="appears twice"):
        load_dataset("mine", "test", annotations=path)


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="not known"):
        load_dataset("coco", "test", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_dataset("rsitmd", "val", root=tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset("rsitmd", "test", root=tmp_path / "nowhere")


def _three() -> Dataset:
    return make_dataset([["a0", "a1"], ["b0"], ["c0", "c1", "c2"]], ["x_1.jpg", "y_2.jpg", "z_3.jpg"])


def test_subset_reorders_and_reindexes():
    sub = _three().subset([2, 0], note="picked")
    assert sub.image_ids == ["z_3.jpg", "x_1.jpg"]
    assert sub.captions == ["c0", "c1", "c2", "a0", "a1"]
    assert sub.caption_image_index.tolist() == [0, 0, 0, 1, 1]
    assert sub.notes == ["picked"]
    assert sub.captions_by_image() == [["c0", "c1", "c2"], ["a0", "a1"]]


def test_subset_of_interleaved_captions_keeps_caption_order():
    ds = Dataset("t", "test", _three().images, ["c0", "a0", "b0", "c1", "a1"], np.array([2, 0, 1, 2, 0]))
    sub = ds.subset([0, 2])
    assert sub.captions == ["a0", "a1", "c0", "c1"] and sub.caption_image_index.tolist() == [0, 0, 1, 1]


def test_with_images_and_without_blank_captions(tmp_path):
    ds = _three()
    ds.images[1] = type(ds.images[1])("y_2.jpg", "y", "test", tmp_path / "y_2.jpg")
    with_px = ds.with_images()
    assert with_px.image_ids == ["y_2.jpg"] and with_px.captions == ["b0"]
    assert with_px.caption_image_index.tolist() == [0]
    assert with_px.notes == ["restricted to 1 of 3 images that have pixels"]
    blanks = make_dataset([["a", " "], ["", "b"]])
    clean = blanks.without_blank_captions()
    assert clean.captions == ["a", "b"] and clean.caption_image_index.tolist() == [0, 1]
    assert clean.notes == ["dropped 2 blank caption(s)"]
    assert clean.without_blank_captions() is clean


def test_dataset_length_mismatch():
    with pytest.raises(ValueError, match="2 captions but 1"):
        Dataset("t", "test", [], ["a", "b"], np.array([0]))


@pytest.mark.parametrize("name, expected", [
    ("denseresidential_12.jpg", "denseresidential"), ("Airport_3.JPG", "airport"), ("00012.jpg", "unlabelled"),
    ("123_4.jpg", "unlabelled"), ("noclass.jpg", "unlabelled"), ("dir/baseball_field_1.tif", "baseball")])
def test_scene_class_of(name, expected):
    assert scene_class_of(name) == expected


def test_validation_report_counts():
    ds = make_dataset([["A cat.", "a cat. ", "dog"], ["A cat.", "", "tree"], ["dog", "sun", "moon"]],
                      ["p_1.jpg", "p_2.jpg", "q_3.jpg"], name="rsitmd")
    report = validation_report(ds, raw_blank_captions=4)
    assert report["n_images"] == 3 and report["n_captions"] == 9
    assert report["blank_captions"] == 1
    assert report["distinct_captions"] == 6  # a cat., dog, '', tree, sun, moon
    assert report["duplicate_captions_within_images"] == 1  # image 0: 'A cat.' ~ 'a cat. '
    assert report["captions_shared_across_images"] == 2  # 'a cat.' (images 0, 1) and 'dog' (0, 2)
    assert report["instances_of_shared_captions"] == 5  # 3 x 'a cat.' + 2 x 'dog'
    assert report["max_images_sharing_a_caption"] == 2
    assert report["matches_standard"] is False and report["standard"] == {"images": 452, "captions": 2260}
    assert report["captions_per_image"] == {3: 3} and report["scene_classes"] == 2
    assert report["blank_captions_in_source"] == 4


def test_validation_report_standard_match_and_non_test():
    groups = [[f"c{i}-{k}" for k in range(5)] for i in range(452)]
    ok = validation_report(make_dataset(groups, name="rsitmd"))
    assert ok["matches_standard"] is True and ok["captions_shared_across_images"] == 0
    assert validation_report(make_dataset(groups, name="rsitmd", split="train"))["matches_standard"] is None
    assert validation_report(make_dataset(groups, name="custom"))["matches_standard"] is None

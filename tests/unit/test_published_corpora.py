"""Published corpora (free-form VLM descriptions, 1..N per image) on tiny files the tests write."""

from __future__ import annotations

import hashlib
import json

import pytest

from rsrt_utils.captioning.corpus import CorpusStore, load_variants, load_variants_union
from rsrt_utils.captioning.importer import import_corpus
from rsrt_utils.captioning.parsing import ParseError, parse_variants
from rsrt_utils.captioning.published_import import build_published_corpus, read_published_descriptions
from rsrt_utils.captioning.schema import Variant
from rsrt_utils.data import published_corpora as published
from rsrt_utils.data.registry import DATASETS_INFO
from rsrt_utils.scoring import split_sentences, variant_texts

RSICD_IDS = ["airport_1.jpg", "beach_2.jpg", "church_3.jpg", "00017.jpg"]
LINES = [
    "rsicd_airport_1.jpg An airport with two runways. Planes are parked near the terminal.",
    "rsitmd_airport_1.png Not for RSICD.",
    "ucm_tennis_7.tif Not for RSICD either.",
    "rsicd_beach_2.jpg A sandy beach beside the sea.",
    "rsicd_beach_2.jpg A second description: waves reach the sand.",
    "rsicd_beach_2.jpg A sandy beach beside the sea.",
    "rsicd_harbour_9.jpg A name that matches no test image.",
    "rsicd_church_3.jpg",
    "",
    "rsicd_00017.jpg Houses along a road.",
]


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_descriptions_are_read_as_written_and_problems_reported(tmp_path):
    found, report = read_published_descriptions(write(tmp_path / "c.txt", LINES), "rsicd_", RSICD_IDS, "toy", "rsicd")
    assert found == {"airport_1.jpg": ["An airport with two runways. Planes are parked near the terminal."],
                     "beach_2.jpg": ["A sandy beach beside the sea.", "A second description: waves reach the sand."],
                     "00017.jpg": ["Houses along a road."]}
    reasons = dict(report.bad_lines)
    assert sorted(reasons) == [6, 7, 8]
    assert "same description again (first on line 4)" in reasons[6]
    assert "'harbour_9.jpg' matches no image" in reasons[7] and "no description text" in reasons[8]
    assert report.other_datasets == 2 and report.images == 3 and report.descriptions == 4
    assert report.uncovered == ["church_3.jpg"]
    assert "3 of 4 images" in report.text() and "church_3.jpg" in report.text()


def test_rsitmd_names_match_on_the_stem(tmp_path):
    found, report = read_published_descriptions(write(tmp_path / "c.txt", LINES), "rsitmd_", ["airport_1.tif"])
    assert found == {"airport_1.tif": ["Not for RSICD."]} and report.bad_lines == []


@pytest.fixture
def toy_registry(tmp_path, monkeypatch):
    """A registry entry for a tiny published file in a temporary store."""
    store = tmp_path / "store"
    (store / "vlm_captions").mkdir(parents=True)
    source = write(store / "vlm_captions/toy.txt", LINES)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    entry = published.PublishedCorpus("toy", "Toy-VL", "someone/toy@" + "0" * 40, "toy.txt", "vlm_captions/toy.txt",
                                      sha, source.stat().st_size)
    monkeypatch.setitem(published.PUBLISHED_CORPORA, "toy", entry)
    for name in ("rsicd", "rsitmd"):  # the dataset records say which corpora describe their images, and how
        monkeypatch.setitem(DATASETS_INFO[name].published_corpora, "toy", f"{name}_")
    monkeypatch.setenv("RSRT_CACHE_DIR", str(tmp_path / "cache"))
    return store


def test_published_corpus_becomes_description_records_once(toy_registry):
    path, report = build_published_corpus("toy", "rsicd", "test", RSICD_IDS, toy_registry)
    variants = load_variants(path)
    assert [v.caption for v in variants["beach_2.jpg"]] == ["A sandy beach beside the sea.",
                                                           "A second description: waves reach the sand."]
    assert all(not v.is_structured and v.present_fields() == ("caption",) for vs in variants.values() for v in vs)
    records = list(CorpusStore(path).records())
    assert len(records) == 3 and {r.backend for r in records} == {"published"}
    assert records[0].label == published.PUBLISHED_LABEL and records[0].settings["source_sha256"] == published.PUBLISHED_CORPORA["toy"].sha256
    again, _ = build_published_corpus("toy", "rsicd", "test", RSICD_IDS, toy_registry)
    assert again == path and len(list(CorpusStore(path).records())) == 3  # nothing written twice
    assert report.uncovered == ["church_3.jpg"]


def test_published_corpus_refuses_a_changed_file_and_the_train_split(toy_registry):
    with pytest.raises(ValueError, match="test images only"):
        build_published_corpus("toy", "rsicd", "train", RSICD_IDS, toy_registry)
    (toy_registry / "vlm_captions/toy.txt").write_text(LINES[0] + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not the pinned"):
        build_published_corpus("toy", "rsicd", "test", RSICD_IDS, toy_registry)
    with pytest.raises(ValueError, match="not known; choose from"):
        build_published_corpus("gpt5", "rsicd", "test", RSICD_IDS, toy_registry)


def test_several_corpora_give_the_union_of_their_descriptions(tmp_path):
    for name, rows in (("a", [("x.jpg", ["x from a"]), ("y.jpg", ["y from a"])]), ("b", [("x.jpg", ["x from b", "x again b"])])):
        lines = [json.dumps({"image_id": i, "descriptions": d}) for i, d in rows]
        write(tmp_path / f"{name}.jsonl", lines)
        import_corpus(tmp_path / f"{name}.jsonl", tmp_path / f"{name}-store.jsonl", format="plain")
    union = load_variants_union([tmp_path / "a-store.jsonl", tmp_path / "b-store.jsonl"])
    assert [v.caption for v in union["x.jpg"]] == ["x from a", "x from b", "x again b"]
    assert [v.caption for v in union["y.jpg"]] == ["y from a"]


def test_a_description_is_not_a_structured_variant():
    description = Variant.description("A field. Trees around it.")
    assert description.text("all") == description.text("caption") == "A field. Trees around it."
    with pytest.raises(ValueError, match="no 'one_sentence' field; use field 'caption' or 'all'"):
        description.text("one_sentence")
    five = [{"one_sentence": f"s{i}", "feature": f"f{i}", "caption": f"c{i}"} for i in range(4)] + [{"caption": "only"}]
    with pytest.raises(ParseError, match='variant 5, field "one_sentence": is missing'):
        parse_variants(five)


def test_sentence_granularity_splits_each_variant():
    assert split_sentences("A runway. Two planes! Is it busy? yes. 3 hangars.") == \
        ["A runway.", "Two planes!", "Is it busy? yes.", "3 hangars."]
    assert split_sentences("no full stop") == ["no full stop"]
    variants = [Variant.description("One. Two."), Variant.description("Three.")]
    assert variant_texts(variants, "caption", "sentences") == ["One.", "Two.", "Three."]
    assert variant_texts(variants, "caption", "paragraph") == ["One. Two.", "Three."]

"""Importing existing corpora (the authors' RSRT JSONL and the plain layout), with line-numbered errors."""

import json

import pytest

from rsrt_utils.captioning.api import make_caption_backend
from rsrt_utils.captioning.backend import CaptionRequest
from rsrt_utils.captioning.corpus import CorpusStore, load_variants
from rsrt_utils.captioning.importer import import_corpus, read_import_file
from rsrt_utils.commands.caption import add_caption_subcommands


def variants(tag, n=5):
    return [{"one_sentence": f"{tag} s{i}", "feature": f"{tag} f{i}", "caption": f"{tag} c{i}"} for i in range(n)]


def write_lines(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_rsrt_layout_with_its_variations(tmp_path):
    answer_text = "```json\n" + json.dumps({"variants": variants("d")}) + "\n```"
    source = write_lines(tmp_path / "rsrt.jsonl", [
        {"image": "data/rsitmd/images/pond_1.tif", "variants": variants("a"), "model": "gpt-4.1"},
        {"image_name": "pond_2.tif", "response": {"variants": variants("b")}},
        {"filename": "C:\\imgs\\pond_3.tif", "output": variants("c")},
        {"image": "pond_4.tif", "response": answer_text},
        {"image": "pond_5.tif", "text": variants("e")[0]},
        *[{"image": "pond_5.tif", "one_sentence_caption": v["one_sentence"], "feature_analysis": v["feature"],
           "caption": v["caption"]} for v in variants("e")[1:]],
    ])
    report = import_corpus(source, tmp_path / "c.jsonl", format="rsrt", model="gpt-4.1")
    assert report.imported == 5 and report.bad_lines == []
    loaded = load_variants(tmp_path / "c.jsonl")
    assert sorted(loaded) == ["pond_1.tif", "pond_2.tif", "pond_3.tif", "pond_4.tif", "pond_5.tif"]
    assert loaded["pond_4.tif"][0].one_sentence == "d s0" and loaded["pond_5.tif"][4].caption == "e c4"
    record = next(CorpusStore(tmp_path / "c.jsonl").records())
    assert record.backend == "import" and record.model == "gpt-4.1" and record.settings["source_file"] == "rsrt.jsonl"


def test_bad_lines_are_reported_with_numbers(tmp_path):
    source = write_lines(tmp_path / "bad.jsonl", [
        {"image": "a.tif", "variants": variants("a")},
        "{not json",
        {"image": "b.tif", "variants": variants("b", 4)},
        {"variants": variants("c")},
        {"image": "d.tif", "variants": variants("d")[:4] + [variants("d")[0]]},
        {"image": "a.tif", "variants": variants("z")},
        {"image": "e.tif", "response": "I cannot see the image."},
    ])
    report = import_corpus(source, tmp_path / "c.jsonl")
    reasons = dict(report.bad_lines)
    assert report.imported == 1 and sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "not valid JSON" in reasons[2] and "got 4" in reasons[3] and "no image name" in reasons[4]
    assert "duplicates" in reasons[5] and "first on line 1" in reasons[6] and "no valid JSON" in reasons[7]
    assert "line 3:" in report.text()


def test_plain_layout_reimport_and_known_ids(tmp_path):
    source = write_lines(tmp_path / "plain.jsonl", [{"image_id": "x.jpg", "variants": variants("x")},
                                                     {"image_id": "y.jpg", "variants": variants("y")},
                                                     {"image": "z.jpg", "variants": variants("z")}])
    report = import_corpus(source, tmp_path / "c.jsonl", format="plain", known_image_ids=["x.jpg"])
    assert report.imported == 1
    assert any("'y.jpg' is not in the dataset" in r for _, r in report.bad_lines)
    assert any("missing key(s) image_id" in r for _, r in report.bad_lines)
    again = import_corpus(source, tmp_path / "c.jsonl", format="plain", known_image_ids=["x.jpg"])
    assert again.imported == 0 and again.skipped_done == 1
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 1
    with pytest.raises(ValueError, match="'csv'"):
        read_import_file(source, "csv")
    with pytest.raises(FileNotFoundError, match="--in"):
        read_import_file(tmp_path / "nope.jsonl")


def test_import_backend_answers_from_the_file(tmp_path):
    source = write_lines(tmp_path / "plain.jsonl", [{"image_id": "x.jpg", "variants": variants("x")}])
    backend = make_caption_backend({"backend": "import", "path": source, "format": "plain"})
    answers = backend.answer_batch([CaptionRequest("x.jpg", None), CaptionRequest("q.jpg", None)], "variants")
    assert answers[0].variants[0].one_sentence == "x s0" and "not in the imported corpus" in answers[1].error
    with pytest.raises(ValueError, match="needs option"):
        make_caption_backend({"backend": "import"})


def test_cli_caption_import(tmp_path, capsys):
    import argparse
    source = write_lines(tmp_path / "rsrt.jsonl", [{"image": "a.tif", "variants": variants("a")}])
    parser = argparse.ArgumentParser()
    add_caption_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["caption-import", "--format", "rsrt", "--in", str(source), "--out", str(tmp_path / "c.jsonl")])
    assert args.func(args) == 0
    assert "imported 1 image(s)" in capsys.readouterr().out


def test_empty_input_is_an_error_not_a_success(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no image to import"):
        import_corpus(empty, tmp_path / "c.jsonl", format="plain")
    assert not (tmp_path / "c.jsonl").exists() or (tmp_path / "c.jsonl").stat().st_size == 0
    from rsrt_utils.cli import main

    assert main(["caption-import", "--format", "plain", "--in", str(empty), "--out", str(tmp_path / "d.jsonl")]) == 2
    assert "holds no image to import" in capsys.readouterr().err


def test_the_projects_own_failed_and_image_query_records_are_skipped_not_bad(tmp_path):
    from rsrt_utils.captioning.schema import CorpusRecord, Variant

    own = CorpusStore(tmp_path / "own.jsonl")
    common = dict(backend="openai-chat", model="gpt-4.1", prompt_version="v1")
    own.append(CorpusRecord(image_id="a.jpg", cache_key="k1", status="ok",
                            variants=[Variant(**v) for v in variants("a")], **common))
    own.append(CorpusRecord(image_id="b.jpg", cache_key="k2", status="failed", error="timeout", **common))
    own.append(CorpusRecord(image_id="a.jpg", cache_key="k3", status="ok", mode="image_query", query_text="q", **common))
    report = import_corpus(tmp_path / "own.jsonl", tmp_path / "c.jsonl", format="plain")
    assert report.imported == 1 and report.bad_lines == []
    assert report.skipped == {"failed record(s)": 1, "image_query record(s)": 1}
    assert "1 failed record(s) skipped" in report.text()
    assert [v.caption for v in load_variants(tmp_path / "c.jsonl")["a.jpg"]] == [f"a c{i}" for i in range(5)]


def test_plain_descriptions_take_one_to_n_free_texts(tmp_path):
    source = write_lines(tmp_path / "d.jsonl", [{"image_id": "x.jpg", "descriptions": ["one paragraph"]},
                                               {"image_id": "y.jpg", "descriptions": ["first", "second", "third"]},
                                               {"image_id": "z.jpg", "descriptions": []}])
    report = import_corpus(source, tmp_path / "c.jsonl", format="plain")
    assert report.imported == 2 and [n for n, _ in report.bad_lines] == [3]
    loaded = load_variants(tmp_path / "c.jsonl")
    assert [len(loaded["x.jpg"]), len(loaded["y.jpg"])] == [1, 3] and loaded["y.jpg"][2].caption == "third"

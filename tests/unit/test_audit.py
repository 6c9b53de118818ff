"""The hand-audit workflow: sampling, self-contained sheets, scoring sheets, agreement, automatic checks."""

from __future__ import annotations

import csv
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rsrt_utils.captioning.schema import Variant
from rsrt_utils.data.dataset import Dataset, ImageRecord
from rsrt_utils.study import audit, audit_scoring, audit_sheets, caption_checks, figures

SIZES = {"airport": 10, "beach": 6, "forest": 3, "port": 1}
SCRIPT = "<script>alert('x')</script>"


def make_dataset(tmp_path, sizes=SIZES, pixels=True) -> Dataset:
    images, captions, index = [], [], []
    for c, (scene_class, size) in enumerate(sizes.items()):
        for n in range(size):
            path = None
            if pixels:
                path = tmp_path / f"{scene_class}_{n}.jpg"
                Image.fromarray(np.full((24, 24, 3), 40 * c + n, dtype=np.uint8)).save(path)
            images.append(ImageRecord(f"{scene_class}_{n}.jpg", scene_class, "test", path))
            captions += [f"a {scene_class} with trees & roads", f"caption {n} {SCRIPT}"]
            index += [len(images) - 1] * 2
    return Dataset("toy", "test", images, captions, np.array(index))


def variants_for(image_id: str, n: int = 5) -> list[Variant]:
    return [Variant(one_sentence=f"{image_id} variant {k} <b>bold</b>", feature=f"Trees in the north {k}.",
                    caption=f"A long paragraph {k} about {image_id} & its roads.") for k in range(1, n + 1)]


# --------------------------------------------------------------------------------------------- sampling
def test_sampling_is_stratified_reproducible_and_proportional(tmp_path):
    dataset = make_dataset(tmp_path)
    chosen = audit.sample_for_audit(dataset, 8, seed=3)
    assert chosen == audit.sample_for_audit(dataset, 8, seed=3)
    assert len(set(chosen)) == 8
    per_class = Counter(dataset.images[i].scene_class for i in chosen)
    # 1 each, then 4 more split 9:5:2:0 -> floors 2,1,0,0 and the largest remainder (0.5) to forest
    assert per_class == {"airport": 3, "beach": 2, "forest": 2, "port": 1}
    other_seeds = {tuple(audit.sample_for_audit(dataset, 8, seed=s)) for s in range(5)}
    assert len(other_seeds) > 1


def test_sampling_fewer_images_than_classes_uses_largest_remainders(tmp_path):
    dataset = make_dataset(tmp_path)
    chosen = audit.sample_for_audit(dataset, 2, seed=0)
    assert sorted(dataset.images[i].scene_class for i in chosen) == ["airport", "beach"]


def test_sampling_all_images_and_bad_requests(tmp_path):
    dataset = make_dataset(tmp_path)
    assert audit.sample_for_audit(dataset, 20, seed=0) == list(range(20))
    with pytest.raises(ValueError, match="n_images=21"):
        audit.sample_for_audit(dataset, 21, seed=0)
    no_pixels = make_dataset(tmp_path, pixels=False)
    with pytest.raises(ValueError, match="only_with_pixels=False"):
        audit.sample_for_audit(no_pixels, 4, seed=0)
    assert len(audit.sample_for_audit(no_pixels, 4, seed=0, only_with_pixels=False)) == 4


# --------------------------------------------------------------------------------------------- sheets
@pytest.fixture
def items(tmp_path):
    dataset = make_dataset(tmp_path, sizes={"airport": 2, "beach": 1})
    corpus = {im.image_id: variants_for(im.image_id) for im in dataset.images}
    corpus["beach_0.jpg"] = [v.model_dump() for v in corpus["beach_0.jpg"]]  # plain dicts are accepted too
    return audit.build_audit_items(dataset, corpus, [0, 1, 2])


def test_build_items_names_missing_corpus_entries(tmp_path):
    dataset = make_dataset(tmp_path, sizes={"airport": 2})
    with pytest.raises(KeyError, match="airport_1.jpg"):
        audit.build_audit_items(dataset, {"airport_0.jpg": variants_for("a")}, [0, 1])


def test_html_sheet_is_self_contained_and_escaped(tmp_path, items):
    items[2].image_path = None  # one image without pixels
    sheet = audit.audit_sheet(items, "Audit <1>", "TOY test: 2 of 3")
    path = audit_sheets.write_audit_sheet_html(sheet, tmp_path / "sheet" / "audit.html")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, flags=re.I)
    assert "<link" not in text.lower() and "<script" not in text.lower()
    assert "&lt;script&gt;" in text and "&lt;b&gt;bold&lt;/b&gt;" in text and "Audit &lt;1&gt;" in text
    assert text.count('src="data:image/jpeg;base64,') == 2
    assert "no pixels for this image" in text
    for field in ("one_sentence", "feature", "caption"):
        assert f"<th>{field}</th>" in text
    assert text.count("<tr><td") == 15  # 3 images x 5 variants


def test_the_audit_is_handed_over_as_data_and_every_sheet_renders_from_it(tmp_path, items):
    items[2].image_path = None
    data = audit.write_audit_items(audit.audit_sheet(items, "Audit <1>", "TOY test: 2 of 3", pixel_note="note"),
                                   tmp_path / "audit_items.json")
    sheet = audit.read_audit_items(data)
    assert [i.image_id for i in sheet.items] == [i.image_id for i in items] and sheet.pixel_note == "note"
    assert [v.model_dump() for v in sheet.items[0].variants] == [v.model_dump() for v in items[0].variants]
    assert sheet.items[0].picture.startswith("data:image/jpeg;base64,") and sheet.items[2].picture is None
    assert sheet.items[0].checks["n_unsupported_words"] == items[0].checks["n_unsupported_words"]
    sheet.items[0].human_captions = ["edited in the data file"]  # what the renderers show comes from the data
    assert "edited in the data file" in audit_sheets.write_audit_sheet_html(sheet, tmp_path / "a.html").read_text()
    with pytest.raises(audit.ScoringSheetError, match="not an audit items file"):
        audit.read_audit_items(tmp_path / "a.html")


def test_png_audit_sheet_pages(tmp_path, items):
    paths = audit_sheets.plot_audit_sheet(audit.audit_sheet(items, "t", "c"), tmp_path / "png" / "audit.png", per_page=2)
    assert [p.name for p in paths] == ["audit_page01.png", "audit_page02.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000


def test_scoring_sheet_rows_columns_and_instructions(tmp_path, items):
    path = audit_scoring.write_scoring_sheet(items, tmp_path / "scores.csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image_id", "scene_class", "variant", "correct_objects", "hallucinated_objects",
                       "direction_errors", "completeness_1to5", "notes", "auditor"]
    assert len(rows) == 1 + 15
    assert rows[1][:3] == ["airport_0.jpg", "airport", "1"] and rows[-1][:3] == ["beach_0.jpg", "beach", "5"]
    assert all(cell == "" for row in rows[1:] for cell in row[3:])
    assert "completeness_1to5" in audit_scoring.scoring_instructions_path(path).read_text()


# --------------------------------------------------------------------------------------------- summaries
def fill_sheet(path, scores: dict[str, list], auditor: str, out) -> None:
    """Fill an empty sheet column-wise from lists (one value per row)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, values in scores.items():
        frame[column] = [str(v) for v in values]
    frame["auditor"] = auditor
    frame.to_csv(out, index=False)


SHEET_A = {"correct_objects": [1, 2, 3, 4, 5], "hallucinated_objects": [0, 0, 1, 1, 2],
           "direction_errors": [0, 1, 2, 3, 4], "completeness_1to5": [1, 2, 3, 4, 5]}
SHEET_B = {"correct_objects": [2, 3, 4, 5, 6], "hallucinated_objects": [0, 0, 1, 1, 2],
           "direction_errors": [4, 3, 2, 1, 0], "completeness_1to5": [1, 2, 3, 4, 4]}


@pytest.fixture
def one_image_sheet(tmp_path, items):
    return audit_scoring.write_scoring_sheet(items[:1], tmp_path / "empty.csv")


def test_identical_sheets_agree_perfectly(tmp_path, one_image_sheet):
    fill_sheet(one_image_sheet, SHEET_A, "ann", tmp_path / "a.csv")
    fill_sheet(one_image_sheet, SHEET_A, "bob", tmp_path / "b.csv")
    summary = audit_scoring.summarise_scoring_sheets([tmp_path / "a.csv", tmp_path / "b.csv"])
    agreement = summary["agreement"].set_index("score")
    assert (agreement["exact_agreement"] == 1.0).all() and (agreement["n_rows"] == 5).all()
    assert agreement.at["completeness_1to5", "kappa_quadratic"] == pytest.approx(1.0)
    assert agreement.at["correct_objects", "spearman"] == pytest.approx(1.0)
    assert list(summary["per_auditor"]["auditor"]) == ["ann", "bob"]


def test_constructed_disagreement_matches_hand_computation(tmp_path, one_image_sheet):
    fill_sheet(one_image_sheet, SHEET_A, "ann", tmp_path / "a.csv")
    fill_sheet(one_image_sheet, SHEET_B, "bob", tmp_path / "b.csv")
    summary = audit_scoring.summarise_scoring_sheets([tmp_path / "a.csv", tmp_path / "b.csv"])
    agreement = summary["agreement"].set_index("score")
    # completeness 1..5 vs 1,2,3,4,4: sum(W*O) = 1/16, sum(W*E) = 85/80, kappa = 1 - 1/17 = 16/17
    assert agreement.at["completeness_1to5", "kappa_quadratic"] == pytest.approx(16 / 17)
    assert agreement.at["completeness_1to5", "exact_agreement"] == pytest.approx(0.8)
    assert agreement.at["correct_objects", "exact_agreement"] == 0.0
    assert agreement.at["correct_objects", "pearson"] == pytest.approx(1.0)
    assert agreement.at["direction_errors", "spearman"] == pytest.approx(-1.0)
    assert agreement.at["direction_errors", "exact_agreement"] == pytest.approx(0.2)
    assert agreement.at["hallucinated_objects", "exact_agreement"] == 1.0
    assert np.isnan(agreement.at["correct_objects", "kappa_quadratic"])
    per_variant = summary["per_variant"].set_index("variant")
    assert per_variant.at[5, "completeness_1to5"] == pytest.approx(4.5)
    assert per_variant.at[1, "correct_objects"] == pytest.approx(1.5)
    assert summary["per_class"].at[0, "n_rows"] == 10
    assert summary["overall"].at[0, "direction_errors"] == pytest.approx(2.0)
    figures.plot_audit_summary(summary["per_variant"], path=tmp_path / "per_variant.png", coverage="TOY: 1 image")
    assert (tmp_path / "per_variant.png").read_bytes()[:4] == b"\x89PNG"


def test_quadratic_kappa_agrees_with_a_second_formula():
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 6, 200), rng.integers(1, 6, 200)
    # kappa_w = 1 - sum((a-b)^2) / (n * E[(A-B)^2] under independence)
    expected = np.mean([(x - y) ** 2 for x in a for y in b])
    manual = 1 - np.sum((a - b) ** 2) / (len(a) * expected)
    assert audit_scoring.quadratic_weighted_kappa(a, b) == pytest.approx(manual)


@pytest.mark.parametrize("column, value, message", [
    ("completeness_1to5", 6, "from 1 to 5"),
    ("hallucinated_objects", -1, "from 0 to 1000"),
    ("direction_errors", "two", "'two'"),
    ("correct_objects", "", "empty"),
])
def test_invalid_values_name_file_row_and_column(tmp_path, one_image_sheet, column, value, message):
    scores = {k: list(v) for k, v in SHEET_A.items()}
    scores[column][2] = value
    fill_sheet(one_image_sheet, scores, "ann", tmp_path / "bad.csv")
    with pytest.raises(audit.ScoringSheetError) as error:
        audit_scoring.summarise_scoring_sheets([tmp_path / "bad.csv"])
    text = str(error.value)
    assert "bad.csv" in text and "row 3" in text and "CSV line 4" in text and repr(column) in text and message in text


def test_sheets_with_different_rows_are_refused(tmp_path, one_image_sheet):
    fill_sheet(one_image_sheet, SHEET_A, "ann", tmp_path / "a.csv")
    fill_sheet(one_image_sheet, SHEET_A, "bob", tmp_path / "b.csv")
    frame = pd.read_csv(tmp_path / "b.csv").iloc[:4]
    frame.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(audit.ScoringSheetError, match="variant 5 is only in"):
        audit_scoring.summarise_scoring_sheets([tmp_path / "a.csv", tmp_path / "b.csv"])


def test_missing_column_is_named(tmp_path, one_image_sheet):
    pd.read_csv(one_image_sheet).drop(columns=["direction_errors"]).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(audit.ScoringSheetError, match="direction_errors"):
        audit_scoring.read_scoring_sheet(tmp_path / "c.csv")


# --------------------------------------------------------------------------------------------- automatic checks
def tiny_corpus_dataset():
    images = [ImageRecord("house_1.jpg", "house", "test"), ImageRecord("house_2.jpg", "house", "test"),
              ImageRecord("house_3.jpg", "house", "test")]
    captions = ["two trees near a white house", "a house with trees", "a house", "a house"]
    dataset = Dataset("toy", "test", images, captions, np.array([0, 0, 1, 2]))
    v1 = Variant(one_sentence="A house with trees.", feature="Trees in the north.", caption="A red house beside two trees.")
    v2 = Variant(one_sentence="A house with a pool.", feature="Pool in the west corner.", caption="A house and a pool.")
    v1_again = Variant(one_sentence="a HOUSE with  trees.", feature="Trees in the north.",
                       caption="A red house beside two trees.")
    return dataset, {"house_1.jpg": [v1, v2], "house_2.jpg": [v1, v1_again]}


def test_automatic_checks_hand_computed():
    dataset, corpus = tiny_corpus_dataset()
    checks = caption_checks.automatic_caption_checks(dataset, corpus).set_index("image_id")
    assert list(checks.index) == ["house_1.jpg", "house_2.jpg"]  # house_3 has no variants: skipped
    first = checks.loc["house_1.jpg"]
    assert first["mean_words_one_sentence"] == 4.5 and first["mean_words_feature"] == 4.5
    assert first["mean_words_caption"] == 5.5
    # word sets of 10 and 9 words sharing {a, house, with, in, the}: 1 - 5/14
    assert first["diversity"] == pytest.approx(9 / 14)
    assert first["n_duplicate_variants"] == 0
    # 'trees' is supported, 'north'/'west'/'corner' are direction words, 'two'/'beside' stopwords
    assert first["unsupported_words"] == ["pool", "red"] and first["n_unsupported_words"] == 2
    second = checks.loc["house_2.jpg"]
    assert second["n_duplicate_variants"] == 1 and second["diversity"] == 0.0
    assert second["unsupported_words"] == ["red", "trees"]  # this image's captions never mention trees

    summary = caption_checks.summarise_caption_checks(checks.reset_index())
    assert summary["means"].at[0, "n_unsupported_words"] == 2.0
    top = summary["top_unsupported_words"].set_index("word")
    assert top.at["red", "n_images"] == 2 and top.at["red", "share_of_images"] == 1.0
    assert top.index[0] == "red"


def test_plural_folding_and_content_words():
    assert caption_checks.singular("trees") == "tree" and caption_checks.singular("factories") == "factory"
    assert caption_checks.singular("grass") == "grass" and caption_checks.singular("houses") == "house"
    assert caption_checks.content_words("The river in the NORTH-west, two bridges") == ["river", "bridges"]


def test_automatic_checks_name_corpus_mismatch():
    dataset, _ = tiny_corpus_dataset()
    with pytest.raises(ValueError, match="none of the 3 images"):
        caption_checks.automatic_caption_checks(dataset, {"other.jpg": []})


def test_scene_class_words_named_or_another_class_named():
    classes = ["church", "denseresidential", "stadium", "storagetanks", "unlabelled"]
    assert caption_checks.class_mentions("Dense residential houses around a church.", "denseresidential", classes) == (True, ["church"])
    assert caption_checks.class_mentions("Two large tanks by a road.", "storagetanks", classes) == (True, [])
    assert caption_checks.class_mentions("A stadium with a running track.", "church", classes) == (False, ["stadium"])
    # a residential class word does not count as naming another residential class
    assert caption_checks.class_mentions("A residential area.", "denseresidential", classes + ["sparseresidential"]) == (True, [])


def test_description_corpus_sheet_flags_the_wrong_scene_at_a_glance(tmp_path):
    from rsrt_utils.captioning.schema import Variant

    item = audit.AuditItem(0, "church_1.jpg", "church", None, ["a church with a red roof"],
                           [Variant.description("A large stadium with a track and <b>stands</b>.")])
    sheet = audit.audit_sheet([item], "t", "c", pixel_note="model saw 224 px", all_classes=["church", "stadium"])
    html_text = audit_sheets.write_audit_sheet_html(sheet, tmp_path / "a.html").read_text()
    assert "scene class NOT named" in html_text and "names other classes: stadium" in html_text
    assert "<mark>stadium</mark>" in html_text and "&lt;b&gt;stands&lt;/b&gt;" in html_text
    assert "model saw 224 px" in html_text and "<th>description</th>" in html_text
    assert "<th>one_sentence</th>" not in html_text  # a description has no structured fields to show
    row = caption_checks.check_image_variants(item.variants, item.human_captions, "church", ["church", "stadium"])
    assert "mean_words_one_sentence" not in row and row["mean_words_caption"] == 8.0
    assert row["class_word_present"] is False and row["other_classes_named"] == ["stadium"]

"""Robust parsing of model answers into validated five-variant sets."""

import json

import pytest

from rsrt_utils.captioning.parsing import ParseError, extract_json, parse_query_text, parse_variants
from rsrt_utils.captioning.prompts import PROMPT_VERSION, prompt_for


def variants(n=5):
    return [{"one_sentence": f"scene {i}", "feature": f"north {i}", "caption": f"paragraph {i}"} for i in range(n)]


def answer(n=5):
    return json.dumps({"variants": variants(n)})


@pytest.mark.parametrize("text", [
    answer(),
    f"```json\n{answer()}\n```",
    f"```\n{answer()}\n```",
    f"Sure, here it is:\n{answer()}\nAnything else?",
    f"Here:\n```json\n{answer()}\n```\nDone.",
    json.dumps(variants()),
    json.dumps({"Variants": variants()}),
])
def test_valid_answers_are_recovered(text):
    result = parse_variants(text)
    assert [v.one_sentence for v in result.variants] == [f"scene {i}" for i in range(5)]


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("I cannot help with that.", "no valid JSON"),
    ('{"variants": [{"one_sentence": "a"', "no valid JSON"),
    (answer(4), "exactly 5 variants, got 4"),
    (answer(6), "exactly 5 variants, got 6"),
    (json.dumps({"variants": variants()[:4] + [variants()[1]]}), "variant 5 duplicates"),
    (json.dumps({"variants": variants()[:4] + [{"one_sentence": "x", "feature": "y", "caption": ""}]}),
     'variant 5, field "caption": is empty'),
    (json.dumps({"variants": variants()[:4] + [{"one_sentence": "x", "feature": 3, "caption": "z"}]}),
     'variant 5, field "feature": must be a string'),
    (json.dumps({"variants": variants()[:4] + [{"one_sentence": "x", "caption": "z"}]}), '"feature": is missing'),
    (json.dumps({"variants": variants()[:4] + ["just text"]}), "variant 5 must be a JSON object"),
    (json.dumps({"variants": "five of them"}), '"variants" must be a list'),
    (json.dumps({"captions": variants()}), 'no "variants" key (keys: captions)'),
    (json.dumps(variants()[0]), "single variant"),
])
def test_bad_answers_give_a_readable_reason(text, reason):
    with pytest.raises(ParseError) as error:
        parse_variants(text)
    assert reason in error.value.reason


def test_whitespace_only_field_counts_as_empty():
    bad = variants()
    bad[0]["caption"] = "   "
    with pytest.raises(ParseError, match="variant 1"):
        parse_variants(json.dumps(bad))


def test_extract_json_prefers_the_whole_text_then_fences():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('text ```json\n{"b": 2}\n``` text') == {"b": 2}


def test_query_text_strips_fences_and_rejects_empty():
    assert parse_query_text("  A large lake in the north.  ") == "A large lake in the north."
    assert parse_query_text("```\nA road.\n```") == "A road."
    with pytest.raises(ParseError, match="empty"):
        parse_query_text("   ")


def test_prompts_state_the_authors_rules():
    prompt = prompt_for("variants")
    for rule in ("top of the image is North", "bottom is South", "left is West", "right is East",
                 "exact percentages", "only what is actually visible", "exactly 5", "one_sentence", "feature", "caption"):
        assert rule in prompt
    assert "IMPORTANT" in prompt_for("variants", strict=True) and "IMPORTANT" not in prompt
    query = prompt_for("image_query")
    assert "North" in query and "qualitative size" in query and "visible" in query and "variants" not in query
    assert PROMPT_VERSION
    with pytest.raises(ValueError, match="image_query"):
        prompt_for("caption")


@pytest.mark.parametrize("broken, reason", [
    (answer(5).replace("]}", ",]}"), "invalid JSON (Expecting value"),  # a trailing comma in the list
    (answer(5)[: len(answer(5)) // 2], "the answer was cut off"),  # truncated in the middle
    ("Here you are: " + answer(5)[:-2], "the answer was cut off"),  # truncated, after prose
])
def test_broken_json_is_named_as_such_not_as_a_single_variant(broken, reason):
    with pytest.raises(ParseError) as error:
        parse_variants(broken)
    assert reason in error.value.reason and "single variant" not in error.value.reason

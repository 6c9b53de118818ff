"""Robust parsing of a model's answer into a validated `VariantSet` (or a query text).

Recovers JSON wrapped in ```json fences or surrounded by prose; accepts {"variants": [...]} or a bare
list; validates with the pydantic schema (five variants, no empty or duplicate field, strings only).
Every failure is a `ParseError` whose message says, in words, what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from .schema import N_VARIANTS, VARIANT_FIELDS, VariantSet

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_SNIPPET = 120


class ParseError(ValueError):
    """The answer could not be turned into a valid variant set; `reason` says why in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


def _candidates(text: str) -> list[str]:
    """Texts that may hold the JSON: the whole answer, then each fenced block."""
    return [text.strip()] + [block.strip() for block in _FENCE.findall(text)]


def _decode_embedded(text: str) -> Any | None:
    """The first JSON object or list found inside surrounding prose, if any."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, (dict, list)) and value:
            return value
    return None


def extract_json(text: str) -> Any:
    """The JSON value in a model answer: plain, inside ```json fences, or embedded in prose."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("the answer is empty")
    for candidate in _candidates(text):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    for candidate in _candidates(text):
        value = _decode_embedded(candidate)
        if value is not None:
            return value
    problem = json_problem(text)
    raise ParseError(f"no valid JSON object found in the answer{': ' + problem if problem else ''} "
                     f"(starts: {_snippet(text)!r})")


def json_problem(text: str) -> str | None:
    """Why the JSON in an answer (from its first { or [) is not valid; None if it is valid or there is none."""
    for candidate in _candidates(text):
        start = re.search(r"[\[{]", candidate)
        if start is None:
            continue
        candidate = candidate[start.start():]
        try:
            json.JSONDecoder().raw_decode(candidate)  # prose after a complete JSON value is fine
            return None
        except json.JSONDecodeError as error:
            if error.pos >= len(candidate) - 1 or error.msg.startswith("Unterminated"):
                return f"the answer was cut off: its JSON ends before it is complete ({error.msg})"
            return f"invalid JSON ({error.msg} at line {error.lineno} column {error.colno})"
    return None


def _variant_list(value: Any) -> list:
    """The list of variants in {"variants": [...]} or a bare list."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if key.strip().lower() == "variants":
                if not isinstance(item, list):
                    raise ParseError(f"\"variants\" must be a list, got {type(item).__name__}")
                return item
        if set(VARIANT_FIELDS) <= set(value):
            raise ParseError(f"the answer holds a single variant; expected a list of {N_VARIANTS}")
        raise ParseError(f"the JSON object has no \"variants\" key (keys: {', '.join(map(str, value)) or 'none'})")
    raise ParseError(f"expected a JSON object or list, got {type(value).__name__}")


def _describe_validation_error(error: ValidationError) -> str:
    """One readable sentence per problem, e.g. 'variant 2, field "caption": must not be empty'."""
    reasons = []
    for item in error.errors():
        loc = [part for part in item["loc"] if part != "variants"]
        where = []
        if loc and isinstance(loc[0], int):
            where.append(f"variant {loc[0] + 1}")
            loc = loc[1:]
        if loc:
            where.append(f"field \"{loc[0]}\"")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "string_too_short":
            message = "is empty"
        elif item["type"] == "missing":
            message = "is missing"
        elif item["type"] == "extra_forbidden":
            message = f"is not a known field (allowed: {', '.join(VARIANT_FIELDS)})"
        reasons.append(f"{', '.join(where)}: {message}" if where else message)
    return "; ".join(reasons)


def validate_variants(items: list) -> VariantSet:
    """Validate a list of variant dicts with the schema; raise ParseError with readable reasons."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ParseError(f"variant {i + 1} must be a JSON object, got {type(item).__name__}")
    try:
        return VariantSet(variants=items)
    except ValidationError as error:
        raise ParseError(_describe_validation_error(error)) from None


def parse_variants(answer: str | dict | list) -> VariantSet:
    """Parse a model answer (text, or already-decoded JSON) into a validated five-variant set."""
    value = extract_json(answer) if isinstance(answer, str) else answer
    try:
        return validate_variants(_variant_list(value))
    except ParseError:
        problem = json_problem(answer) if isinstance(answer, str) else None
        if problem:  # a fragment was recovered from broken JSON: the JSON is the problem, not the fragment
            raise ParseError(problem) from None
        raise


def parse_query_text(answer: str) -> str:
    """The image-query description: the answer's text without code fences; must not be empty."""
    if not isinstance(answer, str):
        raise ParseError(f"expected text, got {type(answer).__name__}")
    blocks = _FENCE.findall(answer)
    text = (blocks[0] if len(blocks) == 1 and not _FENCE.sub("", answer).strip() else answer).strip()
    if not text:
        raise ParseError("the description is empty")
    return text

"""The RSRT corpus schema: caption variants per image, validated with pydantic.

A *structured variant* has three fields (the authors' schema): `one_sentence`, `feature`, `caption`.
A *description* is a free-form text (e.g. a published VLM paragraph): a variant with only `caption`.
A model answer is five structured variants (`VariantSet`); a *corpus record* holds 1 to N variants of
one image, as they were written, plus everything needed to trace and cache it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

N_VARIANTS = 5
VARIANT_FIELDS = ("one_sentence", "feature", "caption")
FIELD_CHOICES = ("one_sentence", "feature", "caption", "all")


class Variant(BaseModel):
    """One caption variant: a one-sentence summary, visible features with directions, a paragraph
    (a free-form description has the paragraph alone)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    one_sentence: str | None = Field(None, min_length=1)
    feature: str | None = Field(None, min_length=1)
    caption: str = Field(min_length=1)

    @field_validator("one_sentence", "feature", "caption", mode="before")
    @classmethod
    def _must_be_text(cls, value):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"must be a string, got {type(value).__name__}")
        return value

    @classmethod
    def description(cls, text: str) -> "Variant":
        """A free-form description (one paragraph), recorded as what it is: no structured fields."""
        return cls(caption=text)

    @property
    def is_structured(self) -> bool:
        return self.one_sentence is not None and self.feature is not None

    def present_fields(self) -> tuple[str, ...]:
        return tuple(f for f in VARIANT_FIELDS if getattr(self, f) is not None)

    def text(self, field: str = "all") -> str:
        """The text that gets embedded: one field, or the fields joined (the authors' choice)."""
        if field == "all":
            return " ".join(getattr(self, f) for f in self.present_fields())
        if field not in VARIANT_FIELDS:
            raise ValueError(f"field {field!r} is not known; choose one of {', '.join(FIELD_CHOICES)}")
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"this variant is a free-form description with no {field!r} field; "
                             f"use field 'caption' or 'all' for description corpora")
        return value


class VariantSet(BaseModel):
    """The model's answer for one image: exactly `N_VARIANTS` distinct, complete structured variants."""

    model_config = ConfigDict(extra="ignore")
    variants: list[Variant]

    @model_validator(mode="after")
    def _check_quality(self):
        if len(self.variants) != N_VARIANTS:
            raise ValueError(f"expected exactly {N_VARIANTS} variants, got {len(self.variants)}")
        seen = set()
        for i, v in enumerate(self.variants):
            for name in VARIANT_FIELDS:
                if getattr(v, name) is None:
                    raise ValueError(f'variant {i + 1}, field "{name}": is missing')
            key = (v.one_sentence.lower(), v.feature.lower(), v.caption.lower())
            if key in seen:
                raise ValueError(f"variant {i + 1} duplicates an earlier variant")
            seen.add(key)
        return self


class CorpusRecord(BaseModel):
    """One line of a corpus JSONL file: one image, its variants (or its failure), and provenance."""

    model_config = ConfigDict(extra="forbid")
    image_id: str
    cache_key: str
    status: Literal["ok", "failed"]
    mode: Literal["variants", "image_query"] = "variants"
    variants: list[Variant] = Field(default_factory=list)
    query_text: str | None = None
    error: str | None = None
    backend: str
    model: str
    prompt_version: str
    settings: dict = Field(default_factory=dict)
    image_sha256: str | None = None
    usage: dict = Field(default_factory=dict)
    label: str | None = None
    created_at: str | None = None

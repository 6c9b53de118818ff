"""The RSRT corpus schema: five structured caption variants per image, validated with pydantic.

A *variant* has three fields (the authors' schema): `one_sentence`, `feature`, `caption`.
A *corpus record* is one image's answer plus everything needed to trace and cache it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

N_VARIANTS = 5
VARIANT_FIELDS = ("one_sentence", "feature", "caption")
FIELD_CHOICES = ("one_sentence", "feature", "caption", "all")


class Variant(BaseModel):
    """One caption variant: a one-sentence summary, visible features with directions, a paragraph."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    one_sentence: str = Field(min_length=1)
    feature: str = Field(min_length=1)
    caption: str = Field(min_length=1)

    @field_validator("one_sentence", "feature", "caption", mode="before")
    @classmethod
    def _must_be_text(cls, value):
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {type(value).__name__}")
        return value

    def text(self, field: str = "all") -> str:
        """The text that gets embedded: one field, or the three joined (the authors' choice)."""
        if field == "all":
            return " ".join([self.one_sentence, self.feature, self.caption])
        if field not in VARIANT_FIELDS:
            raise ValueError(f"field {field!r} is not known; choose one of {', '.join(FIELD_CHOICES)}")
        return getattr(self, field)


class VariantSet(BaseModel):
    """The model's answer for one image: exactly `N_VARIANTS` distinct, complete variants."""

    model_config = ConfigDict(extra="ignore")
    variants: list[Variant]

    @model_validator(mode="after")
    def _check_quality(self):
        if len(self.variants) != N_VARIANTS:
            raise ValueError(f"expected exactly {N_VARIANTS} variants, got {len(self.variants)}")
        seen = set()
        for i, v in enumerate(self.variants):
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

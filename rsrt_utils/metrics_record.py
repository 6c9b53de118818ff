"""The metrics.json record, typed: one schema every evaluation writes (the study, the oracle, the baselines) and every
reader reads (the report's summary.csv, the book, the app), and the registry of metrics beyond the protocol's own.

A new metric is one `Metric` in `METRICS` (its function and its type): `scoring.evaluate` computes it, the record
carries it, summary.csv and the book's front page show it (docs/contributing.md, "A metric"). A metrics.json without
a "schema" key is version 1, the layout below; a change that breaks a reader adds "schema": 2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, create_model

from .fileutil import write_json_atomic

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Metric:
    """A figure beyond recalls and mR: computed from the two score matrices by `compute(t2i, i2t, caption_image_index,
    ties)`, averaged over the oracle's rounds when it is a number, and shown as a column named `name`."""

    name: str
    compute: Callable[..., Any]
    type: Any = float
    description: str = ""
    summary: bool = True  # a column of summary.csv and of the book's front page


METRICS: list[Metric] = []  # the metrics every evaluation adds (none by default: the default record stays as it is)


class _Record(BaseModel):
    """The layout of version 1, in the order the file holds it (the fields after `params` come from the study)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    split: str
    n_images: int
    n_queries: dict | None = None
    captioner: str
    encoder: str | None = None
    pooling: str
    coverage: str = ""
    label: str | None = None
    t2i: dict[str, float]
    i2t: dict[str, float]
    mR: float
    mR_t2i: float | None = None  # each direction's mean of R@1/5/10 (before these, records had only mR)
    mR_i2t: float | None = None
    ci95: dict
    ci95_caption_level: dict | None = None
    ties: str | None = None
    per_class: list[dict] | None = None
    per_k: list[dict] | None = None
    mR_ties_random: float | None = None
    mR_ties_pessimistic: float | None = None
    mR_ties_optimistic: float | None = None
    mR_duplicates_relevant: float | None = None
    missing_captions: int | None = None
    fusion: dict | None = None
    params: dict = {}
    run_name: str | None = None
    params_digest: str | None = None
    field: str | None = None
    schema_: int | None = None


@lru_cache(maxsize=None)
def _model(names: tuple[str, ...]) -> type[BaseModel]:
    extra = {m.name: (m.type | None, None) for m in METRICS if m.name in names}
    return create_model("MetricsRecord", __base__=_Record, **extra)


def record_model() -> type[BaseModel]:
    """The record's pydantic model: version 1's fields plus one per registered Metric."""
    return _model(tuple(m.name for m in METRICS))


def checked(record: dict) -> dict:
    """The record itself once the schema accepts it (ValueError naming the bad field): what is written is what was
    given, so the file's bytes do not depend on the checking."""
    from pydantic import ValidationError

    try:
        record_model().model_validate({("schema_" if k == "schema" else k): v for k, v in record.items()})
    except ValidationError as error:
        first = error.errors()[0]
        raise ValueError(f"metrics record: field {'.'.join(map(str, first['loc']))!r}: {first['msg']} "
                         f"(metrics_record.py declares every field; a new metric is a Metric in METRICS)") from None
    return record


def write_record(record: dict, path: Path | str) -> None:
    """Write a metrics.json once the schema accepts it."""
    write_json_atomic(checked(record), path)


def read_record(path: Path | str) -> dict:
    """A metrics.json, checked against the schema."""
    return checked(json.loads(Path(path).read_text(encoding="utf-8")))


def summary_metrics() -> list[str]:
    """The registered metrics shown as columns."""
    return [m.name for m in METRICS if m.summary]


def compute_metrics(t2i, i2t, caption_image_index, ties: str) -> dict:
    """Every registered metric of one evaluation."""
    return {m.name: m.compute(t2i, i2t, caption_image_index, ties) for m in METRICS}


def mean_metrics(results: list[dict]) -> dict:
    """The registered numeric metrics averaged over several evaluations (the oracle's rounds)."""
    return {m.name: round(sum(r[m.name] for r in results) / len(results), 2) for m in METRICS
            if results and all(isinstance(r.get(m.name), (int, float)) for r in results)}

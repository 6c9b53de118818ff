"""Ablations of the text-to-text method, each a table of mR with 95 % intervals, embeddings from the cache.

Axes: number of variants (1/3/5), pooling (max/mean/top2-mean), embedded field, text encoder,
captioner (every corpus available, plus the human-caption oracle as a ceiling).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data import Dataset
from ..encoders import available_offline_encoders
from ..evaluation import evaluate_text_to_text, human_caption_oracle
from .pipeline import StudyRun, gallery_texts, text_encoder


def _row(axis: str, setting, result: dict, **extra) -> dict:
    lo, hi = result["ci95"]["mR"]
    return {"axis": axis, "setting": str(setting), "mR": result["mR"], "ci_low": lo, "ci_high": hi,
            "t2i_R@1": result["t2i"]["R@1"], "i2t_R@1": result["i2t"]["R@1"], **extra}


def _evaluate(run: StudyRun, dataset: Dataset, encoder, field: str | None = None, n_variants: int | None = None,
              pooling: str | None = None, corpus_path: str | None = None) -> dict:
    r, e = run.params.retrieval, run.params.evaluation
    texts, _ = gallery_texts(run, dataset, field, n_variants, corpus_path)
    queries = None
    if r.n_query_variants and r.n_query_variants != (n_variants or r.n_variants):
        queries = gallery_texts(run, dataset, field, r.n_query_variants, corpus_path)[0]
    return evaluate_text_to_text(dataset, texts, encoder, pooling or r.pooling, queries, e.ties, e.n_boot, e.seed)


def ablate_n_variants(run: StudyRun, dataset: Dataset, encoder=None) -> pd.DataFrame:
    encoder = encoder or text_encoder(run)
    return pd.DataFrame([_row("n_variants", n, _evaluate(run, dataset, encoder, n_variants=n)) for n in run.params.ablations.n_variants])


def ablate_pooling(run: StudyRun, dataset: Dataset, encoder=None) -> pd.DataFrame:
    encoder = encoder or text_encoder(run)
    rows = []
    for pooling in run.params.ablations.poolings:
        if run.is_oracle:
            result = human_caption_oracle(dataset, encoder, pooling, run.params.evaluation.ties, run.params.evaluation.n_boot)
        else:
            result = _evaluate(run, dataset, encoder, pooling=pooling)
        rows.append(_row("pooling", pooling, result))
    return pd.DataFrame(rows)


def ablate_field(run: StudyRun, dataset: Dataset, encoder=None) -> pd.DataFrame:
    encoder = encoder or text_encoder(run)
    return pd.DataFrame([_row("field", f, _evaluate(run, dataset, encoder, field=f)) for f in run.params.ablations.fields])


def encoder_specs(run: StudyRun) -> list[str]:
    chosen = run.params.ablations.encoders
    specs = available_offline_encoders() if chosen == "offline" else list(chosen)
    return list(dict.fromkeys([run.params.encoder.spec] + specs))


def ablate_encoder(run: StudyRun, dataset: Dataset) -> pd.DataFrame:
    rows = []
    for spec in encoder_specs(run):
        encoder = text_encoder(run, spec)
        if run.is_oracle:
            e = run.params.evaluation
            result = human_caption_oracle(dataset, encoder, run.params.retrieval.pooling, e.ties, e.n_boot, e.seed)
        else:
            result = _evaluate(run, dataset, encoder)
        rows.append(_row("encoder", encoder.name, result))
    return pd.DataFrame(rows)


def ablate_captioner(run: StudyRun, dataset: Dataset, encoder=None) -> pd.DataFrame:
    """The run's corpus, any extra corpora from params, and the human-caption oracle (a ceiling)."""
    encoder = encoder or text_encoder(run)
    rows = []
    corpus = run.artifacts().get("corpus", {})
    if corpus.get("corpus"):
        rows.append(_row("captioner", corpus["captioner"], _evaluate(run, dataset, encoder), label=corpus.get("label")))
    for path in run.params.ablations.corpora:
        rows.append(_row("captioner", Path(path).stem, _evaluate(run, dataset, encoder, corpus_path=path), label="extra corpus"))
    if run.params.ablations.include_oracle and len({len(g) for g in dataset.captions_by_image()}) == 1:
        e = run.params.evaluation
        oracle = human_caption_oracle(dataset, encoder, run.params.retrieval.pooling, e.ties, e.n_boot, e.seed)
        rows.append(_row("captioner", "human-caption oracle (ceiling)", oracle, label="ceiling"))
    return pd.DataFrame(rows)


ABLATIONS = {"n_variants": ablate_n_variants, "pooling": ablate_pooling, "field": ablate_field,
             "encoder": ablate_encoder, "captioner": ablate_captioner}
ORACLE_ABLATIONS = ("pooling", "encoder")


def run_ablation(run: StudyRun, dataset: Dataset, axis: str) -> pd.DataFrame:
    """One ablation axis; writes ablations/<axis>.csv in the run folder."""
    if axis not in ABLATIONS:
        raise ValueError(f"ablation {axis!r} is not known; choose one of {', '.join(ABLATIONS)}")
    table = ABLATIONS[axis](run, dataset)
    table.to_csv(run.path("ablations", f"{axis}.csv"), index=False)
    return table


def ablation_axes(run: StudyRun) -> list[str]:
    """Which axes apply: the oracle has no corpus, so only pooling and encoder."""
    return list(ORACLE_ABLATIONS) if run.is_oracle else list(ABLATIONS)

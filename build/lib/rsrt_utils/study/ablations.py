"""Ablations of the text-to-text method, each a table of mR with 95 % intervals, embeddings from the cache.

Axes: number of variants (1/3/5), pooling (max/mean/top2-mean), embedded field, granularity (whole variants
or their sentences), text encoder, captioner (every corpus of the run alone and together, extra corpora, and
the human-caption oracle as a ceiling), and fusion with other completed runs (RRF, z-scored sum) on the
images both runs cover.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..captioning.registry import backend_info
from ..data import Dataset
from ..encoders import available_offline_encoders
from ..evaluation import human_caption_oracle
from ..metrics import evaluate_scores
from ..paths import outputs_dir
from ..scoring import score_and_evaluate
from ..spreadsheet import write_frame
from .pipeline import StudyRun, gallery_variants, image_query_texts, load_scores, run_corpus_paths, scoring_spec, text_encoder
from .run_folder import RunFolder, run_folder


def _row(axis: str, setting, result: dict, **extra) -> dict:
    lo, hi = result["ci95"]["mR"]
    return {"axis": axis, "setting": str(setting), "mR": result["mR"], "ci_low": lo, "ci_high": hi,
            "t2i_R@1": result["t2i"]["R@1"], "i2t_R@1": result["i2t"]["R@1"], **extra}


def _evaluate(run: StudyRun, dataset: Dataset, encoder, corpus_path: str | list[str] | None = None, **changes) -> dict:
    """The run's scoring spec with `changes` (field, n_variants, pooling, granularity ...), through the one scoring path."""
    spec = scoring_spec(run).replace(**changes)
    variants, _ = gallery_variants(run, dataset, corpus_path)
    queries = image_query_texts(run, dataset) if corpus_path is None else None
    if queries is None and spec.image_query == "backend":
        spec = spec.replace(image_query="variants")  # another corpus file has no image-query texts of this run
    return score_and_evaluate(dataset, variants, encoder, spec, queries)


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
    """Each embedded field; a description corpus (published VLM text) has only the paragraph, so only caption/all."""
    encoder = encoder or text_encoder(run)
    fields = run.params.ablations.fields
    if not backend_info(run.params.captioner.backend).structured:
        fields = [f for f in fields if f in ("caption", "all")][:1] or ["caption"]
    return pd.DataFrame([_row("field", f, _evaluate(run, dataset, encoder, field=f)) for f in fields])


def ablate_granularity(run: StudyRun, dataset: Dataset, encoder=None) -> pd.DataFrame:
    """Whole variants vs their sentences as the image's texts, max- and mean-pooled."""
    encoder = encoder or text_encoder(run)
    return pd.DataFrame([_row("granularity", f"{g}, {pooling}", _evaluate(run, dataset, encoder, pooling=pooling, granularity=g),
                              granularity=g, pooling=pooling)
                         for g in run.params.ablations.granularities for pooling in ("max", "mean")])


def encoder_specs(run: StudyRun) -> list[str]:
    chosen = run.params.ablations.encoders
    specs = available_offline_encoders(large=chosen == "offline-large") if isinstance(chosen, str) else list(chosen)
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
        paths = run_corpus_paths(run, dataset)
        if len(paths) > 1:  # each corpus alone, then the union (the run's gallery)
            names = run.params.captioner.corpora or [Path(p).stem for p in paths]
            rows += [_row("captioner", f"{run.params.captioner.backend}:{name}", _evaluate(run, dataset, encoder, corpus_path=[path]),
                          label=corpus.get("label")) for name, path in zip(names, paths)]
        rows.append(_row("captioner", corpus["captioner"], _evaluate(run, dataset, encoder), label=corpus.get("label")))
    for path in run.params.ablations.corpora:
        rows.append(_row("captioner", Path(path).stem, _evaluate(run, dataset, encoder, corpus_path=path), label="extra corpus"))
    if run.params.ablations.include_oracle and len({len(g) for g in dataset.captions_by_image()}) == 1:
        e = run.params.evaluation
        oracle = human_caption_oracle(dataset, encoder, run.params.retrieval.pooling, e.ties, e.n_boot, e.seed)
        rows.append(_row("captioner", "human-caption oracle (ceiling)", oracle, label="ceiling"))
    return pd.DataFrame(rows)


def _query_keys(image_ids, caption_image_index) -> list[tuple[str, int]]:
    """(image id, occurrence) of every caption query: the same caption in two runs of one split."""
    seen: dict[str, int] = {}
    keys = []
    for i in caption_image_index:
        image_id = str(image_ids[i])
        keys.append((image_id, seen.get(image_id, 0)))
        seen[image_id] = seen.get(image_id, 0) + 1
    return keys


def aligned_scores(dataset: Dataset, t2i: np.ndarray, i2t: np.ndarray, other_run: RunFolder | Path) -> dict:
    """This run's and another run's score matrices restricted to the images (and their captions) both cover."""
    other_run = RunFolder(Path(other_run)) if not isinstance(other_run, RunFolder) else other_run
    other = np.load(other_run.scores)
    if "image_ids" not in other:
        raise ValueError(f"{other_run.scores} predates image ids in score files; rerun that run's notebook 03")
    other_ids = [str(i) for i in other["image_ids"]]
    common = [i for i in dataset.image_ids if i in set(other_ids)]
    if not common:
        raise ValueError(f"run {other_run.name} shares no image with this run; fuse runs of the same dataset split")
    mine_col = {i: n for n, i in enumerate(dataset.image_ids)}
    other_col = {i: n for n, i in enumerate(other_ids)}
    mine_q = {k: n for n, k in enumerate(_query_keys(dataset.image_ids, dataset.caption_image_index))}
    other_q = {k: n for n, k in enumerate(_query_keys(other_ids, other["caption_image_index"]))}
    common_set = set(common)
    keys = [k for k in mine_q if k[0] in common_set and k in other_q]
    cols_a, cols_b = [mine_col[i] for i in common], [other_col[i] for i in common]
    rows_a, rows_b = [mine_q[k] for k in keys], [other_q[k] for k in keys]
    position = {i: n for n, i in enumerate(common)}
    return {"mine": (t2i[np.ix_(rows_a, cols_a)], i2t[np.ix_(cols_a, rows_a)]),
            "other": (other["t2i"][np.ix_(rows_b, cols_b)], other["i2t"][np.ix_(cols_b, rows_b)]),
            "caption_image_index": np.array([position[k[0]] for k in keys]),
            "image_classes": [dataset.images[mine_col[i]].scene_class for i in common], "n_images": len(common)}


def ablate_fusion(run: StudyRun, dataset: Dataset) -> pd.DataFrame:
    """This run fused with each run named in ablations.fuse_with (RRF k=60 and z-scored sum, fixed equal weights),
    on the images both cover; every row says what the fused runs use."""
    from ..baselines.fusion import evaluate_fused

    e = run.params.evaluation
    t2i, i2t = load_scores(run)
    mine_label = run.artifacts().get("corpus", {}).get("label") or run.params.captioner.backend
    rows = []
    for name in run.params.ablations.fuse_with:
        other_run = run_folder(name)
        if not other_run.scores.is_file():
            raise FileNotFoundError(f"ablations.fuse_with: run {name!r} has no scores in {other_run.path}; run it first "
                                    f"(`rsrt run params/<its file>.yaml`)")
        other_label = (other_run.read_metrics().label if other_run.metrics.is_file() else None) or name
        a = aligned_scores(dataset, t2i, i2t, other_run)
        common = dict(caption_image_index=a["caption_image_index"], ties=e.ties, n_boot=e.n_boot, seed=e.seed)
        n = f"{a['n_images']} images"
        rows.append(_row("fusion", f"this run alone ({n})", evaluate_scores(*a["mine"], image_classes=a["image_classes"], **common),
                         label=mine_label))
        rows.append(_row("fusion", f"{name} alone ({n})", evaluate_scores(*a["other"], image_classes=a["image_classes"], **common),
                         label=other_label))
        for method, title in (("rrf", "RRF k=60"), ("zsum", "z-scored sum")):
            fused = evaluate_fused([a["mine"], a["other"]], image_classes=a["image_classes"], method=method, **common)
            rows.append(_row("fusion", f"{title}(this run, {name}) ({n})", fused, label=f"{mine_label} + {other_label}"))
    return pd.DataFrame(rows)


ABLATIONS = {"n_variants": ablate_n_variants, "pooling": ablate_pooling, "field": ablate_field,
             "granularity": ablate_granularity, "encoder": ablate_encoder, "captioner": ablate_captioner,
             "fusion": ablate_fusion}
ORACLE_ABLATIONS = ("pooling", "encoder")


def run_ablation(run: StudyRun, dataset: Dataset, axis: str) -> pd.DataFrame:
    """One ablation axis; writes ablations/<axis>.csv in the run folder."""
    if axis not in ABLATIONS:
        raise ValueError(f"ablation {axis!r} is not known; choose one of {', '.join(ABLATIONS)}")
    table = ABLATIONS[axis](run, dataset)
    write_frame(table, run.folder.ablation_table(axis))
    return table


AXIS_SETTINGS = {"n_variants": "n_variants", "pooling": "poolings", "field": "fields", "granularity": "granularities",
                 "fusion": "fuse_with"}


def missing_fusion_runs(run: StudyRun) -> list[str]:
    return [name for name in run.params.ablations.fuse_with if not run_folder(name).scores.is_file()]


def ablation_axes(run: StudyRun) -> list[str]:
    """Which axes apply: the oracle has no corpus, so only pooling and encoder; an axis given no settings is left
    out; fusion needs every run it names to have scores (it is left out, saying so, when one has none)."""
    if run.is_oracle:
        return list(ORACLE_ABLATIONS)
    a = run.params.ablations
    axes = [axis for axis in ABLATIONS if axis not in AXIS_SETTINGS or getattr(a, AXIS_SETTINGS[axis])]
    missing = missing_fusion_runs(run)
    if "fusion" in axes and missing:
        print(f"fusion ablation left out: run(s) {missing} have no scores in {outputs_dir()}; run them first "
              f"(e.g. `rsrt run params/default.yaml`), then rerun this notebook")
        axes.remove("fusion")
    return axes

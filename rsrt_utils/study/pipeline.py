"""The study's steps as functions, one per notebook stage; notebooks stay thin and call these.

A run lives in `outputs/<run_name>/`: the resolved params, artifacts each stage hands to the next
(`artifacts.json`), score matrices, figures and `metrics.json`. Expensive work (captions, image
features, embeddings) is cached under `cache/`, keyed by everything that changes it.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from ..captioning.registry import backend_info
from ..data import Dataset, validation_report
from ..encoders import CachedEncoder, make_text_encoder
from ..engine import Where
from ..evaluation import ORACLE_CAPTIONER, human_caption_oracle, metrics_record
from ..fileutil import write_json_atomic
from ..metrics_record import write_record
from ..paths import outputs_dir
from ..scoring import ScoringSpec, embed_grouped_texts, evaluate, image_texts, score_texts
from ..spreadsheet import write_frame
from .corpus_sources import CORPUS_SOURCES
from .params import ParamsError, dump_params, load_params
from .run import StudyRun, load_split, split_source
from .run_folder import RunFolder


def open_run(params_path: str, run_dir: str = "", overrides: dict | None = None, engine: str = "local") -> StudyRun:
    """Load and validate the params, create the run folder and write the resolved params there; engine: where its
    captioning and embedding run ('local', or 'ray ADDRESS ACTORS' as `rsrt run --ray` passes it)."""
    where = Where.parse(engine)
    params = load_params(params_path, overrides)
    folder = RunFolder(Path(run_dir) if run_dir else outputs_dir() / params.run_name)
    folder.path.mkdir(parents=True, exist_ok=True)
    dump_params(params, folder.params)
    return StudyRun(params, folder.path, where)


# ---------------------------------------------------------------- before any notebook
def preflight(run: StudyRun) -> None:
    """Check what can be checked before any work starts (paths exist; backend options were checked when the params
    loaded); ParamsError naming every problem and its fix."""
    p, c = run.params.dataset, run.params.captioner
    problems = [f"dataset.{key}: {getattr(p, key)} does not exist; fix the path or remove the key"
                for key in ("root", "annotations", "images_dir")
                if getattr(p, key) and not Path(getattr(p, key)).expanduser().exists()]
    if backend_info(c.backend).study_corpus and "path" in backend_info(c.backend).required \
            and not (c.corpus_path and Path(c.corpus_path).expanduser().is_file()):
        problems.append(f"captioner.corpus_path {c.corpus_path!r}: backend {c.backend!r} needs an existing corpus JSONL")
    if problems:
        raise ParamsError(f"{run.params.run_name}: " + "; ".join(problems))


# ---------------------------------------------------------------- 00 data


def prepare_dataset(run: StudyRun) -> Dataset:
    """The evaluation split as configured: restricted to images with pixels and/or limited if asked."""
    dataset = load_split(run)
    p = run.params.dataset
    if p.require_images:
        if not any(im.image_path for im in dataset.images):
            raise ValueError(f"dataset.require_images is true but {dataset.name} {dataset.split} has no image pixels; "
                             "set dataset.images_dir, or require_images: false for annotation-only runs (oracle)")
        dataset = dataset.with_images()
    if p.limit_images and p.limit_images < dataset.n_images:
        dataset = dataset.subset(range(p.limit_images), note=f"limited to the first {p.limit_images} images")
    return dataset


def has_pixels(dataset: Dataset) -> bool:
    """Whether any image of the dataset has pixels (figures of images need them)."""
    return any(im.image_path for im in dataset.images)


def shared_captions(dataset: Dataset, top: int = 10):
    """Caption strings that describe more than one image (they cap text->image R@1 below 100 %)."""
    import pandas as pd

    frame = pd.DataFrame({"caption": [c.strip().lower() for c in dataset.captions],
                          "image_id": [dataset.images[i].image_id for i in dataset.caption_image_index]})
    grouped = frame.groupby("caption")["image_id"].agg(n_images="nunique", n_instances="size")
    return grouped[grouped["n_images"] > 1].sort_values("n_images", ascending=False).head(top).reset_index()


def data_report(run: StudyRun, dataset: Dataset) -> dict:
    full = load_split(run)
    report = {"evaluated": validation_report(dataset), "full_split": validation_report(full)}
    write_json_atomic(report, run.folder.data_report)
    return report


# ---------------------------------------------------------------- 01 captioning
def backend_config(run: StudyRun) -> dict:
    """The captioner's config as plain values (what a Ray worker rebuilds it from)."""
    c = run.params.captioner
    return {"backend": c.backend, **({"model": c.model} if c.model else {}), **c.options}


def backend_context(run: StudyRun) -> dict:
    """What the backend's resources are built from: the run's dataset by name, and (here) its train split as the
    params configure it and the run's text encoder."""
    return {"dataset": run.params.dataset.name, "split_source": split_source(run), "load_train": lambda: load_split(run, "train"),
            "text_encoder": CachedEncoder(make_text_encoder(run.params.encoder.spec, **run.params.encoder.options),
                                          progress=False)}


def make_backend(run: StudyRun):
    """The configured captioning backend, built by the one builder on the run's engine (a neighbour bank is the TRAIN
    split of the run's dataset as its params configure it, with the run's text encoder)."""
    config = backend_config(run)
    return run.engine(config).backend(config, backend_context(run))


def cost_estimate(run: StudyRun, dataset: Dataset) -> dict:
    """Cost shown before a paid captioning run starts (local backends cost nothing)."""
    from ..captioning.cost import estimate_for

    c = run.params.captioner
    calls = 2 if c.image_query == "backend" else 1
    given = c.prices if "prices" in c.model_fields_set else None  # else the backend's registry prices
    estimate = estimate_for(c.backend, dataset.n_images * calls, c.model, c.options.get("base_url"), given,
                            c.expected_tokens)
    return estimate or {"usd": 0.0, "text": f"backend {c.backend!r} runs locally or on your own server: no API cost"}


def corpus_path_for(run: StudyRun, backend, dataset: Dataset) -> Path:
    """captioner.corpus_path when the params name a corpus file, else the corpus's one location (as `rsrt caption`)."""
    from ..captioning.corpus import default_corpus_path

    explicit = run.params.captioner.corpus_path
    return Path(explicit).expanduser() if explicit else default_corpus_path(dataset.name, dataset.split, backend)


def request_keys(backend, dataset: Dataset, mode: str) -> dict[str, str]:
    """image id -> the cache key of its request now (the image's current bytes, this backend's settings)."""
    from ..captioning.images import build_requests
    from ..captioning.runner import request_key

    return {r.image_id: request_key(backend, r, mode) for r in build_requests(dataset.images)}


def build_corpus(run: StudyRun, dataset: Dataset, progress: bool = True) -> dict:
    """Caption (or resume captioning) every image; returns and records the corpus artifact, and the cache key of
    every image's current request (so that only records made for the current bytes and settings are used)."""
    c = run.params.captioner
    if backend_info(c.backend).study_corpus:  # a corpus that is read, not captioned (oracle, import, published)
        return CORPUS_SOURCES[c.backend](run, dataset)
    config, context = backend_config(run), backend_context(run)
    engine = run.engine(config)
    backend = engine.backend(config, context)
    path = corpus_path_for(run, backend, dataset)
    caption = partial(engine.caption, dataset.images, backend, config, path, concurrency=c.concurrency,
                      progress=progress, context=context)
    summary = caption(mode="variants")
    keys = {"variants": request_keys(backend, dataset, "variants")}
    info = {"captioner": f"{backend.name}:{backend.model}", "corpus": str(path), "label": backend.label, "engine": run.where.spec,
            "settings": backend.settings, "summary": summary.to_dict(), "summary_text": summary.text()}
    if c.image_query == "backend":
        query_summary = caption(mode="image_query")
        info["image_query_summary"] = query_summary.to_dict()
        keys["image_query"] = request_keys(backend, dataset, "image_query")
    write_json_atomic(keys, run.folder.corpus_keys)
    info["keys"] = str(run.folder.corpus_keys)
    run.save_artifact("corpus", info)
    return info


def corpus_keys(run: StudyRun, mode: str) -> dict[str, str] | None:
    """The cache keys of the run's current requests (None for published and imported corpora: one answer per id)."""
    path = run.artifacts().get("corpus", {}).get("keys")
    return json.loads(Path(path).read_text())[mode] if path else None


def run_corpus_paths(run: StudyRun, dataset: Dataset) -> list[str]:
    """The corpus files of the run (one, or several whose union is the gallery)."""
    info = run.artifacts().get("corpus", {})
    if run.is_oracle:
        raise ValueError("the oracle run has no corpus: its gallery is the human captions")
    if not info.get("corpus"):
        raise FileNotFoundError(f"run {run.params.run_name!r} has no corpus yet; run the captioning notebook (01) first")
    return info.get("corpora") or [info["corpus"]]


def corpus_variants(run: StudyRun, dataset: Dataset, corpus_path: str | list[str] | None = None):
    """image_id -> list of Variant from the run's corpora (ok records only; several corpora: their union, in order)."""
    from ..captioning.corpus import load_variants_union

    paths = [corpus_path] if isinstance(corpus_path, str) else corpus_path or run_corpus_paths(run, dataset)
    keys = None if corpus_path else corpus_keys(run, "variants")  # another corpus file: no current keys for it
    return load_variants_union(paths, keys)


def scoring_spec(run: StudyRun) -> ScoringSpec:
    """The run's one scoring spec (field, variants per direction, pooling, image-query source, ties, bootstrap)."""
    return ScoringSpec.from_params(run.params)


def gallery_variants(run: StudyRun, dataset: Dataset, corpus_path: str | list[str] | None = None) -> tuple[list[list], list[str]]:
    """Each image's variants from the run's corpora (empty for an image whose captioning failed), and those images' ids."""
    variants = corpus_variants(run, dataset, corpus_path)
    by_image = [list(variants.get(image.image_id, [])) for image in dataset.images]
    return by_image, [image.image_id for image, v in zip(dataset.images, by_image) if not v]


def gallery_texts(run: StudyRun, dataset: Dataset, spec: ScoringSpec | None = None,
                  corpus_path: str | list[str] | None = None) -> tuple[list[list[str]], list[str]]:
    """Each image's embedded texts under the spec (default: the run's), and the ids of images without variants."""
    variants, missing = gallery_variants(run, dataset, corpus_path)
    return image_texts(variants, spec or scoring_spec(run)), missing


def image_query_texts(run: StudyRun, dataset: Dataset) -> list[list[str]] | None:
    """The captioner's own image-query text of each image (captioner.image_query: backend), else None."""
    from ..captioning.corpus import load_query_texts

    if run.params.captioner.image_query != "backend":
        return None
    queries = load_query_texts(run.artifacts()["corpus"]["corpus"], keys=corpus_keys(run, "image_query"))
    return [[queries.get(im.image_id, "")] for im in dataset.images]


# ---------------------------------------------------------------- 02 embedding / 03 retrieval
def text_encoder(run: StudyRun, spec: str | None = None) -> CachedEncoder:
    """The run's text encoder with the embedding cache, on the run's engine (`rsrt run --ray`: the texts not yet
    cached are embedded in an actor pool of that cluster; same vectors, same cache)."""
    e = run.params.encoder
    options = e.options if spec in (None, e.spec) else {}  # the options are the run's encoder's, not another kind's
    return run.engine().encoder(spec or e.spec, policy=e.cache_policy, **options)


def score_run(run: StudyRun, dataset: Dataset, encoder: CachedEncoder | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embed (cached) and score both directions through the one scoring path; saves scores.npz for notebook 04."""
    encoder = encoder or text_encoder(run)
    spec = scoring_spec(run)
    variants, missing = gallery_variants(run, dataset)
    t2i, i2t = score_texts(variants, dataset.captions, encoder, spec, image_query_texts(run, dataset))
    np.savez_compressed(run.folder.scores, t2i=t2i, i2t=i2t, caption_image_index=dataset.caption_image_index,
                        image_ids=np.array(dataset.image_ids))
    run.save_artifact("retrieval", {"missing_captions": missing, "encoder": encoder.name, "pooling": spec.pooling, "field": spec.field})
    return t2i, i2t


def load_scores(run: StudyRun) -> tuple[np.ndarray, np.ndarray]:
    path = run.folder.scores
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run the retrieval notebook (03) first")
    data = np.load(path)
    return data["t2i"], data["i2t"]


def caption_vectors_by_image(run: StudyRun, dataset: Dataset, encoder: CachedEncoder | None = None) -> np.ndarray:
    """Mean gallery-text vector per image (for the embedding-space figure); fills the embedding cache for 03."""
    encoder = encoder or text_encoder(run)
    texts = dataset.captions_by_image() if run.is_oracle else gallery_texts(run, dataset)[0]
    gallery = embed_grouped_texts(texts, encoder)
    summed = (gallery.embeddings * gallery.mask[..., None]).sum(axis=1)
    return summed / np.linalg.norm(summed, axis=1, keepdims=True).clip(1e-12)


# ---------------------------------------------------------------- 04 evaluation
def evaluate_run(run: StudyRun, dataset: Dataset) -> dict:
    """The standard protocol on the scores notebook 03 saved (the oracle: all its leave-one-out rounds, computed
    here); writes metrics.json and returns its content."""
    spec = scoring_spec(run)
    encoder_name = run.artifacts().get("retrieval", {}).get("encoder")
    if run.is_oracle:
        encoder = text_encoder(run)
        encoder_name = encoder.name
        result = human_caption_oracle(dataset, encoder, spec.pooling, spec.ties, spec.n_boot, spec.seed)
        captioner, label = ORACLE_CAPTIONER, "ceiling: human captions, leave-one-out"
    else:
        t2i, i2t = load_scores(run)
        result = evaluate(t2i, i2t, dataset.caption_image_index, spec, dataset.image_classes, captions=dataset.captions)
        corpus = run.artifacts().get("corpus", {})
        captioner, label = corpus.get("captioner", run.params.captioner.backend), corpus.get("label")
        result["missing_captions"] = len(run.artifacts().get("retrieval", {}).get("missing_captions", []))
    record = metrics_record(result, dataset, captioner, encoder_name, spec.pooling, run.params.model_dump(mode="json"), label)
    record.update({"run_name": run.params.run_name, "params_digest": run.params.digest(), "field": spec.field})
    write_record(record, run.folder.metrics)
    return record


def oracle_scores(run: StudyRun, dataset: Dataset, k: int = 0) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The oracle's k-th leave-one-out round: (queries as a Dataset view, t2i, i2t). The view holds caption k
    of each image, so query q belongs to image q."""
    groups = dataset.captions_by_image()
    rest = [[c for j, c in enumerate(g) if j != k] for g in groups]
    queries = Dataset(dataset.name, dataset.split, dataset.images, [g[k] for g in groups], np.arange(dataset.n_images),
                      dataset.source, dataset.notes + [f"oracle round k = {k + 1}: caption {k + 1} of each image as the query"])
    spec = scoring_spec(run).replace(n_variants=max(len(g) for g in rest), n_query_variants=None, image_query="variants")
    t2i, i2t = score_texts(rest, queries.captions, text_encoder(run), spec)
    return queries, t2i, i2t


def retrieval_scores(run: StudyRun, dataset: Dataset) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """(the queries' Dataset view, t2i, i2t) of the run: the corpus scores, or the oracle's first round."""
    if run.is_oracle:
        return oracle_scores(run, dataset)
    t2i, i2t = score_run(run, dataset)
    return dataset, t2i, i2t


def corpus_sample(run: StudyRun, dataset: Dataset, n: int = 3):
    """A few corpus records as a table (image, class, variant fields) for a first look."""
    import pandas as pd

    if run.is_oracle:
        return pd.DataFrame({"image_id": dataset.image_ids[:n], "human captions": dataset.captions_by_image()[:n]})
    variants = corpus_variants(run, dataset)
    rows = []
    for image in dataset.images[:n]:
        for i, v in enumerate(variants.get(image.image_id, [])):
            rows.append({"image_id": image.image_id, "class": image.scene_class, "variant": i + 1,
                         "one_sentence": v.one_sentence, "feature": v.feature, "caption": v.caption})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- 07 CLIP baseline
def clip_baseline(run: StudyRun, dataset: Dataset) -> dict:
    """Zero-shot CLIP through the shared metrics (and RRF fusion with text-to-text) when weights load;
    otherwise the published figures, marked quoted."""
    import pandas as pd

    from ..baselines.clip import run_clip_baseline
    from ..baselines.clip_models import make_clip_backend
    from ..baselines.fusion import evaluate_fused
    from ..literature import published_clip_figures

    c, e = run.params.clip, run.params.evaluation
    quoted = published_clip_figures()
    if not c.enabled:
        return {"message": "CLIP baseline disabled (clip.enabled: false); published figures below are quoted, not measured.",
                "table": quoted, "metrics": None}
    if not any(im.image_path for im in dataset.images):
        return {"message": f"{dataset.coverage_note()}: CLIP needs pixels; published figures below are quoted, not measured.",
                "table": quoted, "metrics": None}
    spec = f"open_clip:{c.model}@{c.pretrained}" if c.backend == "open_clip" else c.model
    try:
        backend = make_clip_backend(spec, device=c.device, batch_size=c.batch_size)
    except Exception as exc:  # noqa: BLE001 - reported to the reader, not hidden
        return {"message": f"No CLIP weights could be loaded for {spec!r}, so nothing is measured here.\n{exc}\n"
                           "The published figures below are quoted, not measured.", "table": quoted, "metrics": None}
    result = run_clip_baseline(dataset, backend, ties=e.ties, n_boot=e.n_boot, seed=e.seed)
    rows = [_save_baseline(run, dataset, result["metrics"], f"zero-shot CLIP {backend.name}", "clip", "zero-shot")]
    if c.fusion and not run.is_oracle:
        t2t = load_scores(run) if run.folder.scores.is_file() else score_run(run, dataset)
        fused = evaluate_fused([(result["t2i_scores"], result["i2t_scores"]), t2t], dataset.caption_image_index,
                               dataset.image_classes, ties=e.ties, n_boot=e.n_boot, seed=e.seed)
        corpus = run.artifacts().get("corpus", {})
        rows.append(_save_baseline(run, dataset, fused, f"RRF(CLIP {backend.name}, text-to-text)", "fusion",
                                   corpus.get("label") or "training-free"))
    table = pd.concat([pd.DataFrame(rows), quoted.assign(kind="quoted")], ignore_index=True)
    return {"message": f"measured zero-shot CLIP {backend.name} on {dataset.coverage_note()}", "table": table,
            "metrics": rows}


def _save_baseline(run: StudyRun, dataset: Dataset, result: dict, system: str, baseline: str, label: str) -> dict:
    record = metrics_record(result, dataset, system, system, "none", run.params.model_dump(mode="json"), label)
    record.update({"run_name": f"{run.params.run_name}:{baseline}",
                   "params_digest": run.params.digest(), "field": None})
    write_record(record, run.folder.baseline_metrics(baseline))
    lo, hi = result["ci95"]["mR"]
    return {"system": system, "dataset": dataset.name, "mR": result["mR"], "ci_low": lo, "ci_high": hi, "kind": "measured",
            **{f"t2i {k}": v for k, v in result["t2i"].items()}, **{f"i2t {k}": v for k, v in result["i2t"].items()}}


# ---------------------------------------------------------------- 05 caption audit
def prepare_audit(run: StudyRun, dataset: Dataset) -> dict:
    """Sample images (stratified by class, seeded) and write the audit sheet (HTML + PNG pages) and the
    scoring sheet to fill in, under <run>/audit/."""
    from . import audit, audit_scoring

    a = run.params.audit
    if run.is_oracle:
        return {"html": None, "scoring_sheet": None, "pages": [], "message": "the oracle run has no generated captions to audit"}
    corpus = corpus_variants(run, dataset)
    captioned = [i for i, im in enumerate(dataset.images) if im.image_id in corpus]
    if not captioned:
        raise ValueError(f"no image of {dataset.coverage_note()} has variants in the corpus; see the captioning failures (01)")
    pool = dataset.subset(captioned, note=f"{dataset.n_images - len(captioned)} image(s) without variants left out of the audit")
    picked = audit.sample_for_audit(pool, min(a.n_images, pool.n_images), a.seed,
                                    only_with_pixels=any(im.image_path for im in pool.images))
    indices = [captioned[i] for i in picked]
    items = audit.build_audit_items(dataset, corpus, indices)
    label = run.artifacts().get("corpus", {}).get("label")
    title = f"Caption audit: {run.params.run_name}" + (f" ({label})" if label else "")
    data = audit.write_audit_items(audit.audit_sheet(items, title, dataset.coverage_note(), audit_pixel_note(run, dataset),
                                                     dataset.image_classes), run.folder.writable(run.folder.audit_items))
    html, pages = _audit_sheets(run.folder, data)
    sheet = audit_scoring.write_scoring_sheet(items, run.folder.scoring_sheet)
    info = {"html": str(html), "scoring_sheet": str(sheet), "pages": [str(p) for p in pages], "image_ids": [dataset.image_ids[i] for i in indices]}
    run.save_artifact("audit", info)
    return info


def _audit_sheets(folder: RunFolder, data: Path) -> tuple[Path, list[Path]]:
    """The HTML sheet and the PNG pages, rendered from audit_items.json again only when it (or the audit code) changed:
    text rendering is most of the audit notebook's time."""
    import hashlib
    import inspect

    from . import audit, audit_sheets

    digest = hashlib.sha256(data.read_bytes() + inspect.getsource(audit).encode()).hexdigest()
    html = folder.audit_sheet_html
    if folder.sheets_digest.is_file():
        done = json.loads(folder.sheets_digest.read_text())
        pages = [Path(p) for p in done.get("pages", [])]
        if done.get("digest") == digest and html.is_file() and pages and all(p.is_file() for p in pages):
            return html, pages
    sheet = audit.read_audit_items(data)
    audit_sheets.write_audit_sheet_html(sheet, html)
    pages = audit_sheets.plot_audit_sheet(sheet, folder.audit_sheet_png)
    write_json_atomic({"digest": digest, "pages": [str(p) for p in pages]}, folder.sheets_digest)
    return html, pages


def audit_pixel_note(run: StudyRun, dataset: Dataset) -> str | None:
    """What the auditor sees versus what the captioner saw."""
    if dataset.name != "rsicd" or not any(im.image_path for im in dataset.images):
        return None
    if not backend_info(run.params.captioner.backend).captions_images and not run.is_oracle:
        return ("The captioning model saw the 224×224 RSICD test image; this sheet shows the 150×150 AID scene it was "
                "cut from (RSICD images are centre crops of about 88 % of the same AID scene), so small objects at the "
                "edges may be visible here but not to the model, and fine detail may be lost.")
    return "Pixels: the 150×150 AID-150 scene that the captioner itself used (a proxy for the RSICD test image)."


def summarise_audit(run: StudyRun) -> dict | None:
    """Summary of the filled scoring sheets named in audit.filled_sheets (None when there are none)."""
    from . import audit_scoring

    sheets = run.params.audit.filled_sheets
    if not sheets:
        return None
    summary = audit_scoring.summarise_scoring_sheets(sheets)
    for name, table in summary.items():
        write_frame(table, run.folder.audit_summary(name))
    return summary


def automatic_audit(run: StudyRun, dataset: Dataset) -> dict:
    """Automatic caption checks for every captioned image: length, diversity, unsupported words."""
    from . import caption_checks

    if run.is_oracle:
        import pandas as pd

        empty = pd.DataFrame()
        return {"per_image": empty, "summary": "the oracle run has no generated captions to check"}
    checks = caption_checks.automatic_caption_checks(dataset, corpus_variants(run, dataset))
    summary = caption_checks.summarise_caption_checks(checks)
    write_frame(checks, run.folder.writable(run.folder.automatic_checks))
    write_frame(summary["top_unsupported_words"], run.folder.writable(run.folder.unsupported_words))
    return {"per_image": checks, "summary": summary["means"], "top_unsupported_words": summary["top_unsupported_words"]}

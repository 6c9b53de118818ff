"""The study's corpora that are read rather than captioned, one builder per registry entry (`study_corpus`): the
human-caption oracle, an imported corpus JSONL and the published VLM corpora. Each records the run's corpus artifact."""

from __future__ import annotations

from pathlib import Path

from ..data import Dataset
from ..data.store import ensure_store
from ..evaluation import ORACLE_CAPTIONER
from ..fileutil import file_sha256
from ..paths import cache_dir
from .run import StudyRun, load_split


def oracle_corpus(run: StudyRun, dataset: Dataset) -> dict:
    """No corpus: the gallery is the human captions, leave-one-out (a ceiling)."""
    info = {"captioner": ORACLE_CAPTIONER, "corpus": None, "label": "ceiling: human captions, leave-one-out"}
    run.save_artifact("corpus", info)
    return info


def imported_corpus(run: StudyRun, dataset: Dataset) -> dict:
    """A corpus JSONL written elsewhere (captioner.corpus_path), imported into the cache; bad lines are reported."""
    from ..captioning.importer import import_corpus

    c = run.params.captioner
    if not c.corpus_path:
        raise ValueError("captioner.backend is 'import' but captioner.corpus_path is empty; give the corpus JSONL to import")
    source = Path(c.corpus_path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"captioner.corpus_path {str(source)!r} does not exist; give the path of the corpus JSONL "
                                f"to import (format {c.import_format!r})")
    digest = file_sha256(source)[:10]
    path = cache_dir() / "corpora" / f"{dataset.name}-{dataset.split}-import-{digest}.jsonl"
    report = import_corpus(source, path, format=c.import_format, known_image_ids=load_split(run).image_ids)
    info = {"captioner": f"import:{source.name}", "corpus": str(path), "corpora": [str(path)], "label": c.options.get("label"),
            "summary": report.to_dict(), "summary_text": report.text()}
    run.save_artifact("corpus", info)
    return info


def published_corpora(run: StudyRun, dataset: Dataset) -> dict:
    """Project corpora of the configured published corpora (gallery = the union of their descriptions)."""
    from ..captioning.published_import import build_published_corpus
    from ..data.published_corpora import published_corpus

    c, p = run.params.captioner, run.params.dataset
    store = Path(p.root) if p.root else ensure_store("published")
    full_split = load_split(run)
    paths, reports = [], []
    for name in c.corpora:
        path, report = build_published_corpus(name, p.name, p.split, full_split.image_ids, store)
        paths.append(str(path))
        reports.append(report)
    entries = [published_corpus(n) for n in c.corpora]
    info = {"captioner": "published:" + "+".join(c.corpora), "corpus": paths[0], "corpora": paths,
            "label": entries[0].label, "sources": [e.describe() for e in entries],
            "summary": [r.to_dict() for r in reports], "summary_text": "\n".join(r.text() for r in reports)}
    run.save_artifact("corpus", info)
    return info


# The builder of each registry entry with `study_corpus` (a test checks the two name the same backends).
CORPUS_SOURCES = {"oracle": oracle_corpus, "import": imported_corpus, "published": published_corpora}

"""Building a collection: describe, embed and index every image under a folder, incrementally and resumably, on the
engine the command chose (here or on Ray). A --rebuild builds beside the live collection and swaps the manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from ..captioning.backend import capability
from ..captioning.registry import backend_info
from ..encoders import check_encoder_spec
from ..engine import Engine, LocalEngine
from ..fileutil import write_json_atomic
from ..image_files import max_image_pixels
from ..scoring import IMAGE_QUERY_VARIANTS, variant_texts
from .index import HNSW_EF_SEARCH
from .layout import (
    BUILD_LOCK,
    CORPUS,
    IMAGE_SUFFIXES,
    INDEX,
    ITEMS,
    MANIFEST,
    captioner_config,
    check_compatible,
    check_images_dir,
    check_name,
    collection_dir,
    endpoint_entries,
    hash_files,
    public_spec,
    read_manifest,
    scan_images,
)


@dataclass
class BuildSummary:
    """What a build did: file changes, captions written (model calls), failures, index and timings."""

    name: str
    folder: Path
    images_dir: Path
    captioner: str
    encoder: str
    n_files: int = 0
    n_indexed: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    to_caption: int = 0
    captioned: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    index_kind: str = ""
    index_reused: bool = False
    index_update: str = ""
    dry_run: bool = False
    estimate: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    started: float = 0.0  # time.monotonic() at the start of the build

    def text(self) -> str:
        """A few lines for the terminal."""
        lines = [f"collection {self.name!r}: {self.n_indexed} of {self.n_files} image(s) indexed from {self.images_dir}",
                 f"files: {self.new} new, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged; "
                 f"{self.to_caption} to caption" + ("" if self.dry_run else f", {self.captioned} captioned now"),
                 f"captioner: {self.captioner}", f"encoder: {self.encoder}"]
        if self.estimate:
            lines.append(f"estimate: {self.estimate}")
        if self.dry_run:
            return "\n".join(lines + ["dry run: nothing was captioned or written"])
        how = " (unchanged, kept)" if self.index_reused else (f" ({self.index_update})" if self.index_update else "")
        lines.append(f"index: {self.index_kind}{how} in {self.folder}")
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) that resolve outside the folder, are not readable or have a "
                         f"control character (e.g. a newline) in their path: rename those (first: {self.skipped[0]!r})")
        if self.failed:
            lines.append(f"{len(self.failed)} image(s) could not be described and are not searchable (a rerun of the "
                         "same build retries them):")
            lines += [f"  {image_id}: {reason}" for image_id, reason in list(self.failed.items())[:20]]
            if len(self.failed) > 20:
                lines.append(f"  ... and {len(self.failed) - 20} more (manifest.json lists every file with its status)")
        return "\n".join(lines)


@contextlib.contextmanager
def _build_lock(folder: Path):
    """One build of a collection at a time: a second one stops at once."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"collection {folder.name!r} is being built by another process; wait for it to finish "
                               f"(a rerun then resumes)") from None
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- captioning
def captioner_label(backend) -> str:
    """How the captioner is shown wherever results appear, its caveat included."""
    label = capability(backend, "label")
    return f"{backend.name} ({label})" if label else f"{backend.name} ({backend.model})"


def backend_digest(backend) -> str:
    from ..captioning.corpus import corpus_digest

    return corpus_digest(backend)


def _records_by_key(corpus: Path, keys: set[str]) -> tuple[dict, dict]:
    """(key -> ok variants record, key -> last failure reason) for the wanted keys."""
    from ..captioning.corpus import CorpusStore

    ok, failed = {}, {}
    for record in CorpusStore(corpus).records():
        if record.cache_key in keys and record.mode == "variants":
            if record.status == "ok":
                ok[record.cache_key] = record
            else:
                failed[record.cache_key] = record.error or "failed"
    return ok, failed


def _estimate(backend, config: dict, n_missing: int) -> str | None:
    """The cost estimate shown before a paid run (None: free, or a server of your own)."""
    from ..captioning.cost import estimate_for

    estimate = estimate_for(backend.name, n_missing, config.get("model"), config.get("base_url"))
    return estimate["text"] if estimate else None


# ---------------------------------------------------------------- the build
def _file_changes(previous: dict | None, requests) -> dict[str, int]:
    before = {f["image_id"]: f["sha256"] for f in (previous or {}).get("files", [])}
    now = {r.image_id: r.image_sha256 for r in requests}
    return {"new": sum(i not in before for i in now), "changed": sum(i in before and before[i] != s for i, s in now.items()),
            "removed": sum(i not in now for i in before), "unchanged": sum(before.get(i) == s for i, s in now.items())}


def _fingerprint(pairs: list[tuple[str, str]], encoder_name: str, field_name: str) -> str:
    blob = json.dumps([encoder_name, field_name, pairs], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_items(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


def _build_index(folder: Path, items: list[dict], encoder, fingerprint: str, timings: dict, ef_search: int | None) -> dict:
    """Embed every item's texts and save a new index folder (items.jsonl + the VectorIndex); its manifest entry."""
    from .index import VectorIndex

    vectors, owners = _embedded_rows(items, encoder, timings, first_item=0)
    index = _timed(timings, "indexing", VectorIndex.build, vectors, owners)
    return _save_index(folder, index, items, fingerprint, timings, ef_search, mode="built")


def _embedded_rows(items: list[dict], encoder, timings: dict, first_item: int):
    """(vectors, owners) of the items' descriptions, owners numbered from first_item."""
    import numpy as np

    texts = [t for item in items for t in item["descriptions"]]
    owners = np.asarray([first_item + i for i, item in enumerate(items) for _ in item["descriptions"]], dtype=np.int64)
    return _timed(timings, "embedding", encoder.encode, texts), owners


def _save_index(folder: Path, index, items: list[dict], fingerprint: str, timings: dict, ef_search: int | None,
                mode: str) -> dict:
    """Write items.jsonl and the index into a new index-<fingerprint> folder (swapped in whole); its manifest entry."""
    if index.kind == "hnsw":
        index.set_ef_search(ef_search or HNSW_EF_SEARCH)
    target = folder / f"index-{fingerprint}-{secrets.token_hex(4)}"  # a new name: the live index is never touched
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".index-"))
    _timed(timings, "indexing", index.save, staging / INDEX)
    _write_items(staging / ITEMS, items)
    os.replace(staging, target)
    return {"folder": target.name, "kind": index.kind, "dim": int(index.dim), "n_vectors": int(index.n_vectors),
            "n_items": int(index.n_live_items), "n_retired_items": int(index.n_items - index.n_live_items),
            "params": index.params, "fingerprint": fingerprint, "update": mode}


def _update_index(folder: Path, old: dict, items: list[dict], encoder, fingerprint: str, timings: dict,
                  ef_search: int | None) -> dict | None:
    """Follow the folder without a rebuild: retire the old index's items that are gone or changed, append the new
    ones, compact past COMPACT_RETIRED_FRACTION; None when there is no old index to update."""
    from .index import IndexLoadError, VectorIndex

    old_folder = folder / old.get("folder", "-")
    try:
        index = VectorIndex.load(old_folder / INDEX)
        rows = [json.loads(line) for line in (old_folder / ITEMS).read_text(encoding="utf-8").splitlines()]
    except (IndexLoadError, OSError, ValueError):
        return None
    if len(rows) != index.n_items:
        return None
    wanted = {(item["image_id"], item["cache_key"]) for item in items}
    live = {(row["image_id"], row["cache_key"]) for row in rows if not row.get("retired")}
    gone = [i for i, row in enumerate(rows) if not row.get("retired") and (row["image_id"], row["cache_key"]) not in wanted]
    new = [item for item in items if (item["image_id"], item["cache_key"]) not in live]
    index.retire(gone)
    for i in gone:
        rows[i] = {**rows[i], "retired": True}
    if new:
        vectors, owners = _embedded_rows(new, encoder, timings, first_item=index.n_items)
        _timed(timings, "indexing", index.add, vectors, owners)
        rows += new
    mode = f"updated: {len(new)} added, {len(gone)} retired"
    if index.needs_compaction():
        renumber = _timed(timings, "indexing", index.compact)
        rows = [row for row, number in zip(rows, renumber) if number >= 0]
        mode += ", compacted"
    return _save_index(folder, index, rows, fingerprint, timings, ef_search, mode)


def _drop_old_indexes(folder: Path, keep: str) -> None:
    for path in folder.glob("index-*"):
        if path.name != keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def build_collection(images_dir: Path, name: str, captioner: dict | None = None, encoder: str | None = None,
                     root: Path | None = None, progress: bool = True, *, concurrency: int = 8, limit: int | None = None,
                     rebuild: bool = False, dry_run: bool = False, ef_search: int | None = None,
                     engine: Engine | Callable[[dict], Engine] | None = None) -> BuildSummary:
    """Describe, embed and index every image under images_dir as collection `name` (incremental and resumable).

    captioner: a make_caption_backend config (default {"backend": "neighbour"} on the RSICD train bank); encoder: a
    text encoder spec (default all-MiniLM-L6-v2); limit: only the first N files (sorted by path); ef_search: the HNSW
    search breadth of a large collection (default HNSW_EF_SEARCH); engine: where captioning and embedding run
    (default here), or a function of the checked captioner config that opens it once every input is checked (the
    command's `partial(scaleout.engine.open_engine, where)`; on Ray the corpus and the cache stay on this machine).
    """
    started = time.monotonic()
    name, images_dir = check_name(name), check_images_dir(images_dir)
    max_image_pixels()  # a bad RSRT_MAX_IMAGE_PIXELS is named before any work
    config = captioner_config(captioner)
    spec, encoder_spec = public_spec(config), check_encoder_spec(encoder)
    if concurrency < 1 or (limit is not None and limit < 1):
        raise ValueError(f"concurrency ({concurrency}) and limit ({limit}) must be at least 1")
    if ef_search is not None and (isinstance(ef_search, bool) or not isinstance(ef_search, int) or ef_search < 2):
        raise ValueError(f"ef_search ({ef_search!r}) must be a whole number >= 2 (e.g. 128; higher: better recall, slower)")
    folder = collection_dir(name, root)
    previous = None if rebuild else read_manifest(folder)
    if previous is not None:
        check_compatible(previous, images_dir, spec, encoder_spec)
    files, skipped = _files_to_index(images_dir, limit)
    if callable(engine):
        engine = engine(config)  # opened for this config (a backend that needs Ray is refused there)
    else:
        engine = engine or LocalEngine()
        engine.where.check_backend(config)
    text_encoder = engine.encoder(encoder_spec, progress)
    timings = {"encoder_setup": time.monotonic() - started}
    requests = _timed(timings, "hashing", hash_files, files, progress)
    # the neighbour bank's features are read here; on Ray the backend is built on a worker and known by its identity
    backend = _timed(timings, "captioner_setup", engine.backend, config)
    summary = BuildSummary(name, folder, images_dir, captioner_label(backend), text_encoder.name, n_files=len(requests),
                           skipped=skipped, dry_run=dry_run, **_file_changes(previous, requests))
    _plan(summary, backend, config, requests, folder, progress)
    if summary.to_caption:
        _load_now(text_encoder)  # a model that cannot load fails before any caption is paid for
    if dry_run:
        return summary
    summary.timings, summary.started = timings, started
    # --rebuild builds beside the live collection (a new index folder; the corpus's records are keyed by everything
    # that changes an answer, so they are reused only where they still apply) and the manifest's atomic replace swaps
    # it in: searches see the old collection, then the new one, never none.
    with _build_lock(folder):
        caption = partial(engine.caption, backend=backend, config=config, concurrency=concurrency)
        _caption_and_index(summary, backend, spec, endpoint_entries(config), encoder_spec, requests, text_encoder,
                           previous, caption, progress, ef_search)
    return summary


def _files_to_index(images_dir: Path, limit: int | None) -> tuple[list[tuple[str, Path]], list[str]]:
    """The image files to index (the first `limit`), and the skipped ones; no image at all is an error."""
    files, skipped = scan_images(images_dir)
    if not files:
        raise ValueError(f"{images_dir} holds no image file ({', '.join(IMAGE_SUFFIXES)}, searched recursively)"
                         + (f"; {len(skipped)} file(s) resolve outside it and are skipped" if skipped else ""))
    return (files[:limit] if limit else files), skipped


def _timed(timings: dict, name: str, function, *args):
    """function(*args), its wall time added to timings[name]."""
    started = time.monotonic()
    try:
        return function(*args)
    finally:
        timings[name] = timings.get(name, 0.0) + time.monotonic() - started


def _load_now(text_encoder) -> None:
    """Load a lazily loaded local encoder (sentence-transformers loads on its first uncached text) right away."""
    getattr(text_encoder.encoder, "model", None)


def _plan(summary: BuildSummary, backend, config: dict, requests, folder: Path, progress: bool) -> None:
    """Count what is still to caption (and its cost on a paid backend) before anything is sent."""
    from ..captioning.runner import pending

    summary.to_caption = len(pending(requests, backend, "variants", folder / CORPUS)[0])
    summary.estimate = _estimate(backend, config, summary.to_caption)
    if progress:
        print(f"{len(requests)} image(s); {len(requests) - summary.to_caption} already described; "
              f"{summary.to_caption} to caption with {summary.captioner}"
              + (f"\nestimate: {summary.estimate}" if summary.estimate else ""))


def _caption_and_index(summary, backend, spec, endpoints, encoder_spec, requests, text_encoder, previous, caption,
                       progress, ef_search: int | None = None) -> None:
    """Caption what is missing (`caption(requests, store_path, ...)`: here or on Ray), then index every described image
    (or keep the index if nothing changed)."""
    from ..captioning.runner import request_key

    folder, timings = summary.folder, summary.timings
    run = _timed(timings, "captioning", partial(caption, requests, store_path=folder / CORPUS, mode="variants",
                                                progress=progress))
    summary.captioned = run.ok + run.failed
    field_name = backend_info(backend.name).retrieval_field
    keys = [request_key(backend, r, "variants") for r in requests]
    items, files = _described(summary, requests, keys, field_name)
    fingerprint = _fingerprint([(i["image_id"], i["cache_key"]) for i in items], text_encoder.name, field_name)
    old = (previous or {}).get("index", {})
    same_embedding = bool(previous) and previous["encoder"]["name"] == text_encoder.name and previous.get("field") == field_name
    if old.get("fingerprint") == fingerprint and (folder / old.get("folder", "-") / ITEMS).is_file() \
            and old.get("params", {}).get("efSearch", ef_search or HNSW_EF_SEARCH) == (ef_search or HNSW_EF_SEARCH):
        index_info, summary.index_reused = old, True
    else:
        index_info = (_update_index(folder, old, items, text_encoder, fingerprint, timings, ef_search)
                      if same_embedding else None) or _build_index(folder, items, text_encoder, fingerprint, timings, ef_search)
    summary.n_indexed, summary.index_kind = len(items), index_info["kind"]
    summary.index_update = "" if summary.index_reused else index_info.get("update", "")
    encoder_info = {"spec": encoder_spec, "name": text_encoder.name}
    _write_manifest(summary, backend, spec, endpoints, encoder_info, field_name, index_info, files, previous)
    _drop_old_indexes(folder, keep=index_info["folder"])


def _described(summary: BuildSummary, requests, keys: list[str], field_name: str) -> tuple[list[dict], list[dict]]:
    """(items to index: the images with an ok record, in file order; every file with its status); failures noted."""
    ok, failed = _records_by_key(summary.folder / CORPUS, set(keys))
    items, files = [], []
    for request, key in zip(requests, keys):
        entry = {"image_id": request.image_id, "sha256": request.image_sha256, "cache_key": key}
        if key in ok:
            items.append({**entry, "descriptions": variant_texts(ok[key].variants, field_name)})
            files.append({**entry, "status": "indexed"})
        else:
            summary.failed[request.image_id] = failed.get(key, "not described")
            files.append({**entry, "status": "failed", "error": summary.failed[request.image_id]})
    if not items:
        raise RuntimeError(f"none of the {len(requests)} image(s) could be described (first failure: "
                           f"{next(iter(summary.failed.values()))}); fix the captioner and rerun (it resumes)")
    return items, files


def _write_manifest(summary, backend, spec, endpoints, encoder_info, field_name, index_info, files, previous) -> None:
    from ..captioning.corpus import utc_now

    now = utc_now()
    summary.timings = {**{k: round(v, 2) for k, v in summary.timings.items()},
                       "total": round(time.monotonic() - summary.started, 2)}
    manifest = {
        "format": 1, "name": summary.name, "images_dir": str(summary.images_dir),
        "created": (previous or {}).get("created", now), "updated": now,
        "captioner": {"spec": spec, **endpoints, "label": captioner_label(backend), "backend": backend.name,
                      "model": backend.model,
                      "prompt_version": backend.prompt_version, "settings": backend.settings,
                      "caveat": capability(backend, "label"), "digest": backend_digest(backend)},
        "encoder": encoder_info,
        "field": field_name, "n_query_variants": IMAGE_QUERY_VARIANTS, "index": index_info,
        "counts": {"files": summary.n_files, "indexed": summary.n_indexed, "failed": len(summary.failed),
                   "new": summary.new, "changed": summary.changed, "removed": summary.removed,
                   "unchanged": summary.unchanged, "captioned_this_build": summary.captioned,
                   "skipped_outside_or_unreadable": len(summary.skipped)},
        "timings_s": summary.timings, "files": files, "skipped": summary.skipped,
    }
    write_json_atomic(manifest, summary.folder / MANIFEST)

"""Collections: your own imagery described as caption variants, embedded and indexed, searchable by text or by image.

A collection is one folder under `indexes_dir()` (RSRT_INDEX_DIR), one per name:
  manifest.json   images_dir, every file with its sha256, the captioner config (never a secret), encoder, index
                  kind, counts, timings, created/updated times; written last, so it always names a complete index
  corpus.jsonl    the captions, written by the study's corpus runner (`caption_images`): one record per image,
                  keyed by its bytes and the captioner's settings, so a killed build resumes and nothing is paid twice
  queries.jsonl   the descriptions of query images (`search_image`), kept the same way
  index-<digest>/ the indexed images (items.jsonl: id, sha256, embedded texts, in index order) and the VectorIndex
A second build captions only new or changed files (a changed file has a new sha256) and drops removed ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..captioning.registry import backend_info
from ..fileutil import write_json_atomic
from ..image_files import max_image_pixels
from ..logsafe import is_secret_name, redact
from ..paths import indexes_dir
from ..scoring import DEFAULT_FIELD, IMAGE_QUERY_VARIANTS, variant_texts
from ..suggest import did_you_mean

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
DEFAULT_CAPTIONER = {"backend": "neighbour", "bank": "rsicd-train"}  # offline: RSICD train images with pixels (AID-150)
NAME_RULE = re.compile(r"[A-Za-z0-9._-]+")
UNLINKABLE = re.compile(r"[\x00-\x1f\x7f]")  # control characters (newline, tab, ...) in a file's path
MANIFEST, CORPUS, QUERY_CORPUS, ITEMS, INDEX, BUILD_LOCK = ("manifest.json", "corpus.jsonl", "queries.jsonl",
                                                           "items.jsonl", "vectors", "build.lock")
# HNSW search breadth of a large collection (from index.EXACT_MAX_VECTORS rows): on REAL descriptions (AID-150
# neighbour collection, benchmarks/results/index_real.json) efSearch 128 recalls 0.83 of the exact top 10, 1024 recalls
# 0.96 at 0.9 ms a query; the smallest tried that reaches 0.95.
DEFAULT_EF_SEARCH = 1024
# Config keys whose change does not change an answer (left out of the compatibility check).
NOT_IDENTITY = ("concurrency",)
BASE_URL_VARIABLE = "RSRT_CAPTIONER_BASE_URL"  # the captioner's full server URL(s), whitespace-separated, at search time
_QUERY_LOCK = threading.Lock()


@dataclass(frozen=True)
class Item:
    """One indexed image: its id (path relative to images_dir, posix), file, content hash and embedded texts."""

    image_id: str
    path: Path
    sha256: str
    descriptions: list[str]
    retired: bool = False  # gone from the folder (or changed): kept in the index's numbering, never returned


@dataclass(frozen=True)
class Hit:
    """One search result: rank (1 = best), the image, its max-pooled cosine and its descriptions."""

    rank: int
    image_id: str
    score: float
    descriptions: list[str]


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


# ---------------------------------------------------------------- checks made before any work
def check_name(name: str) -> str:
    """A collection name is a folder name: only [A-Za-z0-9._-], not starting with a dot."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or name.startswith("."):
        raise ValueError(f"collection name {name!r} is not allowed: use only letters, digits, '.', '_' and '-', "
                         f"not starting with a dot (e.g. 'my-scenes')")
    return name


def check_images_dir(images_dir: Path | str) -> Path:
    """The folder of images, resolved; a clear error if it is missing."""
    path = Path(images_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"image folder {str(path)!r} does not exist or is not a folder; give the folder that holds "
                         f"your images (searched recursively for {', '.join(IMAGE_SUFFIXES)})")
    return path.resolve()


def check_encoder_spec(spec: str | None) -> str:
    """The encoder spec in its normal form ("st:all-MiniLM-L6-v2"); unknown names get a "did you mean"."""
    from ..encoders import DEFAULT_TEXT_ENCODER

    spec = (spec or DEFAULT_TEXT_ENCODER).strip()
    kinds = ("st", "sentence-transformers", "openai", "wordllama", "hashing")
    known = (DEFAULT_TEXT_ENCODER, "all-mpnet-base-v2", "hashing:4096", "wordllama:l2_supercat", "openai:text-embedding-3-small")
    kind, sep, rest = spec.partition(":")
    if not sep:
        if spec in known or Path(spec).expanduser().exists():
            return f"st:{spec}"
        raise ValueError(f"text encoder {spec!r} is not known{did_you_mean(spec, known)} (known: {', '.join(known)}; "
                         f"any sentence-transformers model: st:<hub id or local path>)")
    if kind.lower() not in kinds or not rest:
        raise ValueError(f"text encoder {spec!r}: kind {kind!r} is not known{did_you_mean(kind.lower(), kinds)} "
                         f"(use one of {', '.join(k + ':' for k in kinds)}, e.g. {known[0]!r} or 'hashing:4096')")
    if kind.lower() == "hashing" and not (rest.isdigit() and int(rest) > 0):
        raise ValueError(f"text encoder {spec!r}: hashing needs a positive dimension, e.g. 'hashing:4096'")
    return f"st:{rest}" if kind.lower() == "sentence-transformers" else f"{kind.lower()}:{rest}"


def captioner_config(captioner: dict | None) -> dict:
    """The backend config checked before any work (the registry's checks), with defaults: the neighbour captioner on
    the RSICD train bank."""
    from ..captioning.api import checked_config

    config = dict(captioner or DEFAULT_CAPTIONER)
    if config.get("backend") == DEFAULT_CAPTIONER["backend"]:
        config.setdefault("bank", DEFAULT_CAPTIONER["bank"])
    return checked_config(config)


def public_spec(config: dict) -> dict:
    """The captioner config as JSON without any secret (keys dropped, URL credentials removed, objects named)."""
    from ..server_urls import public_base_url

    spec = {}
    for key, value in config.items():
        if is_secret_name(key):  # api_key_env only names the variable that holds a key: it is kept
            continue
        if key == "base_url":
            spec[key] = [public_base_url(v) for v in value] if isinstance(value, (list, tuple)) else public_base_url(value)
        elif key == "bank" and not isinstance(value, str):
            spec[key] = f"custom:{value.identity}"
        elif isinstance(value, Path):
            spec[key] = str(value)
        elif value is None or isinstance(value, (str, int, float, bool)):
            spec[key] = value
        else:
            spec[key] = getattr(value, "name", None) or getattr(value, "identity", None) or type(value).__name__
    return spec


def endpoint_entries(config: dict) -> dict:
    """The manifest's record of where the captioner's server(s) are: every URL whole but for its credentials (masked
    by the one redaction), and where credentials come back from when a URL had some."""
    urls = config.get("base_url")
    if not urls:
        return {}
    endpoints = [redact(u) for u in ([urls] if isinstance(urls, str) else urls)]
    entries = {"endpoints": endpoints}
    if any("***" in e for e in endpoints):
        entries["credentials"] = (f"not stored: give the full URL(s) again with --base-url on `rsrt search` and "
                                  f"`rsrt serve`, or in the environment variable {BASE_URL_VARIABLE}")
    return entries


def endpoint_urls(manifest: dict, given: list[str] | None = None) -> list[str] | None:
    """The captioner's full server URL(s) for searching by image: the manifest's endpoints, with credentials taken
    from `given` (--base-url) or BASE_URL_VARIABLE where the manifest masks them; None for a backend without one.
    ValueError naming the missing endpoint and how to give it."""
    endpoints = manifest["captioner"].get("endpoints")
    if not endpoints:
        return None
    given = list(given or os.environ.get(BASE_URL_VARIABLE, "").split())
    by_redacted = {redact(u): u for u in given}
    urls = []
    for endpoint in endpoints:
        if "***" not in endpoint:
            urls.append(endpoint)
        elif endpoint in by_redacted:
            urls.append(by_redacted[endpoint])
        else:
            offered = f" (given: {', '.join(sorted(by_redacted))})" if given else ""
            raise ValueError(f"collection {manifest['name']!r} was captioned through {endpoint}, whose credentials are "
                             f"not stored{offered}; give that URL whole with --base-url on `rsrt search` or `rsrt serve`, "
                             f"or in {BASE_URL_VARIABLE}")
    return urls


def _identity(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in NOT_IDENTITY}


def check_compatible(manifest: dict, images_dir: Path, spec: dict, encoder_spec: str) -> None:
    """A build of an existing collection must use its folder, captioner and encoder; else say how to fix it."""
    name = manifest["name"]
    fix = f"build under another --name, or pass --rebuild to replace collection {name!r}"
    if Path(manifest["images_dir"]) != images_dir:
        raise ValueError(f"collection {name!r} was built from {manifest['images_dir']}, not {images_dir}; {fix}")
    before = _identity(manifest["captioner"]["spec"])
    if before != _identity(spec):
        changed = sorted(k for k in set(before) | set(_identity(spec)) if before.get(k) != spec.get(k))
        raise ValueError(f"collection {name!r} was captioned with {before}, not {_identity(spec)} (differs in "
                         f"{', '.join(changed)}); {fix}")
    if manifest["encoder"]["spec"] != encoder_spec:
        raise ValueError(f"collection {name!r} was embedded with {manifest['encoder']['spec']!r}, not {encoder_spec!r}; {fix}")


# ---------------------------------------------------------------- files
def collection_dir(name: str, root: Path | None = None) -> Path:
    return Path(root or indexes_dir()) / check_name(name)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def scan_images(images_dir: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(image_id, resolved path) of every image under images_dir (recursive, hidden files left out, sorted), and the
    ids of files that resolve outside images_dir (symlink escapes) or to no file, or whose path holds a control
    character (a newline cannot be linked safely): those are never indexed."""
    found, skipped = [], []
    for folder, dirs, files in os.walk(images_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file_name in files:
            if file_name.startswith(".") or Path(file_name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(folder) / file_name
            image_id, resolved = path.relative_to(images_dir).as_posix(), path.resolve()
            if _inside(resolved, images_dir) and resolved.is_file() and not UNLINKABLE.search(image_id):
                found.append((image_id, resolved))
            else:
                skipped.append(image_id)
    return sorted(found), sorted(skipped)


def hash_files(files: list[tuple[str, Path]], progress: bool = True) -> list:
    """Caption requests with each file's sha256 (its identity in every cache key)."""
    from tqdm.auto import tqdm

    from ..captioning.backend import CaptionRequest
    from ..fileutil import file_sha256

    return [CaptionRequest(image_id, path, file_sha256(path))
            for image_id, path in tqdm(files, desc="hashing", unit="file", disable=not progress, dynamic_ncols=True)]


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


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
def make_backend(config: dict):
    """The caption backend of a config, built by the registry's one builder (a bank named in the config is loaded
    here, after every check has passed)."""
    from ..captioning.api import build_backend

    return build_backend(config)


def captioner_label(backend) -> str:
    """How the captioner is shown wherever results appear, its caveat included."""
    label = getattr(backend, "label", None)
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
    """The cost estimate shown before a paid run on OpenAI itself (another server's prices are unknown)."""
    from ..captioning.registry import PAID_BACKENDS

    if backend.name not in PAID_BACKENDS or config.get("base_url"):
        return None
    from ..captioning.registry import EXPECTED_TOKENS, default_prices
    from ..captioning.runner import estimate_cost

    return estimate_cost(n_missing, default_prices(), EXPECTED_TOKENS, batch=backend.name == "openai-batch")["text"]


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
        index.set_ef_search(ef_search or DEFAULT_EF_SEARCH)
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


def _make_encoder(spec: str, progress: bool):
    from ..encoders import CachedEncoder, make_text_encoder

    return CachedEncoder(make_text_encoder(spec), progress=progress)


def build_collection(images_dir: Path, name: str, captioner: dict | None = None, encoder: str | None = None,
                     root: Path | None = None, progress: bool = True, *, concurrency: int = 8, limit: int | None = None,
                     rebuild: bool = False, dry_run: bool = False, ef_search: int | None = None,
                     ray: str | None = None, actors: int = 2) -> BuildSummary:
    """Describe, embed and index every image under images_dir as collection `name` (incremental and resumable).

    captioner: a make_caption_backend config (default {"backend": "neighbour"} on the RSICD train bank); encoder: a
    text encoder spec (default all-MiniLM-L6-v2); limit: only the first N files (sorted by path); ef_search: the HNSW
    search breadth of a large collection (default DEFAULT_EF_SEARCH); ray: a Ray cluster address (auto, local,
    HOST:PORT) to caption and embed on, with `actors` actors each (the corpus and the cache stay on this machine).
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
    engine = _engine(ray, actors, config)
    text_encoder = engine.encoder(encoder_spec, progress) if engine else _make_encoder(encoder_spec, progress)
    timings = {"encoder_setup": time.monotonic() - started}
    requests = _timed(timings, "hashing", hash_files, files, progress)
    # the neighbour bank's features are read here; on Ray the backend is built on a worker and known by its identity
    backend = _timed(timings, "captioner_setup", engine.backend if engine else make_backend, config)
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
        from ..captioning.runner import caption_images

        caption = (partial(engine.caption, config=config) if engine else
                   partial(caption_images, backend=backend, concurrency=concurrency))
        _caption_and_index(summary, backend, spec, endpoint_entries(config), encoder_spec, requests, text_encoder,
                           previous, caption, progress, ef_search)
    return summary


def _engine(ray: str | None, actors: int, config: dict):
    """The Ray engine, connected (None without --ray); a backend that needs Ray without it is an error first."""
    if ray is None:
        if backend_info(config["backend"]).needs_ray:
            raise ValueError(f"backend {config['backend']!r} runs on a Ray cluster: add --ray ADDRESS")
        return None
    from ..scaleout.captioning import RayEngine

    engine = RayEngine(ray, actors)
    engine.start(config)
    return engine


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
    from ..captioning.corpus import CorpusStore
    from ..captioning.runner import request_key

    done = CorpusStore(folder / CORPUS).done_keys() if (folder / CORPUS).exists() else set()
    summary.to_caption = len({request_key(backend, r, "variants") for r in requests} - done)
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
            and old.get("params", {}).get("efSearch", ef_search or DEFAULT_EF_SEARCH) == (ef_search or DEFAULT_EF_SEARCH):
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
                      "caveat": getattr(backend, "label", None), "digest": backend_digest(backend)},
        "encoder": encoder_info,
        "field": field_name, "n_query_variants": IMAGE_QUERY_VARIANTS, "index": index_info,
        "counts": {"files": summary.n_files, "indexed": summary.n_indexed, "failed": len(summary.failed),
                   "new": summary.new, "changed": summary.changed, "removed": summary.removed,
                   "unchanged": summary.unchanged, "captioned_this_build": summary.captioned,
                   "skipped_outside_or_unreadable": len(summary.skipped)},
        "timings_s": summary.timings, "files": files, "skipped": summary.skipped,
    }
    write_json_atomic(manifest, summary.folder / MANIFEST)


# ---------------------------------------------------------------- opening and searching
def single_threaded_queries() -> None:
    """One torch thread for query encoding in a serving process: with two on 2 busy cores, about a quarter of single
    query encodings took ~370 ms instead of ~10 ms (benchmarks/results/index_aid150.json)."""
    import torch

    torch.set_num_threads(1)


def list_collections(root: Path | None = None) -> list[str]:
    """Names of the collections under root (default indexes_dir()) that have a manifest, sorted."""
    root = Path(root or indexes_dir())
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())


class Collection:
    """An opened collection: its items, its index and what it takes to search it by text or by image."""

    def __init__(self, folder: Path, manifest: dict, items: list[Item], index, backend=None,
                 base_urls: list[str] | None = None):
        self.folder, self.manifest, self.index = folder, manifest, index
        self._base_urls = base_urls
        self._rows = items  # in the index's numbering, retired items included
        self.items = [item for item in items if not item.retired]
        self.name = manifest["name"]
        self.images_dir = Path(manifest["images_dir"])
        self.captioner = manifest["captioner"]["label"]
        self.encoder = manifest["encoder"]["name"]
        self.n_images = sum(not item.retired for item in items)
        self.index_kind = manifest["index"]["kind"]
        self._by_id = {item.image_id: item for item in items if not item.retired}
        self._backend, self._encoder = backend, None
        self._lock = threading.RLock()

    @classmethod
    def open(cls, name: str, root: Path | None = None, backend=None, base_urls: list[str] | None = None) -> "Collection":
        """Open collection `name`; `backend` serves image queries when the captioner cannot be rebuilt from the
        manifest (a bank given in code); `base_urls`: the captioner's server URLs with their credentials (else
        RSRT_CAPTIONER_BASE_URL). ValueError naming the known collections if there is none of that name."""
        from .index import IndexLoadError

        root = Path(root or indexes_dir())
        known = list_collections(root)
        if name not in known:
            raise ValueError(f"there is no collection {name!r} in {root}{did_you_mean(name, known)} (known: "
                             f"{', '.join(known) or 'none'}; build one with `rsrt index build DIR --name NAME`)")
        folder = root / name
        try:
            return cls._open_manifest(folder, read_manifest(folder), backend, base_urls)
        except (FileNotFoundError, IndexLoadError):  # a build swapped in a new index between the two reads
            return cls._open_manifest(folder, read_manifest(folder), backend, base_urls)

    @classmethod
    def _open_manifest(cls, folder: Path, manifest: dict, backend, base_urls) -> "Collection":
        from .index import VectorIndex

        name = manifest["name"]
        index_folder = folder / manifest["index"]["folder"]
        index = VectorIndex.load(index_folder / INDEX)
        images_dir = Path(manifest["images_dir"])
        rows = [json.loads(line) for line in (index_folder / ITEMS).read_text(encoding="utf-8").splitlines()]
        items = [Item(row["image_id"], (images_dir / row["image_id"]).resolve(), row["sha256"], row["descriptions"],
                      bool(row.get("retired"))) for row in rows]
        if index.n_items != len(items):
            raise ValueError(f"collection {name!r} is inconsistent ({index.n_items} indexed items, {len(items)} listed); "
                             f"rebuild it with `rsrt index build {images_dir} --name {name} --rebuild`")
        return cls(folder, manifest, items, index, backend, base_urls)

    def item(self, image_id: str) -> Item:
        """The item of that id; KeyError if it is not in the collection."""
        try:
            return self._by_id[image_id]
        except (KeyError, TypeError):
            raise KeyError(f"image {image_id!r} is not in collection {self.name!r}") from None

    def file_for(self, image_id: str) -> Path | None:
        """The image's file, only if image_id is an item of this collection and the file still resolves inside
        images_dir (a path with '..', an absolute path or a symlink pointing out of the folder gives None)."""
        item = self._by_id.get(image_id) if isinstance(image_id, str) else None
        if item is None:
            return None
        root = self.images_dir.resolve()
        path = (root / item.image_id).resolve()
        return path if _inside(path, root) and path != root and path.is_file() else None

    def search_text(self, query: str, k: int = 10) -> list[Hit]:
        """The k images whose descriptions best match the query (cosine, max-pooled over an image's variants)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"the text query is empty ({query!r}); give a description such as 'a bridge over a river'")
        return self._search(self._encode([query.strip()]), k)

    def search_image(self, path: Path, k: int = 10) -> list[Hit]:
        """Describe the image with the collection's captioner (variants mode), take its first IMAGE_QUERY_VARIANTS (2)
        variant texts, as the study's image->text queries, and rank images by their best match to any of them."""
        return self._search(self._encode(self.describe_image(path)), k)

    def describe_image(self, path: Path) -> list[str]:
        """The query texts for an image file: its first IMAGE_QUERY_VARIANTS descriptions by the collection's captioner
        (kept in queries.jsonl, so the same image is never described, nor paid for, twice)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ValueError(f"query image {str(path)!r} does not exist; give an image file (jpg, png, tif)")
        backend = self._query_backend()
        record = _describe(backend, path.resolve(), self.folder / QUERY_CORPUS)
        field_name = self.manifest.get("field", DEFAULT_FIELD)
        return variant_texts(record.variants[:self.manifest.get("n_query_variants", IMAGE_QUERY_VARIANTS)], field_name)

    def _query_backend(self):
        with self._lock:
            if self._backend is None:
                self._backend = _backend_from_manifest(self.manifest, self._base_urls)
            digest = backend_digest(self._backend)
            if digest != self.manifest["captioner"]["digest"]:
                raise ValueError(f"the captioner given for collection {self.name!r} answers differently from the one "
                                 f"that built it (settings {self._backend.settings} vs {self.manifest['captioner']['settings']}); "
                                 f"pass the same captioner, or rebuild the collection")
            return self._backend

    def _encode(self, texts: list[str]):
        """Query vectors from the collection's encoder, without the on-disk cache: user queries are never stored."""
        from ..encoders import make_text_encoder

        with self._lock:
            if self._encoder is None:
                self._encoder = make_text_encoder(self.manifest["encoder"]["spec"])
            return self._encoder.encode(texts)

    def _search(self, vectors, k: int) -> list[Hit]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {k!r}")
        scores, owners = self.index.search(vectors, min(k, self.n_images))
        best: dict[int, float] = {}
        for row_scores, row_items in zip(scores, owners):
            for score, item in zip(row_scores, row_items):
                if item >= 0 and float(score) > best.get(int(item), float("-inf")):
                    best[int(item)] = float(score)
        order = sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
        return [Hit(rank, self._rows[i].image_id, score, self._rows[i].descriptions)
                for rank, (i, score) in enumerate(order, start=1)]


def _backend_from_manifest(manifest: dict, base_urls: list[str] | None = None):
    """Rebuild the collection's captioner from its manifest (an API key, if any, comes from the environment; URL
    credentials from base_urls or RSRT_CAPTIONER_BASE_URL)."""
    spec = dict(manifest["captioner"]["spec"])
    urls = endpoint_urls(manifest, base_urls)
    if urls is not None:
        spec["base_url"] = urls if isinstance(spec.get("base_url"), list) else urls[0]
    if spec["backend"] == "import":
        raise ValueError(f"collection {manifest['name']!r} was captioned from an imported corpus, which cannot describe "
                         f"a new image; search it by text")
    if str(spec.get("bank", "")).startswith("custom:"):
        raise ValueError(f"collection {manifest['name']!r} was captioned with a bank given in code; open it with "
                         f"Collection.open(name, backend=<the same captioner>) to search by image")
    return make_backend(spec)


def _describe(backend, path: Path, store_path: Path):
    """The ok variants record of one query image, captioned through the corpus runner (cached by content)."""
    from ..captioning.corpus import CorpusBusyError, CorpusStore
    from ..captioning.images import build_requests
    from ..captioning.runner import caption_images, request_key

    request = build_requests([(f"query:{path.name}", path)])[0]
    key = request_key(backend, request, "variants")
    with _QUERY_LOCK, tempfile.TemporaryDirectory(prefix="rsrt-query-") as scratch:
        try:
            summary = caption_images([request], backend, store_path, concurrency=1, progress=False)
        except CorpusBusyError:  # another process writes the query cache: describe this one without caching it
            store_path = Path(scratch) / QUERY_CORPUS
            summary = caption_images([request], backend, store_path, concurrency=1, progress=False)
        record = next((r for r in CorpusStore(store_path).records() if r.cache_key == key and r.status == "ok"), None)
    if record is None:
        reason = next(iter(summary.failure_reasons), "no answer")
        raise ValueError(f"the captioner could not describe the query image {str(path)!r}: {reason}")
    return record

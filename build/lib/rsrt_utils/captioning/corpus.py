"""The corpus store: an append-only JSONL file, one `CorpusRecord` per line, safe to kill at any moment.

One writer per corpus file: the first `append` (or `acquire`) takes an exclusive lock on `<corpus>.lock`
and holds it until `close`, so a whole captioning run is one writer; a second writer stops at once with a
message naming the holder. The writer cuts a torn last line (left by a crash) when it takes the lock.
Each record is written with one write call, flushed and fsynced before `append` returns, so a crash loses
at most the line being written; a record whose key is already done is never written twice. Readers
(`records`, `load_variants`, a dry run) never take the lock and never modify the file; they skip a torn
last line that another process may be writing.

A corpus has one identity (dataset, split, backend, model, prompt version, settings) and one location,
`default_corpus_path`, shared by `rsrt caption` and `rsrt run`; both modes (variants, image_query) live in
it, each record keyed by everything that changes its answer, the image's bytes included.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping

from pydantic import ValidationError

from ..logsafe import redact
from .schema import CorpusRecord, Variant

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None


def make_cache_key(backend: str, model: str, prompt_version: str, settings: dict, mode: str,
                   image_sha256: str | None, image_id: str | None = None) -> str:
    """sha256 of everything that changes an answer; the image enters by content hash (or by id if it has none)."""
    if not image_sha256 and not image_id:
        raise ValueError("a cache key needs the image's content sha256 (or, for imported corpora, its image_id)")
    payload = {"backend": backend, "model": model, "prompt_version": prompt_version, "settings": settings,
               "mode": mode, "image": f"sha256:{image_sha256}" if image_sha256 else f"id:{image_id}"}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lock_holder() -> str:
    """What a lock file says of its holder: pid, host, command name and start time (never the arguments: they may
    hold a credential)."""
    return f"pid {os.getpid()} on {socket.gethostname()}, {Path(sys.argv[0]).name or 'python'}, since {utc_now()}"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def corpus_digest(backend) -> str:
    """Short hash of what identifies a backend's answers: name, model, prompt version and settings."""
    blob = json.dumps([backend.name, backend.model, backend.prompt_version, backend.settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def default_corpus_path(dataset: str, split: str, backend) -> Path:
    """The one location of a corpus: cache/corpora/<dataset>-<split>-<backend>-<model>-<digest>.jsonl."""
    from ..paths import cache_dir

    model = re.sub(r"[^A-Za-z0-9._-]+", "_", str(backend.model))
    return cache_dir() / "corpora" / f"{dataset}-{split}-{backend.name}-{model}-{corpus_digest(backend)}.jsonl"


class CorpusBusyError(RuntimeError):
    """Another process is writing this corpus file."""


class CorpusStore:
    """Append-only JSONL store of corpus records (thread-safe; one writer process per file, see the module docstring)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._done: set[str] = {r.cache_key for r in self.records() if r.status == "ok"}
        self._failed: set[str] = set()  # keys with a failure record (known once this store is the writer)
        self._superseded = False  # a failure record was superseded by a later record of its key

    def acquire(self) -> "CorpusStore":
        """Become the file's only writer until `close` (repairing a torn tail); CorpusBusyError if another holds it."""
        with self._lock:
            if self._lock_fd is not None:
                return self
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            os.fchmod(fd, 0o600)  # also a lock file left by an older version
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = redact(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()) or "unknown process"
                    os.close(fd)
                    raise CorpusBusyError(f"corpus {self.path} is being written by another process ({holder}); "
                                          "wait for it to finish (a rerun then resumes), or stop it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, lock_holder().encode(), 0)
            self._lock_fd = fd
            self.repair()
            records = list(self.records())
            self._done = {r.cache_key for r in records if r.status == "ok"}
            self._failed = {r.cache_key for r in records if r.status == "failed"}
            self._superseded = False
        return self

    def close(self) -> None:
        """Drop failure records a later record of the same key superseded, then release the writer lock (closing
        the descriptor releases the flock)."""
        with self._lock:
            if self._lock_fd is not None:
                if self._superseded:
                    self._drop_superseded_failures()
                os.close(self._lock_fd)
                self._lock_fd = None

    def _drop_superseded_failures(self) -> None:
        """Rewrite the file (atomically) with one record per key: its ok record, else its latest failure."""
        lines = self.path.read_bytes().splitlines(keepends=True)
        keys = [_key_and_status(line) for line in lines]
        ok = {key for key, status in keys if status == "ok"}
        last_failure = {key: i for i, (key, status) in enumerate(keys) if status == "failed"}
        kept = [line for i, (line, (key, status)) in enumerate(zip(lines, keys))
                if status != "failed" or (key not in ok and last_failure[key] == i)]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            _write_all(fd, b"".join(kept))
            os.fsync(fd)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._superseded = False

    def __enter__(self) -> "CorpusStore":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def repair(self) -> int:
        """Cut a torn last line left by a crash; return the number of bytes removed."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return 0
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            if _parses(tail):
                handle.write(b"\n")  # a complete record that lost only its newline
                return 0
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("corpus %s: removed a torn last line (%d bytes) left by an interrupted run", self.path, len(tail))
        return len(tail)

    def records(self) -> Iterator[CorpusRecord]:
        """Every complete record in file order (unreadable lines are reported and skipped)."""
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if not line.endswith("\n"):
                    return  # a torn tail written by another process right now
                try:
                    yield CorpusRecord.model_validate_json(line)
                except ValidationError as error:
                    log.warning("corpus %s line %d is not a valid record, skipped: %s", self.path, line_number,
                                str(error).splitlines()[0])

    def done_keys(self) -> set[str]:
        """Cache keys that have an "ok" record (failed ones are retried by a rerun)."""
        with self._lock:
            return set(self._done)

    def failed_keys(self) -> set[str]:
        """Cache keys whose latest record failed and that have no "ok" record."""
        done = self.done_keys()
        return {r.cache_key for r in self.records() if r.status == "failed" and r.cache_key not in done}

    def append(self, record: CorpusRecord) -> bool:
        """Write one record durably; False (and nothing written) if its key already has an "ok" record."""
        self.acquire()
        line = (record.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
        with self._lock:
            if record.cache_key in self._done:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._superseded |= record.cache_key in self._failed
            if record.status == "ok":
                self._done.add(record.cache_key)
            else:
                self._failed.add(record.cache_key)
        return True


def _key_and_status(line: bytes) -> tuple[str | None, str | None]:
    """(cache_key, status) of a stored line, (None, None) for a line that is not a record."""
    try:
        row = json.loads(line)
        return row.get("cache_key"), row.get("status")
    except (ValueError, AttributeError):
        return None, None


def _parses(raw: bytes) -> bool:
    try:
        CorpusRecord.model_validate_json(raw)
        return True
    except (ValidationError, ValueError):
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _ok_records(path: Path | str, mode: str, model: str | None,
                keys: Mapping[str, str] | None = None) -> dict[str, CorpusRecord]:
    """image id -> its ok record of this mode; with `keys` (image id -> the current request's cache key) exactly the
    record of that key, so a record made for other bytes, another model or other settings is never used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist; run `rsrt caption` or `rsrt caption-import` first")
    if keys is not None:
        wanted = {key: image_id for image_id, key in keys.items()}
        return {wanted[r.cache_key]: r for r in CorpusStore(path).records()
                if r.status == "ok" and r.mode == mode and r.cache_key in wanted}
    chosen: dict[str, CorpusRecord] = {}
    for record in CorpusStore(path).records():
        if record.status != "ok" or record.mode != mode or (model and record.model != model):
            continue
        previous = chosen.get(record.image_id)
        if previous is not None and previous.cache_key != record.cache_key:
            raise ValueError(f"corpus {str(path)!r} holds two different answers for image {record.image_id!r} "
                             f"(models {previous.model!r} and {record.model!r}, or different settings); "
                             f"pass model=... or keep one run per corpus file")
        chosen[record.image_id] = record
    return chosen


def load_variants(path: Path | str, model: str | None = None, keys: Mapping[str, str] | None = None) -> dict[str, list[Variant]]:
    """image_id -> its variants (five from a VLM backend; 1..N descriptions from a published corpus), from the
    "ok" variants records of a corpus file (with `keys`: only the records of those cache keys)."""
    return {image_id: record.variants for image_id, record in _ok_records(path, "variants", model, keys).items()}


def load_query_texts(path: Path | str, model: str | None = None, keys: Mapping[str, str] | None = None) -> dict[str, str]:
    """image_id -> the query text written for it in "image_query" mode (with `keys`: only those records)."""
    return {image_id: record.query_text or "" for image_id, record in _ok_records(path, "image_query", model, keys).items()}


def load_variants_union(paths: list[Path | str], keys: Mapping[str, str] | None = None) -> dict[str, list[Variant]]:
    """image_id -> the variants of every corpus file that has the image, in the order of `paths` (a gallery of
    several corpora: each image's variants are the union of their descriptions)."""
    merged: dict[str, list[Variant]] = {}
    for path in paths:
        for image_id, variants in load_variants(path, keys=keys).items():
            merged.setdefault(image_id, []).extend(variants)
    return merged

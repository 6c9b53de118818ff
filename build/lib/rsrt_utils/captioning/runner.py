"""The corpus runner: caption many images with any backend, resumably, and summarise what failed.

Requests already answered (their cache key has an "ok" record in the store) are skipped. The rest run
in threads (`concurrency`), in chunks of the backend's `batch_size`. A bad answer is retried once with
the stricter instruction; a request that still fails gets a `status="failed"` record with its reason.
One bad image never stops the run; only a `BackendFatalError` (e.g. a rejected API key) does.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..image_files import image_problem, max_image_pixels
from ..logsafe import redact
from .backend import MODES, BackendAnswer, BackendFatalError, CaptionBackend, CaptionRequest, capability
from .corpus import CorpusStore, make_cache_key, utc_now
from .images import build_requests
from .parsing import ParseError, parse_query_text, parse_variants
from .schema import CorpusRecord

log = logging.getLogger(__name__)

@dataclass
class RunSummary:
    """What a run did: counts, failure reasons (reason -> count), token usage, time."""

    total: int = 0
    skipped_done: int = 0
    ok: int = 0
    failed: int = 0
    retried: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    failed_image_ids: list[str] = field(default_factory=list)
    failed_files: dict[str, str] = field(default_factory=dict)  # image id -> its file (or "no file")
    usage: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    store_path: str = ""
    endpoints: list[dict] = field(default_factory=list)  # a fleet's servers: requests, answers, errors, in rotation

    def text(self) -> str:
        lines = [f"captioned {self.ok} image(s), {self.failed} failed, {self.skipped_done} already done "
                 f"(of {self.total}); {self.retried} retried with the strict prompt; {self.elapsed_s:.1f} s",
                 "tokens: " + ", ".join(f"{k}={v}" for k, v in sorted(self.usage.items())) if self.usage else "tokens: none reported",
                 f"store: {self.store_path}"]
        for row in self.endpoints:
            lines.append(f"endpoint {row['endpoint']}: {row['requests']} request(s), {row['ok']} answered, errors "
                         + (", ".join(f"{k} x{v}" for k, v in row["errors"].items()) or "none")
                         + ("" if row["in_rotation"] else "; TAKEN OUT OF ROTATION after repeated failures"))
        if self.failure_reasons:
            lines.append("failures by reason:")
            lines += [f"  {count} x {reason}" for reason, count in sorted(self.failure_reasons.items(), key=lambda kv: -kv[1])]
            lines.append(f"failed images ({len(self.failed_image_ids)}; a rerun retries them):")
            lines += [f"  {image_id}: {self.failed_files.get(image_id, 'no file')}" for image_id in self.failed_image_ids[:20]]
            if len(self.failed_image_ids) > 20:
                lines.append(f"  ... and {len(self.failed_image_ids) - 20} more (their records are in the store)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def request_key(backend: CaptionBackend, request: CaptionRequest, mode: str) -> str:
    """The cache key of one request under this backend's model, prompts and settings."""
    return make_cache_key(backend.name, backend.model, backend.prompt_version, backend.settings, mode,
                          request.image_sha256, request.image_id)


def _add_usage(total: dict, usage: dict) -> None:
    """Add the integer counters of `usage` (tokens, HTTP retries) into `total`."""
    for name, value in (usage or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[name] = total.get(name, 0) + value


def interpret_answer(answer: BackendAnswer, mode: str) -> tuple[dict, str | None, bool]:
    """(record fields, failure reason or None, whether a strict retry may help)."""
    if answer.error:
        return {}, answer.error, False
    try:
        if mode == "variants":
            if answer.variants is not None:
                return {"variants": parse_variants([v.model_dump() for v in answer.variants]).variants}, None, False
            return {"variants": parse_variants(answer.raw_text or "").variants}, None, False
        text = answer.query_text if answer.query_text is not None else answer.raw_text
        return {"query_text": parse_query_text(text or "")}, None, False
    except ParseError as error:
        truncated = " (the answer was cut off at max_tokens)" if answer.usage.get("finish_reason") == "length" else ""
        return {}, f"bad answer: {error.reason}{truncated}", answer.variants is None


def _call_backend(backend: CaptionBackend, chunk: Sequence[CaptionRequest], mode: str, strict: bool) -> list[BackendAnswer]:
    """The backend's answers; if a call of several requests fails as a whole, each request is asked on its own, so one
    request's error is never shared with its neighbours."""
    try:
        answers = backend.answer_batch(chunk, mode, strict=strict)
    except BackendFatalError:
        raise
    except Exception as error:  # one failing call must not stop the run
        log.debug("backend call failed", exc_info=True)
        if len(chunk) > 1:
            return [answer for request in chunk for answer in _call_backend(backend, [request], mode, strict)]
        return [BackendAnswer(error=f"{type(error).__name__}: {error}")]
    if len(answers) != len(chunk):
        return [BackendAnswer(error=f"backend returned {len(answers)} answers for {len(chunk)} requests") for _ in chunk]
    return answers


def caption_chunk(backend, chunk, keys, mode, max_attempts) -> list[tuple[CorpusRecord, int]]:
    """Records for one chunk (with the number of strict retries each took); a fleet serves its requests, strict
    retries included, before those of chunks started later."""
    fleet = capability(backend, "fleet")
    with fleet.call() if fleet is not None else nullcontext():
        return _caption_chunk(backend, chunk, keys, mode, max_attempts)


def caption_as_answered(backend, chunk, keys, mode, max_attempts) -> Iterator[tuple[CorpusRecord, int]]:
    """caption_chunk's records one at a time, as each image is done: a backend of remote servers (a fleet) answers the
    chunk's images side by side, one request each, so no answer waits for the slowest of its chunk (a killed caller
    loses only the requests in flight); any other backend answers the chunk in one batch. The order varies from one
    call to the next: a caller must not retry a call by skipping what an earlier attempt yielded."""
    fleet = capability(backend, "fleet")
    if fleet is None or len(chunk) <= 1:
        yield from caption_chunk(backend, chunk, keys, mode, max_attempts)
        return
    with fleet.call() as call, ThreadPoolExecutor(max_workers=len(chunk), thread_name_prefix="answer") as pool:

        def one(i: int) -> tuple[CorpusRecord, int]:
            with fleet.call(call):  # the chunk's requests keep its place in the fleet's oldest-call-first order
                return _caption_chunk(backend, [chunk[i]], [keys[i]], mode, max_attempts)[0]

        for answer in as_completed([pool.submit(one, i) for i in range(len(chunk))]):
            yield answer.result()


def _caption_chunk(backend, chunk, keys, mode, max_attempts) -> list[tuple[CorpusRecord, int]]:
    outcome: dict[int, tuple[dict, str | None]] = {}
    usage: dict[int, dict] = {i: {} for i in range(len(chunk))}
    retries, calls = Counter(), Counter()
    pending = []
    for i, request in enumerate(chunk):
        reason = pixel_problem(backend, request)
        if reason:
            outcome[i] = ({}, reason)
        else:
            pending.append(i)
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        strict = attempt > 1
        answers = _call_backend(backend, [chunk[i] for i in pending], mode, strict)
        again = []
        for i, answer in zip(pending, answers):
            calls[i] += 1
            _add_usage(usage[i], answer.usage)
            fields, reason, retryable = interpret_answer(answer, mode)
            outcome[i] = (fields, reason)
            if reason and retryable and attempt < max_attempts:
                again.append(i)
                retries[i] += 1
        pending = again
    records = []
    for i, request in enumerate(chunk):
        fields, reason = outcome[i]
        usage[i]["attempts"] = calls[i]
        records.append((make_record(backend, request, keys[i], mode, fields, reason, usage[i]), retries[i]))
    return records


def pixel_problem(backend, request: CaptionRequest) -> str | None:
    """Why this request cannot be sent (no pixel file; a missing, empty, undecodable or oversized file), or None."""
    if not capability(backend, "needs_pixels"):
        return None
    if request.image_path is None:
        return f"image {request.image_id!r} has no pixel file; caption only images with pixels (Dataset.with_images())"
    if not request.image_sha256:
        return f"image file {str(request.image_path)!r} is missing or unreadable; check the data root (--data-root)"
    return image_problem(request.image_path)


def make_record(backend, request, key, mode, fields, reason, usage) -> CorpusRecord:
    return CorpusRecord(image_id=request.image_id, cache_key=key, status="failed" if reason else "ok", mode=mode,
                        error=redact(reason) if reason else None, backend=backend.name, model=backend.model, prompt_version=backend.prompt_version,
                        settings=backend.settings, image_sha256=request.image_sha256, usage=usage,
                        label=capability(backend, "label"), created_at=utc_now(), **fields)


def progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="captioning", unit="img", disable=not enabled, dynamic_ncols=True)


def note_record(summary: RunSummary, record: CorpusRecord, retries: int, image_path=None) -> None:
    summary.retried += retries
    _add_usage(summary.usage, record.usage)
    if record.status == "ok":
        summary.ok += 1
    else:
        summary.failed += 1
        summary.failure_reasons[record.error] = summary.failure_reasons.get(record.error, 0) + 1
        summary.failed_image_ids.append(record.image_id)
        summary.failed_files[record.image_id] = str(image_path) if image_path is not None else "no file"


def caption_images(requests: Iterable, backend: CaptionBackend, store_path: Path | str, mode: str = "variants",
                   concurrency: int = 8, max_attempts: int = 2, progress: bool = True) -> RunSummary:
    """Caption every request not yet done into the store at `store_path`; return what happened.

    `requests`: CaptionRequest objects, (image_id, path) pairs or data-layer ImageRecords.
    `concurrency`: requests in flight per server (a backend serving from a fleet of servers gets it for each).
    `max_attempts`: answers per image at most (2 = one retry of a bad answer with the strict prompt).
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(MODES)}")
    if concurrency < 1 or max_attempts < 1:
        raise ValueError(f"concurrency ({concurrency}) and max_attempts ({max_attempts}) must be at least 1")
    max_image_pixels()  # a bad RSRT_MAX_IMAGE_PIXELS is named before any work
    if capability(backend, "caption_to_store"):  # e.g. the OpenAI Batch API: its own submit/poll/collect cycle
        return backend.caption_to_store(requests, store_path, mode=mode, max_attempts=max_attempts, progress=progress)
    started = time.monotonic()
    with CorpusStore(store_path) as store:  # the only writer of this file for the whole run
        requests = build_requests(requests)
        summary = RunSummary(total=len(requests), store_path=str(store.path))
        left, keys, summary.skipped_done = todo(requests, backend, mode, store.done_keys())
        batch_size = max(1, int(capability(backend, "batch_size") or 1))
        concurrency *= len(capability(backend, "base_urls") or [None])
        chunks = [list(range(s, min(s + batch_size, len(left)))) for s in range(0, len(left), batch_size)]
        bar = progress_bar(summary.total, progress, initial=summary.skipped_done)
        try:
            _run_chunks(backend, left, keys, chunks, mode, concurrency, max_attempts, store, summary, bar)
        finally:
            bar.close()
            summary.elapsed_s = round(time.monotonic() - started, 3)
            fleet = capability(backend, "fleet")
            summary.endpoints = fleet.report() if fleet is not None and len(fleet) > 1 else []
    log.info("%s", summary.text())
    return summary


def pending(requests, backend, mode: str, store_path: Path | str) -> tuple[list, list[str], int]:
    """`todo` against the corpus at store_path (none yet: everything is to do); read-only, for counts and estimates."""
    done = CorpusStore(store_path).done_keys() if Path(store_path).exists() else set()
    return todo(build_requests(requests), backend, mode, done)


def todo(requests, backend, mode: str, done: set[str]) -> tuple[list, list[str], int]:
    """What is left to caption: the requests whose key is not in `done` (once each), their keys, and how many were
    skipped. The one place "what is done" is computed, for the local runner, Ray and the commands' counts."""
    left, keys, seen, skipped = [], [], set(), 0
    for request in requests:
        key = request_key(backend, request, mode)
        if key in done or key in seen:
            skipped += 1
            continue
        seen.add(key)
        left.append(request)
        keys.append(key)
    return left, keys, skipped


def _run_chunks(backend, todo, keys, chunks, mode, concurrency, max_attempts, store, summary, bar) -> None:
    """Run chunks in a bounded thread pool; write each record as soon as its chunk is done."""
    chunk_iter = iter(chunks)
    paths = {request.image_id: request.image_path for request in todo}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="caption") as pool:
        running = set()

        def submit_next() -> bool:
            indices = next(chunk_iter, None)
            if indices is None:
                return False
            running.add(pool.submit(caption_chunk, backend, [todo[i] for i in indices], [keys[i] for i in indices],
                                    mode, max_attempts))
            return True

        while len(running) < concurrency and submit_next():
            pass
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.discard(future)
                    for record, retries in future.result():
                        store.append(record)
                        note_record(summary, record, retries, paths.get(record.image_id))
                        bar.update(1)
                    submit_next()
        except BaseException:
            for future in running:
                future.cancel()
            raise

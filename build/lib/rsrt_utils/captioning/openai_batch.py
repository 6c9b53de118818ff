"""OpenAI Batch API mode: the same requests as the chat backend, at half the price, answered within 24 h.

`caption_to_store` prepares a JSONL batch file (custom_id = cache key), uploads it, creates the batch,
polls it with a progress bar, downloads the output and writes one corpus record per line. A state file
next to the corpus (`<corpus>.batch.json`) holds the batch id: a rerun after a restart resumes polling
and collecting instead of resubmitting, and only images without an "ok" record are ever submitted.
Bad answers are resubmitted once with the stricter prompt (a second batch), as the chat runner does.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

from .backend import BackendAnswer, CaptionRequest
from .corpus import CorpusStore, utc_now
from .images import ImageLoadError, build_requests
from .openai_chat import OpenAIChatBackend, text_and_usage
from .runner import RunSummary, interpret_answer, make_record, note_record, pixel_problem, request_key

log = logging.getLogger(__name__)

TERMINAL = ("completed", "expired", "cancelled", "failed")


def state_path_for(store_path: Path | str) -> Path:
    """Where the batch state of a corpus lives: next to it."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".batch.json")


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# The Batch API's limits per batch input file: 50 000 requests and 200 MB (a high-detail image request is ~31 KB,
# so about 6 000 images fill a file); a larger run is submitted as several batches, one after another.
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_BYTES = 190_000_000  # under the 200 MB limit, with room for the JSON framing


def _line_bytes(line: dict) -> int:
    return len(json.dumps(line, separators=(",", ":")).encode("utf-8")) + 1


class OpenAIBatchBackend(OpenAIChatBackend):
    """Batch API backend; takes every chat option plus poll_interval (s), completion_window, max_wait_s."""

    name = "openai-batch"

    def __init__(self, poll_interval: float = 30.0, completion_window: str = "24h", max_wait_s: float | None = None,
                 **chat_options):
        super().__init__(**chat_options)
        if len(self.base_urls) > 1:
            raise ValueError("the Batch API runs on one server: give one base_url (a fleet of servers is for "
                             "openai-chat)")
        self.poll_interval = poll_interval
        self.completion_window = completion_window
        self.max_wait_s = max_wait_s
        self.batch_size = MAX_BATCH_REQUESTS

    # --- the API calls ---------------------------------------------------------------------------
    def submit(self, lines: list[dict]) -> tuple[str, str]:
        """Upload the JSONL lines and create a batch; (batch id, input file id)."""
        data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode("utf-8")
        uploaded, _ = self.call_with_retries(
            lambda client: client.files.create(file=("rsrt_batch.jsonl", data, "application/jsonl"), purpose="batch"),
            "batch file upload", hold_slot=False)
        batch, _ = self.call_with_retries(
            lambda client: client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                 completion_window=self.completion_window,
                                                 metadata={"project": "rsrt", "prompt_version": self.prompt_version}),
            "batch creation", hold_slot=False)
        return batch.id, uploaded.id

    def retrieve(self, batch_id: str):
        batch, _ = self.call_with_retries(lambda client: client.batches.retrieve(batch_id), "batch poll", hold_slot=False)
        return batch

    def download(self, file_id: str | None) -> list[dict]:
        """The JSON lines of an output or error file (empty if there is none)."""
        if not file_id:
            return []
        content, _ = self.call_with_retries(lambda client: client.files.content(file_id).text, "batch download",
                                            hold_slot=False)
        return [json.loads(line) for line in content.splitlines() if line.strip()]

    def wait_for(self, batch_id: str, total: int, progress: bool = True):
        """Poll until the batch ends (or max_wait_s passes); the last batch object."""
        from tqdm.auto import tqdm

        started = time.monotonic()
        with tqdm(total=total, desc=f"batch {batch_id}", unit="img", disable=not progress, dynamic_ncols=True) as bar:
            while True:
                batch = self.retrieve(batch_id)
                counts = batch.request_counts
                done = (counts.completed + counts.failed) if counts else 0
                bar.update(max(0, done - bar.n))
                bar.set_postfix_str(batch.status)
                if batch.status in TERMINAL:
                    return batch
                if self.max_wait_s is not None and time.monotonic() - started >= self.max_wait_s:
                    return batch
                self._sleep(self.poll_interval)

    # --- answers ---------------------------------------------------------------------------------
    def answers_from_batch(self, batch) -> dict[str, BackendAnswer]:
        """custom_id -> answer, from the batch's output and error files."""
        answers = {}
        for line in self.download(batch.output_file_id) + self.download(getattr(batch, "error_file_id", None)):
            answers[line.get("custom_id")] = self._answer_from_line(line, batch.id)
        return answers

    def _answer_from_line(self, line: dict, batch_id: str) -> BackendAnswer:
        response = line.get("response") or {}
        body = response.get("body") or {}
        if line.get("error") or response.get("status_code") != 200:
            message = (line.get("error") or body.get("error") or {}).get("message", "no message")
            return BackendAnswer(error=self.redact(f"batch request failed (HTTP {response.get('status_code')}): {message}"),
                                 usage={"batch_id": batch_id})
        text, usage = text_and_usage(body)
        usage.pop("http_retries", None)
        usage["batch_id"] = batch_id
        return BackendAnswer(raw_text=text, usage=usage)

    def answer_batch(self, requests: Sequence[CaptionRequest], mode: str, strict: bool = False) -> list[BackendAnswer]:
        """Answer in one batch and wait for it (no state file: use caption_to_store for resumable runs)."""
        lines, errors = [], {}
        for i, request in enumerate(requests):
            try:
                lines.append(self._line(f"request-{i}", request, mode, strict))
            except ImageLoadError as error:
                errors[i] = BackendAnswer(error=str(error))
        answers = {}
        if lines:
            batch_id, _ = self.submit(lines)
            answers = self.answers_from_batch(self.wait_for(batch_id, len(lines), progress=False))
        missing = BackendAnswer(error="the batch returned no answer for this request")
        return [errors.get(i) or answers.get(f"request-{i}", missing) for i in range(len(requests))]

    def _line(self, custom_id: str, request: CaptionRequest, mode: str, strict: bool) -> dict:
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                "body": self.request_body(request, mode, strict)}

    # --- the resumable run -----------------------------------------------------------------------
    def caption_to_store(self, requests, store_path: Path | str, mode: str = "variants", max_attempts: int = 2,
                         progress: bool = True) -> RunSummary:
        """Caption every request not yet done via the Batch API, resumably (see the module docstring)."""
        store = CorpusStore(store_path).acquire()  # the only writer for the whole batch cycle
        try:
            return self._caption_to_store(store, requests, mode, max_attempts, progress)
        finally:
            store.close()

    def _caption_to_store(self, store: CorpusStore, requests, mode: str, max_attempts: int, progress: bool) -> RunSummary:
        started = time.monotonic()
        state_path = state_path_for(store.path)
        requests = build_requests(requests)
        by_key = {request_key(self, r, mode): r for r in requests}
        summary = RunSummary(total=len(requests), store_path=str(store.path))
        done = store.done_keys()
        summary.skipped_done = sum(1 for key in by_key if key in done)
        strict_keys = {r.cache_key for r in store.records() if r.status == "failed" and (r.error or "").startswith("bad answer")}
        outcomes: dict[str, tuple] = {}
        attempt, submitted, retry_keys = 1, set(), set()
        while True:
            state = self._load_state(state_path, mode)
            if state is None:
                todo = {k: r for k, r in by_key.items() if k not in store.done_keys() and k not in submitted}
                if attempt > 1:
                    todo = {k: r for k, r in todo.items() if k in strict_keys}
                state = self._submit_round(todo, mode, strict_keys, store, outcomes, state_path, first=attempt == 1)
                if state is None:  # this attempt is submitted in full: the strict retry of its bad answers, or the end
                    if not retry_keys or attempt >= max_attempts:
                        break
                    attempt, submitted, strict_keys, retry_keys = attempt + 1, set(), retry_keys, set()
                    continue
            submitted |= set(state["requests"])
            batch = self.wait_for(state["batch_id"], len(state["requests"]), progress)
            if batch.status not in TERMINAL:
                log.warning("batch %s is still %s; rerun the same command to keep polling", batch.id, batch.status)
                break
            retry_keys |= self._collect(batch, state, by_key, mode, store, outcomes)
            state_path.unlink(missing_ok=True)
        for key, (record, retries) in outcomes.items():
            note_record(summary, record, retries, by_key[key].image_path if key in by_key else None)
        summary.elapsed_s = round(time.monotonic() - started, 3)
        log.info("%s", summary.text())
        return summary

    def _load_state(self, state_path: Path, mode: str) -> dict | None:
        if not state_path.is_file():
            return None
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("mode") != mode:
            raise ValueError(f"{state_path} belongs to a {state.get('mode')!r} run, not {mode!r}; "
                             f"use another corpus path or finish that run first")
        log.info("resuming batch %s from %s", state["batch_id"], state_path)
        return state

    def _submit_round(self, todo: dict, mode, strict_keys, store, outcomes, state_path, first: bool) -> dict | None:
        """Submit the missing requests as one batch (at most MAX_BATCH_REQUESTS lines and MAX_BATCH_BYTES; the rest go
        in the next one) and save the state; None if there is nothing to submit."""
        lines, meta, size = [], {}, 0
        for key, request in todo.items():
            if len(lines) >= MAX_BATCH_REQUESTS:
                break
            problem = pixel_problem(self, request)
            try:
                line = None if problem else self._line(key, request, mode, key in strict_keys)
            except ImageLoadError as error:
                problem = str(error)
            if problem:
                if first:
                    record = make_record(self, request, key, mode, {}, problem, {"attempts": 0})
                    store.append(record)
                    outcomes[key] = (record, 0)
                continue
            if lines and size + _line_bytes(line) > MAX_BATCH_BYTES:
                break
            size += _line_bytes(line)
            lines.append(line)
            meta[key] = {"image_id": request.image_id, "strict": key in strict_keys}
        if not lines:
            return None
        batch_id, file_id = self.submit(lines)
        state = {"batch_id": batch_id, "input_file_id": file_id, "mode": mode, "submitted_at": utc_now(),
                 "requests": meta}
        _write_json_atomic(state_path, state)
        log.info("submitted batch %s with %d request(s); state in %s", batch_id, len(lines), state_path)
        return state

    def _collect(self, batch, state, by_key, mode, store, outcomes) -> set[str]:
        """Write one record per submitted request; return the keys whose answer was bad (for a strict retry)."""
        answers = self.answers_from_batch(batch)
        already = {(r.cache_key, r.usage.get("batch_id")) for r in store.records()}
        bad = set()
        for key, meta in state["requests"].items():
            request = by_key.get(key)
            if request is None:
                log.warning("batch %s answered image %s, which is not among this run's requests; "
                            "rerun with the same images to record it", batch.id, meta.get("image_id"))
                continue
            if (key, batch.id) in already:
                continue
            answer = answers.get(key) or BackendAnswer(error=f"batch {batch.id} ended {batch.status} without an answer "
                                                             f"for this image; rerun to resubmit it",
                                                       usage={"batch_id": batch.id})
            fields, reason, retryable = interpret_answer(answer, mode)
            usage = {**answer.usage, "attempts": 1, "strict": meta.get("strict", False)}
            record = make_record(self, request, key, mode, fields, reason, usage)
            if store.append(record):
                previous_retries = outcomes.get(key, (None, 0))[1]
                outcomes[key] = (record, previous_retries + (1 if meta.get("strict") else 0))
            if reason and retryable and not meta.get("strict"):
                bad.add(key)
        return bad

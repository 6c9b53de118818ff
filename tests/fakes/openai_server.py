"""A real local HTTP server that speaks enough of the OpenAI API for tests and benchmarks.

Endpoints: POST /v1/chat/completions, POST /v1/embeddings, POST /v1/files, GET /v1/files/{id},
GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}.

Chat answers are scripted per request (`script(...)`, then `default`):
  "ok"            valid five-variant JSON (or a plain description for the image-query prompt)
  "malformed"     broken JSON             "fenced"     valid JSON inside ```json fences
  "prose"         JSON with prose around  "four"       four variants
  "duplicate"     two identical variants  "empty_field" a variant with an empty caption
  "429:S"         HTTP 429, Retry-After: S seconds   "429-date:S"  the same as an HTTP date
  "500" / "401" / "403" / "400"           that HTTP status (401 echoes the bearer token, like a leaky server)
  "stall:S"       sleep S seconds before answering (longer than the client timeout)
Every request is recorded (`requests`), and `latency` delays every answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict
    body: dict | None
    at: float
    behaviour: str | None = None
    image_digest: str | None = None
    raw: bytes = b""
    query: dict = field(default_factory=dict)  # the request's query parameters, name -> [values]
    answered_at: float | None = None  # when its answer was written out (None: still being answered, or never)


@dataclass
class FakeBatch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    created_at: int
    polls: int = 0
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})


def image_digest_of(body: dict | None) -> str | None:
    """sha256 (16 hex) of the first image URL in a chat body: identifies the image across requests."""
    for message in (body or {}).get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    return hashlib.sha256(part["image_url"]["url"].encode()).hexdigest()[:16]
    return None


def prompt_text_of(body: dict | None) -> str:
    texts = []
    for message in (body or {}).get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text", "") for p in content if p.get("type") == "text"]
    return "\n".join(texts)


def variants_for(digest: str, n: int = 5) -> list[dict]:
    """Deterministic, distinct variants for an image."""
    return [{"one_sentence": f"A scene {digest} seen from above, variant {i + 1}, with buildings and roads.",
             "feature": f"Large buildings in the north, a small pond in the south-west (variant {i + 1}).",
             "caption": f"This aerial image {digest} shows a dense area; variant {i + 1} describes green trees in "
                        f"the east and a medium-sized road running from west to east."} for i in range(n)]


def answer_text(behaviour: str, body: dict | None) -> str:
    """The assistant text for a content behaviour."""
    digest = image_digest_of(body) or "noimage"
    wants_variants = '"variants"' in prompt_text_of(body)
    if not wants_variants:
        return f"A satellite image {digest}: a large residential area in the north and a river in the south."
    variants = variants_for(digest)
    if behaviour == "four":
        variants = variants[:4]
    elif behaviour == "duplicate":
        variants[3] = dict(variants[1])
    elif behaviour == "empty_field":
        variants[2]["caption"] = ""
    text = json.dumps({"variants": variants})
    if behaviour == "malformed":
        return text[: len(text) // 2] + ' "oops'
    if behaviour == "fenced":
        return f"```json\n{text}\n```"
    if behaviour == "prose":
        return f"Sure! Here is the JSON you asked for:\n{text}\nI hope this helps."
    return text


def fake_embedding(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakeOpenAIServer:
    """Start with `start()` (or use as a context manager); `base_url` ends in /v1."""

    def __init__(self, latency: float = 0.0, default: str = "ok", batch_polls_to_complete: int = 2,
                 batch_final_status: str = "completed", embedding_dim: int = 32, expected_key: str | None = None):
        self.latency = latency
        self.default = default
        self.batch_polls_to_complete = batch_polls_to_complete
        self.batch_final_status = batch_final_status
        self.embedding_dim = embedding_dim
        self.expected_key = expected_key
        self.requests: list[RecordedRequest] = []
        self.files: dict[str, dict] = {}
        self.batches: dict[str, FakeBatch] = {}
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *behaviours: str) -> None:
        """Queue behaviours for the next chat requests (and batch lines), in order."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def next_behaviour(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def requests_to(self, suffix: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix) and (method is None or r.method == method)]

    def new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-{self._counter}"

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # --- responses ---------------------------------------------------------------------------
    def chat_completion(self, body: dict, text: str) -> dict:
        prompt_tokens = len(prompt_text_of(body)) // 4 + 255
        completion_tokens = max(1, len(text) // 4)
        return {"id": self.new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def file_object(self, file_id: str) -> dict:
        meta = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(meta["content"]), "created_at": meta["created_at"],
                "filename": meta["filename"], "purpose": meta["purpose"], "status": "processed"}

    def add_file(self, content: bytes, filename: str, purpose: str) -> str:
        file_id = self.new_id("file")
        self.files[file_id] = {"content": content, "filename": filename, "purpose": purpose, "created_at": int(time.time())}
        return file_id

    def batch_object(self, batch: FakeBatch) -> dict:
        return {"id": batch.id, "object": "batch", "endpoint": batch.endpoint, "input_file_id": batch.input_file_id,
                "completion_window": batch.completion_window, "status": batch.status, "created_at": batch.created_at,
                "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
                "request_counts": dict(batch.counts)}

    def advance_batch(self, batch: FakeBatch) -> None:
        """Each retrieve moves the batch on; after `batch_polls_to_complete` polls it is finished."""
        if batch.status in ("completed", "expired", "failed", "cancelled"):
            return
        batch.polls += 1
        lines = [json.loads(t) for t in self.files[batch.input_file_id]["content"].decode().splitlines() if t.strip()]
        batch.counts["total"] = len(lines)
        if batch.polls < self.batch_polls_to_complete:
            batch.status = "in_progress"
            batch.counts["completed"] = len(lines) * batch.polls // self.batch_polls_to_complete
            return
        if self.batch_final_status == "failed":
            batch.status = "failed"
            return
        if self.batch_final_status == "expired":
            lines = lines[: len(lines) // 2]
        outputs, errors = [], []
        for line in lines:
            behaviour = self.next_behaviour()
            status = int(behaviour.split(":")[0]) if behaviour.split(":")[0].isdigit() else 200
            if status == 200:
                body = self.chat_completion(line["body"], answer_text(behaviour, line["body"]))
                outputs.append({"id": self.new_id("batch_req"), "custom_id": line["custom_id"],
                                "response": {"status_code": 200, "request_id": self.new_id("req"), "body": body},
                                "error": None})
            else:
                errors.append({"id": self.new_id("batch_req"), "custom_id": line["custom_id"],
                               "response": {"status_code": status, "request_id": self.new_id("req"),
                                            "body": {"error": {"message": f"simulated HTTP {status}", "type": "server_error"}}},
                               "error": None})

        def as_jsonl(rows: list) -> bytes:
            return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()

        batch.output_file_id = self.add_file(as_jsonl(outputs), "output.jsonl", "batch_output") if outputs else None
        batch.error_file_id = self.add_file(as_jsonl(errors), "errors.jsonl", "batch_output") if errors else None
        batch.counts.update(completed=len(outputs), failed=len(errors))
        batch.status = self.batch_final_status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAIServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload, headers: dict | None = None, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired)

    def _error(self, status: int, message: str, headers: dict | None = None, kind: str = "server_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": None}}, headers)

    def _read(self) -> tuple[bytes, dict | None]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return raw, json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            return raw, None

    def _authorised(self) -> bool:
        expected = self.fake.expected_key
        return expected is None or self.headers.get("Authorization") == f"Bearer {expected}"

    def _route(self) -> tuple[str, dict]:
        """(the request path without its query, the query's parameters)."""
        path, _, query = self.path.partition("?")
        return path, parse_qs(query)

    def do_POST(self) -> None:
        raw, body = self._read()
        path, query = self._route()
        recorded = RecordedRequest("POST", path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(),
                                   raw=raw, query=query)
        self.fake.record(recorded)
        if not self._authorised():
            return self._error(401, "Incorrect API key provided.", kind="invalid_request_error")
        if self.fake.latency:
            time.sleep(self.fake.latency)
        if path.endswith("/chat/completions"):
            self._chat(body, recorded)
            recorded.answered_at = time.time()
            return
        if path.endswith("/embeddings"):
            return self._embeddings(body)
        if path.endswith("/files"):
            return self._upload(raw)
        if path.endswith("/batches"):
            return self._create_batch(body)
        self._error(404, f"no route {path}")

    def do_GET(self) -> None:
        path, query = self._route()
        self.fake.record(RecordedRequest("GET", path, {k.lower(): v for k, v in self.headers.items()}, None, time.time(),
                                         query=query))
        if not self._authorised():
            return self._error(401, "Incorrect API key provided.", kind="invalid_request_error")
        parts = self.path.split("?")[0].rstrip("/").split("/")
        if len(parts) >= 4 and parts[-3] == "files" and parts[-1] == "content":
            meta = self.fake.files.get(parts[-2])
            return self._send(200, meta["content"], content_type="application/octet-stream") if meta else self._error(404, "no such file")
        if parts[-2] == "files":
            return self._send(200, self.fake.file_object(parts[-1])) if parts[-1] in self.fake.files else self._error(404, "no such file")
        if parts[-2] == "batches":
            batch = self.fake.batches.get(parts[-1])
            if batch is None:
                return self._error(404, f"no batch {parts[-1]}")
            self.fake.advance_batch(batch)
            return self._send(200, self.fake.batch_object(batch))
        self._error(404, f"no route {self.path}")

    def _chat(self, body: dict | None, recorded: RecordedRequest) -> None:
        if body is None:
            return self._error(400, "body must be JSON", kind="invalid_request_error")
        behaviour = self.fake.next_behaviour()
        recorded.behaviour, recorded.image_digest = behaviour, image_digest_of(body)
        name, _, arg = behaviour.partition(":")
        if name == "stall":
            time.sleep(float(arg or 5))
            return self._send(200, self.fake.chat_completion(body, answer_text("ok", body)))
        if name == "429":
            return self._error(429, "Rate limit reached; please retry.", {"Retry-After": arg or "1"}, "rate_limit_error")
        if name == "429-date":
            return self._error(429, "Rate limit reached.", {"Retry-After": formatdate(time.time() + float(arg or 1), usegmt=True)})
        if name == "401":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            return self._error(401, f"Incorrect API key provided: {token}.", kind="invalid_request_error")
        if name.isdigit():
            return self._error(int(name), f"simulated HTTP {name}")
        self._send(200, self.fake.chat_completion(body, answer_text(name, body)))

    def _embeddings(self, body: dict | None) -> None:
        texts = body.get("input") if body else None
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list):
            return self._error(400, "input must be a string or a list of strings", kind="invalid_request_error")
        dim = int(body.get("dimensions") or self.fake.embedding_dim)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector = fake_embedding(str(text), dim)
            encoded = base64.b64encode(vector.tobytes()).decode() if as_base64 else vector.tolist()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in texts)
        self._send(200, {"object": "list", "data": data, "model": body.get("model", "fake"),
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _upload(self, raw: bytes) -> None:
        header = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = BytesParser().parsebytes(header + raw)
        fields, content, filename = {}, None, "upload.jsonl"
        for part in message.get_payload() if message.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                content, filename = part.get_payload(decode=True), part.get_filename() or filename
            else:
                fields[name] = part.get_payload(decode=True).decode()
        if content is None:
            return self._error(400, "multipart field 'file' is missing", kind="invalid_request_error")
        file_id = self.fake.add_file(content, filename, fields.get("purpose", "batch"))
        self._send(200, self.fake.file_object(file_id))

    def _create_batch(self, body: dict | None) -> None:
        if not body or body.get("input_file_id") not in self.fake.files:
            return self._error(400, "input_file_id is missing or unknown", kind="invalid_request_error")
        batch = FakeBatch(self.fake.new_id("batch"), body["input_file_id"], body.get("endpoint", "/v1/chat/completions"),
                          body.get("completion_window", "24h"), int(time.time()))
        self.fake.batches[batch.id] = batch
        self._send(200, self.fake.batch_object(batch))

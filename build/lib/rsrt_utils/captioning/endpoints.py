"""A fleet of OpenAI-compatible servers behind one backend: each request goes to the endpoint in rotation with the
fewest requests in flight (at most `concurrency` per endpoint); an endpoint whose requests fail `max_failures` times in
a row (HTTP 5xx, timeouts, refused connections) is taken out of rotation while another one is left, and every
endpoint's requests and errors are counted for the end-of-run report. Slots go to the oldest call first, so calls
running side by side finish in the order they started. One endpoint behaves exactly as before."""

from __future__ import annotations

import itertools
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..logsafe import redact
from ..server_urls import public_base_url

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_FAILURES = 5  # a server failing this often in a row is taken out of rotation


class NoEndpointLeft(RuntimeError):
    """Every endpoint of the fleet was taken out of rotation."""


@dataclass
class Endpoint:
    """One server of the fleet: its address, its client (built on first use) and its counts."""

    url: str | None
    client: object = None
    in_flight: int = 0
    requests: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    consecutive_failures: int = 0
    in_rotation: bool = True

    @property
    def public_url(self) -> str:
        return public_base_url(self.url) or "api.openai.com"


class EndpointFleet:
    """Picks an endpoint per request, bounds the requests in flight per endpoint, tracks each endpoint's health."""

    def __init__(self, urls: list[str | None], concurrency: int, max_failures: int = MAX_CONSECUTIVE_FAILURES):
        if not urls:
            raise ValueError("a fleet needs at least one endpoint")
        self.endpoints = [Endpoint(url) for url in urls]
        self.concurrency, self.max_failures = concurrency, max_failures
        self._turn = 0
        self._changed = threading.Condition()
        self._calls, self._tickets = itertools.count(), itertools.count()
        self._waiting: set[tuple[int, int]] = set()  # (call, ticket) of the requests waiting for a slot
        self._local = threading.local()

    def __len__(self) -> int:
        return len(self.endpoints)

    def _pick(self) -> Endpoint | None:
        """The in-rotation endpoint with a free slot and the fewest requests in flight (round robin among equals)."""
        free = [e for e in self.endpoints if e.in_rotation and e.in_flight < self.concurrency]
        if not free:
            return None
        self._turn += 1
        return min(free, key=lambda e: (e.in_flight, (self.endpoints.index(e) - self._turn) % len(self.endpoints)))

    def current_call(self) -> int:
        """The call this thread's requests belong to (a new one if none was opened)."""
        call = getattr(self._local, "call", None)
        return next(self._calls) if call is None else call

    @contextmanager
    def call(self, number: int | None = None):
        """Requests made by this thread inside the block belong to call `number` (default: the current or a new one)."""
        previous = getattr(self._local, "call", None)
        self._local.call = self.current_call() if number is None else number
        try:
            yield self._local.call
        finally:
            self._local.call = previous

    @contextmanager
    def slot(self, hold: bool = True):
        """An endpoint for one request (waiting for a free slot when `hold`, oldest call first); released at the end."""
        with self._changed:
            turn = (self.current_call(), next(self._tickets))
            self._waiting.add(turn)
            try:
                while True:
                    if not any(e.in_rotation for e in self.endpoints):
                        raise NoEndpointLeft("every endpoint was taken out of rotation: " + self.report_line())
                    if not hold:
                        endpoint = next(e for e in self.endpoints if e.in_rotation)
                        break
                    endpoint = self._pick() if turn == min(self._waiting) else None
                    if endpoint is not None:
                        break
                    self._changed.wait()
            finally:
                self._waiting.discard(turn)
                self._changed.notify_all()
            endpoint.in_flight += 1
            endpoint.requests += 1
        try:
            yield endpoint
        finally:
            with self._changed:
                endpoint.in_flight -= 1
                self._changed.notify_all()

    def succeeded(self, endpoint: Endpoint) -> None:
        with self._changed:
            endpoint.ok += 1
            endpoint.consecutive_failures = 0

    def failed(self, endpoint: Endpoint, reason: str, health: bool) -> None:
        """Count a failed request; `health`: a failure of the server (5xx, timeout, connection), not of the request."""
        kind = redact(reason.split(":")[0])
        with self._changed:
            endpoint.errors[kind] = endpoint.errors.get(kind, 0) + 1
            if not health:
                return
            endpoint.consecutive_failures += 1
            others = [e for e in self.endpoints if e.in_rotation and e is not endpoint]
            if endpoint.in_rotation and others and endpoint.consecutive_failures >= self.max_failures:
                endpoint.in_rotation = False
                log.warning("endpoint %s failed %d times in a row (%s): taken out of rotation", endpoint.public_url,
                            endpoint.consecutive_failures, kind)
                self._changed.notify_all()

    def report(self) -> list[dict]:
        """Per endpoint: its public address, requests sent, answers, errors by kind, whether it is still in rotation."""
        with self._changed:
            return [{"endpoint": e.public_url, "requests": e.requests, "ok": e.ok, "errors": dict(e.errors),
                     "in_rotation": e.in_rotation} for e in self.endpoints]

    def report_line(self) -> str:
        return "; ".join(f"{r['endpoint']}: {r['requests']} request(s), {r['ok']} ok, errors {r['errors'] or 'none'}"
                         + ("" if r["in_rotation"] else " (taken out of rotation)") for r in self.report())

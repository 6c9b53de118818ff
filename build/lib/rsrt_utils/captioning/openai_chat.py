"""OpenAI-compatible chat-with-vision backend (the authors' GPT-4.1 settings by default).

The API key is read from the environment only (OPENAI_API_KEY, or the variable named by `api_key_env`);
it never enters settings, records, logs or error messages. `base_url` + `model` point the same code at
any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, ...). The client's own retries are off
(`max_retries=0`): this module retries 429, 5xx, timeouts and connection errors itself, honouring
`Retry-After` (seconds or HTTP date) and otherwise backing off exponentially with jitter; 401/403 stop the
run at once with a message naming the key's variable.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Sequence

from .. import logsafe
from ..server_urls import public_base_url, split_query
from ..suggest import did_you_mean
from .backend import MODES, BackendAnswer, BackendFatalError, CaptionRequest
from .endpoints import MAX_CONSECUTIVE_FAILURES, Endpoint, EndpointFleet, NoEndpointLeft
from .images import DEFAULT_JPEG_QUALITY, ImageLoadError, jpeg_data_url
from .prompts import PROMPT_VERSION, prompt_for
from .registry import DEFAULT_OPENAI_MODEL

logsafe.install()  # base_url credentials never reach a log

log = logging.getLogger(__name__)

AUTHORS_SETTINGS = {"model": DEFAULT_OPENAI_MODEL, "temperature": 0.3, "max_tokens": 1800, "jpeg_quality": DEFAULT_JPEG_QUALITY,
                    "detail": "high", "json_response_format": True}
KNOWN_OPENAI_VISION_MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "gpt-5", "gpt-5-mini",
                              "gpt-5-nano", "o3", "o4-mini")
DETAILS = ("high", "low", "auto")
RETRYABLE_STATUS = (408, 409, 429)


def check_openai_model(model: str, base_url: str | None) -> None:
    """On OpenAI itself (no base_url) the model must be a known vision model; any name goes on other servers."""
    if base_url or model in KNOWN_OPENAI_VISION_MODELS:
        return
    raise ValueError(f"model {model!r} is not a known OpenAI vision model{did_you_mean(model, KNOWN_OPENAI_VISION_MODELS)} "
                     f"(known: {', '.join(KNOWN_OPENAI_VISION_MODELS)}; for another OpenAI-compatible server "
                     f"also give base_url)")


class RequestFailed(RuntimeError):
    """One request failed for good (retries used up, or a non-retryable 4xx)."""


def parse_retry_after(headers, now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None if absent/invalid."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def text_and_usage(completion: dict, retries: int = 0) -> tuple[str, dict]:
    """(assistant text, usage) from a chat-completion JSON object."""
    choices = completion.get("choices") or []
    choice = choices[0] if choices else {}
    text = ((choice.get("message") or {}).get("content")) or ""
    usage = {"http_retries": retries}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = (completion.get("usage") or {}).get(name)
        if isinstance(value, int):
            usage[name] = value
    if choice.get("finish_reason"):
        usage["finish_reason"] = choice["finish_reason"]
    return text, usage


class OpenAIChatBackend:
    """Chat-completions vision backend; see the module docstring. One request per image (`batch_size` 1)."""

    name = "openai-chat"
    batch_size = 1
    label = None

    def __init__(self, model: str = DEFAULT_OPENAI_MODEL, base_url: str | list[str] | None = None,
                 api_key_env: str = "OPENAI_API_KEY",
                 temperature: float = 0.3, max_tokens: int = 1800, jpeg_quality: int = DEFAULT_JPEG_QUALITY,
                 detail: str = "high", json_response_format: bool = True, timeout: float = 120.0,
                 max_retries: int = 6, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 max_retry_after: float = 600.0, concurrency: int = 8, endpoint_max_failures: int = MAX_CONSECUTIVE_FAILURES,
                 sleep: Callable[[float], None] = time.sleep):
        if detail not in DETAILS:
            raise ValueError(f"detail {detail!r} is not known; choose one of {', '.join(DETAILS)} (the authors used 'high')")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(f"need concurrency >= 1, max_retries >= 0 and timeout > 0; "
                             f"got {concurrency}, {max_retries}, {timeout}")
        self.model = model
        urls = [base_url] if isinstance(base_url, str) or base_url is None else list(base_url)
        urls = [u for u in urls if u] or [os.environ.get("OPENAI_BASE_URL") or None]
        self.base_urls = urls
        self.base_url = urls[0]  # the first endpoint (the only one unless a fleet is given)
        self.api_key_env = api_key_env
        self.temperature, self.max_tokens = temperature, max_tokens
        self.jpeg_quality, self.detail, self.json_response_format = jpeg_quality, detail, json_response_format
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff_base, self.backoff_max, self.max_retry_after = backoff_base, backoff_max, max_retry_after
        self.concurrency = concurrency  # requests in flight per endpoint
        self.fleet = EndpointFleet(urls, concurrency, endpoint_max_failures)
        self._sleep = sleep
        self._client_lock = threading.Lock()
        self._api_key: str | None = None
        self.prompt_version = PROMPT_VERSION

    @property
    def settings(self) -> dict:
        """Every setting that changes the answer (goes into the cache key); never the API key."""
        settings = {"temperature": self.temperature, "max_tokens": self.max_tokens, "jpeg_quality": self.jpeg_quality,
                    "detail": self.detail, "json_response_format": self.json_response_format}
        if len(self.base_urls) > 1:  # a fleet: the same model on every server, whichever answers
            settings["base_url"] = ",".join(sorted(public_base_url(u) or "" for u in self.base_urls))
        elif self.base_url:
            settings["base_url"] = public_base_url(self.base_url)
        return settings

    @property
    def total_concurrency(self) -> int:
        """Requests in flight over the whole fleet."""
        return self.concurrency * len(self.base_urls)

    def _client(self, endpoint: Endpoint | None = None):
        """The official client of an endpoint (default: the first), built on first use (so a dry run needs no key)."""
        endpoint = endpoint or self.fleet.endpoints[0]
        with self._client_lock:
            if endpoint.client is None:
                from openai import OpenAI

                key = os.environ.get(self.api_key_env)
                if not key:
                    raise BackendFatalError(f"no API key: the environment variable {self.api_key_env} is not set; "
                                            f"export {self.api_key_env}=... (keys are never read from params files)")
                self._api_key = key
                base_url, query = split_query(endpoint.url)
                endpoint.client = OpenAI(api_key=key, base_url=base_url, default_query=query, max_retries=0,
                                         timeout=self.timeout)
            return endpoint.client

    def redact(self, text: str) -> str:
        """`text` with the API key (if it appears), URL credentials and secret query parameters replaced by markers."""
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, f"[{self.api_key_env} redacted]")
        return logsafe.redact(text)

    def request_body(self, request: CaptionRequest, mode: str, strict: bool = False) -> dict:
        """The chat-completions request body for one image (also used for Batch API lines)."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(MODES)}")
        if request.image_path is None:
            raise ImageLoadError(None, f"image {request.image_id!r} has no pixel file; caption only images with pixels")
        content = [{"type": "text", "text": prompt_for(mode, strict)},
                   {"type": "image_url", "image_url": {"url": jpeg_data_url(request.image_path, self.jpeg_quality),
                                                       "detail": self.detail}}]
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "temperature": self.temperature, "max_tokens": self.max_tokens}
        if mode == "variants" and self.json_response_format:
            body["response_format"] = {"type": "json_object"}
        return body

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2**attempt, capped."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _retry_delay(self, error, attempt: int) -> float:
        response = getattr(error, "response", None)
        told = parse_retry_after(getattr(response, "headers", None))
        return min(told, self.max_retry_after) if told is not None else self._backoff(attempt)

    def _fatal_auth(self, error, endpoint: Endpoint | None = None) -> BackendFatalError:
        where = (endpoint.url if endpoint else self.base_url) or "api.openai.com"
        return BackendFatalError(f"the server {public_base_url(where) or where} rejected the API key from "
                                 f"{self.api_key_env} (HTTP {error.status_code}); set a valid key with "
                                 f"`export {self.api_key_env}=...` and check it may use model {self.model!r}")

    def call_with_retries(self, call: Callable, what: str = "chat request", hold_slot: bool = True):
        """Run `call(client)` with this backend's retry policy on the fleet's endpoints; return (result, retries used).

        429/408/409/5xx, timeouts and connection errors are retried (Retry-After honoured; the retry may go to another
        endpoint); 401/403 raise BackendFatalError; other errors raise RequestFailed with a redacted reason.
        """
        import openai

        self._client()  # a missing key is named before any request
        last, failure = "no attempt made", None
        for attempt in range(self.max_retries + 1):
            try:
                with self.fleet.slot(hold_slot) as endpoint:
                    try:
                        result = call(self._client(endpoint))
                    except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                        raise self._fatal_auth(error, endpoint) from None
                    except openai.APIStatusError as error:
                        last, failure = self.redact(f"HTTP {error.status_code}: {error.message}"), error
                        if error.status_code not in RETRYABLE_STATUS and error.status_code < 500:
                            self.fleet.failed(endpoint, last, health=False)
                            raise RequestFailed(last) from None
                        self.fleet.failed(endpoint, last, health=error.status_code >= 500)
                    except openai.APITimeoutError as error:
                        last, failure = f"timed out after {self.timeout} s", error
                        self.fleet.failed(endpoint, last, health=True)
                    except openai.APIConnectionError as error:
                        last, failure = self.redact(f"connection error: {error}"), error
                        self.fleet.failed(endpoint, last, health=True)
                    else:
                        self.fleet.succeeded(endpoint)
                        return result, attempt
            except NoEndpointLeft as error:
                raise RequestFailed(f"{what}: {error}") from None
            if attempt < self.max_retries:
                delay = self._retry_delay(failure, attempt)
                log.info("%s failed (%s); retry %d/%d in %.2f s", what, last, attempt + 1, self.max_retries, delay)
                self._sleep(delay)
        raise RequestFailed(f"{what} gave up after {self.max_retries + 1} attempts; last error: {last}")

    def complete(self, body: dict) -> tuple[str, dict]:
        """Send one chat request with retries; (answer text, usage)."""
        response, retries = self.call_with_retries(lambda client: client.chat.completions.create(**body))
        return self._text_and_usage(response, retries)

    @staticmethod
    def _text_and_usage(response, retries: int) -> tuple[str, dict]:
        return text_and_usage(response.model_dump(), retries)

    def answer_one(self, request: CaptionRequest, mode: str, strict: bool = False) -> BackendAnswer:
        """One image's answer; its failure becomes an error answer (auth failures are raised)."""
        try:
            text, usage = self.complete(self.request_body(request, mode, strict))
        except (RequestFailed, ImageLoadError) as error:
            return BackendAnswer(error=self.redact(str(error)))
        if usage.get("finish_reason") == "length" and mode == "variants":
            log.info("answer for %s hit max_tokens=%d", request.image_id, self.max_tokens)
        return BackendAnswer(raw_text=text, usage=usage)

    def answer_batch(self, requests: Sequence[CaptionRequest], mode: str, strict: bool = False) -> list[BackendAnswer]:
        """Answers in request order; several requests run in parallel up to `concurrency`."""
        if len(requests) <= 1:
            return [self.answer_one(r, mode, strict) for r in requests]
        call = self.fleet.current_call()  # the requests of one batch are served before those of later batches

        def answer(request: CaptionRequest) -> BackendAnswer:
            with self.fleet.call(call):
                return self.answer_one(request, mode, strict)

        # twice the slots in threads: the batch always has a request waiting when one of its slots frees
        with ThreadPoolExecutor(max_workers=min(2 * self.total_concurrency, len(requests))) as pool:
            return list(pool.map(answer, requests))

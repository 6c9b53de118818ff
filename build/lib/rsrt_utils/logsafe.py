"""What counts as a secret, in one place, and the one filter that keeps secrets out of every log record.

A URL's user-info (`user:password@`, with or without a scheme) and the values of secret-looking query parameters
(`?api-key=...`, `&token=...`, see SECRET_PARAMETER_NAMES) are masked by `redact`, malformed URLs included; `scrub`
also masks the values of environment variables that hold a secret: a secret name (OPENAI_API_KEY, HF_TOKEN, ...) AND a
value that looks like a credential (never a path such as $PWD). Text a person typed (`Typed`) is never rewritten.
HTTP clients log every request URL at INFO; `install()` puts the filter on their loggers, on the loggers it is given
and on every root handler. The same names decide which config keys are never stored (`is_secret_name`).
"""

from __future__ import annotations

import logging
import os
import re

# Names whose value is a credential, as query parameters (Azure-style `api-key`, signed URLs' `sig`, ...) and config
# keys. A name matches if it equals one of these or ends with `_<name>` / `-<name>` (so never `max_tokens`).
SECRET_PARAMETER_NAMES = ("api-key", "api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token",
                          "auth", "authorization", "sig", "signature", "secret", "client_secret", "password", "passwd",
                          "pwd", "subscription-key", "x-api-key", "code", "credential", "credentials")
_NAME_ALTERNATIVES = "|".join(sorted((re.escape(n) for n in SECRET_PARAMETER_NAMES), key=len, reverse=True))
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@]+@")
# `user:pw@host:port/...` typed without its scheme: user-info before a host that has a port or a path
_BARE_CREDENTIALS = re.compile(r"(?<![\w.+/@:*-])[^\s/@'\"<>?#:]+(?::[^\s/@'\"<>?#]*)?@(?=[A-Za-z0-9.-]+(?::\d+|/))")
_SECRET_QUERY = re.compile(rf"(?P<name>[?&;](?:[A-Za-z0-9]+[_-])*(?:{_NAME_ALTERNATIVES})=)[^&#\s\"'<>]*",
                           re.IGNORECASE)
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3")
_MIN_SECRET_CHARS = 8  # shorter environment values (flags, numbers) are not masked
_NEVER_SECRET_VARIABLES = ("PWD", "OLDPWD")  # the shell's working folders: a path, whatever the name says


class Typed(str):
    """Text a person typed (an auditor's notes): shown and stored exactly as typed, never masked."""


def is_secret_name(name: str) -> bool:
    """A parameter or config key whose value may be a credential (`api_key`, `OPENAI_API_KEY`, `sas_token`, `sig`)."""
    lowered = name.lower()
    return any(lowered == n or lowered.endswith(("_" + n, "-" + n)) for n in SECRET_PARAMETER_NAMES)


def redact(text: str) -> str:
    """The text with URL credentials (with or without a scheme) and secret query-parameter values replaced by ***."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<name>***", _BARE_CREDENTIALS.sub("***@", text))


def looks_like_a_credential(value: str) -> bool:
    """A token-like value: long enough, one word, not a path, with a digit or at least 20 characters."""
    if len(value) < _MIN_SECRET_CHARS or any(c.isspace() for c in value) or value.startswith(("/", "~", ".")):
        return False
    return any(c.isdigit() for c in value) or len(value) >= 20


def secret_values() -> list[str]:
    """Values of environment variables that hold a secret: a secret name and a credential-like value (longest
    first)."""
    values = {v for k, v in os.environ.items()
              if is_secret_name(k) and k.upper() not in _NEVER_SECRET_VARIABLES and looks_like_a_credential(v)}
    return sorted(values, key=len, reverse=True)


def scrub(text):
    """The text with every secret environment value, URL credential and secret parameter replaced by ***; non-strings
    pass unchanged, and so does Typed text."""
    if not isinstance(text, str) or isinstance(text, Typed):
        return text
    for value in secret_values():
        text = text.replace(value, "***")
    return redact(text)


def scrub_tree(value):
    """A JSON-like value with every string scrubbed (dict keys included)."""
    if isinstance(value, dict):
        return {scrub_tree(k): scrub_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_tree(v) for v in value]
    return scrub(value)


class RedactSecrets(logging.Filter):
    """Scrubs a record's arguments (kept as arguments: uvicorn's access formatter unpacks them), then its rendered
    message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: scrub(v) for k, v in record.args.items()}
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactSecrets()


def install(logger_names: tuple[str, ...] = ()) -> None:
    """Put the filter on the HTTP clients' loggers, the named loggers, their handlers and every root handler
    (idempotent)."""
    loggers = [logging.getLogger(name) for name in (*HTTP_LOGGERS, *logger_names)]
    handlers = [h for logger in [*loggers, logging.getLogger()] for h in logger.handlers]
    for target in [*loggers, *handlers]:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)

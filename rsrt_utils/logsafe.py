"""What counts as a secret, in one place, and the filter that keeps secrets out of every log record.

A URL's user-info (`user:password@`) and the values of secret-looking query parameters (`?api-key=...`, `&token=...`,
see SECRET_PARAMETER_NAMES) are masked by `redact`. HTTP clients log every request URL at INFO; `install()` puts the
masking filter on their loggers and on the root logger's handlers. The same names decide which config keys are never
stored (`is_secret_name`).
"""

from __future__ import annotations

import logging
import re

# Names whose value is a credential, as query parameters (Azure-style `api-key`, signed URLs' `sig`, ...) and config
# keys. A name matches if it equals one of these or ends with `_<name>` / `-<name>` (so never `max_tokens`).
SECRET_PARAMETER_NAMES = ("api-key", "api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token",
                          "auth", "authorization", "sig", "signature", "secret", "client_secret", "password", "passwd",
                          "pwd", "subscription-key", "x-api-key", "code", "credential", "credentials")
_NAME_ALTERNATIVES = "|".join(sorted((re.escape(n) for n in SECRET_PARAMETER_NAMES), key=len, reverse=True))
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@]+@")
_SECRET_QUERY = re.compile(rf"(?P<name>[?&;](?:[A-Za-z0-9]+[_-])*(?:{_NAME_ALTERNATIVES})=)[^&#\s\"'<>]*",
                           re.IGNORECASE)
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3")


def is_secret_name(name: str) -> bool:
    """A parameter or config key whose value may be a credential (`api_key`, `OPENAI_API_KEY`, `sas_token`, `sig`)."""
    lowered = name.lower()
    return any(lowered == n or lowered.endswith(("_" + n, "-" + n)) for n in SECRET_PARAMETER_NAMES)


def redact(text: str) -> str:
    """The text with URL credentials and secret query-parameter values replaced by ***."""
    return _SECRET_QUERY.sub(r"\g<name>***", _URL_CREDENTIALS.sub(r"\g<scheme>***@", text))


class RedactCredentials(logging.Filter):
    """Rewrites a record whose message holds URL credentials or secret parameters (the arguments are rendered first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactCredentials()


def install() -> None:
    """Mask secrets in the HTTP clients' log records and in everything the root handlers write (idempotent)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)

"""Log records never carry credentials: the `user:password@` part of any URL is masked before a handler sees it.

HTTP clients log every request URL at INFO; a base_url such as http://user:secret@host/v1 would print the secret.
`install()` puts the masking filter on the HTTP clients' loggers and on the root logger's handlers.
"""

from __future__ import annotations

import logging
import re

_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@]+@")
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3")


def redact(text: str) -> str:
    """The text with URL credentials replaced by ***."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


class RedactCredentials(logging.Filter):
    """Rewrites a record whose message holds URL credentials (the arguments are rendered first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactCredentials()


def install() -> None:
    """Mask URL credentials in the HTTP clients' log records and in everything the root handlers write (idempotent)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)

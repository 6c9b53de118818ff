"""The "did you mean" hint every error about an unknown name carries."""

from __future__ import annotations

import difflib


def did_you_mean(value, choices) -> str:
    """"; did you mean 'x'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""

"""Every path the study uses, anchored at the project root (overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Canonical data store (ignored by git). Override with RSRT_DATA_DIR."""
    return _env_path("RSRT_DATA_DIR", PROJECT_ROOT / "data")


def cache_dir() -> Path:
    """Caches of embeddings, image features and captions. Override with RSRT_CACHE_DIR."""
    return _env_path("RSRT_CACHE_DIR", PROJECT_ROOT / "cache")


def indexes_dir() -> Path:
    """Searchable collections of your own imagery, one folder per name. Override with RSRT_INDEX_DIR."""
    return _env_path("RSRT_INDEX_DIR", cache_dir() / "indexes")


def outputs_dir() -> Path:
    """Executed notebooks, figures and metrics. Override with RSRT_OUTPUTS_DIR."""
    return _env_path("RSRT_OUTPUTS_DIR", PROJECT_ROOT / "outputs")


def shared_mirror_dir() -> Path | None:
    """The read-only benchmark mirror beside the project (../shared/data), if present.

    Override with RSRT_MIRROR_DIR.
    """
    candidate = _env_path("RSRT_MIRROR_DIR", PROJECT_ROOT.parent / "shared" / "data")
    return candidate if candidate.is_dir() else None

"""Where rsrt keeps things: inside a project folder when there is one, else the platform's user folders and the
working directory; each place overridable by its environment variable (docs/install.md lists them).

A project is the folder named by RSRT_PROJECT_DIR, else the nearest folder at or above the working directory that
holds a `.rsrt-project` file (a checkout of the study has one): data/, cache/ and outputs/ go there. Outside a
project: data and cache in the user's data and cache folders (platformdirs), outputs in ./outputs. Nothing is ever
written inside the installed package."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_MARK = ".rsrt-project"
APP_NAME = "rsrt"
PACKAGE_DIR = Path(__file__).resolve().parent  # read-only at run time: notebooks, params, templates, checksums


def _env_path(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else None


def project_dir() -> Path | None:
    """The project folder (RSRT_PROJECT_DIR, else the nearest `.rsrt-project` at or above the working directory)."""
    given = _env_path("RSRT_PROJECT_DIR")
    if given is not None:
        return given
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / PROJECT_MARK).is_file()), None)


def _user_dir(kind: str) -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME) if kind == "data" else platformdirs.user_cache_dir(APP_NAME))


def data_dir() -> Path:
    """The benchmark data store. RSRT_DATA_DIR, else <project>/data, else the user's data folder."""
    project = project_dir()
    return _env_path("RSRT_DATA_DIR") or (project / "data" if project else _user_dir("data") / "data")


def cache_dir() -> Path:
    """Caches of embeddings, image features and captions. RSRT_CACHE_DIR, else <project>/cache, else the user's
    cache folder."""
    project = project_dir()
    return _env_path("RSRT_CACHE_DIR") or (project / "cache" if project else _user_dir("cache"))


def indexes_dir() -> Path:
    """Searchable collections of your own imagery, one folder per name. RSRT_INDEX_DIR, else <project>/cache/indexes,
    else the user's data folder."""
    project = project_dir()
    return _env_path("RSRT_INDEX_DIR") or (cache_dir() / "indexes" if project else _user_dir("data") / "indexes")


def outputs_dir() -> Path:
    """Executed notebooks, figures and metrics. RSRT_OUTPUTS_DIR, else <project>/outputs, else ./outputs."""
    project = project_dir()
    return _env_path("RSRT_OUTPUTS_DIR") or (project or Path.cwd().resolve()) / "outputs"


def shared_mirror_dir() -> Path | None:
    """The read-only benchmark mirror: RSRT_MIRROR_DIR, else ../shared/data beside the project, if present."""
    project = project_dir()
    candidate = _env_path("RSRT_MIRROR_DIR") or (project.parent / "shared" / "data" if project else None)
    return candidate if candidate is not None and candidate.is_dir() else None

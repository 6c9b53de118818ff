"""A collection's folder and manifest: names, the image files it covers, the captioner and encoder it was built
with (never a secret) and the checks that keep one collection one build."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..logsafe import is_secret_name, redact
from ..paths import indexes_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
DEFAULT_CAPTIONER = {"backend": "neighbour", "bank": "rsicd-train"}  # offline: RSICD train images with pixels (AID-150)
NAME_RULE = re.compile(r"[A-Za-z0-9._-]+")
UNLINKABLE = re.compile(r"[\x00-\x1f\x7f]")  # control characters (newline, tab, ...) in a file's path
MANIFEST, CORPUS, QUERY_CORPUS, ITEMS, INDEX, BUILD_LOCK = ("manifest.json", "corpus.jsonl", "queries.jsonl",
                                                           "items.jsonl", "vectors", "build.lock")
# Config keys whose change does not change an answer (left out of the compatibility check).
NOT_IDENTITY = ("concurrency",)
BASE_URL_VARIABLE = "RSRT_CAPTIONER_BASE_URL"  # the captioner's full server URL(s), whitespace-separated, at search time


@dataclass(frozen=True)
class Item:
    """One indexed image: its id (path relative to images_dir, posix), file, content hash and embedded texts."""

    image_id: str
    path: Path
    sha256: str
    descriptions: list[str]
    retired: bool = False  # gone from the folder (or changed): kept in the index's numbering, never returned


@dataclass(frozen=True)
class Hit:
    """One search result: rank (1 = best), the image, its max-pooled cosine and its descriptions."""

    rank: int
    image_id: str
    score: float
    descriptions: list[str]
    place: dict | None = None  # a chip's footprint, time and scene (collections built from georeferenced scenes)


# ---------------------------------------------------------------- checks made before any work
def check_name(name: str) -> str:
    """A collection name is a folder name: only [A-Za-z0-9._-], not starting with a dot."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or name.startswith("."):
        raise ValueError(f"collection name {name!r} is not allowed: use only letters, digits, '.', '_' and '-', "
                         f"not starting with a dot (e.g. 'my-scenes')")
    return name


def check_images_dir(images_dir: Path | str) -> Path:
    """The folder of images, resolved; a clear error if it is missing."""
    path = Path(images_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"image folder {str(path)!r} does not exist or is not a folder; give the folder that holds "
                         f"your images (searched recursively for {', '.join(IMAGE_SUFFIXES)})")
    return path.resolve()


def captioner_config(captioner: dict | None) -> dict:
    """The backend config checked before any work (the registry's checks), with defaults: the neighbour captioner on
    the RSICD train bank."""
    from ..captioning.api import checked_config

    config = dict(captioner or DEFAULT_CAPTIONER)
    if config.get("backend") == DEFAULT_CAPTIONER["backend"]:
        config.setdefault("bank", DEFAULT_CAPTIONER["bank"])
    return checked_config(config)


def public_spec(config: dict) -> dict:
    """The captioner config as JSON without any secret (keys dropped, URL credentials removed, objects named)."""
    from ..server_urls import public_base_url

    spec = {}
    for key, value in config.items():
        if is_secret_name(key):  # api_key_env only names the variable that holds a key: it is kept
            continue
        if key == "base_url":
            spec[key] = [public_base_url(v) for v in value] if isinstance(value, (list, tuple)) else public_base_url(value)
        elif key == "bank" and not isinstance(value, str):
            spec[key] = f"custom:{value.identity}"
        elif isinstance(value, Path):
            spec[key] = str(value)
        elif value is None or isinstance(value, (str, int, float, bool)):
            spec[key] = value
        else:
            spec[key] = getattr(value, "name", None) or getattr(value, "identity", None) or type(value).__name__
    return spec


def endpoint_entries(config: dict) -> dict:
    """The manifest's record of where the captioner's server(s) are: every URL whole but for its credentials (masked
    by the one redaction), and where credentials come back from when a URL had some."""
    urls = config.get("base_url")
    if not urls:
        return {}
    endpoints = [redact(u) for u in ([urls] if isinstance(urls, str) else urls)]
    entries = {"endpoints": endpoints}
    if any("***" in e for e in endpoints):
        entries["credentials"] = (f"not stored: give the full URL(s) again with --base-url on `rsrt search` and "
                                  f"`rsrt serve`, or in the environment variable {BASE_URL_VARIABLE}")
    return entries


def endpoint_urls(manifest: dict, given: list[str] | None = None) -> list[str] | None:
    """The captioner's full server URL(s) for searching by image: the manifest's endpoints, with credentials taken
    from `given` (--base-url) or BASE_URL_VARIABLE where the manifest masks them; None for a backend without one.
    ValueError naming the missing endpoint and how to give it."""
    endpoints = manifest["captioner"].get("endpoints")
    if not endpoints:
        return None
    given = list(given or os.environ.get(BASE_URL_VARIABLE, "").split())
    by_redacted = {redact(u): u for u in given}
    urls = []
    for endpoint in endpoints:
        if "***" not in endpoint:
            urls.append(endpoint)
        elif endpoint in by_redacted:
            urls.append(by_redacted[endpoint])
        else:
            offered = f" (given: {', '.join(sorted(by_redacted))})" if given else ""
            raise ValueError(f"collection {manifest['name']!r} was captioned through {endpoint}, whose credentials are "
                             f"not stored{offered}; give that URL whole with --base-url on `rsrt search` or `rsrt serve`, "
                             f"or in {BASE_URL_VARIABLE}")
    return urls


def _identity(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in NOT_IDENTITY}


def check_compatible(manifest: dict, images_dir: Path, spec: dict, encoder_spec: str) -> None:
    """A build of an existing collection must use its folder, captioner and encoder; else say how to fix it."""
    name = manifest["name"]
    fix = f"build under another --name, or pass --rebuild to replace collection {name!r}"
    if Path(manifest["images_dir"]) != images_dir:
        raise ValueError(f"collection {name!r} was built from {manifest['images_dir']}, not {images_dir}; {fix}")
    before = _identity(manifest["captioner"]["spec"])
    if before != _identity(spec):
        changed = sorted(k for k in set(before) | set(_identity(spec)) if before.get(k) != spec.get(k))
        raise ValueError(f"collection {name!r} was captioned with {before}, not {_identity(spec)} (differs in "
                         f"{', '.join(changed)}); {fix}")
    if manifest["encoder"]["spec"] != encoder_spec:
        raise ValueError(f"collection {name!r} was embedded with {manifest['encoder']['spec']!r}, not {encoder_spec!r}; {fix}")


# ---------------------------------------------------------------- files
def collection_dir(name: str, root: Path | None = None) -> Path:
    return Path(root or indexes_dir()) / check_name(name)


def is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def scan_images(images_dir: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(image_id, resolved path) of every image under images_dir (recursive, hidden files left out, sorted), and the
    ids of files that resolve outside images_dir (symlink escapes) or to no file, or whose path holds a control
    character (a newline cannot be linked safely): those are never indexed."""
    found, skipped = [], []
    for folder, dirs, files in os.walk(images_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file_name in files:
            if file_name.startswith(".") or Path(file_name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(folder) / file_name
            image_id, resolved = path.relative_to(images_dir).as_posix(), path.resolve()
            if is_inside(resolved, images_dir) and resolved.is_file() and not UNLINKABLE.search(image_id):
                found.append((image_id, resolved))
            else:
                skipped.append(image_id)
    return sorted(found), sorted(skipped)


def hash_files(files: list[tuple[str, Path]], progress: bool = True) -> list:
    """Caption requests with each file's sha256 (its identity in every cache key)."""
    from tqdm.auto import tqdm

    from ..captioning.backend import CaptionRequest
    from ..fileutil import file_sha256

    return [CaptionRequest(image_id, path, file_sha256(path))
            for image_id, path in tqdm(files, desc="hashing", unit="file", disable=not progress, dynamic_ncols=True)]


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def list_collections(root: Path | None = None) -> list[str]:
    """Names of the collections under root (default indexes_dir()) that have a manifest, sorted."""
    root = Path(root or indexes_dir())
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())

"""Small file helpers shared by the data store and every cache: content hashes and atomic JSON writes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

_READ_CHUNK = 1 << 20


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes: the content identity used in checksums and cache keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_READ_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(payload: dict, path: Path | str) -> Path:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    return write_bytes_atomic(json.dumps(payload, indent=2, default=str).encode("utf-8"), path)


def write_bytes_atomic(data: bytes, path: Path | str) -> Path:
    """Write bytes through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- folders a command owns
OWNER_MARK = ".rsrt-owned"  # in a folder a command made: that command may empty or replace it, and nothing else may


class NotOurFolder(RuntimeError):
    """A command was asked to replace or empty a folder that it did not make."""


def owns(folder: Path | str, kind: str) -> bool:
    """The folder holds this project's mark for `kind` (it was made by the command that makes `kind`)."""
    mark = Path(folder) / OWNER_MARK
    return mark.is_file() and mark.read_text(encoding="utf-8").strip() == kind


def check_replaceable(folder: Path | str, kind: str) -> Path:
    """The folder, if a command making `kind` may replace it: it does not exist, is empty, or carries our mark.
    NotOurFolder naming the folder and the fix otherwise (checked before any work)."""
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise NotOurFolder(f"{folder} is a file, not a folder; give a new or empty folder for the {kind}")
    if folder.is_dir() and any(folder.iterdir()) and not owns(folder, kind):
        raise NotOurFolder(f"{folder} is not empty and was not made by rsrt ({OWNER_MARK} is missing): it is never "
                           f"emptied; give a new or empty folder for the {kind}, e.g. {folder / kind.replace(' ', '-')} (a {kind} made "
                           "by an older rsrt has no mark: move it away yourself)")
    return folder


def replace_folder(staging: Path, target: Path) -> Path:
    """Put a finished staging folder (beside `target`) in place of `target`, then remove the old one: a reader sees
    the old folder or the new one, only a rename apart. The caller decides that `target` may be replaced."""
    if not target.exists():
        os.replace(staging, target)
        return target
    retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.replace(target, retired / "folder")
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
    return target


def swap_in(staging: Path, target: Path, kind: str) -> Path:
    """Mark a finished staging folder as made for `kind` and put it in place of `target` (checked replaceable again)."""
    check_replaceable(target, kind)
    (staging / OWNER_MARK).write_text(kind + "\n", encoding="utf-8")
    return replace_folder(staging, target)

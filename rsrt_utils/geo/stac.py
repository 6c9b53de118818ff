"""A STAC catalogue, collection or ItemCollection as an input like a folder: each item's data asset (by role or key)
becomes a scene, with the item's datetime."""

from __future__ import annotations

import json
from datetime import timezone
from pathlib import Path

from .archive import Scene
from .raster import GEO_EXTRA

DATA_ROLES = ("data",)
DATA_KEYS = ("visual", "image", "data")


def _pystac():
    try:
        import pystac
    except ImportError:
        raise ModuleNotFoundError(f"reading a STAC catalogue needs pystac: {GEO_EXTRA}", name="pystac") from None
    return pystac


def _items(path: Path) -> list:
    """The items of a catalogue / collection (walked) or an ItemCollection file."""
    pystac = _pystac()
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("type") == "FeatureCollection":
        collection = pystac.ItemCollection.from_dict(raw, preserve_dict=False)
        for item in collection:
            item.set_self_href(None)
        return [(item, path.parent) for item in collection]
    if raw.get("type") == "Feature":
        return [(pystac.Item.from_file(str(path)), path.parent)]
    catalog = pystac.read_file(str(path))
    return [(item, Path(item.get_self_href()).parent) for item in catalog.get_items(recursive=True)]


def _data_asset(item, role: str | None, key: str | None):
    if key:
        return item.assets.get(key)
    for asset in item.assets.values():
        if any(r in (asset.roles or []) for r in ((role,) if role else DATA_ROLES)):
            return asset
    return next((item.assets[k] for k in DATA_KEYS if k in item.assets), None)


def _lonlat_box(item) -> tuple | None:
    """The item's (west, south, east, north): its bbox, else the bounds of its geometry's coordinates."""
    if item.bbox and len(item.bbox) == 4:
        return tuple(float(v) for v in item.bbox)
    points: list = []

    def walk(value):
        if value and isinstance(value[0], (int, float)):
            points.append(value[:2])
        else:
            for part in value or []:
                walk(part)
    walk((item.geometry or {}).get("coordinates"))
    if not points:
        return None
    lons, lats = zip(*points)
    return min(lons), min(lats), max(lons), max(lats)


def scenes_from_stac(path: Path | str, role: str | None = None, key: str | None = None) -> list[Scene]:
    """One Scene per STAC item: its asset with `role` (default "data") or `key` (default: visual, image, data), the
    href resolved against the item's folder, its id, its datetime (UTC, ISO 8601) and its lon/lat bbox (used only for a
    file without a georeference of its own)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"STAC file {str(path)!r} does not exist; give a catalog.json, collection.json or an "
                         f"ItemCollection (.json / .geojson)")
    scenes = []
    for item, folder in _items(path):
        asset = _data_asset(item, role, key)
        if asset is None:
            raise ValueError(f"STAC item {item.id!r} has no asset with role {role or DATA_ROLES[0]!r} or key "
                             f"{key or DATA_KEYS[0]!r}; its assets: {', '.join(item.assets) or 'none'} — name one "
                             f"with --stac-asset KEY")
        href = asset.href
        target = Path(href) if Path(href).is_absolute() else (folder / href)
        when = item.datetime.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if item.datetime else None
        box = _lonlat_box(item)
        scenes.append(Scene(target.resolve() if target.exists() else target, item.id, when, box))
    return scenes

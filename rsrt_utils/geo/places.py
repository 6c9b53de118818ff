"""Place and time filters over chips (a lon/lat box, a date range) and hits as GeoJSON; pure Python, no extra needed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """"W,S,E,N" in degrees -> (west, south, east, north), checked."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"bounding box {text!r} is not four numbers: give W,S,E,N in degrees, e.g. 14.9,45.0,15.1,45.2") from None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south < north <= 90):
        raise ValueError(f"bounding box {text!r} is outside lon -180..180 / lat -90..90 or has south >= north; give W,S,E,N, "
                         f"e.g. 14.9,45.0,15.1,45.2")
    if west > east:
        raise ValueError(f"bounding box {text!r} has west > east (crossing the antimeridian is not supported); split it in two")
    return west, south, east, north


def parse_time(text: str, end: bool = False) -> datetime:
    """"2024-06-01" (the whole day) or an ISO 8601 time -> a UTC datetime."""
    raw = str(text).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        day = date.fromisoformat(raw)
        return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=timezone.utc) if end else \
            datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"date {text!r} is not understood: give YYYY-MM-DD or an ISO 8601 time such as "
                         f"2024-06-01T10:30:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class PlaceTimeFilter:
    """Chips whose footprint meets a lon/lat box and whose acquisition time lies in [start, end]; a chip without a
    place (or time) never passes a box (or date) filter."""

    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self):
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"the date range starts after it ends ({self.start.isoformat()} > {self.end.isoformat()}); "
                             f"swap --from and --to")

    @classmethod
    def parse(cls, bbox: str | None = None, start: str | None = None, end: str | None = None) -> "PlaceTimeFilter | None":
        """The filter of the command-line / API strings (None if none is given)."""
        if bbox is None and start is None and end is None:
            return None
        return cls(parse_bbox(bbox) if bbox else None, parse_time(start) if start else None,
                   parse_time(end, end=True) if end else None)

    def matches(self, place: dict | None) -> bool:
        if place is None:
            return False
        if self.bbox is not None:
            if not place.get("bbox"):
                return False
            west, south, east, north = place["bbox"]
            w, s, e, n = self.bbox
            if west > e or east < w or south > n or north < s:
                return False
        if self.start or self.end:
            if not place.get("datetime"):
                return False
            moment = parse_time(place["datetime"])
            if (self.start and moment < self.start) or (self.end and moment > self.end):
                return False
        return True


def hits_geojson(hits: list[dict]) -> dict:
    """A GeoJSON FeatureCollection (RFC 7946, lon/lat) of hits: each hit's footprint polygon and its fields; a hit
    without a place has a null geometry."""
    features = []
    for hit in hits:
        place = hit.get("place") or {}
        ring = place.get("lonlat")
        properties = {k: v for k, v in hit.items() if k != "place"}
        properties.update({k: place.get(k) for k in ("scene", "datetime", "gsd_m", "crs", "window") if place})
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]} if ring else None,
                         "properties": properties})
    return {"type": "FeatureCollection", "features": features}

"""devices/*.yaml: roads and their lamps, gateways and their lamp groups, facade zones.

The files use compact forms (lamps spaced along a road's polyline, unit-id ranges on a gateway) that
`expand` turns into one Device per controller.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
WireId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
Point = tuple[Lat, Lon]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_units(text: str | int | list[int]) -> list[int]:
    """`"1-30"`, `"1-10,12,15-20"`, 7 or [1, 2, 3] -> sorted unit ids, each checked against 1-247."""
    if isinstance(text, int):
        parts: list[str] = [str(text)]
    elif isinstance(text, list):
        parts = [str(x) for x in text]
    else:
        parts = [p.strip() for p in text.split(",") if p.strip()]
    units: list[int] = []
    for part in parts:
        match = re.fullmatch(r"(-?\d+)(?:\s*-\s*(-?\d+))?", part)
        if not match:
            raise ValueError(f"bad unit range {part!r}: use forms like 1-30 or 1-10,12")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if lo > hi:
            raise ValueError(f"bad unit range {part!r}: start after end")
        for unit in (lo, hi):
            if not 1 <= unit <= 247:
                raise ValueError(f"unit id {unit} out of range 1-247")
        units.extend(range(lo, hi + 1))
    if not units:
        raise ValueError("no unit ids given")
    dupes = sorted({u for u in units if units.count(u) > 1})
    if dupes:
        raise ValueError(f"unit ids listed twice: {dupes}")
    return sorted(units)


class LampSpec(Strict):
    """A lamp written out by hand (an odd pole, a replacement with another rating)."""

    id: Slug
    mqtt_id: WireId
    name: str | None = None
    at: Point
    rated_w: float = Field(gt=0, le=2000)
    profile: Slug | None = None
    dimmable: bool | None = None
    report_s: int | None = Field(None, ge=10, le=900)


class Concentrator(Strict):
    id: Slug
    name: str = ""
    mqtt_id: WireId
    batch_s: int = Field(60, ge=1, le=3600)
    at: Point


class Road(Strict):
    id: Slug
    name: str = Field(min_length=1)
    road_class: str = Field("secondary", alias="class")
    profile: Slug
    path: list[Point] = Field(min_length=2)
    spacing_m: float | None = Field(None, ge=5, le=200)
    rated_w: float | None = Field(None, gt=0, le=2000)
    id_prefix: Slug | None = None  # lamp ids <prefix>-001 ...
    mqtt_prefix: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,24}$")  # wire ids <PREFIX>-001
    concentrator: Slug | None = None
    dimmable: bool | None = None
    report_s: int | None = Field(None, ge=10, le=900)
    lamps: list[LampSpec] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _has_lamps(self) -> Road:
        spaced = self.spacing_m is not None
        if spaced and (self.rated_w is None or self.id_prefix is None or self.mqtt_prefix is None):
            raise ValueError("spacing_m needs rated_w, id_prefix and mqtt_prefix")
        if not spaced and not self.lamps:
            raise ValueError("road has no lamps: give spacing_m (lamps along the path) or lamps")
        return self


class Gateway(Strict):
    id: Slug
    name: str = ""
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    profile: Slug
    units: str | int | list[int]
    path: list[Point] = Field(min_length=1)  # groups are placed evenly along it
    k1_w: float = Field(gt=0, le=5000)
    k2_w: float = Field(ge=0, le=5000)
    dimmable: bool | None = None
    not_dimmable: str | int | list[int] | None = None  # units without an LED driver
    road: Slug | None = None
    group_prefix: Slug | None = None  # group ids <prefix>-<unit>; default <gateway id>-u<unit>

    @field_validator("units", "not_dimmable")
    @classmethod
    def _units(cls, value: str | int | list[int] | None) -> str | int | list[int] | None:
        if value is not None:
            parse_units(value)
        return value


class FacadeZone(Strict):
    id: Slug
    name: str = Field(min_length=1)
    zone_class: str = Field("landscape", alias="class")
    profile: Slug
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=1, le=247)
    load_w: float = Field(gt=0, le=1_000_000)
    at: Point

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InventoryFile(Strict):
    """One file in devices/: any mix of the sections below."""

    roads: list[Road] = Field(default_factory=list)
    concentrators: list[Concentrator] = Field(default_factory=list)
    gateways: list[Gateway] = Field(default_factory=list)
    zones: list[FacadeZone] = Field(default_factory=list)


def along(path: list[Point], spacing_m: float) -> list[Point]:
    """Points every spacing_m metres along a polyline, starting at its first vertex."""
    points: list[Point] = []
    carry = 0.0  # distance already walked past the last placed point
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(path):
        length = _distance_m(lat1, lon1, lat2, lon2)
        pos = (spacing_m - carry) if points else 0.0
        while pos <= length + 1e-9:
            f = pos / length if length else 0.0
            points.append((lat1 + (lat2 - lat1) * f, lon1 + (lon2 - lon1) * f))
            pos += spacing_m
        carry = length - (pos - spacing_m)
    return points


def spread(path: list[Point], count: int) -> list[Point]:
    """count points evenly along a polyline (or all at its single point)."""
    if len(path) == 1 or count == 1:
        return [path[0]] * count
    total = sum(_distance_m(*a, *b) for a, b in itertools.pairwise(path))
    step = total / (count - 1)
    pts = along(path, step) if step > 0 else [path[0]] * count
    while len(pts) < count:  # rounding can lose the very last point
        pts.append(path[-1])
    return pts[:count]


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # Equirectangular is exact enough for street-length segments.
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return 6_371_000 * math.hypot(x, y)

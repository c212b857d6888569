"""Step times: a clock time (`23:00`, `24:00`) or a sun event with an offset (`sunset+5m`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SunEvent = Literal["sunset", "sunrise", "civil_dusk", "civil_dawn"]
SUN_EVENTS: tuple[SunEvent, ...] = ("sunset", "sunrise", "civil_dusk", "civil_dawn")

_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
_SUN = re.compile(r"^(sunset|sunrise|civil_dusk|civil_dawn)(?:([+-])(?:(\d{1,2})h)?(?:(\d{1,3})m(?:in)?)?)?$")


@dataclass(frozen=True, slots=True)
class TimeExpr:
    """Either minutes after local midnight (`clock`) or a sun event plus an offset in minutes."""

    text: str
    clock: int | None = None
    sun: SunEvent | None = None
    offset_min: int = 0


def parse_time(text: str) -> TimeExpr:
    """Parse a step time; raises ValueError saying what a valid one looks like."""
    value = text.strip()
    clock = _CLOCK.match(value)
    if clock:
        hours, minutes = int(clock.group(1)), int(clock.group(2))
        if hours == 24 and minutes != 0:
            raise ValueError(f"{text!r}: 24:00 is the latest clock time")
        return TimeExpr(text=value, clock=hours * 60 + minutes)
    sun = _SUN.match(value)
    if sun and not (sun.group(2) and not (sun.group(3) or sun.group(4))):
        sign = -1 if sun.group(2) == "-" else 1
        offset = int(sun.group(3) or 0) * 60 + int(sun.group(4) or 0)
        event: SunEvent = sun.group(1)  # type: ignore[assignment]
        return TimeExpr(text=value, sun=event, offset_min=sign * offset)
    raise ValueError(
        f"bad time {text!r}: use HH:MM (00:00-24:00) or a sun event "
        "(sunset, sunrise, civil_dusk, civil_dawn) with an optional offset such as sunset+5m or sunrise-1h30m"
    )

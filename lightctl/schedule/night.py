"""Nights run noon to noon in the site's time zone: a night belongs to the date on which it starts.

So 00:30 on 2 Oct is part of the night of 1 Oct, and that night's day type is 1 Oct's.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

ONE_DAY = dt.timedelta(days=1)
NOON_MIN = 12 * 60
DAY_MIN = 24 * 60


def night_of(ts: float, tz: ZoneInfo) -> dt.date:
    """The date of the night that the instant `ts` (epoch seconds) belongs to."""
    local = dt.datetime.fromtimestamp(ts, tz)
    return local.date() if local.hour >= 12 else local.date() - ONE_DAY


def local_ts(day: dt.date, minutes: int, tz: ZoneInfo) -> float:
    """Epoch seconds of the wall-clock time `minutes` after local midnight starting `day` (1440 = next 00:00)."""
    days, rest = divmod(minutes, DAY_MIN)
    wall = dt.datetime.combine(day + dt.timedelta(days=days), dt.time(rest // 60, rest % 60), tzinfo=tz)
    return wall.timestamp()


def night_window(night: dt.date, tz: ZoneInfo) -> tuple[float, float]:
    """[start, end) of a night in epoch seconds: noon of its date to noon of the next."""
    return local_ts(night, NOON_MIN, tz), local_ts(night + ONE_DAY, NOON_MIN, tz)


def clock_ts(night: dt.date, minutes: int, tz: ZoneInfo) -> float:
    """A step's clock time within a night: times before noon are the next morning; 24:00 is midnight
    at the end of the night's date; 12:00 is the night's start."""
    if minutes < NOON_MIN:
        return local_ts(night + ONE_DAY, minutes, tz)
    return local_ts(night, minutes, tz)


def to_local(ts: float, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz)

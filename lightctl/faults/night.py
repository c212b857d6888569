"""When it is night at the site (between sunset and sunrise), for severities that depend on it."""

from __future__ import annotations

from collections.abc import Callable

from lightctl.schedule.night import night_of
from lightctl.schedule.sun import SunClock


def night_by_sun(sun: SunClock) -> Callable[[float], bool]:
    """A predicate: is `ts` between the sunset and the sunrise of its night?"""

    def is_night(ts: float) -> bool:
        times = sun.night(night_of(ts, sun.tz))
        return times.sunset <= ts < times.sunrise

    return is_night

"""Sun times of a night at the site, from astral: sunset and civil dusk on the night's date, sunrise
and civil dawn the next morning.

Where an event does not happen (polar day or night, white nights for civil twilight) it is pinned,
so programs still resolve: if the sun stays above the event's elevation all day it is pinned to local
midnight (no dark period: an evening switch-on and a morning switch-off meet and cancel); if it stays
below, evening events are pinned to the night's start and morning events to its end (dark all
night). Pinned steps ignore their offsets and keep their program order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from astral import Observer
from astral import sun as astral_sun

from lightctl.schedule.night import DAY_MIN, ONE_DAY, local_ts, night_window
from lightctl.schedule.timeexpr import SunEvent

SUNRISE_ELEVATION = -0.833  # refraction and the sun's radius: astral's sunrise / sunset
CIVIL_ELEVATION = -6.0


@dataclass(frozen=True, slots=True)
class SunTimes:
    """Epoch seconds of a night's sun events; `pinned` names those that do not happen that night."""

    night: dt.date
    sunset: float
    civil_dusk: float
    sunrise: float
    civil_dawn: float
    pinned: frozenset[SunEvent] = frozenset()

    def at(self, event: SunEvent) -> float:
        if event == "sunset":
            return self.sunset
        if event == "civil_dusk":
            return self.civil_dusk
        if event == "sunrise":
            return self.sunrise
        return self.civil_dawn


class SunClock:
    """Sun times for one site, cached per night."""

    def __init__(self, lat: float, lon: float, tz: str | ZoneInfo) -> None:
        self.lat = lat
        self.lon = lon
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self._observer = Observer(latitude=lat, longitude=lon)
        self._cache: dict[dt.date, SunTimes] = {}

    def night(self, night: dt.date) -> SunTimes:
        times = self._cache.get(night)
        if times is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            times = self._compute(night)
            self._cache[night] = times
        return times

    def _compute(self, night: dt.date) -> SunTimes:
        start, end = night_window(night, self.tz)
        midnight = local_ts(night, DAY_MIN, self.tz)
        morning = night + ONE_DAY
        pinned: set[SunEvent] = set()

        def event(name: SunEvent, day: dt.date, evening: bool) -> float:
            elevation = CIVIL_ELEVATION if name.startswith("civil") else SUNRISE_ELEVATION
            try:
                when = self._astral(name, day)
            except ValueError:
                pinned.add(name)
                if self._noon_elevation(day) > elevation:
                    return midnight
                return start if evening else end
            return min(max(when, start), end)

        return SunTimes(
            night=night,
            sunset=event("sunset", night, evening=True),
            civil_dusk=event("civil_dusk", night, evening=True),
            sunrise=event("sunrise", morning, evening=False),
            civil_dawn=event("civil_dawn", morning, evening=False),
            pinned=frozenset(pinned),
        )

    def _astral(self, name: SunEvent, day: dt.date) -> float:
        obs, tz = self._observer, self.tz
        if name == "sunset":
            when = astral_sun.sunset(obs, day, tzinfo=tz)
        elif name == "sunrise":
            when = astral_sun.sunrise(obs, day, tzinfo=tz)
        elif name == "civil_dusk":
            when = astral_sun.dusk(obs, day, depression=6.0, tzinfo=tz)
        else:
            when = astral_sun.dawn(obs, day, depression=6.0, tzinfo=tz)
        return when.timestamp()

    def _noon_elevation(self, day: dt.date) -> float:
        noon = astral_sun.noon(self._observer, day, tzinfo=self.tz)
        return float(astral_sun.elevation(self._observer, noon))

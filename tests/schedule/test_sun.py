"""Sun times of a night: astral's, with sunset on the night's date and sunrise the next morning."""

from __future__ import annotations

import datetime as dt

import pytest

from lightctl.schedule.sun import SunClock
from tests.schedule.conftest import Site

D = dt.date.fromisoformat


@pytest.mark.parametrize("night", ["2026-11-25", "2026-06-21", "2026-12-21", "2026-03-20", "2027-02-06"])
def test_night_sun_times_match_astral(site: Site, night: str) -> None:
    clock = SunClock(site.lat, site.lon, site.tz)
    got = clock.night(D(night))
    want = site.night_sun(night)
    for event in ("sunset", "civil_dusk", "sunrise", "civil_dawn"):
        assert got.at(event) == pytest.approx(want[event], abs=1.0), event
    assert got.pinned == frozenset()
    assert got.civil_dusk > got.sunset
    assert got.civil_dawn < got.sunrise
    assert dt.datetime.fromtimestamp(got.sunrise, site.tz).date() == D(night) + dt.timedelta(days=1)


def test_winter_nights_are_longer_than_summer_nights(site: Site) -> None:
    clock = SunClock(site.lat, site.lon, site.tz)
    winter, summer = clock.night(D("2026-12-21")), clock.night(D("2026-06-21"))
    # at 28.68 N: about 13 h 40 min of night (sunset to sunrise) at the winter solstice, 10 h 20 min in summer
    assert 13.2 * 3600 < winter.sunrise - winter.sunset < 14.2 * 3600
    assert 9.8 * 3600 < summer.sunrise - summer.sunset < 10.8 * 3600


@pytest.mark.parametrize(
    ("lat", "lon", "tz", "night", "dark_all_night"),
    [
        (78.2, 15.6, "Arctic/Longyearbyen", "2026-12-21", True),  # polar night
        (78.2, 15.6, "Arctic/Longyearbyen", "2026-06-21", False),  # midnight sun
        (-77.8, 166.7, "Antarctica/McMurdo", "2026-06-21", True),
    ],
)
def test_polar_nights_do_not_crash_and_are_pinned(
    lat: float, lon: float, tz: str, night: str, dark_all_night: bool
) -> None:
    clock = SunClock(lat, lon, tz)
    times = clock.night(D(night))
    assert {"sunset", "sunrise"} <= times.pinned
    start = dt.datetime.combine(D(night), dt.time(12), tzinfo=clock.tz).timestamp()
    end = dt.datetime.combine(D(night) + dt.timedelta(days=1), dt.time(12), tzinfo=clock.tz).timestamp()
    if dark_all_night:
        assert (times.sunset, times.sunrise) == (start, end)
    else:
        assert times.sunset == times.sunrise  # pinned together: no dark period
        assert start < times.sunset < end


def test_white_night_civil_twilight_is_pinned_but_sunset_is_real() -> None:
    clock = SunClock(64.1, -21.9, "Atlantic/Reykjavik")  # no civil dusk around the summer solstice
    times = clock.night(D("2026-06-21"))
    assert "sunset" not in times.pinned
    assert "civil_dusk" in times.pinned
    assert times.civil_dusk == times.civil_dawn

"""Shared helpers for the scheduler tests: the repository's district, local times, astral computed
here independently of lightctl.schedule.sun."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import sun as astral_day

from lightctl.config.loader import District, load
from lightctl.model import DesiredState, Override
from lightctl.schedule.resolve import Resolver

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def district() -> District:
    return load(REPO / "config.yaml")


@pytest.fixture
def resolver(district: District) -> Resolver:
    return Resolver.for_district(district)


@pytest.fixture(scope="session")
def tz(district: District) -> ZoneInfo:
    return ZoneInfo(district.settings.site.timezone)


@dataclass(frozen=True)
class Site:
    lat: float
    lon: float
    tz: ZoneInfo

    def ts(self, day: dt.date | str, hhmm: str) -> float:
        """Epoch seconds of a wall-clock time on a date at the site."""
        d = dt.date.fromisoformat(day) if isinstance(day, str) else day
        h, m = (int(x) for x in hhmm.split(":"))
        return dt.datetime(d.year, d.month, d.day, h, m, tzinfo=self.tz).timestamp()

    def sun(self, day: dt.date | str) -> dict[str, float]:
        """astral's sunrise, sunset, dawn and dusk of one calendar date, as epoch seconds."""
        d = dt.date.fromisoformat(day) if isinstance(day, str) else day
        times = astral_day(Observer(self.lat, self.lon), d, tzinfo=self.tz)
        return {k: v.timestamp() for k, v in times.items()}

    def night_sun(self, night: dt.date | str) -> dict[str, float]:
        """Sunset and dusk on the night's date, sunrise and dawn the next morning."""
        d = dt.date.fromisoformat(night) if isinstance(night, str) else night
        evening, morning = self.sun(d), self.sun(d + dt.timedelta(days=1))
        return {
            "sunset": evening["sunset"],
            "civil_dusk": evening["dusk"],
            "sunrise": morning["sunrise"],
            "civil_dawn": morning["dawn"],
        }


@pytest.fixture(scope="session")
def site(district: District) -> Site:
    s = district.settings.site
    return Site(s.lat, s.lon, ZoneInfo(s.timezone))


def make_override(
    ident: int,
    kind: str,
    targets: tuple[str, ...],
    start: float,
    until: float,
    created_at: float | None = None,
    event: str | None = None,
    setting: DesiredState | None = None,
    **fields: bool | int,
) -> Override:
    return Override(
        id=ident,
        kind=kind,  # type: ignore[arg-type]
        targets=targets,
        state=setting if setting is not None else DesiredState(**fields),  # type: ignore[arg-type]
        start=start,
        until=until,
        reason="test",
        event=event,
        created_by="test",
        created_at=start if created_at is None else created_at,
    )


def output(state: DesiredState) -> tuple[object, ...]:
    return (state.on, state.level, state.k1, state.k2, state.scene, state.brightness)

"""Programs resolved for a night: step times, order, accumulation, the carried-over start state."""

from __future__ import annotations

import datetime as dt

import pytest

from lightctl.config.schedules import Program
from lightctl.model import DesiredState
from lightctl.schedule.device_state import default_state
from lightctl.schedule.programs import build_timeline
from lightctl.schedule.sun import SunClock
from tests.schedule.conftest import Site

D = dt.date.fromisoformat
NIGHT = D("2026-11-25")


def program(kind: str, *steps: dict[str, object]) -> Program:
    return Program.model_validate({"id": "p", "kind": kind, "steps": list(steps)})


def timeline(site: Site, prog: Program, night: dt.date = NIGHT, initial: DesiredState | None = None):  # type: ignore[no-untyped-def]
    sun = SunClock(site.lat, site.lon, site.tz).night(night)
    start = default_state(prog.kind) if initial is None else initial
    return build_timeline(prog, night, sun, site.tz, start, "test", prog.kind)


def test_clock_times_before_noon_are_next_morning_and_24_00_is_midnight(site: Site) -> None:
    tl = timeline(
        site,
        program(
            "lamp", {"at": "12:00", "on": True}, {"at": "24:00", "level": 40}, {"at": "11:59", "on": False}
        ),
    )
    assert [s.at for s in tl.steps] == [
        site.ts(NIGHT, "12:00"),
        site.ts(NIGHT + dt.timedelta(days=1), "00:00"),
        site.ts(NIGHT + dt.timedelta(days=1), "11:59"),
    ]
    assert (tl.start, tl.end) == (site.ts(NIGHT, "12:00"), site.ts(NIGHT + dt.timedelta(days=1), "12:00"))


def test_steps_apply_in_the_order_of_their_times_not_as_written(site: Site) -> None:
    tl = timeline(
        site,
        program(
            "lamp",
            {"at": "01:00", "level": 50},
            {"at": "23:00", "level": 70},
            {"at": "sunset", "on": True, "level": 100},
        ),
    )
    assert [s.index for s in tl.steps] == [2, 1, 0]
    assert tl.state_at(site.ts("2026-11-25", "23:30")).level == 70
    assert tl.state_at(site.ts("2026-11-26", "02:00")).level == 50


def test_sun_steps_with_offsets(site: Site) -> None:
    tl = timeline(
        site, program("lamp", {"at": "sunset+5m", "on": True}, {"at": "sunrise-1h30m", "on": False})
    )
    sun = site.night_sun(NIGHT)
    assert tl.steps[0].at == pytest.approx(sun["sunset"] + 300, abs=1)
    assert tl.steps[1].at == pytest.approx(sun["sunrise"] - 5400, abs=1)


def test_a_step_sets_only_what_it_names(site: Site) -> None:
    tl = timeline(
        site,
        program(
            "group",
            {"at": "sunset", "k1": True, "k2": True, "level": 80},
            {"at": "23:30", "k2": False},
            {"at": "02:00", "level": 40},
            {"at": "sunrise", "on": False},
        ),
    )
    late = tl.state_at(site.ts("2026-11-26", "01:00"))
    assert (late.k1, late.k2, late.level) == (True, False, 80)
    later = tl.state_at(site.ts("2026-11-26", "03:00"))
    assert (later.k1, later.k2, later.level) == (True, False, 40)
    day = tl.state_at(site.ts("2026-11-26", "11:00"))
    assert (day.k1, day.k2) == (False, False)  # `on` for a group switches both circuits


def test_before_the_first_step_the_night_starts_from_the_given_state(site: Site) -> None:
    prog = program("lamp", {"at": "20:00", "level": 30})
    carried = DesiredState(on=True, level=60, source="yesterday")
    tl = timeline(site, prog, initial=carried)
    assert tl.state_at(site.ts("2026-11-25", "19:00")).level == 60
    assert tl.state_at(site.ts("2026-11-25", "19:00")).source == "yesterday"
    assert tl.state_at(site.ts("2026-11-25", "21:00")) == DesiredState(
        on=True, level=30, source="test/steps[0]"
    )
    off = timeline(site, prog)
    assert off.state_at(site.ts("2026-11-25", "21:00")).on is False  # level alone does not switch on


def test_steps_outside_the_night_are_clamped_to_its_edges(site: Site) -> None:
    tl = timeline(site, program("lamp", {"at": "sunset-8h", "on": True}, {"at": "sunrise+8h", "on": False}))
    assert tl.steps[0].at == tl.start
    assert tl.steps[-1].at == tl.end
    assert tl.state_at(tl.end - 1).on is True
    assert tl.end_raw.on is False  # the next night starts from it


def test_facade_on_and_off(site: Site) -> None:
    tl = timeline(
        site,
        program(
            "facade", {"at": "19:00", "on": True}, {"at": "20:00", "scene": 2}, {"at": "21:00", "on": False}
        ),
    )
    assert tl.state_at(site.ts("2026-11-25", "19:30")).scene == 1  # on without a scene: weekday scene
    assert tl.state_at(site.ts("2026-11-25", "20:30")) == DesiredState(
        scene=2, brightness=100, source="test/steps[1]"
    )
    assert tl.state_at(site.ts("2026-11-25", "21:30")).scene == 0


def test_polar_day_switches_on_and_off_together_in_program_order() -> None:
    site = Site(78.2, 15.6, SunClock(78.2, 15.6, "Arctic/Longyearbyen").tz)
    night = D("2026-06-21")
    tl = timeline(
        site,
        program(
            "lamp",
            {"at": "sunset+5m", "on": True},
            {"at": "23:00", "level": 50},
            {"at": "sunrise-5m", "on": False},
        ),
        night,
    )
    assert all(not tl.state_at(t).on for t in (tl.start, site.ts(night, "23:30"), tl.end - 1))
    polar_night = D("2026-12-21")
    dark = timeline(
        site, program("lamp", {"at": "sunset", "on": True}, {"at": "sunrise", "on": False}), polar_night
    )
    assert dark.state_at(dark.start).on
    assert dark.state_at(dark.end - 1).on

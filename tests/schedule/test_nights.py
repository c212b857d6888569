"""Whole nights of the repository's sample plans, step by step, against design.md section 3.

The expected timelines below are the contract's words (arterial: on at sunset 100 %, 23:00 70 %,
01:00 50 %, 05:00 80 %, off at sunrise; ...), with sun times from astral computed in the test.
"""

from __future__ import annotations

import datetime as dt
import warnings

import pytest
from lunardate import LunarDate

from lightctl.config.loader import District
from lightctl.schedule.resolve import Resolver
from tests.schedule.conftest import Site, output
from tests.schedule.test_calendar import first_year_without_package_data

D = dt.date.fromisoformat
State = tuple[object, ...]


def lamp(level: int | None) -> State:
    return (False, None, None, None, None, None) if level is None else (True, level, None, None, None, None)


def group(k1: bool, k2: bool) -> State:
    return (None, 100 if (k1 or k2) else None, k1, k2, None, None)


def facade(scene: int) -> State:
    return (None, None, None, None, scene, 100 if scene else None)


# time: "sunset" / "sunrise" with an offset in minutes, or a clock time ("01:00" is the next morning)
Step = tuple[str, int, State]
ARTERIAL: list[Step] = [
    ("sunset", 0, lamp(100)),
    ("23:00", 0, lamp(70)),
    ("01:00", 0, lamp(50)),
    ("05:00", 0, lamp(80)),
    ("sunrise", 0, lamp(None)),
]
SECONDARY: list[Step] = [
    ("sunset", 5, lamp(100)),
    ("22:30", 0, lamp(60)),
    ("00:30", 0, lamp(40)),
    ("05:00", 0, lamp(70)),
    ("sunrise", -5, lamp(None)),
]
ZHONGHUA_HALF: list[Step] = [
    ("sunset", 0, group(True, True)),
    ("23:30", 0, group(True, False)),
    ("sunrise", 0, group(False, False)),
]
ZHONGHUA_HOLIDAY: list[Step] = [
    ("sunset", 0, group(True, True)),
    ("24:00", 0, group(True, False)),
    ("sunrise", 0, group(False, False)),
]
FACADE_WEEKDAY: list[Step] = [("19:00", 0, facade(1)), ("22:00", 0, facade(0))]
FACADE_HOLIDAY: list[Step] = [("sunset", 0, facade(2)), ("23:00", 0, facade(0))]
FACADE_MAJOR: list[Step] = [("sunset", 0, facade(3)), ("24:00", 0, facade(0))]

# night -> (day type, facade program, zhonghua program)
NIGHTS: dict[str, tuple[str, list[Step], str, list[Step], str]] = {
    "2026-11-25": ("workday", FACADE_WEEKDAY, "facade-weekday", ZHONGHUA_HALF, "zhonghua-half-night"),
    "2026-11-28": ("weekend", FACADE_HOLIDAY, "facade-holiday", ZHONGHUA_HALF, "zhonghua-half-night"),
    "2026-10-01": ("holiday", FACADE_MAJOR, "facade-major", ZHONGHUA_HOLIDAY, "zhonghua-holiday"),
    # a Saturday makeup workday carrying the Spring Festival's name: weekday scene, not major
    "2026-02-14": ("makeup_workday", FACADE_WEEKDAY, "facade-weekday", ZHONGHUA_HALF, "zhonghua-half-night"),
    # summer solstice, also Dragon Boat (an "other" holiday): holiday scene 2
    "2026-06-21": ("holiday", FACADE_HOLIDAY, "facade-holiday", ZHONGHUA_HOLIDAY, "zhonghua-holiday"),
    "2026-12-21": (
        "workday",
        FACADE_WEEKDAY,
        "facade-weekday",
        ZHONGHUA_HALF,
        "zhonghua-half-night",
    ),  # winter solstice
    "2026-12-31": (
        "event",
        FACADE_MAJOR,
        "facade-major",
        ZHONGHUA_HOLIDAY,
        "zhonghua-holiday",
    ),  # 跨年灯光秀, a Thursday
    "2026-11-08": (
        "event",
        FACADE_MAJOR,
        "facade-major",
        ZHONGHUA_HOLIDAY,
        "zhonghua-holiday",
    ),  # 马拉松, a Sunday
}


def fallback_spring_festival() -> str:
    year = first_year_without_package_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        day: dt.date = LunarDate(year, 1, 1).toSolarDate()
    return day.isoformat()


def step_ts(site: Site, night: str, when: str, offset_min: int) -> float:
    if when in ("sunset", "sunrise"):
        return site.night_sun(night)[when] + offset_min * 60
    day = D(night)
    if when == "24:00":
        return site.ts(day + dt.timedelta(days=1), "00:00")
    if int(when[:2]) < 12:
        day += dt.timedelta(days=1)
    return site.ts(day, when) + offset_min * 60


def walk(
    resolver: Resolver, site: Site, devices: list[str], night: str, steps: list[Step], program: str
) -> None:
    """Before the first step the device is off; after each step it holds that step's state until the next."""
    start = site.ts(night, "12:00")
    end = site.ts(D(night) + dt.timedelta(days=1), "12:00")
    times = [step_ts(site, night, w, off) for w, off, _ in steps]
    assert times == sorted(times)
    first_state = resolver.resolve(start + 1).states
    for device in devices:
        assert output(first_state[device]) == output(resolver.desired(device, start + 1))
        off = steps[-1][2]
        assert output(first_state[device]) == off, (device, night, "start of night")
    for i, (t, (when, _, want)) in enumerate(zip(times, steps, strict=True)):
        until = times[i + 1] if i + 1 < len(times) else end
        for probe in (t + 30, until - 30):
            states = resolver.resolve(probe).states
            for device in devices:
                got = states[device]
                assert output(got) == want, (device, night, when, dt.datetime.fromtimestamp(probe, site.tz))
                assert f"program:{program}/" in got.source
        just_before = resolver.resolve(t - 30).states
        prev = steps[i - 1][2] if i else steps[-1][2]
        assert all(output(just_before[d]) == prev for d in devices), (night, when, "just before")


@pytest.mark.parametrize("night", [*NIGHTS, "fallback"])
def test_whole_night(district: District, resolver: Resolver, site: Site, night: str) -> None:
    if night == "fallback":
        night = fallback_spring_festival()
        day_type, facade_steps, facade_prog, zh_steps, zh_prog = (
            "holiday",
            FACADE_MAJOR,
            "facade-major",
            ZHONGHUA_HOLIDAY,
            "zhonghua-holiday",
        )
        assert resolver.day(D(night)).estimated
    else:
        day_type, facade_steps, facade_prog, zh_steps, zh_prog = NIGHTS[night]
    assert resolver.day(D(night)).day_type == day_type
    facades = sorted(d.id for d in district.devices.values() if d.kind == "facade")
    groups = ["zhg-01-u01", "zhg-09-u30", "zhg-20-u15"]
    walk(resolver, site, ["ha-001", "zs-010", "hcx-005"], night, ARTERIAL, "arterial-dimming")
    walk(resolver, site, ["dz-001", "zd-school"], night, SECONDARY, "secondary-dimming")
    walk(resolver, site, groups, night, zh_steps, zh_prog)
    walk(resolver, site, facades, night, facade_steps, facade_prog)


def test_every_device_of_a_plan_follows_it(district: District, resolver: Resolver, site: Site) -> None:
    states = resolver.resolve(site.ts("2026-11-25", "23:45")).states
    assert len(states) == len(district.devices)
    by_road = {road.id: road.lamps for road in district.roads.values()}
    for road in ("hengan-lu", "zishan-lu", "huanchengxi-lu"):
        assert {output(states[d]) for d in by_road[road]} == {lamp(70)}
    for road in ("dezheng-lu", "zhengde-lu"):
        assert {output(states[d]) for d in by_road[road]} == {lamp(60)}
    assert {output(s) for d, s in states.items() if district.devices[d].kind == "group"} == {
        group(True, False)
    }
    assert {output(s) for d, s in states.items() if district.devices[d].kind == "facade"} == {facade(0)}


def test_half_past_midnight_belongs_to_the_previous_night(resolver: Resolver, site: Site) -> None:
    # 00:30 on 1 Oct is the night of 30 Sep (a workday): half-night 中华灯, weekday facades
    before = resolver.desired("zhg-01-u01", site.ts("2026-10-01", "00:30"))
    assert "program:zhonghua-half-night/" in before.source
    # 00:30 on 2 Oct is the night of 1 Oct (National Day)
    during = resolver.desired("zhg-01-u01", site.ts("2026-10-02", "00:30"))
    assert "program:zhonghua-holiday/" in during.source
    # 23:45 on 1 Oct: K2 still on (holiday: off at 24:00); 23:45 on 30 Sep: already off (23:30)
    assert resolver.desired("zhg-01-u01", site.ts("2026-10-01", "23:45")).k2 is True
    assert resolver.desired("zhg-01-u01", site.ts("2026-09-30", "23:45")).k2 is False
    # the last night of the holiday is 7 Oct: its morning of 8 Oct is still the holiday program
    assert (
        "program:zhonghua-holiday/" in resolver.desired("zhg-01-u01", site.ts("2026-10-08", "05:00")).source
    )
    assert (
        "program:zhonghua-half-night/"
        in resolver.desired("zhg-01-u01", site.ts("2026-10-08", "20:00")).source
    )

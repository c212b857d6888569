"""Plan and rule matching: order, fall-through to the next plan, kinds, names, events, date ranges."""

from __future__ import annotations

import datetime as dt

from lightctl.config.loader import District
from lightctl.config.schedules import Event, Plan, Program
from lightctl.schedule.calendar import DayCalendar
from lightctl.schedule.plans import PlanBook, TargetIndex
from lightctl.schedule.resolve import Resolver
from lightctl.schedule.sun import SunClock
from tests.schedule.conftest import Site

PROGRAMS = [
    {
        "id": "late",
        "kind": "lamp",
        "steps": [{"at": "20:00", "on": True, "level": 10}, {"at": "02:00", "on": False}],
    },
    {
        "id": "early",
        "kind": "lamp",
        "steps": [{"at": "18:00", "on": True, "level": 20}, {"at": "22:00", "on": False}],
    },
    {"id": "show", "kind": "facade", "steps": [{"at": "18:00", "scene": 7}, {"at": "21:00", "scene": 0}]},
]


def resolver_with(
    district: District, plans: list[dict[str, object]], events: list[Event] | None = None
) -> Resolver:
    programs = {p.id: p for p in (Program.model_validate(x) for x in PROGRAMS)}
    targets = TargetIndex.for_district(district)
    book = PlanBook([Plan.model_validate(p) for p in plans], programs, targets)
    site = district.settings.site
    return Resolver(
        district.devices,
        book,
        targets,
        DayCalendar(events or []),
        SunClock(site.lat, site.lon, site.timezone),
    )


def test_the_night_decides_after_midnight(district: District, site: Site) -> None:
    """A holiday-only program that runs past midnight: 00:30 on 8 Oct is still the night of 7 Oct
    (National Day), while 00:30 on 1 Oct is the night of 30 Sep (a workday: no program)."""
    r = resolver_with(
        district, [{"id": "p", "targets": ["ha-001"], "rules": [{"day_type": "holiday", "program": "late"}]}]
    )
    assert r.desired("ha-001", site.ts("2026-10-08", "00:30")).on is True
    assert r.desired("ha-001", site.ts("2026-10-01", "00:30")).on is False
    assert r.desired("ha-001", site.ts("2026-10-01", "00:30")).source == "default"


def test_a_plan_without_a_matching_rule_passes_to_the_next_plan(district: District, site: Site) -> None:
    r = resolver_with(
        district,
        [
            {
                "id": "holidays",
                "targets": ["road:hengan-lu"],
                "rules": [{"holiday": "国庆节", "program": "late"}],
            },
            {"id": "always", "targets": ["kind:lamp"], "rules": [{"program": "early"}]},
        ],
    )
    assert r.desired("ha-001", site.ts("2026-10-03", "21:00")).source.startswith(
        "plan:holidays/rules[0]/program:late"
    )
    assert r.desired("ha-001", site.ts("2026-10-09", "21:00")).source.startswith(
        "plan:always/rules[0]/program:early"
    )
    assert r.desired("zs-001", site.ts("2026-10-03", "21:00")).source.startswith("plan:always/")


def test_rules_for_another_kind_are_skipped(district: District, site: Site) -> None:
    r = resolver_with(
        district,
        [
            {
                "id": "mixed",
                "targets": ["ha-001", "zone:gymnasium"],
                "rules": [{"program": "show"}, {"program": "early"}],
            }
        ],
    )
    assert r.desired("gymnasium", site.ts("2026-11-25", "19:00")).scene == 7
    assert r.desired("ha-001", site.ts("2026-11-25", "19:00")).level == 20


def test_holiday_names_in_chinese_or_english_and_never_makeup_days(district: District, site: Site) -> None:
    r = resolver_with(
        district,
        [
            {
                "id": "p",
                "targets": ["ha-001"],
                "rules": [{"holiday": ["春节", "Labour Day"], "program": "late"}],
            }
        ],
    )
    assert r.desired("ha-001", site.ts("2026-02-17", "21:00")).on is True  # 春节
    assert r.desired("ha-001", site.ts("2026-05-02", "21:00")).on is True  # Labour Day
    assert r.desired("ha-001", site.ts("2026-02-14", "21:00")).on is False  # makeup workday named 春节
    assert r.desired("ha-001", site.ts("2026-10-02", "21:00")).on is False


def test_event_names_and_date_ranges(district: District, site: Site) -> None:
    events = [
        Event(name="灯会", dates=[dt.date(2026, 11, 25)]),
        Event(name="马拉松", dates=[dt.date(2026, 11, 26)]),
    ]
    r = resolver_with(
        district,
        [
            {
                "id": "p",
                "targets": ["ha-001"],
                "rules": [
                    {"event": "灯会", "program": "late"},
                    {"dates": {"start": "2026-11-26", "end": "2026-11-27"}, "program": "early"},
                ],
            }
        ],
        events,
    )
    assert r.desired("ha-001", site.ts("2026-11-25", "21:00")).level == 10  # 灯会
    assert r.desired("ha-001", site.ts("2026-11-26", "21:00")).level == 20  # 马拉松 is not 灯会; date range
    assert r.desired("ha-001", site.ts("2026-11-27", "21:00")).level == 20
    assert r.desired("ha-001", site.ts("2026-11-28", "21:00")).on is False

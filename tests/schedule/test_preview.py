"""Preview of a night: day, sun, steps with sources, and energy computed here from the datasheets'
power rules (rated x level + standby) and astral's times."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lightctl.config.loader import District
from lightctl.schedule.preview import preview_night
from lightctl.schedule.resolve import Resolver
from tests.schedule.conftest import Site, make_override
from tests.schedule.test_nights import fallback_spring_festival

D = dt.date.fromisoformat
H = 3600.0


def test_national_day_facades(district: District, resolver: Resolver, site: Site) -> None:
    p = preview_night(resolver, D("2026-10-01"), "kind:facade", district.profiles)
    sun = site.night_sun("2026-10-01")
    assert (p.day_type, p.holiday, p.holiday_zh, p.estimated) == ("holiday", "National Day", "国庆节", False)
    assert abs(p.sun.sunset.timestamp() - sun["sunset"]) < 1
    assert abs(p.sun.sunrise.timestamp() - sun["sunrise"]) < 1
    (group,) = p.groups
    assert set(group.devices) == {"admin-centre", "longcheng", "natatorium", "gymnasium"}
    assert (group.plan, group.rule_index, group.program) == ("facades", 0, "facade-major")
    assert [(s.what, s.state.scene) for s in group.steps] == [
        ("start of night", 0),
        ("sunset", 3),
        ("24:00", 0),
    ]
    assert group.steps[2].at == dt.datetime(2026, 10, 2, 0, 0, tzinfo=site.tz)
    # scene 3 is 100 % of the installed load (devices.md), at 100 % brightness, sunset to midnight
    hours = (site.ts("2026-10-02", "00:00") - sun["sunset"]) / H
    want = sum(district.devices[d].rated_w for d in group.devices) * hours / 1000
    assert p.energy_kwh == pytest.approx(want, rel=1e-6)


def test_arterial_road_energy_on_a_workday(district: District, resolver: Resolver, site: Site) -> None:
    night = "2026-11-25"
    p = preview_night(resolver, D(night), "road:hengan-lu", district.profiles)
    sun = site.night_sun(night)
    edges = [
        sun["sunset"],
        site.ts(night, "23:00"),
        site.ts("2026-11-26", "01:00"),
        site.ts("2026-11-26", "05:00"),
        sun["sunrise"],
    ]
    levels = [100, 70, 50, 80]
    standby = 0.5  # SLC-M1 driver standby with the relay closed
    lamps = [district.devices[d] for d in district.roads["hengan-lu"].lamps]
    want_wh = sum(
        (lamp.rated_w * level / 100 + standby) * (end - start) / H
        for lamp in lamps
        for start, end, level in zip(edges, edges[1:], levels, strict=False)
    )
    assert p.energy_kwh == pytest.approx(want_wh / 1000, rel=1e-6)
    assert p.device_count == len(lamps)
    assert [s.state.level for s in p.groups[0].steps] == [None, 100, 70, 50, 80, None]


def test_zhonghua_half_night_energy(district: District, resolver: Resolver, site: Site) -> None:
    night = "2026-12-21"
    p = preview_night(resolver, D(night), "zhg-03-u10", district.profiles)
    device = district.devices["zhg-03-u10"]
    sun = site.night_sun(night)
    assert device.k1_w is not None
    assert device.k2_w is not None
    k2_off = site.ts(night, "23:30")
    want = (
        ((device.k1_w + device.k2_w) * (k2_off - sun["sunset"]) + device.k1_w * (sun["sunrise"] - k2_off))
        / H
        / 1000
    )
    assert p.energy_kwh == pytest.approx(want, rel=1e-6)


def test_makeup_workday_and_estimated_year_are_shown(district: District, resolver: Resolver) -> None:
    makeup = preview_night(resolver, D("2026-02-14"), "longcheng", district.profiles)
    assert (makeup.day_type, makeup.holiday) == ("makeup_workday", "Spring Festival")
    assert makeup.groups[0].program == "facade-weekday"
    assert "调休" in makeup.to_text()
    estimated = preview_night(resolver, D(fallback_spring_festival()), "longcheng", district.profiles)
    assert estimated.estimated
    assert estimated.to_json()["estimated"] is True
    assert "estimated" in estimated.to_text()


def test_overrides_show_as_their_own_group(district: District, resolver: Resolver, site: Site) -> None:
    night = "2026-11-25"
    t0, t1 = site.ts(night, "20:00"), site.ts(night, "23:00")
    resolver.set_overrides(
        [make_override(7, "event", ("zone:longcheng",), t0, t1, event="音乐节", scene=5, brightness=70)]
    )
    p = preview_night(resolver, D(night), "kind:facade", district.profiles)
    by_device = {d: g for g in p.groups for d in g.devices}
    event_group = by_device["longcheng"]
    assert event_group.overrides == ("event:7",)
    assert by_device["gymnasium"].overrides == ()
    assert [(s.what, s.state.scene, s.state.source) for s in event_group.steps] == [
        ("start of night", 0, "plan:facades/rules[3]/program:facade-weekday/steps[1]"),
        ("19:00", 1, "plan:facades/rules[3]/program:facade-weekday/steps[0]"),
        ("event:7 starts", 5, "event:7"),
        ("event:7 ends", 0, "plan:facades/rules[3]/program:facade-weekday/steps[1]"),
    ]
    load = district.devices["longcheng"].rated_w
    want = (
        (load * 0.45 * 1 * H + load * 0.60 * 0.70 * 3 * H) / H / 1000
    )  # scene 1 an hour, custom scene 3 h at 70 %
    assert event_group.energy_kwh == pytest.approx(want, rel=1e-6)


def test_json_and_text(district: District, resolver: Resolver) -> None:
    p = preview_night(resolver, D("2026-12-31"), None, district.profiles)
    data = json.loads(json.dumps(p.to_json(), ensure_ascii=False))
    assert data["day_type"] == "event"
    assert data["events"] == ["跨年灯光秀"]
    assert data["devices"] == len(district.devices)
    assert sum(g["energy_kwh"] for g in data["groups"]) == pytest.approx(data["energy_kwh"], abs=0.01)
    facade_group = next(g for g in data["groups"] if g["kind"] == "facade")
    assert facade_group["program"] == "facade-major"
    text = p.to_text()
    assert "活动日" in text
    assert "跨年灯光秀" in text
    assert "facade-major" in text


def test_unknown_target_is_a_clear_error(resolver: Resolver) -> None:
    with pytest.raises(ValueError, match="unknown target 'road:nowhere'"):
        preview_night(resolver, D("2026-11-25"), "road:nowhere")

"""Overrides over the plan: expiry, precedence, recency, kinds, event scenes, emergency, maintenance."""

from __future__ import annotations

from dataclasses import replace

from lightctl.model import Maintenance
from lightctl.schedule.device_state import EMERGENCY_DEFAULT_TARGETS, emergency_setting
from lightctl.schedule.resolve import Resolver
from tests.schedule.conftest import Site, make_override, output

NIGHT = "2026-11-25"  # a Wednesday: workday programs


def test_override_expiry_resumes_the_plan(resolver: Resolver, site: Site) -> None:
    """A daytime lamp test (试灯) on one road: lamps on at 30 % for an hour, then the plan (off) again."""
    start, until = site.ts(NIGHT, "14:00"), site.ts(NIGHT, "15:00")
    resolver.set_overrides([make_override(1, "manual", ("road:hengan-lu",), start, until, on=True, level=30)])
    during = resolver.resolve(site.ts(NIGHT, "14:30")).states
    assert (during["ha-001"].on, during["ha-001"].level, during["ha-001"].source) == (True, 30, "manual:1")
    assert during["zs-001"].on is False  # another road keeps its plan
    after = resolver.resolve(until).states
    assert after["ha-001"].on is False
    assert "plan:arterial-roads" in after["ha-001"].source
    assert resolver.next_change(site.ts(NIGHT, "14:30")) == until


def test_override_ended_early_resumes_the_plan(resolver: Resolver, site: Site) -> None:
    ov = make_override(1, "manual", ("ha-001",), site.ts(NIGHT, "19:00"), site.ts(NIGHT, "23:59"), on=False)
    resolver.set_overrides([ov])
    assert resolver.desired("ha-001", site.ts(NIGHT, "20:00")).on is False
    resolver.set_overrides([replace(ov, ended_at=site.ts(NIGHT, "20:30"))])
    assert resolver.desired("ha-001", site.ts(NIGHT, "20:31")).level == 100


def test_emergency_beats_everything(resolver: Resolver, site: Site) -> None:
    t0, t1 = site.ts(NIGHT, "19:00"), site.ts(NIGHT, "23:00")
    resolver.set_overrides(
        [
            make_override(
                1, "manual", ("ha-001", "zhg-01-u01"), t0, t1, created_at=t0 + 60, on=True, level=40
            ),
            make_override(2, "event", ("zone:longcheng",), t0, t1, event="灯光秀", scene=5, brightness=80),
            make_override(
                3,
                "emergency",
                EMERGENCY_DEFAULT_TARGETS["all_off"],
                t0,
                t1,
                created_at=t0,
                setting=emergency_setting("all_off"),
            ),
        ]
    )
    states = resolver.resolve(site.ts(NIGHT, "20:00")).states
    assert all(s.source == "emergency:3" for s in states.values())
    assert output(states["ha-001"]) == (False, None, None, None, None, None)
    assert output(states["zhg-01-u01"]) == (None, None, False, False, None, None)
    assert output(states["longcheng"]) == (None, None, None, None, 0, None)


def test_emergency_all_on_leaves_facades_alone_unless_targeted(resolver: Resolver, site: Site) -> None:
    t0, t1 = site.ts(NIGHT, "13:00"), site.ts(NIGHT, "14:00")
    setting = emergency_setting("all_on")
    resolver.set_overrides(
        [make_override(1, "emergency", EMERGENCY_DEFAULT_TARGETS["all_on"], t0, t1, setting=setting)]
    )
    states = resolver.resolve(site.ts(NIGHT, "13:30")).states
    assert output(states["dz-001"]) == (True, 100, None, None, None, None)
    assert output(states["zhg-05-u07"]) == (None, 100, True, True, None, None)
    assert output(states["gymnasium"]) == (None, None, None, None, 0, None)  # plan: dark in the afternoon
    assert "plan:facades" in states["gymnasium"].source
    resolver.set_overrides(
        [make_override(1, "emergency", ("kind:lamp", "zone:gymnasium"), t0, t1, setting=setting)]
    )
    assert resolver.desired("gymnasium", site.ts(NIGHT, "13:30")).scene == 3


def test_event_scene_for_one_zone_leaves_the_others_on_their_plan(resolver: Resolver, site: Site) -> None:
    t0, t1 = site.ts(NIGHT, "20:00"), site.ts(NIGHT, "23:00")
    resolver.set_overrides(
        [make_override(7, "event", ("zone:longcheng",), t0, t1, event="龙城音乐节", scene=5, brightness=70)]
    )
    at_21 = resolver.resolve(site.ts(NIGHT, "21:00")).states
    assert (at_21["longcheng"].scene, at_21["longcheng"].brightness, at_21["longcheng"].source) == (
        5,
        70,
        "event:7",
    )
    for zone in ("admin-centre", "natatorium", "gymnasium"):
        assert (at_21[zone].scene, at_21[zone].brightness) == (1, 100)  # weekday scene until 22:00
    at_2230 = resolver.resolve(site.ts(NIGHT, "22:30")).states
    assert at_2230["longcheng"].scene == 5
    assert at_2230["gymnasium"].scene == 0
    assert resolver.resolve(t1).states["longcheng"].scene == 0  # back on its plan, which is off by then


def test_manual_beats_event_scene_and_later_beats_earlier(resolver: Resolver, site: Site) -> None:
    t0, t1 = site.ts(NIGHT, "19:00"), site.ts(NIGHT, "23:00")
    resolver.set_overrides(
        [
            # created in this order: manual 1, event 2 (later, but lower precedence), manual 3 (latest)
            make_override(1, "manual", ("road:dezheng-lu",), t0, t1, created_at=t0, level=30),
            make_override(2, "event", ("dz-001",), t0, t1, created_at=t0 + 10, event="x", on=True, level=90),
            make_override(
                3, "manual", ("dz-001", "dz-002"), t0, site.ts(NIGHT, "21:00"), created_at=t0 + 20, level=55
            ),
        ]
    )
    at_20 = resolver.resolve(site.ts(NIGHT, "20:00")).states
    assert (at_20["dz-001"].level, at_20["dz-001"].source) == (55, "manual:3")
    assert (at_20["dz-003"].level, at_20["dz-003"].source) == (30, "manual:1")
    at_22 = resolver.resolve(site.ts(NIGHT, "22:00")).states  # manual 3 has ended
    assert (at_22["dz-001"].level, at_22["dz-001"].source) == (30, "manual:1")  # not the event's 90
    assert at_22["dz-002"].level == 30
    # the same two manual overrides created the other way round: the later one wins again
    resolver.set_overrides(
        [
            make_override(3, "manual", ("dz-001",), t0, t1, created_at=t0 + 20, level=30),
            make_override(1, "manual", ("dz-001",), t0, t1, created_at=t0, level=55),
        ]
    )
    assert resolver.desired("dz-001", site.ts(NIGHT, "20:00")).level == 30


def test_fields_apply_only_where_they_make_sense(resolver: Resolver, site: Site) -> None:
    t0, t1 = site.ts(NIGHT, "19:30"), site.ts(NIGHT, "21:30")
    resolver.set_overrides(
        [
            make_override(1, "manual", ("kind:group", "kind:facade", "kind:lamp"), t0, t1, level=20),
            make_override(
                2, "manual", ("zhg-02-u03", "admin-centre", "ha-002"), t0, t1, created_at=t0 + 1, on=False
            ),
            make_override(3, "manual", ("zhg-03-u03",), t0, t1, created_at=t0 + 2, on=True, k2=False),
        ]
    )
    s = resolver.resolve(site.ts(NIGHT, "20:00")).states
    assert (s["ha-001"].on, s["ha-001"].level) == (True, 20)
    assert (s["zhg-01-u01"].k1, s["zhg-01-u01"].k2, s["zhg-01-u01"].level) == (True, True, 20)
    assert (s["gymnasium"].scene, s["gymnasium"].brightness) == (1, 100)  # level does not apply to facades
    assert "plan:facades" in s["gymnasium"].source
    assert (s["zhg-02-u03"].k1, s["zhg-02-u03"].k2) == (False, False)  # `on: false` opens both circuits
    assert (s["admin-centre"].scene, s["admin-centre"].source) == (0, "manual:2")
    assert s["ha-002"].on is False
    assert (s["zhg-03-u03"].k1, s["zhg-03-u03"].k2) == (True, False)  # an explicit k2 beats `on`


def test_devices_in_maintenance_are_reported_and_still_resolved(resolver: Resolver, site: Site) -> None:
    t0, t1 = site.ts(NIGHT, "20:00"), site.ts(NIGHT, "22:00")
    resolver.set_maintenance([Maintenance(1, ("gateway:zhg-02", "ha-001"), t0, t1, "cable repair")])
    r = resolver.resolve(site.ts(NIGHT, "21:00"))
    assert "ha-001" in r.maintenance
    assert "zhg-02-u30" in r.maintenance
    assert "zhg-01-u01" not in r.maintenance
    assert len(r.maintenance) == 31
    assert r.states["ha-001"].level == 100
    assert r.states["zhg-02-u30"].k1 is True
    assert resolver.resolve(t1).maintenance == frozenset()

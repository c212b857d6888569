"""The incremental API: tick() reports exactly the devices whose desired output changed, and
next_change says when; checked against full resolutions, which are the pure function."""

from __future__ import annotations

import datetime as dt
import random
import time

from lightctl.config.loader import District
from lightctl.model import DesiredState, Maintenance, Override, OverrideKind
from lightctl.schedule.device_state import EMERGENCY_DEFAULT_TARGETS
from lightctl.schedule.resolve import Resolver
from tests.schedule.conftest import Site, make_override, output

NIGHT = "2026-11-25"  # a Wednesday


def diff(resolver: Resolver, t0: float, t1: float) -> set[str]:
    a, b = resolver.resolve(t0), resolver.resolve(t1)
    changed = {d for d in a.states if output(a.states[d]) != output(b.states[d])}
    return changed | (a.maintenance ^ b.maintenance)


def test_first_tick_reports_everything_then_nothing_until_a_step(
    district: District, resolver: Resolver, site: Site
) -> None:
    first = resolver.tick(site.ts(NIGHT, "13:00"))
    assert set(first.changed) == set(district.devices)
    assert resolver.tick(site.ts(NIGHT, "13:00")).changed == ()
    assert resolver.tick(site.ts(NIGHT, "16:00")).changed == ()
    sunset = site.night_sun(NIGHT)["sunset"]
    assert first.next_change is not None
    assert abs(first.next_change - sunset) < 1


def test_a_night_of_ticks_matches_full_resolutions(
    district: District, resolver: Resolver, site: Site
) -> None:
    sun = site.night_sun(NIGHT)
    day2 = (dt.date.fromisoformat(NIGHT) + dt.timedelta(days=1)).isoformat()
    expected = sorted(
        [
            sun["sunset"],
            sun["sunset"] + 300,
            sun["sunrise"] - 300,
            sun["sunrise"],
            site.ts(NIGHT, "19:00"),
            site.ts(NIGHT, "22:00"),
            site.ts(NIGHT, "22:30"),
            site.ts(NIGHT, "23:00"),
            site.ts(NIGHT, "23:30"),
            site.ts(day2, "00:30"),
            site.ts(day2, "01:00"),
            site.ts(day2, "05:00"),
        ]
    )
    now = site.ts(NIGHT, "12:00")
    resolver.tick(now)
    seen: list[float] = []
    while True:
        nxt = resolver.next_change(now)
        assert nxt is not None
        if nxt >= site.ts(day2, "12:00"):
            break
        quiet = resolver.tick(nxt - 1)
        assert quiet.changed == ()
        assert diff(resolver, now, nxt - 1) == set()
        result = resolver.tick(nxt)
        assert set(result.changed) == diff(resolver, now, nxt) != set()
        full = resolver.resolve(nxt).states
        assert all(resolver.state(d) == full[d] for d in ("ha-001", "dz-001", "zhg-01-u01", "gymnasium"))
        seen.append(nxt)
        now = nxt
    assert [round(t) for t in seen] == [round(t) for t in expected]


def test_overrides_and_maintenance_mid_night(district: District, resolver: Resolver, site: Site) -> None:
    t = site.ts(NIGHT, "20:00")
    resolver.tick(t)
    ov = make_override(5, "manual", ("road:zishan-lu",), t + 60, site.ts(NIGHT, "21:00"), on=False)
    resolver.set_overrides([ov])
    assert resolver.tick(t + 30).changed == ()  # not started yet
    started = resolver.tick(t + 60)
    assert set(started.changed) == set(district.roads["zishan-lu"].lamps)
    assert resolver.state("zs-001").source == "manual:5"
    resolver.set_maintenance([Maintenance(1, ("zs-001", "ha-001"), t + 120, t + 180, "lamp test")])
    entering = resolver.tick(t + 120)
    assert set(entering.changed) == {"zs-001", "ha-001"}
    assert entering.maintenance == {"zs-001", "ha-001"}
    assert resolver.in_maintenance("ha-001")
    assert set(resolver.tick(t + 180).changed) == {"zs-001", "ha-001"}
    assert not resolver.in_maintenance("ha-001")
    ended = resolver.tick(site.ts(NIGHT, "21:00"))
    assert set(ended.changed) == set(district.roads["zishan-lu"].lamps)
    assert resolver.state("zs-001").level == 100


def test_overlapping_overrides_change_only_what_differs(resolver: Resolver, site: Site) -> None:
    t = site.ts(NIGHT, "20:00")
    resolver.set_overrides(
        [
            make_override(1, "manual", ("ha-001", "ha-002"), t, t + 3600, level=50),
            make_override(2, "manual", ("ha-002", "ha-003"), t, t + 1800, created_at=t + 1, level=30),
        ]
    )
    resolver.tick(t)
    assert (resolver.state("ha-002").level, resolver.state("ha-003").level) == (30, 30)
    after = resolver.tick(t + 1800)  # override 2 ends: ha-002 falls back to override 1, ha-003 to the plan
    assert set(after.changed) == {"ha-002", "ha-003"}
    assert (resolver.state("ha-002").level, resolver.state("ha-003").level) == (50, 100)


def test_next_change(resolver: Resolver, site: Site) -> None:
    holiday_sunset = site.night_sun("2026-10-01")["sunset"]
    assert abs(resolver.next_change(site.ts("2026-10-01", "13:00")) - holiday_sunset) < 1  # type: ignore[operator]
    assert resolver.next_change(site.ts("2026-10-01", "23:10")) == site.ts("2026-10-02", "00:00")
    assert resolver.next_change(site.ts(NIGHT, "22:35")) == site.ts(NIGHT, "23:00")
    # steps masked by an emergency are not changes; the facades' 22:00 and the emergency's end are
    t0, until = site.ts(NIGHT, "20:00"), site.ts(NIGHT, "23:45")
    resolver.set_overrides(
        [
            make_override(
                1,
                "emergency",
                EMERGENCY_DEFAULT_TARGETS["all_on"],
                t0,
                until,
                on=True,
                level=100,
                k1=True,
                k2=True,
            )
        ]
    )
    assert resolver.next_change(site.ts(NIGHT, "20:30")) == site.ts(NIGHT, "22:00")
    assert resolver.next_change(site.ts(NIGHT, "22:00")) == until


def test_a_quiet_tick_is_cheap(resolver: Resolver, site: Site) -> None:
    resolver.tick(site.ts(NIGHT, "13:00"))
    started = time.perf_counter()
    for second in range(1000):
        assert resolver.tick(site.ts(NIGHT, "13:00") + second).changed == ()
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # 1000 quiet ticks, a wide margin: the target is 20 ms for one


def test_random_overrides_ticks_match_full_resolutions(
    district: District, resolver: Resolver, site: Site
) -> None:
    """Random overrides and maintenance over four nights: every tick's report and state equal what
    comparing full resolutions gives."""
    rnd = random.Random(7)
    targets = [
        "road:hengan-lu",
        "kind:lamp",
        "kind:group",
        "zone:longcheng",
        "kind:facade",
        "ha-001",
        "gateway:zhg-03",
    ]
    settings = [
        {"on": True},
        {"on": False},
        {"level": 35},
        {"scene": 6},
        {"k2": False},
        {"on": True, "level": 100, "k1": True, "k2": True, "scene": 3},
    ]
    overrides: list[Override] = []
    now = site.ts("2026-09-30", "12:00")
    previous = resolver.resolve(now)
    resolver.tick(now)
    for _ in range(250):
        now += rnd.choice([60, 600, 1800, 3600, 7200])
        if rnd.random() < 0.15:
            kind: OverrideKind = rnd.choice(["manual", "event", "emergency"])
            start = now + rnd.choice([0, 300])
            state = DesiredState(**rnd.choice(settings))  # type: ignore[arg-type]
            ov = Override(
                len(overrides) + 1,
                kind,
                tuple(rnd.sample(targets, 2)),
                state,
                start,
                start + rnd.choice([600, 3600, 20000]),
                "test",
                created_at=now,
            )
            overrides.append(ov)
            resolver.set_overrides(overrides)
        if rnd.random() < 0.05:
            resolver.set_maintenance([Maintenance(1, (rnd.choice(targets),), now, now + 3000, "test")])
        result = resolver.tick(now)
        full = resolver.resolve(now)
        want = {d for d in full.states if not previous.states[d].same_output(full.states[d])}
        assert set(result.changed) == want | (previous.maintenance ^ full.maintenance)
        assert all(resolver.state(d) == full.states[d] for d in district.devices)
        assert (result.maintenance, result.next_change) == (full.maintenance, full.next_change)
        previous = full
    assert len(overrides) > 20

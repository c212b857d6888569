"""Scheduler scale (design.md section 9): a full night's plan for 100,000 devices in <= 2 s and a
tick with no changes in <= 20 ms. Printed as one JSON line; asserted only with wide margins, since
the machine is shared and noisy."""

from __future__ import annotations

import datetime as dt
import json
import time

from lightctl.config.loader import District
from lightctl.config.schedules import Plan
from lightctl.model import Device, Gateway, Road, Zone
from lightctl.schedule.calendar import DayCalendar
from lightctl.schedule.plans import PlanBook, TargetIndex
from lightctl.schedule.preview import preview_night
from lightctl.schedule.resolve import Resolver
from lightctl.schedule.sun import SunClock
from tests.schedule.conftest import Site, make_override

ROADS, LAMPS_PER_ROAD = 192, 500  # 96,000 lamps
GATEWAYS, UNITS = 130, 30  # 3,900 groups
ZONES = 100  # 100,000 devices in all


def synthetic(district: District) -> tuple[Resolver, dict[str, Device]]:
    devices: dict[str, Device] = {}
    roads: dict[str, Road] = {}
    gateways: dict[str, Gateway] = {}
    zones: dict[str, Zone] = {}
    for r in range(ROADS):
        ids = tuple(f"r{r:03d}-{n:03d}" for n in range(LAMPS_PER_ROAD))
        for i in ids:
            devices[i] = Device(
                i, "lamp", i, "slc-m1", 28.68, 115.89, 120.0 + r % 3 * 30, True, road=f"r{r:03d}"
            )
        roads[f"r{r:03d}"] = Road(f"r{r:03d}", f"road {r}", "arterial", ((28.68, 115.89),), ids)
    for g in range(GATEWAYS):
        ids = tuple(f"g{g:03d}-u{u:02d}" for u in range(1, UNITS + 1))
        for i in ids:
            devices[i] = Device(
                i, "group", i, "zhd-g2", 28.68, 115.89, 550.0, True, gateway=f"g{g:03d}", k1_w=150, k2_w=400
            )
        gateways[f"g{g:03d}"] = Gateway(f"g{g:03d}", f"gw {g}", "127.0.0.1", 15000 + g, 28.68, 115.89, ids)
    for z in range(ZONES):
        i = f"zone-{z:03d}"
        devices[i] = Device(i, "facade", i, "fcd-s1", 28.68, 115.89, 20000.0, True, zone=i)
        zones[i] = Zone(i, i, "landscape", (i,))
    sample = {p.id: p for p in district.plans}
    half = ROADS // 2
    plans = [
        Plan(
            id="arterial",
            targets=[f"road:r{r:03d}" for r in range(half)],
            rules=sample["arterial-roads"].rules,
        ),
        Plan(
            id="secondary",
            targets=[f"road:r{r:03d}" for r in range(half, ROADS)],
            rules=sample["secondary-roads"].rules,
        ),
        sample["zhonghua"],
        sample["facades"],
    ]
    targets = TargetIndex(devices, roads, gateways, None, zones)
    book = PlanBook(plans, district.programs, targets)
    site = district.settings.site
    resolver = Resolver(
        devices, book, targets, DayCalendar(district.events), SunClock(site.lat, site.lon, site.timezone)
    )
    return resolver, devices


def test_100k_devices(district: District, site: Site) -> None:
    t0 = time.perf_counter()
    resolver, devices = synthetic(district)
    t_build = time.perf_counter() - t0
    assert len(devices) == 100_000

    night = "2026-10-01"
    now = site.ts(night, "12:00")
    t0 = time.perf_counter()
    first = resolver.tick(now)
    changes, steps = len(first.changed), 0
    end = site.ts("2026-10-02", "12:00")
    while True:  # every change of the night, each reporting the devices it concerns
        nxt = resolver.next_change(now)
        assert nxt is not None
        if nxt >= end:
            break
        result = resolver.tick(nxt)
        changes += len(result.changed)
        steps += 1
        now = nxt
    t_night = time.perf_counter() - t0

    t0 = time.perf_counter()
    snapshot = resolver.resolve(site.ts(night, "23:15"))
    t_resolve = time.perf_counter() - t0
    assert len(snapshot.states) == 100_000

    resolver.tick(site.ts("2026-10-02", "13:00"))
    t0 = time.perf_counter()
    for s in range(100):
        assert resolver.tick(site.ts("2026-10-02", "13:00") + s).changed == ()
    t_quiet = (time.perf_counter() - t0) / 100

    # an emergency over every lamp and group, and its end
    start = site.ts("2026-10-02", "14:00")
    resolver.set_overrides(
        [
            make_override(
                1,
                "emergency",
                ("kind:lamp", "kind:group"),
                start,
                start + 600,
                on=True,
                level=100,
                k1=True,
                k2=True,
            )
        ]
    )
    t0 = time.perf_counter()
    on = resolver.tick(start)
    off = resolver.tick(start + 600)
    t_emergency = (time.perf_counter() - t0) / 2
    assert len(on.changed) == len(off.changed) == 100_000 - ZONES

    t0 = time.perf_counter()
    preview = preview_night(resolver, dt.date.fromisoformat(night), None, district.profiles)
    t_preview = time.perf_counter() - t0
    assert preview.device_count == 100_000

    print(
        json.dumps(
            {
                "bench": "scheduler_100k",
                "devices": len(devices),
                "build_s": round(t_build, 3),
                "night_ticks_s": round(t_night, 3),
                "night_steps": steps,
                "device_changes": changes,
                "resolve_all_s": round(t_resolve, 3),
                "quiet_tick_ms": round(t_quiet * 1000, 4),
                "emergency_tick_s": round(t_emergency, 3),
                "preview_s": round(t_preview, 3),
            }
        )
    )
    # wide margins (10x the targets): a failure here means an algorithmic regression, not noise
    assert t_night < 20
    assert t_quiet < 0.2

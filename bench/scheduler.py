"""Scheduler: a full night's plan for 100,000+ devices, and a tick with nothing to change.

The district: 50 roads of 2,000 SLC-M1 lamps (two programs) and the 600 ZHD-G2 groups, with a few
operators' overrides in force (one road on manual, 20 overrides of 50 lamps each, an event scene on
the groups), so devices fall into more than the plans' cohorts.

* night_plan: from the loaded district, build the Resolver (target index, plan book, calendar, sun),
  take the night's preview of every device (preview_night: every group's steps and energy) and resolve
  every device's desired state at the night's start and at each change through to its end (every
  step of the night). Target <= 2 s.
* tick_no_change: Resolver.tick at a moment with nothing due, after a tick a second earlier (what
  the reconciler does every second). Target <= 20 ms. The median over 200 ticks is one run.

Prints two JSON lines (night_plan, tick_no_change), each the median of --runs runs (default 3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import DistrictSpec, emit, load_district, log, median, road_id

NAME = "scheduler"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--roads", type=int, default=50)
    p.add_argument("--lamps-per-road", type=int, default=2000)
    p.add_argument("--date", default="2026-03-12", help="the night (a workday)")
    args = p.parse_args(argv)

    from lightctl.model import DesiredState, Override
    from lightctl.schedule.night import night_window
    from lightctl.schedule.preview import preview_night
    from lightctl.schedule.resolve import Resolver

    spec = DistrictSpec(roads=args.roads, lamps_per_road=args.lamps_per_road, groups=True)
    with tempfile.TemporaryDirectory(prefix="lightctl-bench-sched-") as tmp:
        t0 = time.perf_counter()
        district = load_district(spec, Path(tmp))
        log(NAME, f"loaded {len(district.devices):,} devices in {time.perf_counter() - t0:.1f} s")
    night = dt.date.fromisoformat(args.date)
    tz = district.settings.site.timezone
    from zoneinfo import ZoneInfo

    start, end = night_window(night, ZoneInfo(tz))
    lamps = [d for d, dev in district.devices.items() if dev.kind == "lamp"]
    rnd = random.Random(7)
    overrides = [
        Override(1, "manual", (f"road:{road_id(3)}",), DesiredState(on=True, level=30), start, end, "works"),
        Override(2, "event", ("kind:group",), DesiredState(k1=True, k2=True), start + 8 * 3600, end, "fest"),
    ]
    for i in range(4):
        at = start + rnd.uniform(7, 15) * 3600
        targets = tuple(rnd.sample(lamps, 50))
        overrides.append(
            Override(10 + i, "manual", targets, DesiredState(on=True, level=60), at, at + 3600, "x")
        )

    plan_s: list[float] = []
    tick_ms: list[float] = []
    parts: list[tuple[float, float, float]] = []
    steps_seen = devices_resolved = 0
    for run in range(args.runs):
        t0 = time.perf_counter()
        resolver = Resolver.for_district(district)
        resolver.set_overrides(overrides)
        t1 = time.perf_counter()
        preview = preview_night(resolver, night, None, district.profiles)
        t2 = time.perf_counter()
        t = start
        steps = 0
        resolved = 0
        while t is not None and t < end and steps < 500:
            res = resolver.resolve(t)
            resolved += len(res.states)
            steps += 1
            t = res.next_change
        elapsed = time.perf_counter() - t0
        plan_s.append(elapsed)
        parts.append((t1 - t0, t2 - t1, elapsed - (t2 - t0)))
        steps_seen, devices_resolved = steps, resolved
        log(
            NAME,
            f"run {run + 1}: night plan {elapsed:.2f} s ({preview.device_count} devices in"
            f" {len(preview.groups)} preview groups, {steps} resolutions of every device):"
            f" build {parts[-1][0]:.2f} s, preview {parts[-1][1]:.2f} s, resolutions {parts[-1][2]:.2f} s",
        )

        # ticks with nothing due: 21:00 local is between steps for every program here
        ticker = Resolver.for_district(district)
        ticker.set_overrides(overrides)
        base = start + 9 * 3600 + 60  # 21:01
        first = ticker.tick(base)
        assert first.changed, "the first tick reports every device"
        samples = []
        for k in range(1, 201):
            a = time.perf_counter()
            result = ticker.tick(base + k)
            samples.append((time.perf_counter() - a) * 1000)
            if result.changed:
                raise SystemExit(f"tick at +{k} s changed {len(result.changed)} devices: pick another time")
        tick_ms.append(median(samples))
        log(
            NAME, f"run {run + 1}: tick with no change median {tick_ms[-1]:.4f} ms, max {max(samples):.3f} ms"
        )

    common = {"devices": len(district.devices), "night": args.date}
    emit(
        "scheduler_night_plan",
        plan_s,
        "s",
        2.0,
        "lower",
        **common,
        resolutions=steps_seen,
        device_states=devices_resolved,
        overrides=len(overrides),
        build_s=round(median([x[0] for x in parts]), 3),
        preview_s=round(median([x[1] for x in parts]), 3),
        resolutions_s=round(median([x[2] for x in parts]), 3),
    )
    emit("scheduler_tick_no_change", tick_ms, "ms", 20.0, "lower", **common, ticks_per_run=200)
    return 0


if __name__ == "__main__":
    sys.exit(main())

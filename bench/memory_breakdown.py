"""Where lightctl's memory goes with 100,000 lamps: RSS after each start-up stage of the Runtime
(loaded district, Runtime(), start()), then after one reading of every lamp has gone through the
MQTT driver, live state, the fault engine, the telemetry writer and northbound (--readings, fed
in-process before the reconciler's first pass, which is stopped so that its start-up commands do
not hide the steady footprint), then every few seconds while the loop runs (--seconds; with
--commands the reconciler's start-up commands run too, and no lamp answers, so every command
fails after its timeout). tracemalloc's largest allocation sites are shown per stage. Not a
figure; the tool behind the explanation in bench/RESULTS.md. With --no-trace the RSS figures are
without tracemalloc's own overhead (about a third more).

    .venv/bin/python bench/memory_breakdown.py --readings 1 --seconds 0
    .venv/bin/python bench/memory_breakdown.py --commands --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
from _common import DistrictSpec, Mosquitto, free_port, load_district
from _common import rss_mb as _rss_mb
from _inproc import quiet_logging
from _lamps import lamp_set, report


def feed_readings(runtime: Any, district: Any, rnd: random.Random, seq: int) -> int:
    """One report of every lamp through the MQTT driver's ingest, as if from the broker."""
    mqtt = runtime.mqtt
    lamps = lamp_set(district)
    now = int(time.time())
    n = 0
    for dev, w in lamps.direct.items():
        mqtt.ingest(f"slc/{dev}/up/telemetry", orjson.dumps(report(rnd, seq, True, 80, w, now)))
        n += 1
    for conc, members in lamps.behind.items():
        items = list(members.items())
        for k in range(0, len(items), 200):
            entries = [{"dev": dev, **report(rnd, seq, True, 80, w, now)} for dev, w in items[k : k + 200]]
            mqtt.ingest(f"slc/gw/{conc}/up/telemetry", orjson.dumps({"ts": now, "lamps": entries}))
            n += len(entries)
    mqtt._flush()
    runtime.northbound.flush()
    return n


async def drained(runtime: Any, within_s: float = 120.0) -> None:
    """Until the telemetry writer has stored every reading handed to it."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within_s:
        if runtime.writer.status().pending == 0:
            return
        await asyncio.sleep(0.2)


def top(snapshot: tracemalloc.Snapshot, n: int, before: tracemalloc.Snapshot | None = None) -> None:
    if before is None:
        for st in snapshot.statistics("lineno")[:n]:
            print(f"  {st.size / 1e6:7.1f} MB  {st.count:>8,}  {st.traceback[0]}")
    else:
        for diff in snapshot.compare_to(before, "lineno")[:n]:
            print(f"  {diff.size_diff / 1e6:+7.1f} MB  {diff.count_diff:>+8,}  {diff.traceback[0]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=15.0, help="run the loop this long after the readings")
    p.add_argument("--readings", type=int, default=0, help="rounds of one reading of every lamp")
    p.add_argument("--commands", action="store_true", help="let the reconciler send its start-up commands")
    p.add_argument("--no-trace", action="store_true", help="RSS only, without tracemalloc")
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) before each RSS reading")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--roads", type=int, default=50)
    p.add_argument("--lamps-per-road", type=int, default=2000)
    args = p.parse_args(argv)
    quiet_logging()
    pid = os.getpid()
    if args.trim:  # what glibc holds freed but not returned to the system is then left out
        trim = ctypes.CDLL("libc.so.6").malloc_trim

        def rss_mb(pid: int) -> float:
            trim(0)
            return _rss_mb(pid)
    else:
        rss_mb = _rss_mb
    trace = not args.no_trace
    print(f"interpreter: {rss_mb(pid):.0f} MB")
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lightctl-bench-membd-") as tmp:
        spec = DistrictSpec(
            roads=args.roads, lamps_per_road=args.lamps_per_road, spacing_m=10,
            concentrator_roads=max(1, args.roads // 5), mqtt_port=broker.port, api_port=free_port(),
        )  # fmt: skip
        from lightctl.clock import SystemClock
        from lightctl.runtime import Runtime

        print(f"imports: {rss_mb(pid):.0f} MB")
        if trace:
            tracemalloc.start(4)
        district = load_district(spec, Path(tmp))
        gc.collect()
        print(f"district loaded ({len(district.devices):,} devices): {rss_mb(pid):.0f} MB")
        snaps: list[tuple[str, tracemalloc.Snapshot]] = []
        if trace:
            snaps.append(("district", tracemalloc.take_snapshot()))
        runtime = Runtime(district, SystemClock(), "127.0.0.1", 0)
        print(f"Runtime() (live state, resolver): {rss_mb(pid):.0f} MB")

        async def run() -> None:
            await runtime.start()
            print(f"start() (stores, drivers, fault engine, reconciler): {rss_mb(pid):.0f} MB")
            if trace:
                snaps.append(("start()", tracemalloc.take_snapshot()))
            if not args.commands:  # not started yet: its task has not run
                for task in runtime._tasks:
                    if task.get_name() == "reconciler":
                        task.cancel()
            if not await runtime.mqtt.wait_connected(30):
                raise RuntimeError("lightctl did not connect to the broker")
            rnd = random.Random(3)
            for k in range(args.readings):
                t0 = time.monotonic()
                n = feed_readings(runtime, district, rnd, k + 1)
                fed_s = time.monotonic() - t0
                await drained(runtime)
                gc.collect()
                print(f"readings round {k + 1} ({n:,} in {fed_s:.1f} s, stored): {rss_mb(pid):.0f} MB")
                if trace:
                    snaps.append((f"readings round {k + 1}", tracemalloc.take_snapshot()))
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                await asyncio.sleep(min(5.0, args.seconds))
                print(
                    f"  +{time.monotonic() - t0:.0f} s: {rss_mb(pid):.0f} MB, tasks {len(runtime._tasks):,}"
                )
            if trace and args.seconds > 0:
                snaps.append((f"{args.seconds:.0f} s later", tracemalloc.take_snapshot()))
            for i, (label, snap) in enumerate(snaps):
                total = sum(st.size for st in snap.statistics("filename")) / 1e6
                if i == 0:
                    print(f"largest allocation sites, {label} ({total:.0f} MB traced):")
                    top(snap, args.top)
                else:
                    print(f"largest growth, {snaps[i - 1][0]} -> {label} ({total:.0f} MB traced):")
                    top(snap, args.top, snaps[i - 1][1])
            await runtime.stop()

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

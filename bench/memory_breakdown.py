"""Where lightctl's memory goes with 100,000 lamps: RSS after each start-up stage of the Runtime
(loaded district, Runtime(), start()) and then every few seconds while the reconciler's start-up
commands run (no lamp answers here, so every command fails fast), with tracemalloc's largest
allocation sites at start() and the largest growth after it. Not a figure; the tool behind the
explanation in bench/RESULTS.md.

    .venv/bin/python bench/memory_breakdown.py --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import DistrictSpec, Mosquitto, free_port, load_district, rss_mb
from _inproc import quiet_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)
    quiet_logging()
    pid = os.getpid()
    print(f"interpreter: {rss_mb(pid):.0f} MB")
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lightctl-bench-membd-") as tmp:
        spec = DistrictSpec(
            roads=50, lamps_per_road=2000, spacing_m=10, concentrator_roads=10, mqtt_port=broker.port,
            api_port=free_port(),
        )  # fmt: skip
        district = load_district(spec, Path(tmp))
        print(f"district loaded ({len(district.devices):,} devices): {rss_mb(pid):.0f} MB")
        from lightctl.clock import SystemClock
        from lightctl.runtime import Runtime

        tracemalloc.start(4)
        runtime = Runtime(district, SystemClock(), "127.0.0.1", 0)
        print(f"Runtime() (live state, resolver): {rss_mb(pid):.0f} MB")

        async def run() -> None:
            await runtime.start()
            print(f"start() (stores, drivers, fault engine, reconciler): {rss_mb(pid):.0f} MB")
            first = tracemalloc.take_snapshot()
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                await asyncio.sleep(min(5.0, args.seconds))
                print(
                    f"  +{time.monotonic() - t0:.0f} s: {rss_mb(pid):.0f} MB, tasks held {len(runtime._tasks):,}"
                )
            later = tracemalloc.take_snapshot()
            print("largest allocation sites at start():")
            for st in first.statistics("lineno")[: args.top]:
                print(f"  {st.size / 1e6:7.1f} MB  {st.count:>8,}  {st.traceback[0]}")
            print(f"largest growth in the {args.seconds:.0f} s after start():")
            for st in later.compare_to(first, "lineno")[: args.top]:
                print(f"  {st.size_diff / 1e6:+7.1f} MB  {st.count_diff:>+8,}  {st.traceback[0]}")
            await runtime.stop()

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

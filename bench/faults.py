"""Detection quality on injected faults (design.md section 9, issue 7): labelled simulator nights.

Every fault type of design.md section 4 that a simulator can produce is injected at random clock
times, for random durations, into noisy normal operation (the simulators' noise: voltage +-3 V,
power +-5 %, pf +-0.01, temperature +-1 deg C) over simulated nights of the district's real plans:
dimming steps, half-night switching, facade scenes, on a holiday, a workday and a weekend (and any
`--nights`, e.g. the 2026-11-08 event day). Each night runs the real stack (lightctl.runtime.Runtime
on a reduced copy of the district: MQTT and Modbus drivers, resolver feed, reconciler, fault
engine, alarm store) against SlcFleet on a private Mosquitto and ModbusSim on loopback ports, on a
ScaledClock, in a process of its own. Alarms are scored against the simulators' fault logs
(bench/faults_score.py); alarm type -> simulator fault and where / when faults go: faults_plan.py.

Prints ONE JSON line on stdout: per alarm type injected / detected / late / false positives,
precision, recall and detection delay (p50 / p95 / max, clock seconds from the injection's start)
with its deadline (the rule's own window plus one report interval); the same per variant; every
miss and false positive with the alarms, reading gaps and harness stalls around it; per night the
harness's health (event-loop lag, stalls, start-up alarms, which are not scored); the types not
evaluated and why. Progress and a table go to stderr.

    .venv/bin/python bench/faults.py            # 3 nights at once, x120, 126 faults each: ~8.5 min
    .venv/bin/python bench/faults.py --quick    # 2 nights to 00:30, x250, 36 faults each: ~2 min
    .venv/bin/python bench/faults.py --nights 2025-10-01,2026-11-08 --over-steps

Timing on a fast clock. Every real-time lag of the harness is `speed` times longer in clock time,
so the drivers' real-time constants are given their speed-1 clock length (Modbus request timeout
12 clock s instead of a 0.25 s real floor, reconnect back-off scaled, MQTT ack timeout 0.25 s
real); and on a busy machine a stalled event loop (one second real is two clock minutes at x120)
makes reports late and polls fail. The JSON shows the stalls; a miss or false positive next to a
stall of tens of clock seconds is the harness's, not the detector's. Run it on a quiet machine.

energy_anomaly needs earlier nights: before each night starts, bench/faults_history.py runs the
simulators' own noise-free models through the 35 nights before it along the district's plans and
writes their energy counters to the telemetry database, and the live simulators' counters continue
from there. It is injected as an illegal tap (+40 %) on a 中华灯 group without LED drivers for the
whole run, only where the night's program has a baseline (not on National Day, the holiday
program's first night), and scored at the night's energy close (sunrise + 30 min, on the hour, +2
min). An energy_anomaly on a device that had other injected faults that night is theirs (listed,
not scored). command_failed is a lamp that keeps reporting but ignores commands (`deaf`) across a
dimming step; its window runs from the step through the reconciler's attempts.

Latest run (2026-12-08, default settings with --jobs 2, seed 7, a quiet 2-core machine, 968 s; its
JSON line is bench/faults_latest.json): 375 injections over the three nights, every one of the 19
types precision 1.0 and recall 1.0, none late, no false positive, no miss; the harness's event loop
lagged at most 96 ms.

Earlier runs before the four types were added (2 cores, load ~2): seed 7 and seed 11, 324 and 432
injections, every evaluated type precision and recall 1.0.

With all 19 types (default settings, 3 nights at once, ~500 s each, 2 cores shared with other
sessions' tests and benchmarks, load 2-6): seed 7 twice and seed 11 once. The four new types:
day_burner 17/18, 18/18, 17/18 (one late at +761 s of 660 next to 2 min of missed polls under
load; one in the first run on a planner bug since fixed), dim_mismatch 18/18 each, command_failed
9/9 each (one false positive in one run: a breaker tripped at the sunset step made the command
really fail), energy_anomaly 6/6 each (the energy watch judged 52-204 clock s after its due time,
0.4-1.7 s real at x120). Other types as before, except under load: a few late Modbus detections next
to reading gaps of 1-4 min, and in the seed-11 run 20 comm_loss false positives at one instant
when every Modbus simulator refused connections during a 70 clock-s stall of the harness.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.faults_night import NightResult, NightSpec, run_night  # noqa: E402
from bench.faults_plan import NOT_EVALUATED  # noqa: E402
from bench.faults_score import score  # noqa: E402

TARGET = 0.98
# A statutory holiday (National Day: facade scene 3 to midnight, 中华灯 K2 until 24:00), a workday
# (scene 1 19:00-22:00, K2 off at 23:30) and a weekend (scene 2 to 23:00); `--nights` may add a local
# event day such as 2026-11-08 (the marathon: scene 3).
NIGHTS = ("2025-10-01", "2025-10-15", "2025-10-18")
QUICK_NIGHTS = ("2025-10-01", "2025-10-15")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="2 short nights at x250, one fault per variant")
    p.add_argument("--nights", help=f"comma-separated night dates (default {','.join(NIGHTS)})")
    p.add_argument("--speed", type=float, help="clock speed (default 120, quick 250)")
    p.add_argument("--jobs", type=int, default=3, help="nights run at the same time (default 3)")
    p.add_argument("--per-variant", type=int, help="injections of each variant per night (default 3)")
    p.add_argument(
        "--over-steps",
        action="store_true",
        help="let faults that stop a device following commands span its schedule steps: shows the "
        "command_failed alarms that follow (scored as false positives of that type)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--config", default=str(ROOT / "config.yaml"))
    return p.parse_args(argv)


def _specs(a: argparse.Namespace) -> list[NightSpec]:
    nights = a.nights.split(",") if a.nights else list(QUICK_NIGHTS if a.quick else NIGHTS)
    speed = a.speed or (250.0 if a.quick else 120.0)
    per_variant = a.per_variant or (1 if a.quick else 3)
    return [
        NightSpec(
            config=a.config,
            night=night.strip(),
            seed=a.seed * 1000 + i,
            speed=speed,
            per_variant=per_variant,
            before_sunset_s=(1.0 if a.quick else 1.5) * 3600,
            # to the morning's energy close (sunrise + 30 min, on the hour) and past its deadline
            after_sunrise_s=None if a.quick else 2.0 * 3600,
            end_local="00:30" if a.quick else None,
            over_steps=a.over_steps,
            wire_timeout_s=max(0.05, 12.0 / speed),
        )
        for i, night in enumerate(nights)
    ]


def _local(ts: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    specs = _specs(a)
    began = time.monotonic()
    jobs = max(1, min(a.jobs, len(specs)))
    print(f"faults: {len(specs)} nights, {jobs} at a time", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        results: list[NightResult] = list(pool.map(run_night, specs))
    truths = [t for r in results for t in r.truths]
    alarms = [x for r in results for x in r.alarms]
    outcome = score(
        truths, alarms, {r.night: r.stats.stalls for r in results}, {r.night: r.gaps for r in results}
    )
    tz = ZoneInfo("Asia/Shanghai")
    for item in (*outcome.misses, *outcome.false_positives):
        for key in ("start", "first_seen"):
            if isinstance(item.get(key), float):
                item[key] = _local(item[key], tz)  # type: ignore[arg-type]
    types = {k: s.summary() for k, s in sorted(outcome.types.items())}
    # Every type that was injected or alarmed must meet both targets (a type with alarms and no
    # injections has precision 0).
    passed = all((s.precision or 0) >= TARGET for s in outcome.types.values() if s.alarms) and all(
        (s.recall or 0) >= TARGET for s in outcome.types.values() if s.injected
    )
    line = {
        "bench": "faults",
        "speed": specs[0].speed,
        "nights": [
            {
                "night": r.night,
                "day_type": r.day_type,
                "injections": len(r.truths),
                "alarms": len(r.alarms),
                "unplaced": r.unplaced,
                "unlogged": r.unlogged,
                "real_s": r.stats.real_s,
                "cpu": r.stats.cpu_fraction,
                "readings": r.stats.readings,
                "commands_ok": r.stats.commands_ok,
                "commands_failed": r.stats.commands_failed,
                "max_gateway_cycle_s": r.stats.max_gateway_cycle_s,
                "mqtt_drops": r.stats.mqtt_drops,
                "injection_lag_max_s": r.stats.injection_lag_max_s,
                "loop_lag_p99_ms": r.stats.loop_lag_p99_ms,
                "loop_lag_max_ms": r.stats.loop_lag_max_ms,
                "stalls_over_40ms": len(r.stats.stalls),
                "worst_stalls": [
                    [_local(t, tz), lost] for t, lost in sorted(r.stats.stalls, key=lambda x: -x[1])[:5]
                ],
                "startup_alarms": r.stats.startup_alarms,
                "energy_watch": r.stats.energy,
            }
            for r in results
        ],
        "types": types,
        "variants": {k: s.summary() for k, s in sorted(outcome.variants.items())},
        "not_evaluated": NOT_EVALUATED,
        "misses": outcome.misses,
        "false_positives": outcome.false_positives,
        "energy_anomaly_of_other_faults": outcome.explained,
        "target": {"precision": TARGET, "recall": TARGET},
        "pass": passed,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    _table(types)
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0


def _table(types: dict[str, dict[str, object]]) -> None:
    print(f"{'type':24} {'inj':>4} {'det':>4} {'late':>4} {'fp':>4} {'prec':>6} {'recall':>6} "
          f"{'p50 s':>6} {'p95 s':>6} {'deadline s':>10}", file=sys.stderr)  # fmt: skip
    for name, s in types.items():
        print(
            f"{name:24} {s['injected']:>4} {s['detected']:>4} {s['late']:>4} {s['false_positives']:>4} "
            f"{s['precision']!s:>6} {s['recall']!s:>6} {s['delay_p50_s']!s:>6} {s['delay_p95_s']!s:>6} "
            f"{','.join(f'{d:g}' for d in s['deadline_s']):>10}",  # type: ignore[attr-defined]
            file=sys.stderr,
        )


if __name__ == "__main__":
    raise SystemExit(main())

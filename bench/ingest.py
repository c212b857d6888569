"""Telemetry ingest end to end: publisher -> private Mosquitto -> lightctl (MQTT driver, live state,
fault engine, SQLite telemetry writer, and the rest of the Runtime) with nothing dropped.

Three processes on loopback besides the broker: a paced paho publisher (bench/_publisher.py), the
lightctl Runtime (bench/_inproc.py; its reconciler confirms commands without traffic, the lamps here
only report), and, for the comparison, a bare gmqtt subscriber that only parses the JSON.

Each run steps the rate up (x1.3) until a trial is not lossless, then tries once between the last
pass and the first failure. A trial publishes `--seconds` worth of messages at the rate; it passes
when every message was received, none dropped (driver drops, writer queue), every reading judged by
the fault engine and written to SQLite within 3 s of the last message (counted on running totals
since the start), and the subscriber kept up: its last message arrived within 0.25 s of the
publisher's last (a broker queue can hide a slow subscriber for a while; 0.25 s over 4 s means at
least ~94 % of the rate). The publisher's achieved rate caps what a trial can show (reported).

Figures (median of --runs runs, default 3):
* ingest_single_reports: highest lossless single-lamp reports/s into lightctl (target >= 30,000);
* ingest_ratio_to_bare: that / the bare subscriber's highest lossless rate in the same run (>= 0.6);
* ingest_batch_readings: highest lossless lamp readings/s in concentrator batches of 200 (>= 100,000).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DistrictSpec, Mosquitto, emit, load_district, log
from _inproc import (
    COMMANDS,
    CPU,
    DROPS,
    JUDGED,
    MESSAGES,
    QUEUE_DROPPED,
    READINGS,
    SLOTS,
    T_LAST,
    WRITTEN,
    bare_main,
    ingest_main,
)
from _publisher import publisher_main

NAME = "ingest"
# A subscriber keeps up if its last message arrives within this of the publisher's last: over a 4 s
# trial, at least ~94 % of the rate in real time (the broker's queue hides a slower one only briefly).
MAX_LAG_S = 0.25


class Publisher:
    def __init__(self, ctx: Any, port: int, qos: int, direct: list, behind: dict) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=publisher_main, args=("127.0.0.1", port, qos, direct, behind, child), daemon=True
        )
        self.proc.start()
        self._expect("ready", 60)

    def _expect(self, kind: str, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"publisher: no {kind} within {timeout:.0f} s")
        got, payload = self.conn.recv()
        if got != kind:
            raise RuntimeError(f"publisher: {got}: {payload}")
        return payload

    def run(self, kind: str, prefix: str, rate: float, messages: int) -> dict[str, float]:
        self.conn.send((kind, prefix, rate, messages))
        self._expect("built", 120)
        self.conn.send("go")
        result: dict[str, float] = self._expect("done", messages / rate + 60)
        return result

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


class Totals:
    """What the publisher has sent to one subscriber since it started (warm-up included): trials
    are judged on these running totals, so a reading that spills over from one trial into the next
    window is not miscounted."""

    def __init__(self) -> None:
        self.messages = 0
        self.readings = 0


def trial(
    pub: Publisher,
    shared: Any,
    totals: Totals,
    kind: str,
    prefix: str,
    rate: float,
    seconds: float,
    per_message: int = 1,
) -> dict[str, Any]:
    """One paced trial; `rate` in readings/s (`per_message` readings in each message)."""
    before = list(shared)
    messages = max(1, int(rate * seconds / per_message))
    res = pub.run(kind, prefix, rate / per_message, messages)
    totals.messages += res["sent"]
    totals.readings += res["readings"]
    t_end = res["t_end"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if shared[MESSAGES] >= totals.messages and shared[WRITTEN] >= shared[READINGS]:
            break
        if time.monotonic() - shared[T_LAST] > 3.0 and time.monotonic() - t_end > 3.0:
            break  # nothing more is coming
        time.sleep(0.05)
    lag = max(0.0, shared[T_LAST] - t_end)
    d = [a - b for a, b in zip(shared, before, strict=True)]
    why = [
        f"{label} {int(got):,} of {int(want):,}"
        for label, got, want in (
            ("received", shared[MESSAGES], totals.messages),
            ("readings", shared[READINGS], totals.readings),
            ("judged", shared[JUDGED], totals.readings),
            ("written", shared[WRITTEN], totals.readings),
        )
        if got != want
    ]
    if shared[DROPS] or shared[QUEUE_DROPPED]:
        why.append(f"dropped {int(shared[DROPS])} in the driver, {int(shared[QUEUE_DROPPED])} in the writer")
    if lag > MAX_LAG_S:
        why.append(f"fell behind: last message {lag:.2f} s after the publisher's last")
    span = t_end - res["t_start"]
    return {
        "rate": rate,
        "ok": not why,
        "why": "; ".join(why),
        "sent": res["sent"],
        "received": int(d[MESSAGES]),
        "readings": int(d[READINGS]),
        "lag_s": round(lag, 3),
        "publish_rate": round(res["readings"] / span, 1) if span > 0 else 0.0,
        "cpu_us_per_msg": round(d[CPU] / max(1, d[MESSAGES]) * 1e6, 1),
    }


def warm_up(
    pub: Publisher, shared: Any, totals: Totals, lamps: int, batches: int, within_s: float = 90.0
) -> None:
    """One report from every lamp, then wait until lightctl is idle again: a lamp's first report after
    a start marks it online, and the reconciler re-asserts its desired state (a command each), which
    belongs to start-up, not to steady ingest."""
    t0 = time.monotonic()
    for res in (pub.run("single", "slc", 5000, lamps), pub.run("batch", "slc", 50, batches)):
        totals.messages += res["sent"]
        totals.readings += res["readings"]
    deadline = time.monotonic() + within_s
    last_cpu, last_t = shared[CPU], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        cpu, now = shared[CPU], time.monotonic()
        idle = (cpu - last_cpu) / (now - last_t) < 0.2 and not shared[COMMANDS]
        if idle and shared[MESSAGES] >= totals.messages and shared[WRITTEN] >= totals.readings:
            log(
                NAME,
                f"warm-up (every lamp's first report and the commands it triggers) took {now - t0:.1f} s",
            )
            return
        last_cpu, last_t = cpu, now
    log(NAME, "lightctl still busy after the warm-up; measuring anyway")


def step(
    label: str, run_trial: Any, start: float, limit: float, failed_above: float | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Highest passing rate: x1.3 steps from `start` until a failure, then one bisection between the
    last pass and the first failure. If `start` itself fails, the search starts again from a third
    of it (`failed_above` remembers where it failed)."""
    trials: list[dict[str, Any]] = []
    best, rate, failed_at = 0.0, start, failed_above
    while rate <= limit and len(trials) < 12:
        t = run_trial(rate)
        trials.append(t)
        log(
            NAME,
            f"{label} @ {rate:,.0f}/s: {'PASS' if t['ok'] else 'fail (' + t['why'] + ')'}, lag {t['lag_s']} s,"
            f" published at {t['publish_rate']:,.0f}/s, {t['cpu_us_per_msg']} CPU-us/msg",
        )
        if not t["ok"]:
            failed_at = rate
            break
        best = min(rate, t["publish_rate"]) if t["publish_rate"] < rate * 0.97 else rate
        if t["publish_rate"] < rate * 0.9:
            log(NAME, f"{label}: the publisher tops out at {t['publish_rate']:,.0f}/s: the figure is a floor")
            failed_at = None
            break
        rate *= 1.3
        if failed_at is not None and rate >= failed_at:
            break
    if failed_at is not None and best > 0:
        mid = (best + failed_at) / 2
        t = run_trial(mid)
        trials.append(t)
        log(NAME, f"{label} @ {mid:,.0f}/s: {'PASS' if t['ok'] else 'fail'} (bisect), lag {t['lag_s']} s")
        if t["ok"]:
            best = mid
    elif failed_at is not None and best == 0 and start > 1000 and failed_above is None:
        more_best, more = step(label, run_trial, start / 3, start, failed_above=start)
        return more_best, trials + more
    return best, trials


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="publishing time per trial")
    p.add_argument("--direct-lamps", type=int, default=20000)
    p.add_argument("--batched-lamps", type=int, default=20000, help="behind 10 concentrators")
    p.add_argument(
        "--qos", type=int, choices=(0, 1), default=0, help="telemetry QoS (lightctl's default is 0)"
    )
    p.add_argument("--start", type=float, default=15000.0, help="first single-report rate of run 1")
    args = p.parse_args(argv)

    ctx = mp.get_context("spawn")
    singles: list[float] = []
    bares: list[float] = []
    ratios: list[float] = []
    batch_rates: list[float] = []
    details: list[dict[str, Any]] = []
    with Mosquitto() as broker, tempfile.TemporaryDirectory(prefix="lightctl-bench-ingest-") as tmp:
        spec = DistrictSpec(
            roads=20,
            lamps_per_road=(args.direct_lamps + args.batched_lamps) // 20,
            spacing_m=10,
            concentrator_roads=round(20 * args.batched_lamps / (args.direct_lamps + args.batched_lamps)),
            mqtt_port=broker.port,
            telemetry_qos=args.qos,
        )
        district = load_district(spec, Path(tmp))
        direct, behind = lamps_as_desired(district)
        log(
            NAME,
            f"{len(direct):,} direct lamps, {sum(map(len, behind.values())):,} behind {len(behind)} concentrators",
        )
        pub = Publisher(ctx, broker.port, args.qos, direct, behind)
        start = args.start
        try:
            for run in range(args.runs):
                log(NAME, f"run {run + 1}/{args.runs}: lightctl")
                shared = ctx.Array("d", SLOTS, lock=False)
                ready, stop = ctx.Event(), ctx.Event()
                proc = ctx.Process(
                    target=ingest_main, args=(str(Path(tmp) / "config.yaml"), shared, ready, stop)
                )
                proc.start()
                try:
                    if not ready.wait(180):
                        raise TimeoutError("lightctl not ready within 180 s")
                    totals = Totals()
                    warm_up(pub, shared, totals, len(direct), -(-sum(map(len, behind.values())) // 200))
                    single, single_trials = step(
                        "lightctl single",
                        lambda r, s=shared, n=totals: trial(pub, s, n, "single", "slc", r, args.seconds),
                        start,
                        400_000,
                    )
                    batch, batch_trials = step(
                        "lightctl batches",
                        lambda r, s=shared, n=totals: trial(
                            pub, s, n, "batch", "slc", r, args.seconds, per_message=200
                        ),
                        batch_rates[-1] * 0.8 if batch_rates and batch_rates[-1] else 20_000.0,
                        2_000_000,
                    )
                finally:
                    stop.set()
                    proc.join(60)
                    if proc.is_alive():
                        proc.terminate()
                log(NAME, f"run {run + 1}/{args.runs}: bare gmqtt subscriber")
                bare_shared = ctx.Array("d", SLOTS, lock=False)
                bready, bstop = ctx.Event(), ctx.Event()
                bproc = ctx.Process(
                    target=bare_main,
                    args=(
                        "127.0.0.1",
                        broker.port,
                        "bare/+/up/telemetry",
                        args.qos,
                        bare_shared,
                        bready,
                        bstop,
                    ),
                )
                bproc.start()
                bare_totals = Totals()
                try:
                    if not bready.wait(30):
                        raise TimeoutError("bare subscriber not ready")
                    bare, bare_trials = step(
                        "bare single",
                        lambda r, s=bare_shared, n=bare_totals: trial(
                            pub, s, n, "single", "bare", r, args.seconds
                        ),
                        max(start, 2 * single),
                        400_000,
                    )
                finally:
                    bstop.set()
                    bproc.join(30)
                    if bproc.is_alive():
                        bproc.terminate()
                singles.append(single)
                bares.append(bare)
                ratios.append(single / bare if bare else 0.0)
                batch_rates.append(batch)
                details.append({"single": single_trials, "batch": batch_trials, "bare": bare_trials})
                log(
                    NAME,
                    f"run {run + 1}: lightctl {single:,.0f}/s, bare {bare:,.0f}/s, batches {batch:,.0f} readings/s",
                )
                start = max(5000.0, single * 0.8)
        finally:
            pub.close()
    common = {"qos": args.qos, "trial_seconds": args.seconds, "lamps": len(district.devices)}
    emit(
        "ingest_single_reports",
        singles,
        "reports/s",
        30000,
        "higher",
        **common,
        trials=[d["single"] for d in details],
    )
    emit(
        "ingest_ratio_to_bare", ratios, "x", 0.6, "higher", **common, bare_rates=bares, lightctl_rates=singles
    )
    emit(
        "ingest_batch_readings",
        batch_rates,
        "readings/s",
        100000,
        "higher",
        **common,
        trials=[d["batch"] for d in details],
    )
    return 0


def lamps_as_desired(district: Any) -> tuple[list, dict]:
    """Every lamp with what the scheduler wants it to do now, so its reports are healthy ones."""
    from lightctl.schedule.resolve import Resolver

    states = Resolver.for_district(district).resolve(time.time()).states
    conc_wire = {c.id: c.mqtt_id for c in district.concentrators.values()}
    direct, behind = [], {}
    for dev in district.devices.values():
        want = states[dev.id]
        lamp = (dev.mqtt_id, bool(want.on), int(want.level or 100) if want.on else 0, dev.rated_w)
        if dev.concentrator:
            behind.setdefault(conc_wire[dev.concentrator], []).append(lamp)
        else:
            direct.append(lamp)
    return direct, behind


if __name__ == "__main__":
    sys.exit(main())

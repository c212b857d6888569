"""One simulated night of bench/faults.py, in a process of its own: the real stack against the
simulators on a ScaledClock, the planned faults injected, the raised alarms and the simulators'
ground truth handed back for scoring.

Wired as lightctl runs (lightctl.runtime.Runtime on a reduced copy of the district: MQTT and Modbus
drivers, resolver feed, reconciler, fault engine, alarm manager, SQLite storage), with the
simulators of lightctl.sim: an SlcFleet on a private Mosquitto (one connection and last will per
lamp, as the datasheet has it) and a ModbusSim on free loopback ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from bench.faults_history import continue_counters, seed_history
from bench.faults_plan import Injection, members_of, plan_night
from bench.faults_probe import EvidenceRecorder, LoopLag, ReadingGaps
from bench.faults_score import Raised, Truth
from bench.faults_setup import (
    HOST,
    bench_district,
    free_port,
    modbus_targets,
    private_mosquitto,
    reduced_district,
)
from lightctl.clock import ScaledClock
from lightctl.config.loader import District, load
from lightctl.drivers import modbus_gateway, modbus_link
from lightctl.faults import energy_watch
from lightctl.runtime import Runtime
from lightctl.schedule.resolve import Resolver
from lightctl.schedule.sun import SunClock
from lightctl.sim.modbus_sim import ModbusSim
from lightctl.sim.slc import SlcFleet

T = TypeVar("T")
_SPEED1_BACKOFF_S = modbus_link.BACKOFF_S
IGNORED_TYPES = frozenset({"calendar_data_missing"})  # not a field fault: not scored


@dataclass(frozen=True, slots=True)
class NightSpec:
    config: str
    night: str  # ISO date of the night (it starts that afternoon)
    seed: int
    speed: float
    per_variant: int
    before_sunset_s: float  # the run starts this long before sunset (daylight faults fit in)
    after_sunrise_s: float | None  # ... and ends this long after sunrise
    end_local: str | None = None  # or at this local time (HH:MM, within the night), if given
    wire_timeout_s: float = 0.05  # the Modbus driver's network timeout, real seconds
    warmup_s: float = 600.0  # clock seconds of start-up before the scored span (alarms: `startup`)
    ack_timeout_s: float = 0.25  # MQTT acknowledgement timeout, real seconds
    over_steps: bool = False  # let faults that stop a device following commands span its steps


@dataclass(frozen=True, slots=True)
class NightStats:
    clock_start: float
    clock_end: float
    real_s: float
    cpu_fraction: float
    readings: int
    commands_ok: int
    commands_failed: int
    mqtt_drops: dict[str, int]
    max_gateway_cycle_s: float
    ignored_alarms: int  # types not scored (calendar_data_missing)
    startup_alarms: list[str]  # raised before the scored span began (start-up on a fast clock)
    loop_lag_p99_ms: float  # event-loop lag (real ms): x speed, the clock time the harness slips
    loop_lag_max_ms: float
    stalls: list[tuple[float, float]]  # (clock time, clock seconds lost) where the loop woke late
    injection_lag_max_s: float = 0.0  # how late (clock s) a fault began against its planned time
    energy: dict[str, int] = field(default_factory=dict)  # the energy watch's counts, its judging lag


@dataclass(frozen=True, slots=True)
class NightResult:
    night: str
    day_type: str
    truths: list[Truth]
    alarms: list[Raised]
    unplaced: list[str]
    unlogged: list[str]  # planned injections the simulators' logs do not show
    stats: NightStats
    gaps: dict[str, list[tuple[float, float]]]  # device -> (from, to) of its readings' gaps
    sun: tuple[float, float] = field(default=(0.0, 0.0))


def run_night(spec: NightSpec) -> NightResult:
    """Entry point of the worker process."""
    # A terminated worker still stops its Mosquitto and removes its temp dir (the `finally`s).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("pymodbus", "gmqtt", "amqtt", "lightctl.drivers.modbus_gateway"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    return asyncio.run(_run(spec))


def _say(spec: NightSpec, text: str) -> None:
    print(f"[{spec.night}] {text}", file=sys.stderr, flush=True)


def interval_of(d: District) -> dict[str, float]:
    poll = d.settings.modbus.poll_interval_s
    out: dict[str, float] = {}
    for dev in d.devices.values():
        profile = d.profiles[dev.profile]
        if profile.transport == "mqtt":
            interval = float(dev.report_s or profile.report_s)
            conc = d.concentrators.get(dev.concentrator) if dev.concentrator else None
            out[dev.id] = max(interval, float(conc.batch_s)) if conc else interval
        else:
            out[dev.id] = poll
    out.update(dict.fromkeys(d.gateways, poll))
    out.update({c.id: float(c.batch_s) for c in d.concentrators.values()})
    return out


def energy_close_at(resolver: Resolver, night: dt.date) -> float:
    """When lightctl judges the night's energy (lightctl/faults/energy_watch.py)."""
    close = resolver.sun.night(night).sunrise + energy_watch.CLOSE_AFTER_SUNRISE_S
    return math.ceil(close / 3600) * 3600 + energy_watch.SETTLE_S


def judged_energy(district: District, resolver: Resolver, night: dt.date) -> frozenset[str]:
    """Devices whose program that night ran on enough of the earlier nights for a baseline."""
    out: set[str] = set()
    for base, members in resolver.base_members().items():
        kind = base[1]
        th = district.settings.thresholds_for(kind)
        tonight = resolver.choice(base, night)
        if tonight is None:
            continue
        earlier = sum(
            1
            for back in range(1, th.energy_lookback_nights + 1)
            if (c := resolver.choice(base, night - dt.timedelta(days=back))) is not None
            and c.program.id == tonight.program.id
        )
        if earlier >= th.energy_min_nights:
            out.update(members)
    return frozenset(out)


def command_window_s(d: District, spec: NightSpec) -> float:
    """Clock seconds from a schedule step to command_failed for a lamp that never acknowledges:
    the reconciler's tick, every attempt's acknowledgement timeout (real seconds, so x speed) and
    the retry delays."""
    retries = d.settings.control.retry_delays_s
    return 2 * d.settings.control.tick_s + (len(retries) + 1) * spec.ack_timeout_s * spec.speed + sum(retries)


def night_window(spec: NightSpec, d: District) -> tuple[float, float, float, float, str]:
    site = d.settings.site
    tz = ZoneInfo(site.timezone)
    night = dt.date.fromisoformat(spec.night)
    sun = SunClock(site.lat, site.lon, site.timezone).night(night)
    t0 = sun.sunset - spec.before_sunset_s
    if spec.end_local is not None:
        hh, mm = (int(x) for x in spec.end_local.split(":"))
        day = night if hh >= 12 else night + dt.timedelta(days=1)  # a night runs noon to noon
        t1 = dt.datetime.combine(day, dt.time(hh, mm), tz).timestamp()
    else:
        t1 = sun.sunrise + (spec.after_sunrise_s or 0.0)
    day_type = Resolver.for_district(d).day(night).day_type
    return t0, t1, sun.sunset, sun.sunrise, str(day_type)


async def _run(spec: NightSpec) -> NightResult:
    base = reduced_district(load(spec.config))
    t0, t1, sunset, sunrise, day_type = night_window(spec, base)
    rng = random.Random(spec.seed)
    workdir = Path(tempfile.mkdtemp(prefix="lightctl-bench-faults-"))
    # energy_anomaly's baselines: the nights before this one, written before the clock starts.
    lookback = max(
        base.settings.thresholds_for(k).energy_lookback_nights for k in ("lamp", "group", "facade")
    )
    counters, written = await seed_history(
        base, Resolver.for_district(base), workdir / "telemetry.db", dt.date.fromisoformat(spec.night),
        lookback, t0 - spec.warmup_s,
    )  # fmt: skip
    _say(spec, f"history: {lookback} earlier nights, {written} energy readings")
    clock = ScaledClock(start=t0 - spec.warmup_s, speed=spec.speed)
    # The Modbus driver's network timeout and reconnect back-off are real time (modbus.timeout_s,
    # floored at 0.25 s; 0.5-8 s between connect attempts): at 120x, 1 s real is 2 clock minutes, a
    # hung gateway would take half an hour of clock time to declare and one refused connect would
    # cost minutes of polls. The bench gives them about their speed-1 length in clock time: a
    # timeout of a few clock seconds (still far above a loopback round trip) and a scaled back-off.
    modbus_gateway.MIN_WIRE_TIMEOUT_S = spec.wire_timeout_s
    modbus_link.BACKOFF_S = tuple(b / spec.speed for b in _SPEED1_BACKOFF_S)  # type: ignore[assignment]
    try:
        with private_mosquitto() as broker_port:
            return await _with_broker(
                spec, base, clock, broker_port, workdir, rng, (t0, t1), day_type, (sunset, sunrise), counters
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _with_broker(
    spec: NightSpec,
    base: District,
    clock: ScaledClock,
    broker_port: int,
    workdir: Path,
    rng: random.Random,
    span: tuple[float, float],
    day_type: str,
    sun: tuple[float, float],
    counters: dict[str, float],
) -> NightResult:
    t0, t1 = span
    ids = modbus_targets(base)
    sim = ModbusSim(
        base.gateways.values(), base.devices, clock, seed=spec.seed, profiles=base.profiles,
        ports=dict.fromkeys(ids, 0),
    )  # fmt: skip
    await sim.start()
    district = bench_district(
        base, workdir, broker_port, {i: sim.port_of(i) for i in ids}, spec.ack_timeout_s, spec.wire_timeout_s
    )
    intervals = interval_of(district)
    resolver = Resolver.for_district(district)
    plan, unplaced = plan_night(
        district,
        resolver,
        t0,
        t1,
        rng,
        spec.per_variant,
        intervals,
        clear_of_steps=not spec.over_steps,
        command_s=command_window_s(district, spec),
        close_at=energy_close_at(resolver, dt.date.fromisoformat(spec.night)),
        judged_energy=judged_energy(district, resolver, dt.date.fromisoformat(spec.night)),
    )
    lamps = [d for d in district.devices.values() if d.kind == "lamp"]
    fleet = SlcFleet(
        lamps, district.concentrators.values(), district.profiles, HOST, broker_port, clock, seed=spec.seed,
        lamps_per_connection=1,
    )  # fmt: skip
    await fleet.start()
    continue_counters(counters, fleet, sim)
    _inject(plan, fleet, sim)
    runtime = Runtime(district, clock, host=HOST, port=free_port())
    cpu0, real0 = time.process_time(), time.monotonic()
    loop_lag = LoopLag(clock)
    lag = asyncio.ensure_future(loop_lag.run())
    try:
        await runtime.start()
        evidence = EvidenceRecorder(runtime.alarms.writer.events)
        runtime.alarms.writer.events = evidence
        gaps = ReadingGaps(intervals)
        runtime.live.reading_listeners.append(gaps.readings)
        _say(spec, f"{day_type}: {len(plan)} injections planned, clock x{spec.speed:g}, "
                   f"{(t1 - clock.now()) / spec.speed:.0f} s to go")  # fmt: skip
        await _wait_until(spec, clock, t1, runtime, plan)
        alarms, ignored, startup = await _bounded(
            spec, "collecting alarms", _alarms(spec.night, runtime, t0, evidence.evidence)
        )
        lag.cancel()
        stats = _stats(runtime, t0, t1, real0, cpu0, ignored, startup, loop_lag)
    finally:
        await _bounded(spec, "stopping lightctl", runtime.stop())
        await _bounded(spec, "stopping the lamp simulator", fleet.stop())
        await _bounded(spec, "stopping the Modbus simulator", sim.stop())
    truths, unlogged, lags = _truths(spec.night, plan, fleet, sim, district)
    stats = dataclasses.replace(stats, injection_lag_max_s=round(max(lags, default=0.0), 1))
    return NightResult(spec.night, day_type, truths, alarms, unplaced, unlogged, stats, gaps.gaps, sun)


async def _bounded(spec: NightSpec, what: str, step: Awaitable[T], within_s: float = 30.0) -> T:
    """A shutdown step that hangs must not hang the bench: name it, show the tasks, give up."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if task in done:
        return task.result()
    _say(spec, f"{what}: still not done after {within_s:g} s; tasks:")
    for t in asyncio.all_tasks():
        if t is not asyncio.current_task():
            stack = t.get_stack(limit=3)
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in stack)
            print(f"    {t.get_name()}: {where}", file=sys.stderr)
    task.cancel()
    raise TimeoutError(f"{what} hung")


def _inject(plan: list[Injection], fleet: SlcFleet, sim: ModbusSim) -> None:
    items: list[str] = []
    for inj in plan:
        v = inj.variant
        if v.sim == "slc":
            params = {k: float(val) for k, val in v.params}
            fleet.inject(inj.target, v.fault, start=inj.start, until=inj.end, **params)
        else:
            extra = "".join(f";{k}={val}" for k, val in v.params)
            items.append(f"{v.fault}:{inj.target}@{inj.start:.3f}~{inj.end - inj.start:.3f}s{extra}")
    if items:
        sim.apply_spec(",".join(items))


async def _wait_until(
    spec: NightSpec, clock: ScaledClock, t1: float, runtime: Runtime, plan: list[Injection]
) -> None:
    tz = ZoneInfo(runtime.district.settings.site.timezone)
    next_note = time.monotonic()
    while (left := t1 - clock.now()) > 0:
        await asyncio.sleep(min(left / clock.speed, 2.0))
        if time.monotonic() >= next_note:
            next_note = time.monotonic() + 20.0
            now = clock.now()
            started = sum(1 for i in plan if i.start <= now)
            local = dt.datetime.fromtimestamp(now, tz).strftime("%m-%d %H:%M")
            alarms = len(runtime.alarms.open_episodes())
            _say(spec, f"{local}: {started}/{len(plan)} faults injected, {alarms} alarms open")


async def _alarms(
    night: str, runtime: Runtime, t0: float, evidence: dict[int, str]
) -> tuple[list[Raised], int, list[str]]:
    out: list[Raised] = []
    startup: list[str] = []
    ignored = 0
    offset = 0
    while True:
        page, total = await runtime.alarms.list_alarms(limit=500, offset=offset)
        for a in page:
            a.detail = a.detail or evidence.get(a.id or -1, "")
            if a.type in IGNORED_TYPES:
                ignored += 1
                continue
            if a.first_seen < t0:
                startup.append(f"{a.type} on {a.device} at {a.first_seen - t0:.0f} s: {a.detail}")
                continue
            out.append(Raised(night, a.id or 0, a.type, a.device, a.first_seen, a.parent, a.detail))
        offset += len(page)
        if not page or offset >= total:
            return out, ignored, startup


def _stats(
    runtime: Runtime,
    t0: float,
    t1: float,
    real0: float,
    cpu0: float,
    ignored: int,
    startup: list[str],
    lag: LoopLag,
) -> NightStats:
    real = time.monotonic() - real0
    gateways = runtime.modbus.gateway_status() if runtime.modbus else []
    mqtt = runtime.mqtt.stats() if runtime.mqtt else None
    return NightStats(
        clock_start=t0,
        clock_end=t1,
        real_s=round(real, 1),
        cpu_fraction=round((time.process_time() - cpu0) / max(real, 1e-9), 3),
        readings=int(runtime.engine.stats["readings"]),
        commands_ok=sum(g.commands_ok for g in gateways) + (mqtt.confirmed if mqtt else 0),
        commands_failed=sum(g.commands_failed for g in gateways)
        + (mqtt.timed_out + mqtt.refused if mqtt else 0),
        mqtt_drops=dict(mqtt.dropped) if mqtt else {},
        max_gateway_cycle_s=round(max((g.last_cycle_s or 0.0 for g in gateways), default=0.0), 1),
        ignored_alarms=ignored,
        startup_alarms=startup,
        energy=dict(runtime.energy.stats),
        loop_lag_p99_ms=lag.percentile_ms(99),
        loop_lag_max_ms=lag.percentile_ms(100),
        stalls=[(round(t, 1), round(s, 1)) for t, s in lag.stalls],
    )


def _truths(
    night: str, plan: list[Injection], fleet: SlcFleet, sim: ModbusSim, district: District
) -> tuple[list[Truth], list[str], list[float]]:
    """The plan, with the start and end the simulators' fault logs recorded."""
    logged: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for rec in fleet.fault_log():
        logged.setdefault((rec.device, rec.fault.value), []).append((rec.start, rec.end))
    for mrec in sim.fault_log:
        logged.setdefault((mrec.target, mrec.fault), []).append((mrec.start, mrec.end))
    truths: list[Truth] = []
    unlogged: list[str] = []
    lags: list[float] = []
    for inj in plan:
        v = inj.variant
        # Same (target, fault) injections are far apart (the planner's cool-down): the nearest is it.
        found = sorted(logged.get((inj.target, v.fault), []), key=lambda r: abs(r[0] - inj.start))
        if not found or abs(found[0][0] - inj.start) > 600.0:
            unlogged.append(f"{v.name} on {inj.target} at {inj.start:.0f}")
            continue
        start, end = found[0]
        lags.append(start - inj.start)
        truths.append(
            Truth(
                night, inj.ident, v.name, v.alarm, inj.target, start, inj.end if end is None else end,
                inj.deadline_s, 2 * inj.interval_s, tuple(members_of(district, inj.target)),
            )
        )  # fmt: skip
    return truths, unlogged, lags

"""Earlier nights for energy_anomaly's baselines: the simulators' own healthy nights, fast-forwarded.

energy_anomaly compares a night's energy with the device's earlier nights on the same program, which
a single simulated night does not have. Before lightctl starts, every device of the bench's district
is run through the nights before the scored one on fresh, noise-free copies of the simulators'
models (SimLamp, GroupUnit, FacadeUnit on a manual clock), following the resolver's plan in
SAMPLE_S steps, and its energy counter is written to the telemetry database once an hour, as the
driver would have stored it. The live simulators' counters are then moved on by what those nights
drew, so that the counters continue where the history ends.

The energy watch keeps the nights it closes in the state database and reads back from telemetry
only the nights missing there; the bench's state database is new, as on the first start after an
upgrade, so the watch reads all of these back (its stats: `nights_read_back`) and saves them.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import orjson

from lightctl.clock import ManualClock
from lightctl.config.loader import District
from lightctl.faults.energy_watch import CLOSE_AFTER_SUNRISE_S
from lightctl.model import DesiredState, Reading
from lightctl.schedule.resolve import Resolver
from lightctl.sim.facade_model import FacadeUnit
from lightctl.sim.group_model import GroupUnit
from lightctl.sim.modbus_sim import ModbusSim
from lightctl.sim.slc import SlcFleet
from lightctl.sim.slc_model import SimLamp, WireNames
from lightctl.store.sqlite_ts import SqliteTelemetry

SAMPLE_S = 300.0  # plan steps are followed to within this (the live night follows them exactly)
HOUR = 3600.0


def _lamps(district: District, clock: ManualClock) -> dict[str, SimLamp]:
    out: dict[str, SimLamp] = {}
    for dev in district.devices.values():
        if dev.kind != "lamp":
            continue
        profile = district.profiles[dev.profile]
        assert profile.mqtt is not None
        out[dev.id] = SimLamp(
            dev.id, dev.mqtt_id or dev.id, dev.rated_w, float(dev.report_s or profile.report_s), 0.0,
            profile.electrical, WireNames.of(profile.mqtt), random.Random(0), False, clock.now(),
        )  # fmt: skip
    return out


def _apply(model: SimLamp | GroupUnit | FacadeUnit, s: DesiredState, now: float) -> None:
    level = 100 if s.level is None else s.level
    if isinstance(model, SimLamp):
        model.command(orjson.dumps({"id": "h", "on": bool(s.on), "level": level}), now)
    elif isinstance(model, GroupUnit):
        model.write_coils(0, [bool(s.k1), bool(s.k2)])
        model.write_holding(0, [level])
    else:
        model.write_holding(0, [s.scene or 0, 100 if s.brightness is None else s.brightness])


def _counter_kwh(model: SimLamp | GroupUnit | FacadeUnit, now: float) -> float:
    if isinstance(model, SimLamp):
        model.advance(now)
        return model.energy_kwh
    model.input_registers()  # brings the counter up to the clock
    return model.energy_wh / 1000.0


async def seed_history(
    district: District,
    resolver: Resolver,
    telemetry_path: Path,
    first_night: dt.date,
    nights: int,
    until: float,
    base_kwh: float = 500.0,
) -> tuple[dict[str, float], int]:
    """Write `nights` nights before `first_night`, up to `until` (the live run's start), every
    counter starting at `base_kwh`; returns each device's counter at `until` (kWh) and the
    readings written. Give the live simulators those counters (`continue_counters`)."""
    start_night = first_night - dt.timedelta(days=nights)
    t = resolver.sun.night(start_night - dt.timedelta(days=1)).sunrise + CLOSE_AFTER_SUNRISE_S - HOUR
    t = (t // HOUR) * HOUR
    clock = ManualClock(t)
    models: dict[str, SimLamp | GroupUnit | FacadeUnit] = dict(_lamps(district, clock))
    offline = ModbusSim(
        district.gateways.values(), district.devices, clock, profiles=district.profiles, noise=False
    )
    models.update(offline.units)
    for m in models.values():
        if isinstance(m, SimLamp):
            m.energy_kwh = base_kwh
        else:
            m.energy_wh = base_kwh * 1000.0
    members = resolver.base_members()
    last: dict[object, DesiredState] = {}
    readings: list[Reading] = []
    next_hour = t
    while t < until:
        clock.set(t)
        for base, devices in members.items():
            state = resolver.plan_state(base, t)
            if base in last and last[base].same_output(state):
                continue
            last[base] = state
            for dev in devices:
                if dev in models:
                    _apply(models[dev], state, t)
        if t >= next_hour:
            for dev, m in models.items():
                value = round(_counter_kwh(m, t), 4)
                readings.append(Reading(dev, t, None, {"energy_kwh": value}, received=t))
            next_hour += HOUR
        t += SAMPLE_S
    clock.set(until)
    final = {dev: _counter_kwh(m, until) for dev, m in models.items()}
    store = SqliteTelemetry(telemetry_path)
    await store.open()
    try:
        for i in range(0, len(readings), 5000):
            await store.write(readings[i : i + 5000])
    finally:
        await store.close()
    return final, len(readings)


def continue_counters(final: dict[str, float], fleet: SlcFleet, sim: ModbusSim) -> None:
    """The live simulators' energy counters go on from where the history ended."""
    for dev, kwh in final.items():
        if dev in sim.units:
            sim.set_counters(dev, energy_wh=kwh * 1000.0)
        else:
            fleet.lamp(dev).energy_kwh = kwh

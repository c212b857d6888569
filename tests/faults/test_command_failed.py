"""command_failed end to end: the running service (lightctl.runtime.Runtime) against simulated SLC-M1
lamps on a real broker. A lamp that keeps reporting but ignores commands (the simulator's `deaf`)
gets command_failed after the retries, and no comm_loss (it is heard from all along); the next
command it carries out clears the alarm."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from lightctl.clock import ScaledClock
from lightctl.config.loader import District, load
from lightctl.config.settings import Mqtt
from lightctl.demo import demo_settings
from lightctl.model import AlarmState
from lightctl.runtime import Runtime
from lightctl.sim.slc import SlcFleet
from tests.servers import BrokerAddress

from .factory import ROOT

SPEED = 20.0
LAMPS = ("ha-001", "ha-002")


def two_lamps(tag: str, tmp_path: Path, broker: BrokerAddress) -> District:
    full = load(ROOT / "config.yaml")
    devices = {
        i: dataclasses.replace(full.devices[i], mqtt_id=f"{tag}-{full.devices[i].mqtt_id}") for i in LAMPS
    }
    roads = {
        r.id: dataclasses.replace(r, lamps=tuple(i for i in r.lamps if i in devices))
        for r in full.roads.values()
    }
    gateways = {g.id: dataclasses.replace(g, units=()) for g in full.gateways.values()}
    settings = demo_settings(full.settings, tmp_path, broker.port).model_copy(
        update={
            "mqtt": Mqtt(
                host=broker.host, port=broker.port, version="5" if broker.kind == "mosquitto" else "3.1.1",
                client_id=f"lightctl-{tag}", ack_timeout_s=0.3,
            )
        }
    )  # fmt: skip
    return dataclasses.replace(
        full, devices=devices, roads=roads, gateways=gateways, concentrators={}, zones={},
        settings=settings, base_dir=tmp_path,
    )  # fmt: skip


async def until(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.05)


async def test_a_deaf_lamp_gets_command_failed_not_comm_loss(
    mqtt_broker: BrokerAddress, tmp_path: Path
) -> None:
    tag = "T" + secrets.token_hex(3)
    district = two_lamps(tag, tmp_path, mqtt_broker)
    tz = ZoneInfo(district.settings.site.timezone)
    step = dt.datetime(2025, 10, 15, 23, 0, tzinfo=tz).timestamp()  # arterial dimming: 100 % -> 70 %
    clock = ScaledClock(start=step - 120, speed=SPEED)
    lamps = list(district.devices.values())
    fleet = SlcFleet(lamps, [], district.profiles, mqtt_broker.host, mqtt_broker.port, clock, seed=3)
    await fleet.start()
    fleet.inject("ha-001", "deaf", until=step - 30)
    runtime = Runtime(district, clock, host="127.0.0.1", port=0)
    try:
        await runtime.start()

        def open_of(alarm_type: str) -> list[str]:
            return [a.device for a in runtime.alarms.open_alarms() if a.type == alarm_type]

        await until(lambda: open_of("command_failed") == ["ha-001"], 15, "command_failed on the deaf lamp")
        (alarm,) = [a for a in runtime.alarms.open_alarms() if a.type == "command_failed"]
        assert "attempts" in alarm.detail
        assert fleet.truth("ha-002").level == 100  # the other lamp followed
        # Past the end of the fault, the 23:00 step is carried out and clears the alarm.
        await until(lambda: clock.now() > step + 20, 15, "the step")
        await until(lambda: open_of("command_failed") == [], 10, "command_failed cleared")
        assert fleet.truth("ha-001").level == 70
        stored = await runtime.alarms.get_alarm(alarm.id or 0)
        assert stored is not None
        assert stored.state is AlarmState.RESOLVED
        # heard from all along (a report every 60 clock s): no comm_loss, more than 3 intervals on
        await until(lambda: clock.now() > step + 90, 10, "3 report intervals")
        listed, _ = await runtime.alarms.list_alarms(limit=50)
        assert sorted({(a.type, a.device) for a in listed}) == [("command_failed", "ha-001")]
    finally:
        await runtime.stop()
        await fleet.stop()

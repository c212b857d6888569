"""The reconciler against the real drivers and simulators on loopback.

Devices converge to the desired state; after a gateway outage and after a restart of lightctl they
converge again; a lamp that never answers is retried at 2, 4, 8 s and then given up on with a
final, failed outcome (command_failed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lightctl.clock import ScaledClock
from lightctl.config.loader import District, load
from lightctl.config.settings import Modbus, Mqtt
from lightctl.control import Outcome, Reconciler, reported_matches
from lightctl.demo import remap_modbus
from lightctl.drivers.modbus import ModbusDriver
from lightctl.drivers.mqtt import MqttDriver
from lightctl.model import DesiredState, Device
from lightctl.sim.modbus_sim import ModbusSim
from lightctl.sim.slc import SlcFleet
from lightctl.state import LiveState
from tests.servers import BrokerAddress

REPO = Path(__file__).resolve().parents[1]
SPEED = 10.0  # retries at 2, 4, 8 clock seconds take 1.4 s of real time


async def wait_for(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def small_district(tag: str) -> District:
    """Two gateways (60 groups), one facade and 20 lamps of the sample district, with unique wire ids."""
    full = load(REPO / "config.yaml")
    keep_gw = ["zhg-01", "zhg-02"]
    lamps = [d for d in full.devices.values() if d.road == "hengan-lu"][:20]
    devices: dict[str, Device] = {}
    for dev in lamps:
        devices[dev.id] = dataclasses.replace(dev, mqtt_id=f"{tag}-{dev.mqtt_id}")
    for gw in keep_gw:
        for dev_id in full.gateways[gw].units:
            devices[dev_id] = full.devices[dev_id]
    devices["longcheng"] = full.devices["longcheng"]
    return dataclasses.replace(
        full,
        devices=devices,
        gateways={g: full.gateways[g] for g in keep_gw},
        concentrators={},
        roads={},
        zones={"longcheng": full.zones["longcheng"]},
    )


@dataclass
class Rig:
    district: District
    clock: ScaledClock
    live: LiveState
    sim: ModbusSim
    fleet: SlcFleet
    mqtt: MqttDriver
    modbus: ModbusDriver
    want: dict[str, DesiredState] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    current: Reconciler | None = None

    def reconciler(self, **settings: Any) -> Reconciler:
        return Reconciler(
            devices=self.district.devices,
            live=self.live,
            ports={"lamp": _Send(self.mqtt), "group": self.modbus, "facade": self.modbus},
            clock=self.clock,
            desired_fn=lambda now: self.want,
            tick_s=1.0,
            on_outcome=self.outcomes.append,
            **settings,
        )

    def converged(self, ids: list[str] | None = None) -> bool:
        for dev_id in ids or list(self.want):
            dev = self.district.devices[dev_id]
            st = self.live.status[dev_id]
            if st.last is None or not reported_matches(dev, self.want[dev_id], st):
                return False
            if dev.kind == "group" and (st.k1 is None or st.k2 is None):
                return False
        return True


@dataclass
class _Send:
    driver: MqttDriver

    async def apply(self, device_id: str, desired: DesiredState):  # type: ignore[no-untyped-def]
        return await self.driver.send(device_id, desired)


@pytest.fixture
async def rig(mqtt_broker: BrokerAddress) -> AsyncIterator[Rig]:
    tag = "T" + secrets.token_hex(3)
    district = small_district(tag)
    clock = ScaledClock(speed=SPEED)
    ids = [*district.gateways, "longcheng"]
    sim = ModbusSim(
        district.gateways.values(),
        district.devices,
        clock,
        seed=5,
        profiles=district.profiles,
        ports=dict.fromkeys(ids, 0),
    )
    await sim.start()
    district = remap_modbus(district, {i: sim.port_of(i) for i in ids})
    lamps = [d for d in district.devices.values() if d.kind == "lamp"]
    version = "5" if mqtt_broker.kind == "mosquitto" else "3.1.1"
    fleet = SlcFleet(
        lamps,
        [],
        district.profiles,
        mqtt_broker.host,
        mqtt_broker.port,
        clock,
        seed=5,
        lamps_per_connection=10,
    )
    await fleet.start()
    live = LiveState(district)
    settings = Mqtt(
        host=mqtt_broker.host, port=mqtt_broker.port, version=version, client_id=f"lightctl-{tag}"
    )
    mqtt = MqttDriver(settings, "test", lamps, [], district.profiles, live, clock)
    modbus = ModbusDriver(
        Modbus(poll_interval_s=5.0, timeout_s=1.0), district.gateways.values(),
        {k: v for k, v in district.devices.items() if v.kind != "lamp"}, district.profiles, live, clock,
    )  # fmt: skip
    await mqtt.start()
    assert await mqtt.wait_connected(10)
    await modbus.start()
    yield Rig(district, clock, live, sim, fleet, mqtt, modbus)
    for name, part in (("mqtt", mqtt), ("modbus", modbus), ("fleet", fleet), ("sim", sim)):
        t0 = time.monotonic()
        await asyncio.wait_for(part.stop(), 20)
        print(f"stopped {name} in {time.monotonic() - t0:.2f} s")


def all_on(district: District) -> dict[str, DesiredState]:
    out = {}
    for dev_id, dev in district.devices.items():
        if dev.kind == "lamp":
            out[dev_id] = DesiredState(on=True, level=70)
        elif dev.kind == "group":
            out[dev_id] = DesiredState(k1=True, k2=False, level=100)
        else:
            out[dev_id] = DesiredState(scene=3, brightness=80)
    return out


async def run_reconciler(rig: Rig) -> asyncio.Task[None]:
    rig.current = rig.reconciler()
    task = asyncio.create_task(rig.current.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def test_every_device_converges_and_stays(rig: Rig) -> None:
    rig.want = all_on(rig.district)
    task = await run_reconciler(rig)
    try:
        await wait_for(rig.converged, 30, "all devices to report the desired state")
        # the simulators' own truth agrees with what the devices report
        lamp = next(d for d in rig.district.devices.values() if d.kind == "lamp")
        truth = rig.fleet.truth(lamp.id)
        assert truth.relay_closed
        assert truth.level == 70
        group_truth = rig.sim.truth("zhg-01-u05")
        assert (group_truth.coil_k1, group_truth.coil_k2) == (True, False)
        assert rig.current is not None
        await wait_for(lambda: rig.current is not None and rig.current.pending() == 0, 10, "acks to arrive")
        sent = len(rig.outcomes)
        await asyncio.sleep(1.5)  # a converged district needs no more commands
        assert len(rig.outcomes) == sent
    finally:
        await stop(task)


async def test_gateway_outage_then_convergence(rig: Rig) -> None:
    rig.want = all_on(rig.district)
    task = await run_reconciler(rig)
    try:
        await wait_for(rig.converged, 30, "first convergence")
        await rig.sim.stop_gateway("zhg-02")
        units = list(rig.district.gateways["zhg-02"].units)
        await wait_for(
            lambda: all(rig.live.status[u].online is False for u in units), 30, "zhg-02 units offline"
        )
        for u in units:  # the schedule moves on while the gateway is away: K2 on as well
            rig.want[u] = DesiredState(k1=True, k2=True, level=100)
        await asyncio.sleep(1.0)
        await rig.sim.start_gateway("zhg-02")
        started = time.monotonic()
        await wait_for(lambda: rig.converged(units), 30, "zhg-02 groups to reach the new state")
        print(f"zhg-02 converged {time.monotonic() - started:.1f} s after it came back")
    finally:
        await stop(task)


async def test_restart_converges_from_whatever_state_devices_are_in(rig: Rig) -> None:
    rig.want = all_on(rig.district)
    first = await run_reconciler(rig)
    await wait_for(rig.converged, 30, "first convergence")
    await stop(first)
    # lightctl is "down"; the plan moves on to the half-night state
    for dev_id, dev in rig.district.devices.items():
        if dev.kind == "group":
            rig.want[dev_id] = DesiredState(k1=True, k2=False, level=50)
        elif dev.kind == "lamp":
            rig.want[dev_id] = DesiredState(on=True, level=40)
    second = await run_reconciler(rig)  # a fresh reconciler knows nothing of what was confirmed
    try:
        await wait_for(rig.converged, 30, "convergence after the restart")
    finally:
        await stop(second)


async def test_silent_lamp_is_retried_then_command_failed(rig: Rig) -> None:
    lamp = next(d.id for d in rig.district.devices.values() if d.kind == "lamp")
    rig.fleet.inject(lamp, "silence")
    rig.want = {lamp: DesiredState(on=True, level=100)}
    task = await run_reconciler(rig)
    try:
        await wait_for(lambda: any(o.final for o in rig.outcomes), 60, "the final outcome")
    finally:
        await stop(task)
    attempts = [o for o in rig.outcomes if o.device == lamp]
    assert [o.attempt for o in attempts] == [1, 2, 3, 4]
    assert all(not o.result.ok for o in attempts)
    assert attempts[-1].final
    assert not any(o.final for o in attempts[:-1])
    # the retries were spaced 2, 4 and 8 clock seconds apart (plus the ack wait each time)
    assert "acknowledgement" in attempts[-1].result.detail


async def test_restart_leaves_alone_what_already_shows_the_desired_state(rig: Rig) -> None:
    rig.want = all_on(rig.district)
    first = await run_reconciler(rig)
    await wait_for(rig.converged, 30, "first convergence")
    await wait_for(lambda: rig.current is not None and rig.current.pending() == 0, 10, "acks to arrive")
    await stop(first)
    lamps = [d for d, dev in rig.district.devices.items() if dev.kind == "lamp"]
    for lamp in lamps:  # only the lamps' desired state moves on while lightctl is down
        rig.want[lamp] = DesiredState(on=True, level=45)
    rig.outcomes.clear()
    second = await run_reconciler(rig)
    try:
        await wait_for(rig.converged, 30, "convergence after the restart")
        await asyncio.sleep(1.0)
    finally:
        await stop(second)
    commanded = {o.device for o in rig.outcomes}
    assert commanded == set(lamps), sorted(commanded - set(lamps))[:5]


@dataclass
class _Counting:
    inner: _Send
    busy: int = 0
    most: int = 0

    async def apply(self, device_id: str, desired: DesiredState):  # type: ignore[no-untyped-def]
        self.busy += 1
        self.most = max(self.most, self.busy)
        try:
            return await self.inner.apply(device_id, desired)
        finally:
            self.busy -= 1


async def test_no_more_commands_in_flight_than_slots_and_the_queue_drains(rig: Rig) -> None:
    rig.want = {d: s for d, s in all_on(rig.district).items() if rig.district.devices[d].kind == "lamp"}
    port = _Counting(_Send(rig.mqtt))
    reconciler = Reconciler(
        devices=rig.district.devices,
        live=rig.live,
        ports={"lamp": port},
        clock=rig.clock,
        desired_fn=lambda now: rig.want,
        max_in_flight={"lamp": 3},
        on_outcome=rig.outcomes.append,
    )
    rig.current = reconciler
    task = asyncio.create_task(reconciler.run())
    try:
        await wait_for(rig.converged, 30, "20 lamps through 3 slots")
        await wait_for(lambda: reconciler.pending() == 0, 10, "the queue to drain")
    finally:
        await stop(task)
    assert port.most == 3
    assert {o.device for o in rig.outcomes if o.result.ok} == set(rig.want)


async def test_a_lamp_given_up_on_is_tried_again_and_takes_its_state_once_it_answers(rig: Rig) -> None:
    lamp = next(d.id for d in rig.district.devices.values() if d.kind == "lamp")
    rig.fleet.inject(lamp, "deaf")  # reports on, ignores commands
    rig.want = {lamp: DesiredState(on=True, level=30)}
    reconciler = rig.reconciler(retry_after_giving_up_s=20.0)
    rig.current = reconciler
    task = asyncio.create_task(reconciler.run())
    try:
        await wait_for(lambda: any(o.final and not o.result.ok for o in rig.outcomes), 60, "giving up")
        rig.fleet.clear(lamp, "deaf")
        await wait_for(lambda: rig.converged([lamp]), 30, "the lamp at 30 % once it hears again")
    finally:
        await stop(task)
    assert rig.outcomes[-1].result.ok
    assert rig.outcomes[-1].attempt == 1  # a fresh round of attempts, not a fifth retry

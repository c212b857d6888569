"""The profile-driven Modbus driver against lightctl's datasheet-built simulators, on loopback.

Expected values are worked out from devices.md here; the driver decodes with the profiles in
devices/profiles/, the simulator encodes with its own datasheet layout: a wrong profile fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lightctl.clock import SystemClock
from lightctl.config.settings import Modbus
from lightctl.drivers.modbus import ModbusDriver, WriteRefused
from lightctl.drivers.sink import CollectingSink
from lightctl.model import DesiredState, Device, Gateway, Reading
from lightctl.profiles import Profile
from lightctl.sim.facade_model import FacadeTruth
from lightctl.sim.group_model import GroupTruth, GroupUnit
from lightctl.sim.modbus_sim import ModbusSim
from tests.sim.test_modbus_sim import FACADE_LOAD_W, K1_W, group, inventory

PROFILES_DIR = Path(__file__).resolve().parents[2] / "devices" / "profiles"
WRITE_FCS = {5, 6, 15, 16}


def load_profiles() -> dict[str, Profile]:
    profiles = [Profile.model_validate(yaml.safe_load(p.read_text())) for p in PROFILES_DIR.glob("*.yaml")]
    return {p.id: p for p in profiles}


async def wait_for(predicate: Callable[[], object], within_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    sim: ModbusSim
    driver: ModbusDriver
    sink: CollectingSink
    gateways: list[Gateway]
    devices: dict[str, Device]

    def readings(self, device_id: str) -> list[Reading]:
        return [r for r in self.sink.items if r.device == device_id]

    def last(self, device_id: str, since: float = 0.0) -> Reading | None:
        found = [r for r in self.readings(device_id) if r.received > since]
        return found[-1] if found else None

    def events(self, device_id: str) -> list[tuple[bool, str]]:
        return [(online, reason) for dev, online, _, reason in self.sink.events if dev == device_id]


async def start_rig(
    *,
    gateways: tuple[str, ...] = ("gw-a",),
    settings: Modbus | None = None,
    profiles: dict[str, Profile] | None = None,
    extra_units: tuple[int, ...] = (),
    units: int = 3,
    before_start: Callable[[ModbusSim], None] | None = None,
) -> Rig:
    """Simulators on free ports, and a driver polling them; `extra_units` are in the driver's
    inventory but not on the simulated bus of the first gateway."""
    gws, devices = inventory(gateways=gateways, units=units)
    sim = ModbusSim(
        gws, devices, SystemClock(), seed=3, latency=(0.02, 0.04),
        ports={g.id: 0 for g in gws} | {"fa": 0}, noise=False,
    )  # fmt: skip
    await sim.start()
    if before_start:
        before_start(sim)
    driver_devices = dict(devices)
    driver_gws = []
    for gw in gws:
        units = gw.units
        if gw.id == gws[0].id and extra_units:
            extra = [group(gw.id, u) for u in extra_units]
            driver_devices.update({d.id: d for d in extra})
            units = (*units, *(d.id for d in extra))
        driver_gws.append(dataclasses.replace(gw, port=sim.port_of(gw.id), units=units))
    driver_devices["fa"] = dataclasses.replace(devices["fa"], port=sim.port_of("fa"))
    sink = CollectingSink()
    settings = settings or Modbus(poll_interval_s=0.5, timeout_s=1.0, failed_polls_for_comm_loss=3)
    driver = ModbusDriver(
        settings, driver_gws, driver_devices, profiles or load_profiles(), sink, SystemClock()
    )
    await driver.start()
    return Rig(sim, driver, sink, driver_gws, driver_devices)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await start_rig()
    yield r
    await r.driver.stop()
    await r.sim.stop()


async def test_polls_every_register_of_both_datasheets() -> None:
    def prepare(sim: ModbusSim) -> None:
        sim.set_counters("gw-a-u02", energy_wh=123_456_789, hours=70_001)  # both past one 16-bit word
        sim.inject("gw-a-u02", "temperature", c=-15.3)  # a cold cabinet: negative int16
        sim.inject("gw-a-u02", "leakage", ma=37)
        sim.inject("gw-a-u02", "door_open")
        sim.set_counters("fa", energy_wh=98_765_432)
        sim.inject("fa", "channel_fault", n=2)
        sim.inject("fa", "door_open")

    rig = await start_rig(before_start=prepare)
    try:
        assert (await rig.driver.apply("gw-a-u02", DesiredState(k1=True, k2=False, level=60))).ok
        assert (await rig.driver.apply("fa", DesiredState(scene=2, brightness=50))).ok
        since = time.time()
        await wait_for(lambda: rig.last("gw-a-u02", since) and rig.last("fa", since), what="fresh readings")
        group_reading, facade_reading = rig.last("gw-a-u02", since), rig.last("fa", since)
        assert group_reading is not None
        assert facade_reading is not None
        unit = rig.sim.units["gw-a-u02"]
        assert isinstance(unit, GroupUnit)

        p_k1 = K1_W * 60 / 100  # datasheet: rated x dim / 100, pf 0.95 for LED groups
        g = group_reading.values
        assert g["k1"] == 1
        assert g["k2"] == 0
        assert g["level"] == 60
        assert g["voltage"] == 220.0
        assert g["power"] == pytest.approx(p_k1)
        assert g["pf"] == pytest.approx(0.95)
        assert g["current_k1"] == pytest.approx(round(p_k1 / (220 * 0.95), 2))
        assert g["current_k2"] == 0
        assert g["energy_kwh"] == pytest.approx(123_456.789, abs=0.002)  # Wh high word first, in kWh
        assert g["hours"] == 70_001
        assert g["temperature"] == pytest.approx(-15.3)
        assert g["leakage_ma"] == 37
        assert g["firmware"] == unit.firmware
        assert group_reading.flags == {"door_open", "k1_closed"}

        f = facade_reading.values
        assert (f["scene"], f["brightness"], f["active_scene"]) == (2, 50, 2)
        assert f["voltage"] == 220.0
        assert f["power"] == pytest.approx(FACADE_LOAD_W * 0.75 * 0.50 * 6 / 8)  # two of eight channels out
        assert f["energy_kwh"] == pytest.approx(98_765.432, abs=0.02)
        assert f["failed_channels"] == 2
        assert facade_reading.flags == {"channel_fault", "door_open"}

        seqs = [r.seq for r in rig.readings("gw-a-u02")]
        assert seqs == list(range(len(seqs)))  # a per-device poll counter: (device, ts, seq) unique
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


async def test_adjacent_registers_are_read_in_one_request_per_table(rig: Rig) -> None:
    await wait_for(lambda: len(rig.readings("gw-a-u01")) >= 3, what="three polls")
    reads = [(r.function_code, r.address, r.count) for r in rig.sim.requests("gw-a") if r.unit_id == 1]
    assert set(reads) == {(1, 0, 2), (3, 0, 1), (4, 0, 13)}  # FC01 coils, FC03 holding, FC04 0-12
    polls = len(rig.readings("gw-a-u01"))
    assert 3 * polls <= len(reads) <= 3 * (polls + 1)


async def test_writes_are_read_back_and_failures_say_why(rig: Rig) -> None:
    driver, sim = rig.driver, rig.sim
    result = await driver.apply("gw-a-u01", DesiredState(on=True, level=80))
    assert (result.ok, result.confirmed_by) == (True, "readback"), result.detail
    truth = sim.truth("gw-a-u01")
    assert isinstance(truth, GroupTruth)
    assert (truth.coil_k1, truth.coil_k2, truth.dim, truth.feedback_k1, truth.feedback_k2) == (
        True,
        True,
        80,
        True,
        True,
    )

    result = await driver.apply("gw-a-u03", DesiredState(on=True, level=40))  # no LED driver
    assert result.ok
    truth = sim.truth("gw-a-u03")
    assert isinstance(truth, GroupTruth)
    assert truth.dim == 100

    sim.inject("gw-a-u01", "contactor_stuck", mode="k1_open")
    result = await driver.apply("gw-a-u01", DesiredState(k1=True))
    assert not result.ok
    assert result.detail == "K1 contactor did not close: feedback 0 after 1 s"

    sim.inject("gw-a-u02", "supply_loss")
    result = await driver.apply("gw-a-u02", DesiredState(on=True))
    assert not result.ok
    assert "did not close" in result.detail
    assert "(supply lost)" in result.detail


async def test_facade_scenes_are_read_back_from_the_active_scene(rig: Rig) -> None:
    driver, sim = rig.driver, rig.sim
    result = await driver.apply("fa", DesiredState(scene=3, brightness=70))
    assert (result.ok, result.confirmed_by) == (True, "readback"), result.detail
    facade = sim.truth("fa")
    assert isinstance(facade, FacadeTruth)
    assert (facade.active_scene, facade.brightness) == (3, 70)
    assert (await driver.apply("fa", DesiredState(on=False))).ok
    facade = sim.truth("fa")
    assert isinstance(facade, FacadeTruth)
    assert (facade.scene, facade.active_scene) == (0, 0)
    sim.inject("fa", "controller_fault")
    result = await driver.apply("fa", DesiredState(scene=2))
    assert not result.ok
    assert result.detail == "scene = 2 not confirmed: active_scene reads 0 after 2 s"


async def test_writes_the_profile_does_not_allow_are_refused_without_traffic(rig: Rig) -> None:
    await wait_for(lambda: rig.readings("gw-a-u01") and rig.readings("fa"), what="first polls")
    before = {gw: len(rig.sim.requests(gw)) for gw in ("gw-a", "fa")}
    refusals = [
        (rig.driver.write_register("gw-a-u01", "voltage", 230), "not writable"),
        (rig.driver.write_register("gw-a-u01", "status", 1), "not writable"),
        (rig.driver.write_register("gw-a-u01", "k3", 1), "no register 'k3'"),
        (rig.driver.write_register("gw-a-u01", "dim", 150), "outside 0-100"),
        (rig.driver.write_register("gw-a-u01", "k1", 2), "takes 0 or 1"),
        (rig.driver.write_register("fa", "active_scene", 3), "not writable"),
        (rig.driver.apply("fa", DesiredState(scene=16)), "outside 0-15"),
        (rig.driver.apply("nowhere", DesiredState(on=True)), "not a Modbus device"),
    ]
    for call, message in refusals:
        with pytest.raises(WriteRefused, match=message):
            await call
    await asyncio.sleep(0.6)  # a poll cycle: anything sent would be logged by now
    for gw, count in before.items():
        sent = rig.sim.requests(gw)[count:]
        assert not [r for r in sent if r.function_code in WRITE_FCS], sent


async def test_illegal_address_from_a_wrong_profile_is_contained() -> None:
    profiles = load_profiles()
    raw = yaml.safe_load((PROFILES_DIR / "zhd-g2.yaml").read_text())
    # A profile that claims one input register too many and a holding register the device lacks.
    raw["modbus"]["registers"].append(
        {"name": "extra", "table": "input", "address": 13, "quantity": "current"}
    )
    raw["modbus"]["registers"].append({"name": "spare", "table": "holding", "address": 5, "writable": True})
    profiles["zhd-g2"] = Profile.model_validate(raw)
    rig = await start_rig(profiles=profiles)
    try:
        await wait_for(lambda: len(rig.readings("gw-a-u01")) >= 2, what="two polls")
        reading = rig.readings("gw-a-u01")[-1]
        assert reading.values["voltage"] == 220.0
        assert "current" not in reading.values
        assert rig.driver.drops.by_reason["modbus_register_refused"] == 2 * 3  # two registers, three units
        count = len(rig.sim.requests("gw-a"))
        await wait_for(lambda: len(rig.sim.requests("gw-a")) >= count + 9, what="another cycle")
        later = {(r.function_code, r.address, r.count) for r in rig.sim.requests("gw-a")[count:]}
        assert later == {(1, 0, 2), (3, 0, 1), (4, 0, 13)}  # back to one FC04 block, without 13
        result = await rig.driver.write_register("gw-a-u01", "spare", 1)
        assert not result.ok
        assert "exception 2 (illegal data address)" in result.detail
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


async def test_silent_units_go_offline_and_come_back() -> None:
    settings = Modbus(poll_interval_s=0.3, timeout_s=1.0, failed_polls_for_comm_loss=2)
    rig = await start_rig(extra_units=(7,), settings=settings)
    try:
        await wait_for(lambda: rig.events("gw-a-u07"), what="unit 7 offline")
        ((online, reason),) = rig.events("gw-a-u07")
        assert not online
        assert "2 polls failed" in reason
        assert "exception 11" in reason
        assert rig.events("gw-a") == [(True, "answering")]
        rig.sim.inject("gw-a-u02", "no_response")
        await wait_for(
            lambda: tuple(o for o, _ in rig.events("gw-a-u02"))[-1:] == (False,), what="u02 offline"
        )
        rig.sim.clear("gw-a-u02")
        await wait_for(lambda: rig.events("gw-a-u02")[-1][0], what="u02 online again")
        assert [o for o, _ in rig.events("gw-a-u02")] == [True, False, True]
        status = {s.gateway_id: s for s in rig.driver.gateway_status()}["gw-a"]
        assert (status.units, status.units_online, status.online) == (4, 3, True)
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


def command_traffic(sim: ModbusSim, gateway: str, since: int = 0) -> list[tuple[str, int]]:
    """Writes ("W", unit) and status read-backs ("R", unit), in the order the gateway got them."""
    out: list[tuple[str, int]] = []
    for r in sim.requests(gateway)[since:]:
        if r.function_code in WRITE_FCS:
            out.append(("W", r.unit_id))
        elif (r.function_code, r.address, r.count) == (4, 8, 1):
            out.append(("R", r.unit_id))
    return out


async def test_commands_go_one_at_a_time_each_read_back_before_the_next(rig: Rig) -> None:
    start = len(rig.sim.requests("gw-a"))
    results = await asyncio.gather(
        rig.driver.apply("gw-a-u01", DesiredState(k1=True)),
        rig.driver.apply("gw-a-u02", DesiredState(k1=True)),
        rig.driver.apply("gw-a-u03", DesiredState(k2=True)),
    )
    assert all(r.ok for r in results), results
    traffic = command_traffic(rig.sim, "gw-a", start)
    writes = [unit for kind, unit in traffic if kind == "W"]
    assert sorted(writes) == [1, 2, 3]
    for unit, following in itertools.pairwise(writes):
        between = traffic[traffic.index(("W", unit)) + 1 : traffic.index(("W", following))]
        assert set(between) == {("R", unit)}, traffic  # read back, and nothing else, first


async def test_pipelined_commands_never_overlap_on_one_unit() -> None:
    settings = Modbus(poll_interval_s=0.5, timeout_s=1.0, commands_in_flight=4)
    rig = await start_rig(settings=settings)
    try:
        start = len(rig.sim.requests("gw-a"))
        results = await asyncio.gather(
            rig.driver.apply("gw-a-u01", DesiredState(k1=True)),
            rig.driver.apply("gw-a-u01", DesiredState(k1=False)),
            rig.driver.apply("gw-a-u02", DesiredState(k1=True)),
            rig.driver.apply("gw-a-u03", DesiredState(k1=True)),
        )
        assert all(r.ok for r in results), results
        truth = rig.sim.truth("gw-a-u01")
        assert isinstance(truth, GroupTruth)
        assert not truth.coil_k1  # applied in the order given
        unit1 = [kind for kind, unit in command_traffic(rig.sim, "gw-a", start) if unit == 1]
        assert unit1[0] == "W"
        assert unit1.count("W") == 2
        assert "R" in unit1[: unit1.index("W", 1)]  # the first was read back before the second went out
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


async def test_a_command_does_not_wait_for_the_poll_cycle_to_end() -> None:
    settings = Modbus(poll_interval_s=0.2, timeout_s=1.0)  # shorter than a cycle: polling never rests
    rig = await start_rig(settings=settings, units=12)
    try:
        await wait_for(lambda: len(rig.readings("gw-a-u12")) >= 1, what="a full cycle")
        mark = len(rig.sim.requests("gw-a"))
        await wait_for(
            lambda: any(r.unit_id == 1 and r.function_code == 4 for r in rig.sim.requests("gw-a")[mark:]),
            what="the next cycle under way",
        )
        result = await rig.driver.apply("gw-a-u12", DesiredState(k1=True))
        assert result.ok, result.detail
        log = rig.sim.requests("gw-a")[mark:]
        write = next(i for i, r in enumerate(log) if r.function_code in WRITE_FCS)
        polled_12 = next(i for i, r in enumerate(log) if r.unit_id == 12 and r.function_code == 4)
        assert write < polled_12, "the command waited for the end of the cycle"
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


async def test_switching_a_facade_on_without_a_scene_shows_the_weekday_scene(rig: Rig) -> None:
    await wait_for(lambda: rig.readings("fa"), what="a facade reading")
    assert (await rig.driver.apply("fa", DesiredState(on=True))).ok
    truth = rig.sim.truth("fa")
    assert isinstance(truth, FacadeTruth)
    assert truth.active_scene == 1

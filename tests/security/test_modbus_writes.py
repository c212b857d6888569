"""Modbus writes go only to registers the device's profile marks writable, whatever a caller asks.

Driven by the repository's own profiles (devices/profiles/): every register of every Modbus profile
that is not writable, and every writable one with a value outside its range or a name slightly off,
is refused with WriteRefused before a single byte goes out; the simulated gateways' request logs
(ModbusSim.requests) must show no request at all. A legal write next to them shows up in the same
log, so the check can fail. tests/drivers/test_modbus.py has hand-picked cases; these are exhaustive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lightctl.clock import SystemClock
from lightctl.config.loader import District, load
from lightctl.config.settings import Modbus
from lightctl.drivers.modbus import ModbusDriver, WriteRefused
from lightctl.drivers.sink import CollectingSink
from lightctl.model import DesiredState
from lightctl.profiles import Profile
from lightctl.sim.modbus_sim import ModbusSim
from tests.procs import DistrictCopy

WRITE_FUNCTIONS = {5, 6, 15, 16}
GATEWAYS = ("zhg-01", "zhg-17")  # LED groups; groups without an LED driver (dimmable: false)
FACADE = "admin-centre"
GROUP, FIXED_GROUP = "zhg-01-u01", "zhg-17-u01"


@dataclass
class Field:
    district: District
    sim: ModbusSim
    driver: ModbusDriver
    sink: CollectingSink

    def traffic(self) -> int:
        return sum(len(self.sim.requests(t)) for t in (*GATEWAYS, FACADE))


async def eventually(check: Callable[[], object], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def start_field(tmp_path: Path, profiles: dict[str, Profile] | None = None) -> Field:
    district = load(DistrictCopy.of_repo(tmp_path / "district").root / "config.yaml")
    profiles = profiles or district.profiles
    gateways = [district.gateways[g] for g in GATEWAYS]
    devices = {d.id: d for d in district.devices.values() if d.gateway in GATEWAYS or d.id == FACADE}
    clock = SystemClock()
    sim = ModbusSim(gateways, devices, clock, seed=5, profiles=profiles, latency=(0.001, 0.002))
    await sim.start()
    sink = CollectingSink()
    # One poll an hour: after the first cycle the only traffic is what the test causes.
    settings = Modbus(poll_interval_s=3600, timeout_s=1.0)
    driver = ModbusDriver(settings, gateways, devices, profiles, sink, clock)
    await driver.start()
    polled = set(devices)
    await eventually(lambda: polled <= {r.device for r in sink.items}, 30, "a first poll of every unit")
    await asyncio.sleep(0.3)  # the cycle's last responses
    return Field(district, sim, driver, sink)


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    f = await start_field(tmp_path)
    try:
        yield f
    finally:
        await f.driver.stop()
        await f.sim.stop()


def refused_requests(field: Field) -> list[tuple[str, str, float]]:
    """(device, register, value) a caller may ask for that the profile does not allow."""
    asks: list[tuple[str, str, float]] = []
    for device_id in (GROUP, FACADE):
        spec = field.district.profiles[field.district.devices[device_id].profile].modbus
        assert spec is not None
        for reg in spec.registers:
            if not reg.writable:
                asks += [(device_id, reg.name, 0), (device_id, reg.name, 1)]
                continue
            if reg.max is not None:
                asks.append((device_id, reg.name, reg.max + 1))
            if reg.min is not None:
                asks.append((device_id, reg.name, reg.min - 1))
            if reg.type == "bool":
                asks += [(device_id, reg.name, 2), (device_id, reg.name, -1)]
            # (A fractional value is rounded to the register's step, up to half a step: not refused.)
            asks += [(device_id, reg.name.upper(), 1), (device_id, reg.name + " ", 1)]
        asks += [(device_id, "", 1), (device_id, "0", 1), (device_id, "coil:0", 1)]
    return asks


async def test_writes_outside_the_profile_are_refused_without_any_modbus_traffic(field: Field) -> None:
    asks = refused_requests(field)
    assert len(asks) > 40  # every register of both profiles: the loop below has work to do
    before = field.traffic()
    sent: list[str] = []
    for device_id, name, value in asks:
        try:
            result = await field.driver.write_register(device_id, name, value)
        except WriteRefused:
            continue
        sent.append(f"{device_id} {name!r} = {value}: {result}")
    # Desired states that ask for what the profile cannot do on that device.
    for device_id, desired in (
        (GROUP, DesiredState(scene=3)),  # a group has no scene register
        (FACADE, DesiredState(scene=16)),  # outside the profile's 0-15
        ("zhg-99-u01", DesiredState(on=True)),  # no such device on this driver
    ):
        try:
            result = await field.driver.apply(device_id, desired)
        except WriteRefused:
            continue
        sent.append(f"apply {device_id} {desired}: {result}")
    await asyncio.sleep(0.5)  # anything that went out would be in the log by now
    assert not sent, "accepted:\n" + "\n".join(sent)
    assert field.traffic() == before, [r for t in (*GATEWAYS, FACADE) for r in field.sim.requests(t)][-10:]
    # The same log shows a legal write at once: the check above can see traffic.
    result = await field.driver.write_register(GROUP, "dim", 40)
    assert result.ok, result.detail
    writes = [r for r in field.sim.requests("zhg-01") if r.function_code in WRITE_FUNCTIONS]
    assert [(w.unit_id, w.function_code, w.address) for w in writes] == [(1, 6, 0)]


async def test_a_level_for_a_group_without_an_led_driver_writes_no_dim(field: Field) -> None:
    assert not field.district.devices[FIXED_GROUP].dimmable
    before = len(field.sim.requests("zhg-17"))
    result = await field.driver.apply(FIXED_GROUP, DesiredState(k1=True, k2=True, level=30))
    assert result.ok, result.detail
    writes = [r for r in field.sim.requests("zhg-17")[before:] if r.function_code in WRITE_FUNCTIONS]
    assert writes, "the circuits were switched"
    assert all(w.function_code in (5, 15) for w in writes), writes  # coils only, no holding register


def _profile_with(changes: Callable[[dict[str, object]], None]) -> dict[str, object]:
    raw: dict[str, object] = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "devices" / "profiles" / "zhd-g2.yaml").read_text(
            encoding="utf-8"
        )
    )
    changes(raw)
    return raw


def _registers(raw: dict[str, object]) -> list[dict[str, object]]:
    modbus = raw["modbus"]
    assert isinstance(modbus, dict)
    registers: list[dict[str, object]] = modbus["registers"]
    return registers


def test_a_profile_cannot_make_an_input_register_writable() -> None:
    def voltage_writable(raw: dict[str, object]) -> None:
        next(r for r in _registers(raw) if r["name"] == "voltage")["writable"] = True

    with pytest.raises(ValidationError, match="cannot be writable"):
        Profile.model_validate(_profile_with(voltage_writable))


async def test_a_register_the_profile_does_not_mark_writable_is_never_written(tmp_path: Path) -> None:
    """A site that locks dimming in its profile (dim: writable false): neither a direct write nor a
    desired level reaches the register."""

    def dim_locked(raw: dict[str, object]) -> None:
        dim = next(r for r in _registers(raw) if r["name"] == "dim")
        dim["writable"] = False
        modbus = raw["modbus"]
        assert isinstance(modbus, dict)
        modbus["verify"].pop("dim")

    district = load(DistrictCopy.of_repo(tmp_path / "base").root / "config.yaml")
    profiles = dict(district.profiles) | {"zhd-g2": Profile.model_validate(_profile_with(dim_locked))}
    field = await start_field(tmp_path, profiles)
    try:
        before = len(field.sim.requests("zhg-01"))
        with pytest.raises(WriteRefused, match="not writable"):
            await field.driver.write_register(GROUP, "dim", 50)
        result = await field.driver.apply(GROUP, DesiredState(k1=True, k2=False, level=50))
        assert result.ok, result.detail
        writes = [r for r in field.sim.requests("zhg-01")[before:] if r.function_code in WRITE_FUNCTIONS]
        assert writes
        assert all(w.function_code in (5, 15) for w in writes), writes
    finally:
        await field.driver.stop()
        await field.sim.stop()

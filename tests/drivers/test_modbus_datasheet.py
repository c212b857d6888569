"""The Modbus driver against devices lightctl did not write: pymodbus servers set up here, register by
register, from the datasheet tables in devices.md (not from lightctl's profiles or simulators)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from lightctl.clock import SystemClock
from lightctl.config.settings import Modbus
from lightctl.drivers.modbus import ModbusDriver, WriteRefused
from lightctl.drivers.sink import CollectingSink
from lightctl.model import DesiredState, Device, Gateway
from tests.drivers.test_modbus import load_profiles, wait_for

# ZHD-G2 input registers 0-12 (devices.md section 2), as a device would hold them.
ZHD_INPUTS = [
    SimData(
        0, values=[2231, 45, 120, 3021, 950], datatype=DataType.UINT16
    ),  # 223.1 V, 0.45 A, 1.20 A, 302.1 W, 0.950
    SimData(5, values=123_456_789, datatype=DataType.UINT32),  # energy, Wh, high word first
    SimData(
        7, values=[12, 0b001001], datatype=DataType.UINT16
    ),  # 12 mA leakage; status: door open, over-temperature
    SimData(9, values=-153, datatype=DataType.INT16),  # -15.3 deg C
    SimData(10, values=70_001, datatype=DataType.UINT32),  # burning hours, high word first
    SimData(12, values=0x0203, datatype=DataType.UINT16),  # firmware
]
# FCD-S1 input registers 0-6 (devices.md section 3).
FCD_INPUTS = [
    SimData(0, values=[0, 2190, 12_345], datatype=DataType.UINT16),  # active scene 0, 219.0 V, 12,345 W
    SimData(3, values=12_345_678, datatype=DataType.UINT32),  # energy, Wh, high word first
    SimData(5, values=[0b110, 3], datatype=DataType.UINT16),  # channel fault + door open; 3 failed channels
]
STATUS = 8  # ZHD-G2 status register
SCENE, BRIGHTNESS, ACTIVE_SCENE = 0, 1, 0


@dataclass
class DatasheetDevice:
    """What the test servers' devices were told: their coils and holding registers."""

    coils: dict[int, bool] = field(default_factory=dict)
    holding: dict[int, int] = field(default_factory=dict)
    requests: list[tuple[int, int, int, int]] = field(default_factory=list)  # unit, fc, address, count

    def trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.dev_id, pdu.function_code, pdu.address, pdu.count))
        return pdu


async def no_such_unit(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE  # what the gateway answers for a unit that is not on its bus


def zhd_g2(unit: int, state: DatasheetDevice) -> SimDevice:
    async def action(
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if fc in (5, 15) and values is not None:
            state.coils.update({address + i: bool(v) for i, v in enumerate(values)})
        if fc in (6, 16) and values is not None:
            if any(int(v) > 100 for v in values):
                return ExcCodes.ILLEGAL_VALUE  # dim above 100
            state.holding.update({address + i: int(v) for i, v in enumerate(values)})
        if fc == 4:  # contactor feedback (bits 4, 5) follows the coils
            fb = state.coils.get(0, False) << 4 | state.coils.get(1, False) << 5
            registers[STATUS - start] = registers[STATUS - start] & ~0b110000 | fb
        return None

    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, count=2, values=False, datatype=DataType.BITS)],  # coils k1, k2
            [SimData(0, values=False, datatype=DataType.BITS)],  # no discrete inputs in the sheet
            [SimData(0, values=100, datatype=DataType.UINT16)],  # holding: dim
            list(ZHD_INPUTS),
        ),
        action=action,
    )


def fcd_s1(state: DatasheetDevice) -> SimDevice:
    async def action(
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if fc in (6, 16) and values is not None:
            limits = {SCENE: 15, BRIGHTNESS: 100}
            if any(int(v) > limits[address + i] for i, v in enumerate(values)):
                return ExcCodes.ILLEGAL_VALUE
            state.holding.update({address + i: int(v) for i, v in enumerate(values)})
        if fc == 4:  # the active scene follows the scene written
            registers[ACTIVE_SCENE - start] = state.holding.get(SCENE, 0)
        return None

    return SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=[0, 100], datatype=DataType.UINT16)],  # scene 0, brightness 100
            list(FCD_INPUTS),
        ),
        action=action,
    )


def catch_all(inputs: list[SimData]) -> SimDevice:
    blocks = ([SimData(0, count=16, values=False, datatype=DataType.BITS)],) * 2
    return SimDevice(
        id=0,
        simdata=(*blocks, [SimData(0, count=2, datatype=DataType.UINT16)], list(inputs)),
        action=no_such_unit,
    )


async def serve(devices: list[SimDevice], state: DatasheetDevice) -> tuple[ModbusTcpServer, int]:
    server = ModbusTcpServer(devices, address=("127.0.0.1", 0), trace_pdu=state.trace)
    await server.serve_forever(background=True)
    sockets = server.transport.sockets  # type: ignore[attr-defined]  # an asyncio.Server once listening
    return server, sockets[0].getsockname()[1]


@dataclass
class Field:
    group: DatasheetDevice
    facade: DatasheetDevice
    driver: ModbusDriver
    sink: CollectingSink


@pytest.fixture
async def field_devices() -> AsyncIterator[Field]:
    group_state, facade_state = DatasheetDevice(), DatasheetDevice()
    gateway_server, gateway_port = await serve([zhd_g2(3, group_state), catch_all(ZHD_INPUTS)], group_state)
    facade_server, facade_port = await serve([fcd_s1(facade_state), catch_all(FCD_INPUTS)], facade_state)
    common = {"lat": 28.68, "lon": 115.89, "host": "127.0.0.1"}
    devices = {
        f"g{u}": Device(
            id=f"g{u}", kind="group", name=f"g{u}", profile="zhd-g2", rated_w=550, dimmable=True, gateway="gw",
            unit_id=u, port=gateway_port, k1_w=150, k2_w=400, **common,  # type: ignore[arg-type]
        )
        for u in (3, 9)  # unit 9 is not on the bus
    }  # fmt: skip
    devices["fa"] = Device(
        id="fa", kind="facade", name="fa", profile="fcd-s1", rated_w=40_000, dimmable=True, unit_id=1,
        port=facade_port, **common,  # type: ignore[arg-type]
    )  # fmt: skip
    gateway = Gateway("gw", "gw", "127.0.0.1", gateway_port, 28.68, 115.89, ("g3", "g9"))
    sink = CollectingSink()
    settings = Modbus(poll_interval_s=0.4, timeout_s=1.0, failed_polls_for_comm_loss=2)
    driver = ModbusDriver(settings, [gateway], devices, load_profiles(), sink, SystemClock())
    await driver.start()
    yield Field(group_state, facade_state, driver, sink)
    await driver.stop()
    await gateway_server.shutdown()
    await facade_server.shutdown()


async def test_driver_decodes_a_datasheet_zhd_g2(field_devices: Field) -> None:
    sink = field_devices.sink
    await wait_for(lambda: [r for r in sink.items if r.device == "g3"], what="a reading of unit 3")
    reading = next(r for r in sink.items if r.device == "g3")
    assert reading.values == pytest.approx(
        {
            "k1": 0,
            "k2": 0,
            "level": 100,
            "voltage": 223.1,
            "current_k1": 0.45,
            "current_k2": 1.20,
            "power": 302.1,
            "pf": 0.95,
            "energy_kwh": 123_456.789,
            "leakage_ma": 12,
            "temperature": -15.3,
            "hours": 70_001,
            "firmware": 0x0203,
        }
    )
    assert reading.flags == {"door_open", "over_temperature"}
    reads = {(fc, address, count) for unit, fc, address, count in field_devices.group.requests if unit == 3}
    assert reads == {(1, 0, 2), (3, 0, 1), (4, 0, 13)}  # one request per table


async def test_driver_writes_a_datasheet_zhd_g2_and_reads_back(field_devices: Field) -> None:
    driver, group = field_devices.driver, field_devices.group
    result = await driver.apply("g3", DesiredState(k1=True, k2=False, level=80))
    assert (result.ok, result.confirmed_by) == (True, "readback"), result.detail
    assert group.coils == {0: True, 1: False}
    assert group.holding == {0: 80}
    with pytest.raises(WriteRefused):
        await driver.write_register("g3", "dim", 101)
    assert group.holding == {0: 80}
    since = time.time()
    await wait_for(lambda: [r for r in field_devices.sink.items if r.device == "g3" and r.received > since])
    reading = [r for r in field_devices.sink.items if r.device == "g3"][-1]
    assert reading.values["k1"] == 1
    assert reading.values["level"] == 80
    assert "k1_closed" in reading.flags


async def test_driver_decodes_and_switches_a_datasheet_fcd_s1(field_devices: Field) -> None:
    sink, facade = field_devices.sink, field_devices.facade
    await wait_for(lambda: [r for r in sink.items if r.device == "fa"], what="a facade reading")
    reading = next(r for r in sink.items if r.device == "fa")
    assert reading.values == pytest.approx(
        {
            "scene": 0,
            "brightness": 100,
            "active_scene": 0,
            "voltage": 219.0,
            "power": 12_345,
            "energy_kwh": 12_345.678,
            "failed_channels": 3,
        }
    )
    assert reading.flags == {"channel_fault", "door_open"}
    result = await field_devices.driver.apply("fa", DesiredState(scene=3, brightness=60))
    assert result.ok, result.detail
    assert facade.holding == {SCENE: 3, BRIGHTNESS: 60}
    writes = [(fc, address, count) for _, fc, address, count in facade.requests if fc in (6, 16)]
    assert writes == [(16, 0, 2)]  # scene and brightness are adjacent: one FC16


async def test_unit_missing_from_a_datasheet_bus_goes_offline(field_devices: Field) -> None:
    sink = field_devices.sink
    await wait_for(lambda: [e for e in sink.events if e[0] == "g9"], what="unit 9 offline")
    ((_, online, _, reason),) = [e for e in sink.events if e[0] == "g9"]
    assert not online
    assert "exception 11" in reason
    assert ("g3", True) in {(e[0], e[1]) for e in sink.events}

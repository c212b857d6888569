"""The simulated ZHD-G2 gateways and FCD-S1 facades, read by pymodbus's client (not lightctl's driver).

Expected values are worked out here from devices.md, never read from the simulator's code: a test
between the datasheet and the simulator. Physics is checked on a ManualClock with zero latency so
that lags (contactor 200 ms, scene 0.5-1.5 s) are exact; timing on the real clock with wide margins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from lightctl.clock import Clock, ManualClock, SystemClock
from lightctl.model import Device, Gateway
from lightctl.sim.modbus_sim import ModbusSim

START = 1_790_000_000.0
K1_W, K2_W = 150.0, 400.0
FACADE_LOAD_W = 40_000.0


def group(gateway: str, unit: int, *, dimmable: bool = True) -> Device:
    return Device(
        id=f"{gateway}-u{unit:02d}", kind="group", name=f"group {unit}", profile="zhd-g2", lat=28.68,
        lon=115.89, rated_w=K1_W + K2_W, dimmable=dimmable, gateway=gateway, unit_id=unit,
        host="127.0.0.1", port=502, k1_w=K1_W, k2_w=K2_W,
    )  # fmt: skip


def facade(facade_id: str) -> Device:
    return Device(
        id=facade_id, kind="facade", name=facade_id, profile="fcd-s1", lat=28.68, lon=115.89,
        rated_w=FACADE_LOAD_W, dimmable=True, zone=facade_id, unit_id=1, host="127.0.0.1", port=502,
    )  # fmt: skip


def inventory(
    gateways: tuple[str, ...] = ("gw-a",), units: int = 3
) -> tuple[list[Gateway], dict[str, Device]]:
    """Gateways of `units` groups (the last one without an LED driver) and one facade `fa`."""
    devices: dict[str, Device] = {}
    gws: list[Gateway] = []
    for gid in gateways:
        members = [group(gid, u, dimmable=u != units) for u in range(1, units + 1)]
        devices.update({d.id: d for d in members})
        gws.append(Gateway(gid, gid, "127.0.0.1", 502, 28.68, 115.89, tuple(d.id for d in members)))
    devices["fa"] = facade("fa")
    return gws, devices


def make_sim(clock: Clock, *, latency: tuple[float, float] = (0.0, 0.0), **kwargs: object) -> ModbusSim:
    gws, devices = inventory(**kwargs)  # type: ignore[arg-type]
    ports = {g.id: 0 for g in gws} | {"fa": 0}
    no_answer = 0.0 if latency == (0.0, 0.0) else 0.5
    return ModbusSim(
        gws, devices, clock, seed=1, latency=latency, ports=ports, noise=False, no_answer_s=no_answer
    )


async def connect(port: int, timeout_s: float = 2.0) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    assert await client.connect(), f"cannot connect to 127.0.0.1:{port}"
    return client


def exc_code(response: ModbusPDU) -> int | None:
    return int(response.exception_code) if response.isError() else None


async def inputs(client: AsyncModbusTcpClient, unit: int) -> list[int]:
    response = await client.read_input_registers(0, count=13, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


def s16(raw: int) -> int:
    return raw - 0x10000 if raw >= 0x8000 else raw


@pytest.fixture
async def manual() -> AsyncIterator[
    tuple[ManualClock, ModbusSim, AsyncModbusTcpClient, AsyncModbusTcpClient]
]:
    clock = ManualClock(START)
    sim = make_sim(clock)
    await sim.start()
    gw, fa = await connect(sim.port_of("gw-a")), await connect(sim.port_of("fa"))
    yield clock, sim, gw, fa
    gw.close()
    fa.close()
    await sim.stop()


async def test_group_registers_follow_the_datasheet(
    manual: tuple[ManualClock, ModbusSim, AsyncModbusTcpClient, AsyncModbusTcpClient],
) -> None:
    clock, _sim, gw, _ = manual
    off = await inputs(gw, 1)
    assert off[0] == 2200  # 220.0 V in 0.1 V (noise off)
    assert off[1:5] == [0, 0, 0, 0]  # no current, no power, pf reads 0 while no current flows
    assert off[8] & 0b110000 == 0

    assert not (await gw.write_register(0, 60, device_id=1)).isError()
    assert not (await gw.write_coil(0, True, device_id=1)).isError()
    assert (await gw.read_coils(0, count=2, device_id=1)).bits[:2] == [True, False]
    assert (await gw.read_holding_registers(0, count=1, device_id=1)).registers == [60]
    clock.advance(0.2)  # "the contactor feedback bits follow within 200 ms"
    regs = await inputs(gw, 1)
    p_k1 = K1_W * 60 / 100  # LED group: rated x dim / 100
    assert regs[3] == round(p_k1 * 10)  # total power, 0.1 W
    assert regs[4] == 950  # pf about 0.95 for LED groups, 0.001
    assert regs[1] == round(p_k1 / (220.0 * 0.95) * 100)  # current = power / (voltage x pf), 0.01 A
    assert regs[2] == 0
    assert regs[8] == 1 << 4  # K1 feedback only

    # Both circuits on through FC15; the group without an LED driver ignores dim but reads it back.
    assert not (await gw.write_coils(0, [True, True], device_id=3)).isError()
    assert not (await gw.write_registers(0, [30], device_id=3)).isError()
    clock.advance(0.2)
    regs = await inputs(gw, 3)
    assert (await gw.read_holding_registers(0, count=1, device_id=3)).registers == [30]
    assert regs[3] == round((K1_W + K2_W) * 10)
    assert regs[4] == 900  # 0.90 for groups without an LED driver
    assert regs[8] == 0b110000


async def test_group_counters_are_uint32_high_word_first_and_temperature_is_signed(
    manual: tuple[ManualClock, ModbusSim, AsyncModbusTcpClient, AsyncModbusTcpClient],
) -> None:
    clock, sim, gw, _ = manual
    sim.set_counters("gw-a-u02", energy_wh=131_000, hours=65_535.5)
    sim.inject("gw-a-u02", "temperature", c=-15.0)
    await gw.write_coil(0, True, device_id=2)  # K1 at dim 100: 150 W
    clock.advance(0.2)
    clock.advance(3600)
    regs = await inputs(gw, 2)
    energy = 131_000 + K1_W  # one hour at 150 W, give or take the 0.2 s of settling
    assert regs[5] == int(energy) >> 16
    assert abs(regs[6] - (int(energy) & 0xFFFF)) <= 1
    assert (regs[10], regs[11]) == (1, 0)  # 65,536 burning hours: the high word carries
    assert s16(regs[9]) == -150  # -15.0 deg C in 0.1 deg C, two's complement


async def test_facade_registers_follow_the_datasheet(
    manual: tuple[ManualClock, ModbusSim, AsyncModbusTcpClient, AsyncModbusTcpClient],
) -> None:
    clock, sim, _, fa = manual
    assert not (await fa.write_registers(0, [2, 50], device_id=1)).isError()  # scene 2, brightness 50
    regs = (await fa.read_input_registers(0, count=7, device_id=1)).registers
    assert regs[0] == 0  # the active scene has not followed yet
    clock.advance(0.45)
    assert (await fa.read_input_registers(0, count=1, device_id=1)).registers == [0]
    clock.advance(1.1)  # follows 0.5-1.5 s after the write, within the datasheet's 2 s
    regs = (await fa.read_input_registers(0, count=7, device_id=1)).registers
    assert regs[0] == 2
    assert regs[1] == 2200
    assert regs[2] == round(FACADE_LOAD_W * 0.75 * 0.50)  # scene 2 is 75 % of the load, x brightness
    assert regs[5:7] == [0, 0]
    sim.set_counters("fa", energy_wh=70_000)
    clock.advance(3600)
    regs = (await fa.read_input_registers(0, count=7, device_id=1)).registers
    assert (regs[3] << 16 | regs[4]) == 70_000 + round(FACADE_LOAD_W * 0.75 * 0.50)
    await fa.write_register(0, 7, device_id=1)  # a custom scene: 60 %
    clock.advance(1.6)
    assert (await fa.read_input_registers(2, count=1, device_id=1)).registers == [
        round(FACADE_LOAD_W * 0.6 * 0.5)
    ]


async def test_exceptions_per_datasheet(
    manual: tuple[ManualClock, ModbusSim, AsyncModbusTcpClient, AsyncModbusTcpClient],
) -> None:
    _, _, gw, fa = manual
    assert exc_code(await gw.read_input_registers(0, count=14, device_id=1)) == 2
    assert exc_code(await gw.read_input_registers(13, count=1, device_id=1)) == 2
    assert exc_code(await gw.read_coils(1, count=2, device_id=1)) == 2
    assert exc_code(await gw.read_holding_registers(1, count=1, device_id=1)) == 2
    assert exc_code(await gw.write_coil(2, True, device_id=1)) == 2
    assert exc_code(await gw.write_register(0, 101, device_id=1)) == 3  # dim above 100
    assert exc_code(await gw.write_registers(0, [101], device_id=1)) == 3
    assert exc_code(await gw.read_discrete_inputs(0, count=1, device_id=1)) == 1  # FC02 is not listed
    assert exc_code(await gw.diag_read_diagnostic_register(device_id=1)) == 1  # nor FC08
    assert exc_code(await gw.read_input_registers(0, count=1, device_id=9)) == 11  # not on the bus
    assert (await gw.read_holding_registers(0, count=1, device_id=1)).registers == [100]  # nothing changed

    assert exc_code(await fa.read_coils(0, count=1, device_id=1)) == 1
    assert exc_code(await fa.read_input_registers(0, count=8, device_id=1)) == 2
    assert exc_code(await fa.write_register(0, 16, device_id=1)) == 3  # scene above 15
    assert exc_code(await fa.write_register(1, 101, device_id=1)) == 3  # brightness above 100
    assert exc_code(await fa.write_registers(0, [3, 101], device_id=1)) == 3
    assert exc_code(await fa.read_input_registers(0, count=1, device_id=2)) == 11  # unit ids other than 1
    assert (await fa.read_holding_registers(0, count=2, device_id=1)).registers == [0, 100]


async def test_unit_not_on_the_bus_answers_exception_11_after_about_half_a_second() -> None:
    sim = make_sim(SystemClock(), latency=(0.02, 0.04))
    await sim.start()
    client = await connect(sim.port_of("gw-a"))
    try:
        started = time.monotonic()
        assert exc_code(await client.read_input_registers(0, count=1, device_id=42)) == 11
        assert 0.4 <= time.monotonic() - started < 2.0
        sim.inject("gw-a-u01", "no_response")
        assert exc_code(await client.read_input_registers(0, count=1, device_id=1)) == 11
        sim.clear("gw-a-u01")
        assert exc_code(await client.read_input_registers(0, count=1, device_id=1)) is None
    finally:
        client.close()
        await sim.stop()


async def test_a_gateway_serves_one_request_at_a_time() -> None:
    sim = make_sim(SystemClock(), latency=(0.05, 0.05))
    await sim.start()
    clients = [await connect(sim.port_of("gw-a")) for _ in range(2)]
    try:
        started = time.monotonic()

        async def reads(client: AsyncModbusTcpClient) -> None:
            for _ in range(6):
                assert exc_code(await client.read_input_registers(0, count=13, device_id=1)) is None

        await asyncio.gather(*(reads(c) for c in clients))
        assert time.monotonic() - started >= 12 * 0.05 * 0.95  # serialised, not 6 x 0.05 in parallel
    finally:
        for client in clients:
            client.close()
        await sim.stop()


async def test_hung_gateway_accepts_and_never_answers_while_others_do() -> None:
    sim = make_sim(SystemClock(), latency=(0.02, 0.04), gateways=("gw-a", "gw-b"))
    await sim.start()
    hung, healthy = await connect(sim.port_of("gw-a"), timeout_s=0.5), await connect(sim.port_of("gw-b"))
    try:
        sim.hang("gw-a")
        reply = asyncio.ensure_future(hung.read_input_registers(0, count=1, device_id=1))
        for _ in range(5):
            assert exc_code(await healthy.read_input_registers(0, count=13, device_id=1)) is None
        with pytest.raises(Exception, match="No response"):
            await reply
        late = await connect(sim.port_of("gw-a"), timeout_s=0.5)  # still accepts connections
        late.close()
        sim.clear("gw-a", "gateway_hang")
        fresh = await connect(sim.port_of("gw-a"))
        assert exc_code(await fresh.read_input_registers(0, count=1, device_id=1)) is None
        fresh.close()
    finally:
        hung.close()
        healthy.close()
        await sim.stop()


async def test_gateway_power_cycle_keeps_the_controllers_state() -> None:
    sim = make_sim(SystemClock(), latency=(0.0, 0.0))
    await sim.start()
    port = sim.port_of("gw-a")
    client = await connect(port)
    await client.write_coil(1, True, device_id=2)
    client.close()
    await sim.stop_gateway("gw-a")
    refused = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0, reconnect_delay=0)
    assert not await refused.connect()
    refused.close()
    await sim.start_gateway("gw-a")
    assert sim.port_of("gw-a") == port
    client = await connect(port)
    assert (await client.read_coils(0, count=2, device_id=2)).bits[:2] == [False, True]
    client.close()
    await sim.stop()

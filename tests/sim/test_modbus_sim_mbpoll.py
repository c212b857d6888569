"""The simulators against Debian's `mbpoll`, a Modbus client nobody here wrote.

mbpoll counts references from 1 by default; `-0` makes them the datasheets' protocol addresses.
`-t 3:int -B` reads a 32-bit integer high word first, as devices.md says the counters are.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator

import pytest

from lightctl.clock import SystemClock
from lightctl.sim.modbus_sim import ModbusSim
from tests.servers import require
from tests.sim.test_modbus_sim import FACADE_LOAD_W, K1_W, K2_W, make_sim


@pytest.fixture
async def sim() -> AsyncIterator[ModbusSim]:
    simulator = make_sim(SystemClock(), latency=(0.02, 0.04))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def mbpoll(port: int, *options: str, values: tuple[str, ...] = ()) -> tuple[int, dict[int, int], str]:
    """Run mbpoll once against 127.0.0.1:port (writing `values` if given): (status, {reference: value}, stderr)."""
    binary = require("mbpoll", "mbpoll (Modbus client)")
    proc = await asyncio.create_subprocess_exec(
        binary, "-m", "tcp", "-p", str(port), "-o", "2", *options, "127.0.0.1", *values,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    found: dict[int, int] = {}
    for ref, raw, signed in re.findall(r"^\[(\d+)\]:\s+(-?\d+)(?: \((-?\d+)\))?$", out.decode(), re.M):
        found[int(ref)] = int(signed or raw)
    return proc.returncode or 0, found, err.decode()


async def write(port: int, *options: str, values: tuple[str, ...]) -> None:
    status, _, err = await mbpoll(port, *options, values=values)
    assert status == 0, err


async def test_mbpoll_reads_a_group_as_its_datasheet_says(sim: ModbusSim) -> None:
    port = sim.port_of("gw-a")
    sim.set_counters("gw-a-u02", energy_wh=2_345_678, hours=70_001)
    sim.inject("gw-a-u02", "temperature", c=-12.5)
    await write(port, "-a", "2", "-0", "-t", "4", "-r", "0", values=("50",))  # dim 50 %
    await write(port, "-a", "2", "-0", "-t", "0", "-r", "0", values=("1", "1"))  # K1 and K2 on
    await asyncio.sleep(0.3)  # feedback follows within 200 ms
    status, regs, err = await mbpoll(port, "-a", "2", "-0", "-t", "3", "-r", "0", "-c", "13", "-1")
    assert status == 0, err
    assert sorted(regs) == list(range(13))
    assert regs[0] == 2200  # 220.0 V (noise off)
    p1, p2 = K1_W * 0.5, K2_W * 0.5
    assert regs[3] == round((p1 + p2) * 10)
    assert regs[4] == 950
    assert (regs[1], regs[2]) == (round(p1 / (220 * 0.95) * 100), round(p2 / (220 * 0.95) * 100))
    assert regs[8] == 0b110000  # both contactor feedback bits
    assert regs[9] == -125  # mbpoll shows the signed reading of a negative int16
    status, counters, err = await mbpoll(
        port, "-a", "2", "-0", "-t", "3:int", "-B", "-r", "5", "-c", "1", "-1"
    )
    assert status == 0, err
    assert abs(counters[5] - 2_345_678) <= 1
    status, counters, err = await mbpoll(
        port, "-a", "2", "-0", "-t", "3:int", "-B", "-r", "10", "-c", "1", "-1"
    )
    assert counters[10] == 70_001
    status, coils, err = await mbpoll(port, "-a", "2", "-0", "-t", "0", "-r", "0", "-c", "2", "-1")
    assert coils == {0: 1, 1: 1}
    # mbpoll's default 1-based references: reference 1 is protocol address 0.
    status, one_based, err = await mbpoll(port, "-a", "2", "-t", "3", "-r", "1", "-c", "1", "-1")
    assert one_based == {1: 2200}


async def test_mbpoll_sees_the_datasheet_exceptions(sim: ModbusSim) -> None:
    port = sim.port_of("gw-a")
    cases = [
        (["-a", "1", "-0", "-t", "3", "-r", "0", "-c", "14"], "Illegal data address"),
        (["-a", "1", "-0", "-t", "0", "-r", "2", "-c", "1"], "Illegal data address"),
        (["-a", "1", "-0", "-t", "1", "-r", "0", "-c", "1"], "Illegal function"),
        (["-a", "7", "-0", "-t", "3", "-r", "0", "-c", "1"], "Target device failed to respond"),
    ]
    for args, message in cases:
        status, _, err = await mbpoll(port, *args, "-1")
        assert status != 0, args
        assert message in err, (args, err)
    status, _, err = await mbpoll(port, "-a", "1", "-0", "-t", "4", "-r", "0", values=("101",))
    assert status != 0
    assert "Illegal data value" in err


async def test_mbpoll_reads_and_switches_a_facade(sim: ModbusSim) -> None:
    port = sim.port_of("fa")
    await write(port, "-a", "1", "-0", "-t", "4", "-r", "0", values=("3", "80"))  # scene 3, brightness 80
    await asyncio.sleep(1.8)  # the active scene follows within 2 s
    status, regs, err = await mbpoll(port, "-a", "1", "-0", "-t", "3", "-r", "0", "-c", "7", "-1")
    assert status == 0, err
    assert regs[0] == 3
    assert regs[1] == 2200
    assert regs[2] == round(FACADE_LOAD_W * 1.0 * 0.8)  # scene 3: 100 % of the load, x brightness
    assert (regs[5], regs[6]) == (0, 0)
    status, _, err = await mbpoll(port, "-a", "1", "-0", "-t", "4", "-r", "0", values=("16",))
    assert status != 0
    assert "Illegal data value" in err
    status, _, err = await mbpoll(port, "-a", "2", "-0", "-t", "3", "-r", "0", "-c", "1", "-1")
    assert status != 0
    assert "Target device failed to respond" in err

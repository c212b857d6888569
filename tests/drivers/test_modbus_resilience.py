"""The Modbus driver when gateways misbehave: one hangs (accepts TCP, never answers) next to healthy
ones, one is powered off and back on mid-run, one answers frames pymodbus cannot decode."""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

import pytest

from lightctl.clock import SystemClock
from lightctl.config.loader import load
from lightctl.config.settings import Modbus
from lightctl.drivers.modbus import ModbusDriver
from lightctl.drivers.sink import CollectingSink
from lightctl.model import DesiredState
from tests.drivers.test_modbus import start_rig, wait_for
from tests.reliability.wire import Reply, ScriptedGateway, mbap, valid_answer
from tests.servers import HOST

REPO = Path(__file__).resolve().parents[2]

POLL_S = 0.5


async def test_a_hung_gateway_does_not_slow_the_others() -> None:
    settings = Modbus(poll_interval_s=POLL_S, timeout_s=0.5, failed_polls_for_comm_loss=3)
    # gw-b hangs mid-run; gw-d never answered at all.
    rig = await start_rig(
        gateways=("gw-a", "gw-b", "gw-c", "gw-d"), settings=settings, before_start=lambda s: s.hang("gw-d")
    )
    try:
        await wait_for(lambda: rig.readings("gw-b-u03"), what="gw-b answering")
        rig.sim.hang("gw-b")
        hung_at = time.time()
        await wait_for(
            lambda: len(rig.events("gw-b")) == 2, within_s=15, what="the hung gateway marked offline"
        )
        (up, _), (down, reason) = rig.events("gw-b")
        assert (up, down) == (True, False)
        assert "no answer" in reason
        for unit in ("gw-b-u01", "gw-b-u02", "gw-b-u03"):
            assert [online for online, _ in rig.events(unit)] == [True, False]
        assert not [r for r in rig.sink.items if r.device.startswith("gw-b") and r.received > hung_at + 0.1]
        assert not [r for r in rig.sink.items if r.device.startswith("gw-d")]
        await wait_for(lambda: rig.events("gw-d"), within_s=15, what="the never-answering gateway offline")
        assert [online for online, _ in rig.events("gw-d")] == [False]
        assert all([o for o, _ in rig.events(f"gw-d-u0{u}")] == [False] for u in (1, 2, 3))
        # Commands to a healthy gateway go through meanwhile.
        assert (await rig.driver.apply("gw-c-u02", DesiredState(on=True, level=50))).ok
        by_device: dict[str, list[float]] = defaultdict(list)
        for reading in rig.sink.items:
            by_device[reading.device].append(reading.ts)
        for gw in ("gw-a", "gw-c"):  # polled on time all along
            intervals = [
                b - a
                for d in (f"{gw}-u01", f"{gw}-u03")
                for a, b in zip(by_device[d], by_device[d][1:], strict=False)
            ]
            assert len(intervals) >= 8
            assert statistics.median(intervals) <= 1.1 * POLL_S, intervals
            assert max(intervals) <= 1.5 * POLL_S, intervals
        status = {s.gateway_id: s for s in rig.driver.gateway_status()}
        assert status["gw-b"].online is False
        assert status["gw-b"].units_online == 0
        assert status["gw-a"].online
        assert status["gw-a"].units_online == 3
        assert status["gw-a"].cycle_interval_s is not None
        assert status["gw-a"].cycle_interval_s <= 1.5 * POLL_S
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


async def test_a_restarted_gateway_is_reconnected_and_polled_again() -> None:
    settings = Modbus(poll_interval_s=0.3, timeout_s=0.5, failed_polls_for_comm_loss=3)
    rig = await start_rig(settings=settings)
    try:
        await wait_for(lambda: len(rig.readings("gw-a-u01")) >= 2, what="polling")
        assert (await rig.driver.apply("gw-a-u02", DesiredState(k1=True))).ok
        await rig.sim.stop_gateway("gw-a")
        await wait_for(lambda: [o for o, _ in rig.events("gw-a")] == [True, False], what="gateway offline")
        down_at = time.time()
        assert all(rig.events(f"gw-a-u0{u}")[-1][0] is False for u in (1, 2, 3))
        assert "cannot connect" in rig.events("gw-a")[-1][1]
        result = await rig.driver.apply("gw-a-u03", DesiredState(k1=True))
        assert not result.ok
        assert "cannot connect" in result.detail
        await rig.sim.start_gateway("gw-a")
        await wait_for(lambda: rig.last("gw-a-u01", down_at), within_s=15, what="polling after the restart")
        await wait_for(
            lambda: [o for o, _ in rig.events("gw-a")] == [True, False, True], what="gateway online"
        )
        await wait_for(lambda: rig.last("gw-a-u02", down_at), what="group 2 polled again")
        assert rig.last("gw-a-u02", down_at).values["k1"] == 1  # type: ignore[union-attr]  # kept its state
        assert (await rig.driver.apply("gw-a-u03", DesiredState(k1=True))).ok
        seqs = [r.seq for r in rig.readings("gw-a-u01")]
        assert seqs == list(range(len(seqs)))
        status = {s.gateway_id: s for s in rig.driver.gateway_status()}["gw-a"]
        assert status.reconnects >= 1
        assert status.connected
        assert status.units_online == 3
    finally:
        await rig.driver.stop()
        await rig.sim.stop()


async def test_undecodable_answers_are_one_warning_and_a_count_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    district = load(REPO / "config.yaml")
    answered = 0

    def respond(request: bytes) -> Reply:
        nonlocal answered
        answered += 1
        if answered <= 3:  # function code 0x55 does not exist: pymodbus raises while decoding
            return Reply(mbap(request, bytes([0x55, 0x00])))
        return Reply(valid_answer(request))

    server = ScriptedGateway(respond).start()
    gw = district.gateways["zhg-01"]
    gateway = dataclasses.replace(gw, host=HOST, port=server.port, units=gw.units[:1])
    devices = {d: district.devices[d] for d in gateway.units}
    sink = CollectingSink()
    driver = ModbusDriver(
        Modbus(poll_interval_s=0.05, timeout_s=0.25, failed_polls_for_comm_loss=100),
        [gateway], devices, district.profiles, sink, SystemClock(),
    )  # fmt: skip
    caplog.set_level(logging.WARNING)
    await driver.start()
    try:
        await wait_for(
            lambda: driver.drops.by_reason["undecodable_frame"] == 3 and sink.items,
            what="three undecodable answers, then readings",
        )
    finally:
        await driver.stop()
        server.stop()
    # pymodbus' own debug-style lines (hex dumps) are its business; the loop's "Fatal error" with
    # a traceback was ours to catch.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and not r.name.startswith("pymodbus")]
    assert not errors, [r.getMessage()[:200] for r in errors]
    said = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(said) == 1, said  # at most one line a minute per gateway
    assert said[0].startswith("gateway zhg-01: 1 undecodable answer(s)")

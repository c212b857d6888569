"""Fault injection in the Modbus simulators: each fault shows on the wire as devices.md says it would,
clears again, and is recorded as ground truth; the textual spec parses and schedules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient

from lightctl.clock import ManualClock
from lightctl.sim.group_model import GroupTruth
from lightctl.sim.modbus_faults import FaultSpec, parse_fault_spec
from lightctl.sim.modbus_sim import ModbusSim
from tests.sim.test_modbus_sim import (
    FACADE_LOAD_W,
    K1_W,
    K2_W,
    START,
    connect,
    exc_code,
    inputs,
    make_sim,
    s16,
)

DOOR, BREAKER, SUPPLY_LOST, OVER_TEMP, K1_FB, K2_FB = (1 << b for b in range(6))


Rig = tuple[ManualClock, ModbusSim, AsyncModbusTcpClient, AsyncModbusTcpClient]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock(START)
    sim = make_sim(clock, gateways=("gw-a", "gw-b"))
    await sim.start()
    gw, fa = await connect(sim.port_of("gw-a")), await connect(sim.port_of("fa"))
    for unit in (1, 2, 3):
        await gw.write_coils(0, [True, True], device_id=unit)
    clock.advance(0.25)
    yield clock, sim, gw, fa
    gw.close()
    fa.close()
    await sim.stop()


async def test_supply_loss_keeps_answering_with_no_voltage_current_or_feedback(rig: Rig) -> None:
    clock, sim, gw, _ = rig
    sim.inject("gw-a-u01", "supply_loss")
    regs = await inputs(gw, 1)
    assert regs[0] < 50 * 10  # voltage ~0 (< 50 V is supply loss for the detectors)
    assert regs[1:5] == [0, 0, 0, 0]
    assert regs[8] & (SUPPLY_LOST | K1_FB | K2_FB) == SUPPLY_LOST  # contactors drop out
    assert (await gw.read_coils(0, count=2, device_id=1)).bits[:2] == [True, True]  # coils unchanged
    sim.clear("gw-a-u01", "supply_loss")
    clock.advance(0.25)
    regs = await inputs(gw, 1)
    assert regs[0] == 2200
    assert regs[8] == K1_FB | K2_FB


async def test_breaker_trip_keeps_voltage_and_drops_currents_and_feedback(rig: Rig) -> None:
    _, sim, gw, _ = rig
    sim.inject("gw-a-u02", "breaker_tripped")
    regs = await inputs(gw, 2)
    assert regs[0] == 2200  # the breaker sits after the voltage measurement
    assert regs[1:4] == [0, 0, 0]
    assert regs[8] == BREAKER


async def test_cable_theft_cuts_every_group_of_the_gateway_only(rig: Rig) -> None:
    _, sim, gw, _ = rig
    sim.inject("gw-a", "cable_theft")
    for unit in (1, 2, 3):
        assert (await inputs(gw, unit))[8] & SUPPLY_LOST
    other = await connect(sim.port_of("gw-b"))
    assert (await inputs(other, 1))[8] & SUPPLY_LOST == 0
    other.close()
    assert {r.fault for r in sim.active_faults()} == {"cable_theft"}


async def test_circuit_lamp_failure_draws_nothing_on_that_circuit(rig: Rig) -> None:
    _, sim, gw, _ = rig
    sim.inject("gw-a-u01", "lamp_failure", circuit="k2")
    regs = await inputs(gw, 1)
    assert regs[1] > 0
    assert regs[2] == 0
    assert regs[3] == round(K1_W * 10)
    assert regs[8] == K1_FB | K2_FB  # the contactor is closed; only the lamps are dark


async def test_stuck_contactors_ignore_the_coil(rig: Rig) -> None:
    clock, sim, gw, _ = rig
    sim.inject("gw-a-u01", "contactor_stuck", mode="k1_closed")
    sim.inject("gw-a-u02", "contactor_stuck", mode="k2_open")
    await gw.write_coils(0, [False, False], device_id=1)
    clock.advance(1.0)
    regs = await inputs(gw, 1)
    assert regs[8] == K1_FB
    assert regs[3] == round(K1_W * 10)
    regs = await inputs(gw, 2)
    assert regs[8] == K1_FB
    assert regs[3] == round(K1_W * 10)
    truth = sim.truth("gw-a-u02")
    assert isinstance(truth, GroupTruth)
    assert truth.coil_k2
    assert not truth.feedback_k2


async def test_a_bypassed_contactor_lights_its_circuit_with_coil_and_feedback_off(rig: Rig) -> None:
    clock, sim, gw, _ = rig
    sim.inject("gw-a-u01", "contactor_bypass", circuit="k2")
    await gw.write_coils(0, [False, False], device_id=1)
    clock.advance(1.0)
    regs = await inputs(gw, 1)
    assert regs[8] & (K1_FB | K2_FB) == 0  # the contactors opened as told
    assert regs[1] == 0
    assert regs[2] > 0  # ...but K2's lamps burn through the jumper
    assert regs[3] == round(K2_W * 10)
    sim.clear("gw-a-u01", "contactor_bypass")
    assert (await inputs(gw, 1))[3] == 0


async def test_an_extra_load_draws_more_on_every_lit_circuit(rig: Rig) -> None:
    clock, sim, gw, _ = rig
    sim.inject("gw-a-u02", "extra_load", share=0.4)
    regs = await inputs(gw, 2)
    assert regs[3] == round((K1_W + K2_W) * 1.4 * 10)
    assert regs[8] & (K1_FB | K2_FB) == K1_FB | K2_FB
    await gw.write_coils(0, [True, False], device_id=2)
    clock.advance(1.0)
    assert (await inputs(gw, 2))[3] == round(K1_W * 1.4 * 10)
    sim.clear("gw-a-u02", "extra_load")
    assert (await inputs(gw, 2))[3] == round(K1_W * 10)


async def test_door_leakage_and_temperature_faults(rig: Rig) -> None:
    _, sim, gw, _ = rig
    sim.inject("gw-a-u03", "door_open")
    sim.inject("gw-a-u03", "leakage", ma=45)
    sim.inject("gw-a-u02", "over_temperature")
    regs = await inputs(gw, 3)
    assert regs[8] & DOOR
    assert regs[7] == 45
    regs = await inputs(gw, 2)
    assert regs[8] & OVER_TEMP
    assert s16(regs[9]) >= 750
    sim.clear("gw-a-u02")
    regs = await inputs(gw, 2)
    assert not regs[8] & OVER_TEMP
    assert s16(regs[9]) < 750


async def test_facade_channel_and_controller_faults(rig: Rig) -> None:
    clock, sim, _, fa = rig
    await fa.write_registers(0, [3, 100], device_id=1)
    clock.advance(1.6)
    sim.inject("fa", "channel_fault", n=2)
    regs = (await fa.read_input_registers(0, count=7, device_id=1)).registers
    assert regs[2] == round(FACADE_LOAD_W * 6 / 8)  # each failed channel removes 1/8 of the load
    assert regs[5] == 0b010
    assert regs[6] == 2
    sim.inject("fa", "controller_fault")
    sim.inject("fa", "door_open")
    await fa.write_register(0, 1, device_id=1)
    clock.advance(3.0)
    regs = (await fa.read_input_registers(0, count=7, device_id=1)).registers
    assert regs[0] == 3  # a faulty controller no longer follows scene writes
    assert regs[5] == 0b111
    sim.clear("fa", "controller_fault")
    clock.advance(1.6)
    assert (await fa.read_input_registers(0, count=1, device_id=1)).registers == [1]


async def test_faults_are_recorded_as_ground_truth_with_their_times(rig: Rig) -> None:
    clock, sim, _, _ = rig
    sim.inject("gw-a-u01", "door_open")
    clock.advance(60)
    sim.clear("gw-a-u01", "door_open")
    record = next(r for r in sim.fault_log if r.fault == "door_open")
    assert (record.target, record.end - record.start if record.end else None) == ("gw-a-u01", 60)
    assert sim.active_faults() == []


def test_spec_parses_items_with_parameters_and_times() -> None:
    specs = parse_fault_spec(
        "lamp_failure:gw-a-u01;circuit=k2, cable_theft:gw-a@+30m~10m,temperature:gw-a-u02;c=-15,"
        "door_open:fa@2026-01-05T19:00:00+08:00"
    )
    assert specs == [
        FaultSpec("lamp_failure", "gw-a-u01", (("circuit", "k2"),)),
        FaultSpec("cable_theft", "gw-a", after_s=1800.0, duration_s=600.0),
        FaultSpec("temperature", "gw-a-u02", (("c", -15.0),)),
        FaultSpec("door_open", "fa", at=1767610800.0),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lamp_failure", "expected FAULT:TARGET"),
        ("melted:gw-a-u01", "unknown fault 'melted'"),
        ("lamp_failure:gw-a-u01;circuit=k3", "circuit must be"),
        ("lamp_failure:gw-a-u01;ma=3", "parameter of lamp_failure: circuit"),
        ("door_open:gw-a-u01;n=1", "parameter of door_open: none"),
        ("door_open:gw-a-u01@+5x", "bad duration"),
    ],
)
def test_spec_errors_name_the_item(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_fault_spec(f"door_open:fa, {spec}")
    assert repr(spec) in str(err.value)


async def test_spec_targets_and_kinds_are_checked_before_anything_is_injected(rig: Rig) -> None:
    _, sim, _, _ = rig
    with pytest.raises(ValueError, match="unknown target 'nowhere'"):
        sim.apply_spec("door_open:gw-a-u01, door_open:nowhere")
    with pytest.raises(ValueError, match="applies to facade"):
        sim.apply_spec("channel_fault:gw-a-u01;n=2")
    with pytest.raises(ValueError, match="takes ma"):
        sim.inject("gw-a-u01", "leakage", mA=3)
    assert sim.active_faults() == []


async def test_timed_spec_items_start_and_end_on_the_clock(rig: Rig) -> None:
    clock, sim, gw, _ = rig
    sim.apply_spec("no_response:gw-a-u03@+10~5")
    await _settle()
    assert exc_code(await gw.read_input_registers(0, count=1, device_id=3)) is None
    clock.advance(10)
    await _settle()
    assert exc_code(await gw.read_input_registers(0, count=1, device_id=3)) == 11
    clock.advance(5)
    await _settle()
    assert exc_code(await gw.read_input_registers(0, count=1, device_id=3)) is None
    (record,) = sim.fault_log
    assert (record.start, record.end) == (START + 0.25 + 10, START + 0.25 + 15)


async def _settle() -> None:
    """Let the scheduled fault tasks run after the manual clock moved."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_combined_spec_is_split_between_the_simulators(rig: Rig) -> None:
    _, sim, gw, _ = rig
    rest = sim.claim_spec(
        "lamp_failure:ha-003, no_response:gw-a-u03, relay_stuck_off:zs-010@+600;x=1,door_open:fa~5m"
    )
    assert rest == "lamp_failure:ha-003,relay_stuck_off:zs-010@+600;x=1"
    assert exc_code(await gw.read_input_registers(0, count=1, device_id=3)) == 11
    assert {(r.target, r.fault) for r in sim.active_faults()} == {
        ("gw-a-u03", "no_response"),
        ("fa", "door_open"),
    }

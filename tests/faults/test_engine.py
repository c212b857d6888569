"""The engine end to end on a small district: readings in, alarms and events out, on a manual clock."""

from __future__ import annotations

import asyncio
import time

from lightctl.config.loader import District
from lightctl.faults.engine import FaultEngine
from lightctl.faults.lifecycle import AlarmManager
from lightctl.model import AlarmState, DesiredState, Severity

from .conftest import BEHIND, DIRECT, UNITS
from .harness import Harness


async def test_a_lamp_failure_becomes_one_notified_alarm(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    for _ in range(5):
        h.healthy_round(skip={"ha-002"})
        h.engine.readings([h.lamp("ha-002", power=0.5)])
        h.advance(60)
    await h.settle()
    assert {a.type for a in h.alarms()} == {"lamp_failure"}
    alarms = h.alarms("lamp_failure")
    assert len(alarms) == 1
    assert (alarms[0].device, alarms[0].severity, alarms[0].state) == (
        "ha-002",
        Severity.MAJOR,
        AlarmState.OPEN,
    )
    assert alarms[0].last_seen > alarms[0].first_seen  # seen again, not raised again
    assert [a.id for a in h.rec.notified()] == [alarms[0].id]
    assert h.manager.open_count("ha-002") == 1


async def test_comm_loss_after_three_report_intervals(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    h.healthy_round()
    silent_from = h.now
    for _ in range(2):
        h.advance(60)
        h.healthy_round(skip={"ha-003"})
    h.advance(59)
    h.healthy_round(skip={"ha-003"})
    await h.settle()
    assert h.alarms("comm_loss") == []  # 179 s
    h.advance(1.0)  # 3 x 60 s since its last report, on the 1 s tick
    await h.settle()
    lost = h.alarms("comm_loss")
    assert [a.device for a in lost] == ["ha-003"]
    assert lost[0].first_seen - silent_from <= 180 + 1
    h.advance(1)
    h.healthy_round(skip={"ha-003"})  # the broker connection is alive: ha-003 is lost on its own
    await h.settle()
    assert [a.device for a in h.rec.notified()] == ["ha-003"]
    for _ in range(6):
        h.healthy_round()  # ha-003 is back
        h.advance(60)
    await h.settle()
    assert h.alarms("comm_loss")[0].state is AlarmState.RESOLVED


async def test_a_silent_concentrator_is_one_alarm_with_its_lamps_as_children(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    h.healthy_round()
    for _ in range(5):
        h.advance(60)
        h.healthy_round(skip=set(BEHIND))  # the concentrator hangs: nothing of its lamps arrives
    await h.settle()
    conc = [a for a in h.alarms("comm_loss") if a.device == "hcx-plc-1"]
    lamps = [a for a in h.alarms("comm_loss") if a.device in BEHIND]
    assert len(conc) == 1
    assert len(lamps) == len(BEHIND)
    assert {a.parent for a in lamps} == {conc[0].id}
    assert [a.device for a in h.rec.notified()] == ["hcx-plc-1"]


async def test_a_gateway_down_is_one_alarm_with_its_units_as_children(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    h.healthy_round()
    # the driver gives up on the units one by one, then on the gateway
    for unit in UNITS:
        h.advance(1)
        h.engine.availability(unit, False, h.now, "3 polls failed: timeout")
    h.engine.availability("zhg-01", False, h.now, "no unit answered in 3 polls")
    h.advance(120)
    await h.settle()
    gw = [a for a in h.alarms("comm_loss") if a.device == "zhg-01"]
    units = [a for a in h.alarms("comm_loss") if a.device in UNITS]
    assert len(gw) == 1
    assert len(units) == len(UNITS)
    assert {a.parent for a in units} == {gw[0].id}
    assert [a.device for a in h.rec.notified()] == ["zhg-01"]
    # no lamp_failure or anything else for the dark units
    assert {a.type for a in h.alarms()} == {"comm_loss"}


async def test_one_unit_not_answering_is_its_own_alarm(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    h.healthy_round()
    h.advance(30)
    h.engine.availability("zhg-01-u03", False, h.now, "3 polls failed: exception 11")
    await h.settle()
    assert h.rec.notified() == []  # waits for the gateway's fate
    h.advance(1)
    h.healthy_round(skip={"zhg-01-u03"})  # its siblings answer: the gateway is fine
    await h.settle()
    assert [(a.type, a.device, a.parent) for a in h.rec.notified()] == [("comm_loss", "zhg-01-u03", None)]


async def test_broker_outage_is_comm_loss_not_lamp_failures(district: District) -> None:
    h = Harness(district)
    h.desire_all(lamps=DesiredState(on=False), at=h.now - 7200)
    h.healthy_round()
    h.engine.broker_down(h.now + 1)
    # sunset during the outage: the scheduler keeps computing, the lamps never get their command
    for dev in DIRECT + BEHIND:
        h.engine.set_desired(dev, DesiredState(on=True, level=100), h.now + 60)
    h.advance(600)
    await h.settle()
    bridge = [a for a in h.alarms("comm_loss") if a.device == "bridge"]
    assert len(bridge) == 1
    children = [a for a in h.alarms("comm_loss") if a.device != "bridge"]
    assert {a.device for a in children} >= set(DIRECT) | {"hcx-plc-1"}
    assert all(a.parent is not None for a in children)
    assert [a.device for a in h.rec.notified()] == ["bridge"]
    # the broker is back; the lamps report, still dark (commands sent while they were away are lost)
    h.engine.broker_up(h.now)
    for _ in range(8):
        h.engine.readings([h.lamp(d, on=False) for d in DIRECT + BEHIND])
        h.advance(60)
    await h.settle()
    assert {a.type for a in h.alarms()} == {"comm_loss"}
    assert all(a.state is AlarmState.RESOLVED for a in h.alarms())


async def test_restart_reloads_open_alarms_and_raises_nothing_twice(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    h.healthy_round()
    for _ in range(3):
        h.advance(60)
        h.engine.readings([h.lamp("ha-001", power=0.5)])
        h.healthy_round(skip={"ha-001", "ha-004"})
    await h.settle()
    assert sorted(a.type for a in h.alarms()) == ["comm_loss", "lamp_failure"]
    # a new process on the same store
    h2 = Harness(district, store=h.store, start=h.now + 5)
    assert await h2.engine.start() == 2
    h2.desire_all()
    for _ in range(6):
        h2.engine.readings([h2.lamp("ha-001", power=0.5)])
        h2.healthy_round(skip={"ha-001", "ha-004"})
        h2.advance(60)
    await h2.settle()
    assert sorted(a.type for a in h2.alarms()) == ["comm_loss", "lamp_failure"]
    assert h2.rec.notified() == []
    assert h2.manager.open_count("ha-001") == 1
    # and the restored lamp failure clears like any other
    for _ in range(2):
        h2.engine.readings([h2.lamp("ha-001")])
        h2.advance(60)
    h2.advance(300)
    await h2.settle()
    assert h2.alarms("lamp_failure")[0].state is AlarmState.RESOLVED
    assert h.store.rows[h2.alarms("lamp_failure")[0].id or 0].resolution == "auto"


async def test_alarms_in_maintenance_are_held_then_released_if_still_there(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    h.engine.set_maintenance({"ha-001", "ha-002"})
    for _ in range(3):
        h.healthy_round(skip={"ha-001", "ha-002"})
        h.engine.readings([h.lamp("ha-001", power=0.5), h.lamp("ha-002", flags=frozenset({"tilt"}))])
        h.advance(60)
    await h.settle()
    assert {(a.device, a.held) for a in h.alarms()} == {("ha-001", True), ("ha-002", True)}
    assert h.rec.notified() == []
    # the tilt is fixed during the work; the lamp failure is not
    for _ in range(2):
        h.healthy_round(skip={"ha-001", "ha-002"})
        h.engine.readings([h.lamp("ha-002"), h.lamp("ha-001", power=0.5)])
        h.advance(60)
    h.engine.set_maintenance(())
    h.advance(1)
    await h.settle()
    assert [(a.type, a.device, a.held) for a in h.rec.notified()] == [("lamp_failure", "ha-001", False)]


async def test_a_door_open_at_night_is_critical_and_one_by_day_escalates_at_dusk(district: District) -> None:
    night = {"on": False}
    h = Harness(district, is_night=lambda ts: night["on"])
    h.desire_all()
    h.engine.readings([h.group("zhg-01-u01", flags=frozenset({"door_open"}))])
    await h.settle()
    assert h.alarms("door_open")[0].severity is Severity.MAJOR
    night["on"] = True
    h.advance(1)
    await h.settle()
    assert h.alarms("door_open")[0].severity is Severity.CRITICAL
    assert [e.kind for e in h.rec.events if e.notify] == ["raised", "escalated"]
    h.engine.readings([h.group("zhg-01-u02", flags=frozenset({"door_open"}))])
    await h.settle()
    assert {a.device: a.severity for a in h.alarms("door_open")}["zhg-01-u02"] is Severity.CRITICAL


async def test_manual_resolve_then_the_fault_persisting_raises_a_new_alarm(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    for _ in range(2):
        h.engine.readings([h.lamp("ha-001", power=0.5)])
        h.advance(60)
    await h.settle()
    first = h.alarms("lamp_failure")[0]
    await h.manager.resolve(first.id or 0, "wang", "replaced the driver")
    h.engine.readings([h.lamp("ha-001", power=0.5)])  # one report: the rule starts from scratch
    await h.settle()
    assert len(h.alarms("lamp_failure")) == 1
    h.advance(60)
    h.engine.readings([h.lamp("ha-001", power=0.5)])
    await h.settle()
    assert len(h.alarms("lamp_failure")) == 2
    assert h.store.rows[first.id or 0].resolution == "manual"


async def test_fault_to_alarm_latency_with_the_writer_running(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    writer = asyncio.create_task(h.manager.run())
    try:
        latencies = []
        for unit in UNITS:
            h.engine.readings([h.group(unit, i2=0.0)])
        h.advance(30)
        for unit in UNITS:
            started = time.perf_counter()
            seen = len(h.rec.of("raised"))
            h.engine.readings([h.group(unit, i2=0.0)])  # the second report completes the condition
            while len(h.rec.of("raised")) == seen:
                await asyncio.sleep(0.001)
                assert time.perf_counter() - started < 5
            latencies.append(time.perf_counter() - started)
        assert max(latencies) < 1.0
    finally:
        writer.cancel()


async def test_unknown_devices_are_counted_not_fatal(district: District) -> None:
    h = Harness(district)
    reading = h.lamp("ha-001")
    h.engine.readings([type(reading)("no-such-lamp", h.now, None, {"power": 1.0})])
    h.engine.availability("no-such-gateway", False, h.now, "?")
    assert h.engine.stats["unknown_device"] == 1
    assert h.engine.stats["unknown_availability"] == 1


def test_engine_builds_for_the_whole_district(full_district: District) -> None:
    h = Harness(full_district)
    assert isinstance(h.engine, FaultEngine)
    assert isinstance(h.manager, AlarmManager)
    ctx = h.engine.context("hcx-001")
    assert ctx is not None
    assert ctx.parent == "hcx-plc-1"
    assert ctx.interval_s == 60
    assert h.engine.context("zhg-09-u25") is not None


async def test_an_odd_reading_is_counted_and_the_batch_goes_on(district: District) -> None:
    h = Harness(district)
    h.desire_all()
    bad = h.lamp("ha-001")
    bad.values["power"] = "lots"  # type: ignore[assignment]  # a driver bug, not a float
    h.engine.readings([bad, h.lamp("ha-002", flags=frozenset({"tilt"}))])
    await h.settle()
    assert h.engine.stats["reading_errors"] == 1
    assert [a.device for a in h.alarms("pole_tilt")] == ["ha-002"]


def test_night_by_the_sun_at_the_site(full_district: District) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from lightctl.faults.night import night_by_sun
    from lightctl.schedule.sun import SunClock

    site = full_district.settings.site
    is_night = night_by_sun(SunClock(site.lat, site.lon, site.timezone))
    tz = ZoneInfo(site.timezone)

    def at(day: int, hour: int) -> float:
        return dt.datetime(2025, 11, day, hour, tzinfo=tz).timestamp()

    assert not is_night(at(26, 12))
    assert not is_night(at(26, 16))  # sunset in Nanchang in late November is about 17:20
    assert is_night(at(26, 22))
    assert is_night(at(27, 3))
    assert not is_night(at(27, 9))


async def test_a_unit_still_lost_after_its_gateway_came_back_becomes_its_own_alarm(
    district: District,
) -> None:
    h = Harness(district)
    h.desire_all()
    h.healthy_round()
    for unit in UNITS:
        h.engine.availability(unit, False, h.now, "3 polls failed: timeout")
    h.engine.availability("zhg-01", False, h.now, "no unit answered in 3 polls")
    h.advance(60)
    # the gateway answers again; all units but one come back
    h.engine.availability("zhg-01", True, h.now, "answering")
    for unit in UNITS[:-1]:
        h.engine.availability(unit, True, h.now, "answering")
    for _ in range(4):
        h.engine.readings([h.group(u) for u in UNITS[:-1]])
        h.healthy_round(skip=set(UNITS))
        h.advance(30)
    await h.settle()
    assert [(a.device, a.parent) for a in h.rec.notified()] == [("zhg-01", None), (UNITS[-1], None)]
    last = next(a for a in h.alarms("comm_loss") if a.device == UNITS[-1])
    assert last.state is AlarmState.OPEN
    assert last.parent is None

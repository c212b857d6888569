"""Alarm episodes: once per episode, flapping held off, open -> acked -> resolved, overdue."""

from __future__ import annotations

import pytest

from lightctl.clock import ManualClock
from lightctl.faults.lifecycle import AlarmConflict, AlarmManager, AlarmNotFound
from lightctl.faults.store import MemoryAlarmStore
from lightctl.model import AlarmState, Severity
from lightctl.store.state import AlarmFilter

from .factory import T0
from .harness import Recorder

HOLDOFF = 300.0


def make(
    store: MemoryAlarmStore | None = None, start: float = T0
) -> tuple[AlarmManager, MemoryAlarmStore, Recorder, ManualClock]:
    clock = ManualClock(start)
    rec = Recorder()
    st = store or MemoryAlarmStore()
    return AlarmManager(st, clock, events=rec), st, rec, clock


async def test_a_condition_that_flaps_within_the_hold_off_is_one_alarm() -> None:
    m, store, rec, clock = make()
    m.activate("lamp_failure", "ha-001", T0, "dark")
    for n in range(5):
        m.deactivate("lamp_failure", "ha-001", T0 + 60 + n * 120, HOLDOFF)
        clock.set(T0 + 100 + n * 120)
        m.tick(clock.now())
        m.activate("lamp_failure", "ha-001", T0 + 120 + n * 120, "dark again")
    await m.flush()
    assert len(store.rows) == 1
    assert len(rec.notified()) == 1
    assert store.rows[1].alarm.state is AlarmState.OPEN
    assert m.open_alarms()[0].last_seen == T0 + 120 + 4 * 120
    # last_seen reaches the store within persist_every_s, not on every report
    clock.advance(m.persist_every_s)
    m.tick(clock.now())
    await m.flush()
    assert store.rows[1].alarm.last_seen == T0 + 120 + 4 * 120


async def test_auto_resolve_after_the_hold_off_records_when_it_cleared() -> None:
    m, store, rec, clock = make()
    m.activate("voltage_high", "ha-001", T0, "250 V")
    m.deactivate("voltage_high", "ha-001", T0 + 600, HOLDOFF)
    clock.set(T0 + 600 + HOLDOFF - 1)
    m.tick(clock.now())
    await m.flush()
    assert store.rows[1].alarm.state is AlarmState.OPEN
    clock.set(T0 + 600 + HOLDOFF)
    m.tick(clock.now())
    await m.flush()
    row = store.rows[1]
    assert row.alarm.state is AlarmState.RESOLVED
    assert (row.resolved_at, row.resolution) == (T0 + 600, "auto")
    assert [e.kind for e in rec.events] == ["raised", "resolved"]
    assert m.open_count("ha-001") == 0
    # a new episode after that is a new alarm
    m.activate("voltage_high", "ha-001", T0 + 2000, "251 V")
    await m.flush()
    assert len(store.rows) == 2


async def test_ack_assign_resolve_by_a_crew() -> None:
    m, store, rec, clock = make()
    m.activate("pole_tilt", "ha-007", T0, "tilt bit")
    await m.flush()
    acked = await m.ack(1, "wang", "on my way")
    assert (acked.state, acked.note) == (AlarmState.ACKED, "on my way")
    assigned = await m.assign(1, "wang", "crew-3")
    assert assigned.assignee == "crew-3"
    assert assigned.state is AlarmState.ACKED
    clock.advance(1800)
    done = await m.resolve(1, "li", "pole replaced")
    assert (done.state, done.note) == (AlarmState.RESOLVED, "pole replaced")
    row = store.rows[1]
    assert row.resolution == "manual"
    assert row.resolved_at == T0 + 1800
    assert [(t[1], t[2], t[3]) for t in row.transitions] == [
        (None, AlarmState.OPEN, ""),
        (AlarmState.OPEN, AlarmState.ACKED, "wang"),
        (AlarmState.ACKED, AlarmState.RESOLVED, "li"),
    ]
    with pytest.raises(AlarmConflict):
        await m.ack(1, "wang")
    with pytest.raises(AlarmConflict):
        await m.resolve(1, "wang")
    with pytest.raises(AlarmNotFound):
        await m.ack(99, "wang")
    assert [e.kind for e in rec.events] == ["raised", "acked", "assigned", "resolved"]
    assert [e.notify for e in rec.events] == [True, False, False, True]


async def test_resolving_a_parent_resolves_its_children() -> None:
    m, store, _, _ = make()
    parent = m.activate("cable_theft_suspected", "zhg-01", T0, "3 groups")
    for n in range(3):
        m.activate("supply_loss", f"zhg-01-u0{n + 1}", T0, "lost", parent=parent)
    await m.flush()
    await m.resolve(parent.alarm.id or 0, "zhang", "cable replaced")
    assert all(r.alarm.state is AlarmState.RESOLVED for r in store.rows.values())
    assert {r.alarm.parent for r in store.rows.values() if r.alarm.type == "supply_loss"} == {1}


async def test_overdue_by_repair_hours_per_severity() -> None:
    m, store, rec, clock = make()
    m.activate("leakage", "zhg-01-u01", T0, "45 mA")  # critical: 1 h
    m.activate("dim_mismatch", "ha-001", T0, "140 %")  # minor: 72 h
    await m.flush()
    clock.set(T0 + 3600)
    m.tick(clock.now())
    assert rec.of("overdue") == []
    clock.set(T0 + 3611)  # overdue is checked every 10 s
    m.tick(clock.now())
    assert [a.type for a in rec.of("overdue")] == ["leakage"]
    leak, dim = (store.rows[1].alarm, store.rows[2].alarm)
    assert m.is_overdue(leak, clock.now())
    assert not m.is_overdue(dim, clock.now())
    clock.set(T0 + 72 * 3600 + 1)
    m.tick(clock.now())
    assert [a.type for a in rec.of("overdue")] == ["leakage", "dim_mismatch"]  # each once
    await m.resolve(1, "wang")
    assert not m.is_overdue(store.rows[1].alarm, clock.now())


async def test_configured_repair_hours() -> None:
    clock = ManualClock(T0)
    m = AlarmManager(MemoryAlarmStore(), clock, repair_hours={"critical": 0.5, "major": 4, "minor": 8})
    m.activate("comm_loss", "ha-001", T0, "silent")
    await m.flush()
    alarm = m.open_alarms()[0]
    assert m.due_at(alarm) == T0 + 4 * 3600
    assert m.is_overdue(alarm, T0 + 4 * 3600 + 1)


async def test_external_raise_and_clear() -> None:
    m, store, _rec, _ = make()
    m.raise_alarm("command_failed", "ha-003", T0, "no acknowledgement after 3 retries")
    m.raise_alarm("command_failed", "ha-003", T0 + 30, "again")
    await m.flush()
    assert len(store.rows) == 1
    assert m.open_alarms()[0].detail == "again"
    m.clear_alarm("command_failed", "ha-003", T0 + 60)
    await m.flush()
    assert store.rows[1].alarm.state is AlarmState.RESOLVED
    assert store.rows[1].resolved_at == T0 + 60
    with pytest.raises(ValueError, match="unknown alarm type"):
        m.raise_alarm("coffee_cold", "ha-003", T0)


async def test_load_brings_back_open_alarms_with_their_parents() -> None:
    m, store, _, _ = make()
    parent = m.activate("comm_loss", "zhg-01", T0, "gateway offline")
    m.activate("comm_loss", "zhg-01-u01", T0, "offline", parent=parent)
    m.activate("door_open", "zhg-01-u02", T0, "door")
    m.deactivate("door_open", "zhg-01-u02", T0 + 10, 0)
    await m.flush()
    m2, _, rec2, _ = make(store, start=T0 + 100)
    loaded = await m2.load()
    assert sorted(a.device for a in loaded) == ["zhg-01", "zhg-01-u01"]
    child = m2.episode("comm_loss", "zhg-01-u01")
    assert child is not None
    assert child.parent is m2.episode("comm_loss", "zhg-01")
    assert m2.open_count("zhg-01-u01") == 1
    assert m2.open_count("zhg-01-u02") == 0
    m2.activate("comm_loss", "zhg-01", T0 + 100, "still offline")
    await m2.flush()
    assert len(store.rows) == 3
    assert rec2.notified() == []


async def test_deferred_notification_is_sent_on_release_only_once() -> None:
    m, _, rec, _ = make()
    ep = m.activate("supply_loss", "zhg-01-u01", T0, "lost", defer=True)
    await m.flush()
    assert rec.notified() == []
    assert len(rec.of("raised")) == 1
    m.release(ep)
    m.release(ep)
    await m.flush()
    assert len(rec.notified()) == 1


async def test_list_and_filter_through_the_store() -> None:
    m, _, _, _ = make()
    m.activate("lamp_failure", "ha-001", T0, "dark")
    m.activate("leakage", "zhg-01-u01", T0 + 1, "45 mA")
    items, total = await m.list_alarms(AlarmFilter(severity=Severity.CRITICAL))
    assert total == 1
    assert items[0].type == "leakage"
    items, total = await m.list_alarms()
    assert [a.type for a in items] == ["leakage", "lamp_failure"]  # newest first

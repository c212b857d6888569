"""The state database on SQLite: alarms and their history, overrides, maintenance, audit, commands,
device state; everything survives closing and reopening the file."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightctl.model import (
    Alarm,
    AlarmState,
    Command,
    DesiredState,
    Maintenance,
    Override,
    Reading,
    Severity,
)
from lightctl.store.state import AlarmFilter, AuditEntry, CommandLogEntry, DeviceSnapshot
from lightctl.store.state_sqlite import SqliteStateDB

T0 = 1_767_261_600.0
DAY = 86400.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteStateDB]:
    store = await SqliteStateDB.open(tmp_path / "state.db", audit_retention_days=180)
    yield store
    await store.close()


def alarm(
    device: str, type_: str = "lamp_failure", first: float = T0, severity: Severity = Severity.MAJOR
) -> Alarm:
    return Alarm(None, type_, severity, device, AlarmState.OPEN, first, first)


async def test_alarm_lifecycle_is_recorded_with_its_transitions(db: SqliteStateDB) -> None:
    raised = await db.upsert_alarm(alarm("ha-001"))
    assert raised.id is not None
    acked = await db.upsert_alarm(
        dataclasses.replace(raised, state=AlarmState.ACKED, assignee="crew-3", note="on my way"),
        actor="li.wei",
        at=T0 + 60,
    )
    resolved = await db.upsert_alarm(
        dataclasses.replace(acked, state=AlarmState.RESOLVED, note="driver replaced", last_seen=T0 + 90),
        actor="li.wei",
        at=T0 + 3600,
    )

    assert resolved == dataclasses.replace(
        raised, state=AlarmState.RESOLVED, assignee="crew-3", note="driver replaced", last_seen=T0 + 90
    )
    record = await db.alarm_record(raised.id)
    assert record is not None
    assert record.resolved_at == T0 + 3600
    assert record.resolution == "manual"
    steps = [(t.from_state, t.to_state, t.actor, t.ts) for t in record.transitions]
    assert steps == [
        (None, AlarmState.OPEN, "", T0),
        (AlarmState.OPEN, AlarmState.ACKED, "li.wei", T0 + 60),
        (AlarmState.ACKED, AlarmState.RESOLVED, "li.wei", T0 + 3600),
    ]


async def test_an_alarm_cleared_by_lightctl_is_resolved_auto(db: SqliteStateDB) -> None:
    raised = await db.upsert_alarm(alarm("gw-03", "comm_loss"))
    same = await db.upsert_alarm(dataclasses.replace(raised, last_seen=T0 + 30))  # still open: no transition
    await db.upsert_alarm(dataclasses.replace(same, state=AlarmState.RESOLVED, last_seen=T0 + 120))

    record = await db.alarm_record(raised.id or 0)
    assert record is not None
    assert (record.resolution, record.resolved_at) == ("auto", T0 + 120)
    assert len(record.transitions) == 2
    assert await db.open_alarms() == []


async def test_alarm_listing_filters_pages_and_counts(db: SqliteStateDB) -> None:
    parent = await db.upsert_alarm(alarm("gw-01", "cable_theft_suspected", T0, Severity.CRITICAL))
    for i in range(5):
        await db.upsert_alarm(
            dataclasses.replace(alarm(f"gw1-u0{i}", "supply_loss", T0 + i), parent=parent.id)
        )
    await db.upsert_alarm(alarm("ha-007", "pole_tilt", T0 + 100, Severity.CRITICAL))

    items, total = await db.list_alarms(limit=3)
    assert total == 7
    assert [a.device for a in items] == ["ha-007", "gw1-u04", "gw1-u03"]  # newest first_seen first
    page2, _ = await db.list_alarms(limit=3, offset=3)
    assert [a.device for a in page2] == ["gw1-u02", "gw1-u01", "gw1-u00"]
    critical, n = await db.list_alarms(AlarmFilter(severity=Severity.CRITICAL))
    assert n == 2
    assert {a.type for a in critical} == {"cable_theft_suspected", "pole_tilt"}
    children, n = await db.list_alarms(AlarmFilter(type="supply_loss", device="gw1-u02"))
    assert n == 1
    assert children[0].parent == parent.id
    none, n = await db.list_alarms(AlarmFilter(state=AlarmState.ACKED))
    assert (none, n) == ([], 0)
    assert len(await db.open_alarms()) == 7


async def test_updating_an_unknown_alarm_is_an_error(db: SqliteStateDB) -> None:
    with pytest.raises(KeyError):
        await db.upsert_alarm(dataclasses.replace(alarm("x"), id=999))


async def test_overrides_are_active_in_their_window_until_ended(db: SqliteStateDB) -> None:
    emergency = await db.add_override(
        Override(
            None,
            "emergency",
            ("kind:lamp",),
            DesiredState(on=True, level=100, source="emergency"),
            T0,
            T0 + DAY,
            "typhoon",
            created_by="duty-1",
            created_at=T0,
        )
    )
    scene = await db.add_override(
        Override(
            None,
            "event",
            ("zone:longcheng",),
            DesiredState(scene=3, brightness=80, source="event"),
            T0 + 3600,
            T0 + 7200,
            "lantern festival",
            event="元宵灯会",
            created_by="duty-2",
            created_at=T0 + 10,
        )
    )

    assert [o.id for o in await db.active_overrides(T0 + 10)] == [emergency.id]
    assert [o.id for o in await db.active_overrides(T0 + 3600)] == [emergency.id, scene.id]
    assert await db.active_overrides(T0 + 7200) == [emergency]
    assert scene.state == DesiredState(scene=3, brightness=80, source="event")
    assert scene.event == "元宵灯会"
    assert scene.targets == ("zone:longcheng",)

    ended = await db.end_override(emergency.id or 0, T0 + 600)
    assert ended is not None
    assert ended.ended_at == T0 + 600
    again = await db.end_override(emergency.id or 0, T0 + 900)
    assert again is not None
    assert again.ended_at == T0 + 600
    assert await db.active_overrides(T0 + 601) == []
    assert await db.end_override(12345, T0) is None
    items, total = await db.list_overrides()
    assert total == 2
    assert [o.id for o in items] == [scene.id, emergency.id]
    _, active_total = await db.list_overrides(active_at=T0 + 3700)
    assert active_total == 1


async def test_maintenance_windows(db: SqliteStateDB) -> None:
    window = await db.add_maintenance(
        Maintenance(
            None, ("gateway:gw-03", "ha-001"), T0, T0 + 4 * 3600, "试灯", created_by="crew-1", created_at=T0
        )
    )
    assert await db.active_maintenance(T0 + 1) == [window]
    assert await db.active_maintenance(T0 - 1) == []
    await db.end_maintenance(window.id or 0, T0 + 3600)
    assert await db.active_maintenance(T0 + 3601) == []
    items, total = await db.list_maintenance()
    assert total == 1
    assert items[0].ended_at == T0 + 3600


async def test_audit_is_kept_for_its_retention_and_pruned_beyond(db: SqliteStateDB) -> None:
    for age_days in (200, 181, 179, 1):
        await db.append_audit(
            AuditEntry(
                None,
                T0 - age_days * DAY,
                "duty-1",
                "operator",
                "POST /api/v1/overrides",
                f'{{"reason": "age {age_days}"}}',
                "201",
            )
        )
    assert await db.prune_audit(T0) == 2
    items, total = await db.list_audit()
    assert total == 2
    assert [e.body for e in items] == ['{"reason": "age 1"}', '{"reason": "age 179"}']
    mine, n = await db.list_audit(who="nobody")
    assert (mine, n) == ([], 0)


async def test_command_log_records_issue_then_result(db: SqliteStateDB) -> None:
    command = Command("c-1", "ha-001", DesiredState(on=True, level=60, source="plan"), T0)
    await db.log_command(CommandLogEntry(command.id, command.device, command.desired, command.issued_at))
    await db.log_command(
        CommandLogEntry(
            command.id,
            command.device,
            command.desired,
            command.issued_at,
            ok=True,
            result="acknowledged",
            confirmed_by="ack",
            latency_s=0.42,
            completed=T0 + 0.42,
        )
    )
    (entry,) = await db.list_commands("ha-001")
    assert entry.ok is True
    assert entry.latency_s == 0.42
    assert entry.desired == command.desired
    assert entry.confirmed_by == "ack"
    assert entry.completed == T0 + 0.42


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = await SqliteStateDB.open(path)
    raised = await db.upsert_alarm(alarm("ha-001"))
    await db.add_override(
        Override(None, "manual", ("ha-001",), DesiredState(on=False), T0, T0 + DAY, "works")
    )
    await db.append_audit(AuditEntry(None, T0, "admin", "admin", "POST /api/v1/reload", "{}", "200"))
    reading = Reading("ha-001", T0, 17, {"power": 60.5, "level": 60.0}, frozenset({"door_open"}), T0 + 0.1)
    await db.save_device_states(
        [DeviceSnapshot("ha-001", reading, True, T0), DeviceSnapshot("ha-002", None, False, T0)]
    )
    await db.save_device_states([DeviceSnapshot("ha-001", None, False, T0 + 5)])  # went offline
    await db.close()

    reopened = await SqliteStateDB.open(path)
    try:
        assert await reopened.get_alarm(raised.id or 0) == raised
        assert len(await reopened.active_overrides(T0 + 1)) == 1
        assert (await reopened.list_audit())[1] == 1
        states = await reopened.load_device_states()
        assert states["ha-001"] == DeviceSnapshot("ha-001", reading, False, T0 + 5)
        assert states["ha-002"] == DeviceSnapshot("ha-002", None, False, T0)
    finally:
        await reopened.close()

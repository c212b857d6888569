"""The state database, on SQLite and on PostgreSQL (every test runs on both): alarms and their history,
overrides, maintenance, audit, commands, device state; everything survives closing and reopening.
On PostgreSQL also what a shared database adds: two instances see each other's writes, never open
one alarm episode twice, and survive a dropped connection."""

from __future__ import annotations

import asyncio
import dataclasses

import psycopg
import pytest

from lightctl.config.settings import StateStore, Storage
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
from lightctl.store import factory, state_pg_schema
from lightctl.store.state import AlarmFilter, AuditEntry, CommandLogEntry, DeviceSnapshot, StateDB
from lightctl.store.state_pg import DuplicateEpisode, PgStateDB
from tests.store.conftest import PgSchema, StateTarget, wait_until_blocked

T0 = 1_767_261_600.0
DAY = 86400.0


def alarm(
    device: str, type_: str = "lamp_failure", first: float = T0, severity: Severity = Severity.MAJOR
) -> Alarm:
    return Alarm(None, type_, severity, device, AlarmState.OPEN, first, first)


async def test_alarm_lifecycle_is_recorded_with_its_transitions(state_db: StateDB) -> None:
    raised = await state_db.upsert_alarm(alarm("ha-001"))
    assert raised.id is not None
    acked = await state_db.upsert_alarm(
        dataclasses.replace(raised, state=AlarmState.ACKED, assignee="crew-3", note="on my way"),
        actor="li.wei",
        at=T0 + 60,
    )
    resolved = await state_db.upsert_alarm(
        dataclasses.replace(acked, state=AlarmState.RESOLVED, note="driver replaced", last_seen=T0 + 90),
        actor="li.wei",
        at=T0 + 3600,
    )

    assert resolved == dataclasses.replace(
        raised, state=AlarmState.RESOLVED, assignee="crew-3", note="driver replaced", last_seen=T0 + 90
    )
    record = await state_db.alarm_record(raised.id)
    assert record is not None
    assert record.resolved_at == T0 + 3600
    assert record.resolution == "manual"
    steps = [(t.from_state, t.to_state, t.actor, t.ts) for t in record.transitions]
    assert steps == [
        (None, AlarmState.OPEN, "", T0),
        (AlarmState.OPEN, AlarmState.ACKED, "li.wei", T0 + 60),
        (AlarmState.ACKED, AlarmState.RESOLVED, "li.wei", T0 + 3600),
    ]


async def test_an_alarm_cleared_by_lightctl_is_resolved_auto(state_db: StateDB) -> None:
    raised = await state_db.upsert_alarm(alarm("gw-03", "comm_loss"))
    same = await state_db.upsert_alarm(
        dataclasses.replace(raised, last_seen=T0 + 30)
    )  # still open: no transition
    await state_db.upsert_alarm(dataclasses.replace(same, state=AlarmState.RESOLVED, last_seen=T0 + 120))

    record = await state_db.alarm_record(raised.id or 0)
    assert record is not None
    assert (record.resolution, record.resolved_at) == ("auto", T0 + 120)
    assert len(record.transitions) == 2
    assert await state_db.open_alarms() == []


async def test_alarm_listing_filters_pages_and_counts(state_db: StateDB) -> None:
    parent = await state_db.upsert_alarm(alarm("gw-01", "cable_theft_suspected", T0, Severity.CRITICAL))
    for i in range(5):
        await state_db.upsert_alarm(
            dataclasses.replace(alarm(f"gw1-u0{i}", "supply_loss", T0 + i), parent=parent.id)
        )
    await state_db.upsert_alarm(alarm("ha-007", "pole_tilt", T0 + 100, Severity.CRITICAL))

    items, total = await state_db.list_alarms(limit=3)
    assert total == 7
    assert [a.device for a in items] == ["ha-007", "gw1-u04", "gw1-u03"]  # newest first_seen first
    page2, _ = await state_db.list_alarms(limit=3, offset=3)
    assert [a.device for a in page2] == ["gw1-u02", "gw1-u01", "gw1-u00"]
    critical, n = await state_db.list_alarms(AlarmFilter(severity=Severity.CRITICAL))
    assert n == 2
    assert {a.type for a in critical} == {"cable_theft_suspected", "pole_tilt"}
    children, n = await state_db.list_alarms(AlarmFilter(type="supply_loss", device="gw1-u02"))
    assert n == 1
    assert children[0].parent == parent.id
    none, n = await state_db.list_alarms(AlarmFilter(state=AlarmState.ACKED))
    assert (none, n) == ([], 0)
    assert len(await state_db.open_alarms()) == 7


async def test_updating_an_unknown_alarm_is_an_error(state_db: StateDB) -> None:
    with pytest.raises(KeyError):
        await state_db.upsert_alarm(dataclasses.replace(alarm("x"), id=999))


async def test_overrides_are_active_in_their_window_until_ended(state_db: StateDB) -> None:
    emergency = await state_db.add_override(
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
    scene = await state_db.add_override(
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

    assert [o.id for o in await state_db.active_overrides(T0 + 10)] == [emergency.id]
    assert [o.id for o in await state_db.active_overrides(T0 + 3600)] == [emergency.id, scene.id]
    assert await state_db.active_overrides(T0 + 7200) == [emergency]
    assert scene.state == DesiredState(scene=3, brightness=80, source="event")
    assert scene.event == "元宵灯会"
    assert scene.targets == ("zone:longcheng",)

    ended = await state_db.end_override(emergency.id or 0, T0 + 600)
    assert ended is not None
    assert ended.ended_at == T0 + 600
    again = await state_db.end_override(emergency.id or 0, T0 + 900)
    assert again is not None
    assert again.ended_at == T0 + 600
    assert await state_db.active_overrides(T0 + 601) == []
    assert await state_db.end_override(12345, T0) is None
    items, total = await state_db.list_overrides()
    assert total == 2
    assert [o.id for o in items] == [scene.id, emergency.id]
    _, active_total = await state_db.list_overrides(active_at=T0 + 3700)
    assert active_total == 1
    # not over by then: the emergency ended at T0 + 600, the scene (not started yet) runs to T0 + 7200
    items, _ = await state_db.list_overrides(ending_after=T0 + 500)
    assert [o.id for o in items] == [scene.id, emergency.id]
    items, _ = await state_db.list_overrides(ending_after=T0 + 600)
    assert [o.id for o in items] == [scene.id]
    items, _ = await state_db.list_overrides(ending_after=T0 + 7200)
    assert items == []
    _, both = await state_db.list_overrides(active_at=T0 + 3700, ending_after=T0 + 7100)
    assert both == 1


async def test_maintenance_windows(state_db: StateDB) -> None:
    window = await state_db.add_maintenance(
        Maintenance(
            None, ("gateway:gw-03", "ha-001"), T0, T0 + 4 * 3600, "试灯", created_by="crew-1", created_at=T0
        )
    )
    assert await state_db.active_maintenance(T0 + 1) == [window]
    assert await state_db.active_maintenance(T0 - 1) == []
    await state_db.end_maintenance(window.id or 0, T0 + 3600)
    assert await state_db.active_maintenance(T0 + 3601) == []
    items, total = await state_db.list_maintenance()
    assert total == 1
    assert items[0].ended_at == T0 + 3600
    assert (await state_db.list_maintenance(ending_after=T0 + 3599))[1] == 1
    assert (await state_db.list_maintenance(ending_after=T0 + 3600))[1] == 0


async def test_audit_is_kept_for_its_retention_and_pruned_beyond(state_db: StateDB) -> None:
    for age_days in (200, 181, 179, 1):
        await state_db.append_audit(
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
    assert await state_db.prune_audit(T0) == 2
    items, total = await state_db.list_audit()
    assert total == 2
    assert [e.body for e in items] == ['{"reason": "age 1"}', '{"reason": "age 179"}']
    mine, n = await state_db.list_audit(who="nobody")
    assert (mine, n) == ([], 0)


async def test_command_log_records_issue_then_result(state_db: StateDB) -> None:
    command = Command("c-1", "ha-001", DesiredState(on=True, level=60, source="plan"), T0)
    await state_db.log_command(
        CommandLogEntry(command.id, command.device, command.desired, command.issued_at)
    )
    await state_db.log_command(
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
    (entry,) = await state_db.list_commands("ha-001")
    assert entry.ok is True
    assert entry.latency_s == 0.42
    assert entry.desired == command.desired
    assert entry.confirmed_by == "ack"
    assert entry.completed == T0 + 0.42


async def test_everything_survives_a_restart(state_target: StateTarget) -> None:
    db = await state_target.open()
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

    reopened = await state_target.open()
    try:
        assert await reopened.get_alarm(raised.id or 0) == raised
        assert len(await reopened.active_overrides(T0 + 1)) == 1
        assert (await reopened.list_audit())[1] == 1
        states = await reopened.load_device_states()
        assert states["ha-001"] == DeviceSnapshot("ha-001", reading, False, T0 + 5)
        assert states["ha-002"] == DeviceSnapshot("ha-002", None, False, T0)
    finally:
        await reopened.close()


# --- PostgreSQL shared by several lightctl instances ----------------------------------------------


async def two_instances(schema: PgSchema) -> tuple[PgStateDB, PgStateDB]:
    # Opened together, as two instances restarting at once: both migrate the empty schema.
    first, second = await asyncio.gather(PgStateDB.open(schema.dsn), PgStateDB.open(schema.dsn))
    return first, second


async def test_instances_starting_together_migrate_the_schema_once(pg_schema: PgSchema) -> None:
    a, b = await two_instances(pg_schema)
    try:
        assert await a.schema_version() == await b.schema_version() == state_pg_schema.LATEST
        async with await psycopg.AsyncConnection.connect(pg_schema.dsn) as conn:
            cur = await conn.execute("SELECT version FROM schema_version ORDER BY version")
            assert [v for (v,) in await cur.fetchall()] == [1, 2, 3, 4]
    finally:
        await a.close()
        await b.close()


async def test_two_instances_see_each_others_alarms_overrides_and_audit(pg_schema: PgSchema) -> None:
    a, b = await two_instances(pg_schema)
    try:
        raised = await b.upsert_alarm(alarm("ha-101"))
        assert await a.open_alarms() == [raised]
        await a.upsert_alarm(dataclasses.replace(raised, state=AlarmState.ACKED), actor="duty-a", at=T0 + 5)
        record = await b.alarm_record(raised.id or 0)
        assert record is not None
        assert record.alarm.state is AlarmState.ACKED
        assert [(t.to_state, t.actor) for t in record.transitions] == [
            (AlarmState.OPEN, ""),
            (AlarmState.ACKED, "duty-a"),
        ]

        scene = await a.add_override(
            Override(None, "manual", ("road:binhe",), DesiredState(on=False), T0, T0 + DAY, "works")
        )
        assert await b.active_overrides(T0 + 1) == [scene]
        await b.end_override(scene.id or 0, T0 + 60)
        assert await a.active_overrides(T0 + 61) == []

        ids = [
            await db.append_audit(AuditEntry(None, T0 + i, f"op-{i}", "operator", "POST /x", "{}", "201"))
            for i, db in enumerate((a, b, a, b))
        ]
        assert len(set(ids)) == 4
        assert (await a.list_audit())[1] == (await b.list_audit())[1] == 4
    finally:
        await a.close()
        await b.close()


async def test_two_instances_raising_one_alarm_at_once_share_one_episode(pg_schema: PgSchema) -> None:
    a, b = await two_instances(pg_schema)
    devices = [f"ha-{i:03d}" for i in range(30)]
    try:
        pairs = await asyncio.gather(
            *(db.upsert_alarm(alarm(d, first=T0 + i)) for i, d in enumerate(devices) for db in (a, b))
        )
        for i, device in enumerate(devices):
            from_a, from_b = pairs[2 * i], pairs[2 * i + 1]
            assert from_a.id == from_b.id
            assert from_a.device == device
        items, total = await a.list_alarms(AlarmFilter(type="lamp_failure"), limit=1000)
        assert total == len(devices)
        assert sorted(x.device for x in items) == devices
        record = await b.alarm_record(pairs[0].id or 0)
        assert record is not None
        assert len(record.transitions) == 1  # raised once

        # A resolved episode does not block a new one.
        await a.upsert_alarm(dataclasses.replace(pairs[0], state=AlarmState.RESOLVED, last_seen=T0 + 99))
        again = await b.upsert_alarm(alarm(devices[0], first=T0 + 100))
        assert again.id != pairs[0].id
        assert again.first_seen == T0 + 100
    finally:
        await a.close()
        await b.close()


async def test_raising_waits_for_another_instances_uncommitted_episode(pg_schema: PgSchema) -> None:
    db = await PgStateDB.open(pg_schema.dsn)
    other = await psycopg.AsyncConnection.connect(pg_schema.dsn)
    try:
        # Another instance is inside its transaction, having inserted the episode but not committed.
        cur = await other.execute(
            "INSERT INTO alarms (type, severity, device, state, first_seen, last_seen)"
            " VALUES ('comm_loss', 'major', 'gw-07', 'open', %s, %s) RETURNING id",
            (T0, T0),
        )
        row = await cur.fetchone()
        assert row is not None
        theirs = row[0]
        raising = asyncio.create_task(db.upsert_alarm(alarm("gw-07", "comm_loss", T0 + 1)))
        await wait_until_blocked(pg_schema)
        assert not raising.done()
        await other.commit()
        mine = await asyncio.wait_for(raising, 10)
        assert (mine.id, mine.first_seen) == (theirs, T0)
        assert (await db.list_alarms(AlarmFilter(device="gw-07")))[1] == 1
    finally:
        await other.close()
        await db.close()


async def test_reopening_an_alarm_beside_an_open_episode_is_refused(pg_schema: PgSchema) -> None:
    db = await PgStateDB.open(pg_schema.dsn)
    try:
        old = await db.upsert_alarm(alarm("ha-005"))
        old = await db.upsert_alarm(dataclasses.replace(old, state=AlarmState.RESOLVED, last_seen=T0 + 9))
        await db.upsert_alarm(alarm("ha-005", first=T0 + 10))
        with pytest.raises(DuplicateEpisode, match="ha-005"):
            await db.upsert_alarm(dataclasses.replace(old, state=AlarmState.OPEN))
        stored = await db.get_alarm(old.id or 0)
        assert stored is not None
        assert stored.state is AlarmState.RESOLVED  # rolled back, nothing half-written
        assert len(await db.open_alarms()) == 1
    finally:
        await db.close()


async def test_a_dropped_connection_is_replaced_without_losing_a_write(pg_schema: PgSchema) -> None:
    db = await PgStateDB.open(pg_schema.dsn)
    try:
        first = await db.upsert_alarm(alarm("ha-010"))
        async with await psycopg.AsyncConnection.connect(pg_schema.admin_dsn, autocommit=True) as admin:
            cur = await admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (pg_schema.name,),
            )
            assert await cur.fetchone() == (1,)
        second = await db.upsert_alarm(alarm("ha-011"))  # found dead at BEGIN, redone on a new one
        assert {a.id for a in await db.open_alarms()} == {first.id, second.id}
    finally:
        await db.close()


async def test_the_factory_opens_the_configured_postgresql(pg_schema: PgSchema) -> None:
    storage = Storage(state=StateStore(backend="postgresql", dsn=pg_schema.dsn), audit_retention_days=180)
    db = await factory.open_state(storage, lambda p: pytest.fail(f"no file wanted, asked for {p}"))
    try:
        assert isinstance(db, PgStateDB)
        assert db.audit_retention_days == 180
        await db.append_audit(AuditEntry(None, T0 - 200 * DAY, "a", "admin", "POST /x", "{}", "200"))
        assert await db.prune_audit(T0) == 1
    finally:
        await db.close()

"""A database written by the previous schema version opens with the current code, data intact; on
SQLite and on PostgreSQL alike."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

import psycopg
import pytest

from lightctl.model import AlarmState
from lightctl.store import migrations, state_pg_schema
from lightctl.store.state import EnergyNight
from tests.store.conftest import StateTarget

T0 = 1_767_261_600.0

# Rows as lightctl with schema version 1 wrote them (no resolution columns, no transition table).
V1_ALARMS = [
    (1, "lamp_failure", "major", "ha-001", "open", T0, T0 + 60, None, None, None, 0),
    (2, "door_open", "major", "gw-02", "resolved", T0 - 3600, T0 - 600, None, "crew-2", "door shut", 0),
]
V1_DEVICE_STATE = ("ha-001", '["ha-001",1767261600.0,4,{"power":61.0},[],1767261600.5]', 1, T0)


def make_v1_sqlite(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrations.migrate(conn, target=1) == [1]
        conn.executemany("INSERT INTO alarms VALUES (?,?,?,?,?,?,?,?,?,?,?)", V1_ALARMS)
        conn.execute("INSERT INTO device_state VALUES (?,?,?,?)", V1_DEVICE_STATE)
    finally:
        conn.close()


async def make_v1_postgresql(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        assert await state_pg_schema.migrate(conn, target=1) == [1]
        for row in V1_ALARMS:
            # Ids as version 1 assigned them: from the identity column, in order.
            cur = await conn.execute(
                "INSERT INTO alarms (type, severity, device, state, first_seen, last_seen, parent,"
                " assignee, note, held) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
                (*row[1:10], bool(row[10])),
            )
            assert await cur.fetchone() == (row[0],)
        device, reading, online, updated = V1_DEVICE_STATE
        await conn.execute(
            "INSERT INTO device_state VALUES (%s,%s,%s,%s)", (device, reading, bool(online), updated)
        )


async def make_v1_database(target: StateTarget) -> None:
    if target.kind == "sqlite":
        make_v1_sqlite(target.location)
    else:
        await make_v1_postgresql(target.location)


async def test_a_version_1_database_is_migrated_on_open(state_target: StateTarget) -> None:
    await make_v1_database(state_target)

    db = await state_target.open()
    try:
        assert await db.schema_version() == migrations.LATEST == state_pg_schema.LATEST == 4
        open_one = await db.get_alarm(1)
        assert open_one is not None
        assert open_one.state is AlarmState.OPEN
        assert open_one.first_seen == T0
        old = await db.alarm_record(2)
        assert old is not None
        assert (old.resolution, old.resolved_at) == ("unknown", T0 - 600)  # not invented
        assert old.alarm.note == "door shut"
        # The new table works for alarms that predate it.
        await db.upsert_alarm(
            dataclasses.replace(open_one, state=AlarmState.ACKED), actor="crew-1", at=T0 + 70
        )
        record = await db.alarm_record(1)
        assert record is not None
        assert [(t.from_state, t.to_state) for t in record.transitions] == [
            (AlarmState.OPEN, AlarmState.ACKED)
        ]
        states = await db.load_device_states()
        assert states["ha-001"].reading is not None
        assert states["ha-001"].reading.values == {"power": 61.0}
        assert states["ha-001"].online is True
        # Version 4: nightly energy figures start empty.
        assert await db.load_energy_nights(dt.date(2000, 1, 1)) == []
        await db.save_energy_night(EnergyNight.of(dt.date(2026, 1, 1), "", {"ha-001": ("p", 1.0)}))
        assert len(await db.load_energy_nights(dt.date(2026, 1, 1))) == 1
    finally:
        await db.close()

    reopened = await state_target.open()  # a second open applies nothing twice
    try:
        assert await reopened.schema_version() == 4
        assert (await reopened.list_alarms())[1] == 2
    finally:
        await reopened.close()


async def stamp_newer_version(target: StateTarget) -> None:
    if target.kind == "sqlite":
        conn = sqlite3.connect(target.location, isolation_level=None)
        migrations.migrate(conn)
        conn.execute("INSERT INTO schema_version VALUES (99)")
        conn.close()
        return
    async with await psycopg.AsyncConnection.connect(target.location, autocommit=True) as pg:
        await state_pg_schema.migrate(pg)
        await pg.execute("INSERT INTO schema_version VALUES (99)")


async def test_a_database_from_a_newer_lightctl_is_refused(state_target: StateTarget) -> None:
    await stamp_newer_version(state_target)

    with pytest.raises(migrations.SchemaError, match="newer"):
        await state_target.open()

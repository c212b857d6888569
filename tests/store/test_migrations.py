"""A database written by the previous schema version opens with the current code, data intact."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from lightctl.model import AlarmState
from lightctl.store import migrations
from lightctl.store.state_sqlite import SqliteStateDB

T0 = 1_767_261_600.0

# Rows as lightctl with schema version 1 wrote them (no resolution columns, no transition table).
V1_ALARMS = [
    (1, "lamp_failure", "major", "ha-001", "open", T0, T0 + 60, None, None, None, 0),
    (2, "door_open", "major", "gw-02", "resolved", T0 - 3600, T0 - 600, None, "crew-2", "door shut", 0),
]


def make_v1_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrations.migrate(conn, target=1) == [1]
        conn.executemany("INSERT INTO alarms VALUES (?,?,?,?,?,?,?,?,?,?,?)", V1_ALARMS)
        conn.execute(
            "INSERT INTO device_state VALUES (?,?,?,?)",
            ("ha-001", '["ha-001",1767261600.0,4,{"power":61.0},[],1767261600.5]', 1, T0),
        )
    finally:
        conn.close()


async def test_a_version_1_database_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    make_v1_database(path)

    db = await SqliteStateDB.open(path)
    try:
        assert await db.schema_version() == migrations.LATEST == 2
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
    finally:
        await db.close()

    reopened = await SqliteStateDB.open(path)  # a second open applies nothing twice
    try:
        assert await reopened.schema_version() == 2
        assert (await reopened.list_alarms())[1] == 2
    finally:
        await reopened.close()


async def test_a_database_from_a_newer_lightctl_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn)
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.close()

    with pytest.raises(migrations.SchemaError, match="newer"):
        await SqliteStateDB.open(path)

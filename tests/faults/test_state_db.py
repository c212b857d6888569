"""The alarm manager on the real SQLite state database: lifecycle and restart without duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightctl.config.loader import District
from lightctl.model import AlarmState
from lightctl.store.state import AlarmFilter

from .harness import Harness

sqlite_state = pytest.importorskip("lightctl.store.state_sqlite")


async def test_alarms_survive_a_restart_on_sqlite(tmp_path: Path, district: District) -> None:
    db = await sqlite_state.SqliteStateDB.open(tmp_path / "state.db")
    try:
        h = Harness(district, store=db)
        h.desire_all()
        for _ in range(3):
            h.healthy_round(skip={"ha-001"})
            h.engine.readings([h.lamp("ha-001", power=0.5, flags=frozenset({"tilt"}))])
            h.advance(60)
        await h.settle()
        items, total = await db.list_alarms(AlarmFilter())
        assert sorted(a.type for a in items) == ["lamp_failure", "pole_tilt"]
        tilt = next(a for a in items if a.type == "pole_tilt")
        await h.manager.ack(tilt.id or 0, "wang", "going")
    finally:
        await db.close()

    db = await sqlite_state.SqliteStateDB.open(tmp_path / "state.db")
    try:
        h2 = Harness(district, store=db, start=h.now + 10)
        assert await h2.engine.start() == 2
        h2.desire_all()
        for _ in range(3):
            h2.healthy_round(skip={"ha-001"})
            h2.engine.readings([h2.lamp("ha-001", power=0.5, flags=frozenset({"tilt"}))])
            h2.advance(60)
        await h2.settle()
        items, total = await db.list_alarms(AlarmFilter())
        assert total == 2
        assert {a.type: a.state for a in items} == {
            "lamp_failure": AlarmState.OPEN,
            "pole_tilt": AlarmState.ACKED,
        }
        assert h2.rec.notified() == []
        record = await db.alarm_record(tilt.id or 0)
        assert record is not None
        assert [t.to_state for t in record.transitions] == [AlarmState.OPEN, AlarmState.ACKED]
    finally:
        await db.close()

"""An alarm's evidence (Alarm.detail) is kept by the state database, on SQLite and PostgreSQL alike:
written with the alarm, changed with it, read back by every query, and empty for alarms stored
before the column existed (schema version 3)."""

from __future__ import annotations

import dataclasses

from lightctl.model import Alarm, AlarmState, Severity
from lightctl.store.state import AlarmFilter
from tests.store.conftest import StateTarget
from tests.store.test_migrations import make_v1_database

T0 = 1_767_261_600.0
EVIDENCE = "0.50 W = 0% of expected 150.50 W (level 100 %)"


async def test_the_detail_round_trips(state_target: StateTarget) -> None:
    db = await state_target.open()
    try:
        alarm = Alarm(
            None, "lamp_failure", Severity.MAJOR, "ha-001", AlarmState.OPEN, T0, T0, detail=EVIDENCE
        )
        stored = await db.upsert_alarm(alarm)
        assert stored.id is not None
        assert stored.detail == EVIDENCE
        assert (await db.get_alarm(stored.id)).detail == EVIDENCE  # type: ignore[union-attr]
        record = await db.alarm_record(stored.id)
        assert record is not None
        assert record.alarm.detail == EVIDENCE
        # the evidence of a later report replaces it; other text survives quotes and non-ASCII
        later = "能耗异常: 1.300 kWh = +30% against the baseline 1.000 kWh ('median')"
        await db.upsert_alarm(dataclasses.replace(stored, last_seen=T0 + 60, detail=later))
        items, _ = await db.list_alarms(AlarmFilter())
        assert [a.detail for a in items] == [later]
        assert [a.detail for a in await db.open_alarms()] == [later]
    finally:
        await db.close()
    reopened = await state_target.open()
    try:
        assert (await reopened.get_alarm(stored.id)).detail == later  # type: ignore[union-attr]
    finally:
        await reopened.close()


async def test_alarms_from_before_the_column_have_an_empty_detail(state_target: StateTarget) -> None:
    await make_v1_database(state_target)
    db = await state_target.open()
    try:
        old = await db.get_alarm(1)
        assert old is not None
        assert old.detail == ""
    finally:
        await db.close()

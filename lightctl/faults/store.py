"""Where alarms are kept: the part of the state database (lightctl/store/state.py, StateDB) that
the alarm manager uses, and an in-memory stand-in for tests and for running without a database."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from lightctl.model import Alarm, AlarmState
from lightctl.store.state import AlarmFilter, Resolution

EVERY_ALARM = AlarmFilter()


class AlarmStore(Protocol):
    async def upsert_alarm(
        self,
        alarm: Alarm,
        *,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
    ) -> Alarm: ...

    async def get_alarm(self, alarm_id: int) -> Alarm | None: ...

    async def list_alarms(
        self, where: AlarmFilter = EVERY_ALARM, limit: int = 100, offset: int = 0
    ) -> tuple[list[Alarm], int]: ...

    async def open_alarms(self) -> list[Alarm]: ...


@dataclasses.dataclass
class StoredAlarm:
    alarm: Alarm
    resolved_at: float | None = None
    resolution: Resolution | None = None
    transitions: list[tuple[float, AlarmState | None, AlarmState, str]] = dataclasses.field(
        default_factory=list
    )


class MemoryAlarmStore:
    """Keeps alarms in a dict, numbering them from 1; records transitions like the real store."""

    def __init__(self) -> None:
        self.rows: dict[int, StoredAlarm] = {}
        self.writes = 0

    async def upsert_alarm(
        self,
        alarm: Alarm,
        *,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
    ) -> Alarm:
        self.writes += 1
        when = alarm.last_seen if at is None else at
        saved = dataclasses.replace(alarm)
        if alarm.id is None:
            saved.id = max(self.rows, default=0) + 1
            row = self.rows[saved.id] = StoredAlarm(saved)
            row.transitions.append((alarm.first_seen, None, alarm.state, actor))
            previous: AlarmState | None = alarm.state
        else:
            if alarm.id not in self.rows:
                raise KeyError(f"no alarm {alarm.id}")
            row = self.rows[alarm.id]
            previous = row.alarm.state
            row.alarm = saved
            if previous is not alarm.state:
                row.transitions.append((when, previous, alarm.state, actor))
        if alarm.state is AlarmState.RESOLVED and row.resolved_at is None:
            row.resolved_at = when
            row.resolution = resolution or ("manual" if actor else "auto")
        elif alarm.state is not AlarmState.RESOLVED:
            row.resolved_at = row.resolution = None
        return dataclasses.replace(saved)

    async def get_alarm(self, alarm_id: int) -> Alarm | None:
        row = self.rows.get(alarm_id)
        return None if row is None else dataclasses.replace(row.alarm)

    async def list_alarms(
        self, where: AlarmFilter = EVERY_ALARM, limit: int = 100, offset: int = 0
    ) -> tuple[list[Alarm], int]:
        found = [
            r.alarm
            for r in self.rows.values()
            if (where.state is None or r.alarm.state is where.state)
            and (where.severity is None or r.alarm.severity is where.severity)
            and (where.type is None or r.alarm.type == where.type)
            and (where.device is None or r.alarm.device == where.device)
        ]
        found.sort(key=lambda a: (a.first_seen, a.id or 0), reverse=True)
        return [dataclasses.replace(a) for a in found[offset : offset + limit]], len(found)

    async def open_alarms(self) -> list[Alarm]:
        return [
            dataclasses.replace(r.alarm)
            for r in self.rows.values()
            if r.alarm.state is not AlarmState.RESOLVED
        ]

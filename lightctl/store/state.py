"""The state database's interface: alarms, overrides, maintenance, audit, commands, device state.

A narrow Protocol of async methods so that the SQLite implementation (state_sqlite.py) and a later
PostgreSQL one are interchangeable; callers never see SQL or rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from lightctl.model import Alarm, AlarmState, DesiredState, Maintenance, Override, Reading, Severity

Resolution = Literal["manual", "auto", "unknown"]  # "unknown": resolved before schema version 2


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    alarm_id: int
    ts: float
    from_state: AlarmState | None  # None: raised
    to_state: AlarmState
    actor: str  # token name, or "" for lightctl itself
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    alarm: Alarm
    resolved_at: float | None
    resolution: Resolution | None
    transitions: tuple[AlarmTransition, ...]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int | None
    ts: float
    who: str  # token name
    role: str
    action: str  # e.g. "POST /api/v1/overrides"
    body: str  # the request body as JSON text
    result: str  # e.g. "201 id=17", "403"


@dataclass(frozen=True, slots=True)
class CommandLogEntry:
    id: str
    device: str
    desired: DesiredState
    issued: float
    ok: bool | None = None  # None: no result yet
    result: str | None = None
    confirmed_by: str | None = None
    latency_s: float | None = None
    completed: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """The last known state of a device, so that a restart resumes where it stopped."""

    device: str
    reading: Reading | None
    online: bool
    updated: float


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    state: AlarmState | None = None
    severity: Severity | None = None
    type: str | None = None
    device: str | None = None


class StateDB(Protocol):
    async def close(self) -> None: ...

    # Alarms. upsert_alarm inserts when alarm.id is None (returning it with its id), else updates;
    # a change of state is recorded as a transition by `actor` at `at` (default alarm.last_seen).
    async def upsert_alarm(
        self,
        alarm: Alarm,
        *,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
    ) -> Alarm: ...

    async def get_alarm(self, alarm_id: int) -> Alarm | None: ...

    async def alarm_record(self, alarm_id: int) -> AlarmRecord | None: ...

    async def list_alarms(
        self, where: AlarmFilter | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[Alarm], int]: ...

    async def open_alarms(self) -> list[Alarm]: ...

    # Overrides and event scenes.
    async def add_override(self, override: Override) -> Override: ...

    async def end_override(self, override_id: int, at: float) -> Override | None: ...

    async def active_overrides(self, now: float) -> list[Override]: ...

    async def list_overrides(
        self, limit: int = 100, offset: int = 0, active_at: float | None = None
    ) -> tuple[list[Override], int]: ...

    # Maintenance windows.
    async def add_maintenance(self, window: Maintenance) -> Maintenance: ...

    async def end_maintenance(self, window_id: int, at: float) -> Maintenance | None: ...

    async def active_maintenance(self, now: float) -> list[Maintenance]: ...

    async def list_maintenance(
        self, limit: int = 100, offset: int = 0, active_at: float | None = None
    ) -> tuple[list[Maintenance], int]: ...

    # Audit log.
    async def append_audit(self, entry: AuditEntry) -> int: ...

    async def list_audit(
        self, limit: int = 100, offset: int = 0, who: str | None = None, since: float | None = None
    ) -> tuple[list[AuditEntry], int]: ...

    async def prune_audit(self, now: float) -> int: ...

    # Command log.
    async def log_command(self, entry: CommandLogEntry) -> None: ...

    async def log_commands(self, entries: Sequence[CommandLogEntry]) -> None: ...

    async def list_commands(self, device: str | None = None, limit: int = 100) -> list[CommandLogEntry]: ...

    # Last known device state.
    async def save_device_states(self, snapshots: Sequence[DeviceSnapshot]) -> None: ...

    async def load_device_states(self) -> dict[str, DeviceSnapshot]: ...

"""The state database's interface: alarms, overrides, maintenance, audit, commands, device state,
and the nightly energy figures energy_anomaly's baselines are made of.

A narrow Protocol of async methods so that the SQLite (state_sqlite.py) and PostgreSQL
(state_pg.py) implementations are interchangeable; callers never see SQL or rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import zlib
from array import array
from collections.abc import Mapping, Sequence
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


EnergyFigures = Mapping[str, tuple[str | None, float]]  # device -> (program or None, kWh)


@dataclass(frozen=True, slots=True)
class EnergyNight:
    """One night's energy figures of the devices one instance closed, packed as the energy watch
    holds them (lightctl/faults/energy.py): a float32 kWh (NaN: no figure) and a 2-byte program index
    per device, and the device ids compressed. A city's night is one row of under 1 MB rather than
    100,000 rows, so the 35 nights of history load in one short query. Program index 0 is no
    program: a night an override, maintenance or a meter reset touched, never part of a baseline."""

    night: dt.date
    owner: str  # the partition that closed it ("" without one): instances never overwrite each other
    devices: bytes  # zlib of the ids joined by newlines
    programs: str  # JSON list of the program ids the indices refer to, from 1
    program: bytes  # uint16 little-endian per device
    kwh: bytes  # float32 little-endian per device

    @classmethod
    def pack(
        cls,
        night: dt.date,
        owner: str,
        devices: Sequence[str],
        programs: Sequence[str | None],  # [None, *ids]: what program indices refer to
        program: array[int],
        kwh: array[float],
    ) -> EnergyNight:
        if not len(devices) == len(program) == len(kwh) or program.typecode != "H" or kwh.typecode != "f":
            raise ValueError("energy night: one uint16 program index and one float32 kWh per device")
        if sys.byteorder == "big":
            program, kwh = array("H", program), array("f", kwh)
            program.byteswap()
            kwh.byteswap()
        return cls(
            night,
            owner,
            zlib.compress("\n".join(devices).encode()),
            json.dumps(list(programs[1:])),
            program.tobytes(),
            kwh.tobytes(),
        )

    @classmethod
    def of(cls, night: dt.date, owner: str, figures: EnergyFigures) -> EnergyNight:
        names: dict[str, int] = {}
        program = array(
            "H", [0 if p is None else names.setdefault(p, len(names) + 1) for p, _ in figures.values()]
        )
        kwh = array("f", [v for _, v in figures.values()])
        return cls.pack(night, owner, list(figures), [None, *names], program, kwh)

    def columns(self) -> tuple[list[str], list[str | None], array[int], array[float]]:
        """(devices, programs, program index per device, kWh per device), as `pack` took them."""
        text = zlib.decompress(self.devices).decode()
        devices = text.split("\n") if text else []
        programs: list[str | None] = [None, *json.loads(self.programs)]
        program = array("H", self.program)
        kwh = array("f", self.kwh)
        if sys.byteorder == "big":
            program.byteswap()
            kwh.byteswap()
        if not len(devices) == len(program) == len(kwh):
            raise ValueError(f"energy night {self.night} ({self.owner!r}): columns of unequal length")
        return devices, programs, program, kwh

    def figures(self) -> dict[str, tuple[str | None, float]]:
        devices, programs, program, kwh = self.columns()
        return {
            d: (programs[p], v) for d, p, v in zip(devices, program, kwh, strict=True) if not math.isnan(v)
        }


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
        self,
        limit: int = 100,
        offset: int = 0,
        active_at: float | None = None,
        ending_after: float | None = None,
    ) -> tuple[list[Override], int]: ...

    # Maintenance windows.
    async def add_maintenance(self, window: Maintenance) -> Maintenance: ...

    async def end_maintenance(self, window_id: int, at: float) -> Maintenance | None: ...

    async def active_maintenance(self, now: float) -> list[Maintenance]: ...

    async def list_maintenance(
        self,
        limit: int = 100,
        offset: int = 0,
        active_at: float | None = None,
        ending_after: float | None = None,
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

    # Nightly energy figures. Saving a (night, owner) again replaces it.
    async def save_energy_night(self, night: EnergyNight) -> None: ...

    async def load_energy_nights(self, since: dt.date) -> list[EnergyNight]: ...

    async def prune_energy_nights(self, before: dt.date) -> int: ...

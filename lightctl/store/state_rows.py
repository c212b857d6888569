"""Rows of the state database and the query helpers its SQLite classes share."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from lightctl.model import Alarm, AlarmState, Maintenance, Override, Severity
from lightctl.store import codec
from lightctl.store.sqlite_thread import SqliteThread
from lightctl.store.state import CommandLogEntry, EnergyNight

Row = tuple[Any, ...]  # a row as sqlite3 returns it, only ever read inside store/

ALARM_COLS = (
    "id, type, severity, device, state, first_seen, last_seen, parent, assignee, note, held,"
    " resolved_at, resolution, detail"
)
OVERRIDE_COLS = (
    "id, kind, targets, desired, start_ts, until_ts, reason, event, created_by, created_at, ended_at"
)
MAINT_COLS = "id, targets, start_ts, until_ts, reason, created_by, created_at, ended_at"
COMMAND_COLS = "id, device, desired, issued, ok, result, confirmed_by, latency_s, completed"
# A command's first entry records it; a later one with the same id adds its result.
COMMAND_UPSERT = (
    " ON CONFLICT (id) DO UPDATE SET ok = COALESCE(excluded.ok, commands.ok),"
    " result = COALESCE(excluded.result, commands.result),"
    " confirmed_by = COALESCE(excluded.confirmed_by, commands.confirmed_by),"
    " latency_s = COALESCE(excluded.latency_s, commands.latency_s),"
    " completed = COALESCE(excluded.completed, commands.completed)"
)
ENERGY_COLS = "night, owner, devices, programs, program, kwh"
ENERGY_UPDATE = (
    "devices = excluded.devices, programs = excluded.programs, program = excluded.program, kwh = excluded.kwh"
)


class SqliteTables:
    def __init__(self, db: SqliteThread) -> None:
        self._db = db

    async def _one(self, sql: str, params: Sequence[object]) -> Row | None:
        row: Row | None = await self._db.run(lambda conn: conn.execute(sql, params).fetchone())
        return row

    async def _all(self, sql: str, params: Sequence[object]) -> list[Row]:
        rows: list[Row] = await self._db.run(lambda conn: conn.execute(sql, params).fetchall())
        return rows

    async def _page(
        self, sql: str, count_sql: str, params: Sequence[object], limit: int, offset: int
    ) -> tuple[list[Row], int]:
        def read(conn: sqlite3.Connection) -> tuple[list[Row], int]:
            total = int(conn.execute(count_sql, params).fetchone()[0])
            rows = conn.execute(f"{sql} LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
            return rows, total

        return await self._db.run(read)

    async def _end(self, table: str, cols: str, row_id: int, at: float) -> Row | None:
        def write(conn: sqlite3.Connection) -> Row | None:
            # Ending twice keeps the first end; ending after expiry changes nothing that matters.
            conn.execute(f"UPDATE {table} SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (at, row_id))
            row: Row | None = conn.execute(f"SELECT {cols} FROM {table} WHERE id = ?", (row_id,)).fetchone()
            return row

        return await self._db.transaction(write)


def active_clause(
    active_at: float | None, ending_after: float | None = None, mark: str = "?"
) -> tuple[str, list[object]]:
    """WHERE for overrides and maintenance windows: in force at `active_at`; not over (ended or
    expired) by `ending_after`."""
    terms: list[str] = []
    params: list[object] = []
    if active_at is not None:
        terms.append(f"start_ts <= {mark} AND until_ts > {mark} AND (ended_at IS NULL OR ended_at > {mark})")
        params += [active_at] * 3
    if ending_after is not None:
        terms.append(f"until_ts > {mark} AND (ended_at IS NULL OR ended_at > {mark})")
        params += [ending_after] * 2
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


def alarm_from(row: Row) -> Alarm:
    return Alarm(
        id=row[0],
        type=row[1],
        severity=Severity(row[2]),
        device=row[3],
        state=AlarmState(row[4]),
        first_seen=row[5],
        last_seen=row[6],
        parent=row[7],
        assignee=row[8],
        note=row[9],
        held=bool(row[10]),
        detail=row[13] or "",
    )


def override_from(row: Row) -> Override:
    return Override(
        id=row[0],
        kind=row[1],
        targets=codec.load_targets(row[2]),
        state=codec.load_desired(row[3]),
        start=row[4],
        until=row[5],
        reason=row[6],
        event=row[7],
        created_by=row[8],
        created_at=row[9],
        ended_at=row[10],
    )


def maintenance_from(row: Row) -> Maintenance:
    return Maintenance(
        id=row[0],
        targets=codec.load_targets(row[1]),
        start=row[2],
        until=row[3],
        reason=row[4],
        created_by=row[5],
        created_at=row[6],
        ended_at=row[7],
    )


def energy_night_from(row: Row) -> EnergyNight:
    night = row[0] if isinstance(row[0], dt.date) else dt.date.fromisoformat(row[0])  # SQLite: text
    return EnergyNight(night, row[1], bytes(row[2]), row[3], bytes(row[4]), bytes(row[5]))


def command_rows(entries: Sequence[CommandLogEntry], ok_as_int: bool) -> list[Row]:
    """Rows for COMMAND_COLS (SQLite keeps `ok` as an integer, PostgreSQL as a boolean)."""
    return [
        (
            e.id,
            e.device,
            codec.dump_desired(e.desired),
            float(e.issued),
            e.ok if e.ok is None or not ok_as_int else int(e.ok),
            e.result,
            e.confirmed_by,
            e.latency_s,
            e.completed,
        )
        for e in entries
    ]

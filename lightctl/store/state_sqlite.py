"""The state database on SQLite (WAL), one connection on its own thread (sqlite_thread.py).

Alarms, overrides, maintenance and nightly energy figures here; audit, commands and device state in state_logs.py.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from lightctl.model import Alarm, AlarmState, Maintenance, Override
from lightctl.store import codec, migrations
from lightctl.store.sqlite_thread import SqliteThread
from lightctl.store.state import AlarmFilter, AlarmRecord, AlarmTransition, EnergyNight, Resolution
from lightctl.store.state_logs import SqliteLogs
from lightctl.store.state_rows import (
    ALARM_COLS,
    ENERGY_COLS,
    ENERGY_UPDATE,
    MAINT_COLS,
    OVERRIDE_COLS,
    active_clause,
    alarm_from,
    energy_night_from,
    maintenance_from,
    override_from,
)


class SqliteStateDB(SqliteLogs):
    """Implements state.StateDB. Open with `await SqliteStateDB.open(path)`."""

    @classmethod
    async def open(cls, path: str | Path, audit_retention_days: int = 400) -> SqliteStateDB:
        db = SqliteThread(path, "state")
        await db.open()
        try:
            await db.run(migrations.migrate)
        except BaseException:
            await db.close()
            raise
        return cls(db, audit_retention_days)

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        return await self._db.run(migrations.current_version)

    # Alarms

    async def upsert_alarm(
        self,
        alarm: Alarm,
        *,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
    ) -> Alarm:
        when = alarm.last_seen if at is None else at

        def write(conn: sqlite3.Connection) -> Alarm:
            previous: AlarmState | None = None
            resolved_at: float | None = None
            how: str | None = None
            if alarm.id is not None:
                row = conn.execute(
                    "SELECT state, resolved_at, resolution FROM alarms WHERE id = ?", (alarm.id,)
                ).fetchone()
                if row is None:
                    raise KeyError(f"no alarm {alarm.id}")
                previous, resolved_at, how = AlarmState(row[0]), row[1], row[2]
            if alarm.state is AlarmState.RESOLVED and previous is not AlarmState.RESOLVED:
                resolved_at = when
                how = resolution or ("manual" if actor else "auto")
            elif alarm.state is not AlarmState.RESOLVED:
                resolved_at, how = None, None  # reopened
            values = (
                alarm.type,
                alarm.severity.value,
                alarm.device,
                alarm.state.value,
                alarm.first_seen,
                alarm.last_seen,
                alarm.parent,
                alarm.assignee,
                alarm.note,
                int(alarm.held),
                resolved_at,
                how,
                alarm.detail,
            )
            if alarm.id is None:
                cur = conn.execute(
                    "INSERT INTO alarms (type, severity, device, state, first_seen, last_seen, parent,"
                    " assignee, note, held, resolved_at, resolution, detail)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    values,
                )
                alarm_id = int(cur.lastrowid or 0)
            else:
                alarm_id = alarm.id
                conn.execute(
                    "UPDATE alarms SET type=?, severity=?, device=?, state=?, first_seen=?, last_seen=?,"
                    " parent=?, assignee=?, note=?, held=?, resolved_at=?, resolution=?, detail=? WHERE id=?",
                    (*values, alarm_id),
                )
            if previous is not alarm.state:
                conn.execute(
                    "INSERT INTO alarm_transitions (alarm_id, ts, from_state, to_state, actor, note)"
                    " VALUES (?,?,?,?,?,?)",
                    (
                        alarm_id,
                        alarm.first_seen if previous is None else when,
                        None if previous is None else previous.value,
                        alarm.state.value,
                        actor,
                        alarm.note,
                    ),
                )
            return alarm_from(
                conn.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE id=?", (alarm_id,)).fetchone()
            )

        return await self._db.transaction(write)

    async def get_alarm(self, alarm_id: int) -> Alarm | None:
        row = await self._one(f"SELECT {ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,))
        return None if row is None else alarm_from(row)

    async def alarm_record(self, alarm_id: int) -> AlarmRecord | None:
        def read(conn: sqlite3.Connection) -> AlarmRecord | None:
            row = conn.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
            if row is None:
                return None
            steps = conn.execute(
                "SELECT alarm_id, ts, from_state, to_state, actor, note FROM alarm_transitions"
                " WHERE alarm_id = ? ORDER BY ts, id",
                (alarm_id,),
            ).fetchall()
            return AlarmRecord(
                alarm=alarm_from(row),
                resolved_at=row[11],
                resolution=row[12],
                transitions=tuple(
                    AlarmTransition(
                        alarm_id=s[0],
                        ts=s[1],
                        from_state=None if s[2] is None else AlarmState(s[2]),
                        to_state=AlarmState(s[3]),
                        actor=s[4],
                        note=s[5],
                    )
                    for s in steps
                ),
            )

        return await self._db.run(read)

    async def list_alarms(
        self, where: AlarmFilter | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[Alarm], int]:
        where = where or AlarmFilter()
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (
            ("state", where.state),
            ("severity", where.severity),
            ("type", where.type),
            ("device", where.device),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(str(value))
        sql_where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows, total = await self._page(
            f"SELECT {ALARM_COLS} FROM alarms{sql_where} ORDER BY first_seen DESC, id DESC",
            f"SELECT COUNT(*) FROM alarms{sql_where}",
            params,
            limit,
            offset,
        )
        return [alarm_from(r) for r in rows], total

    async def open_alarms(self) -> list[Alarm]:
        rows = await self._all(
            f"SELECT {ALARM_COLS} FROM alarms WHERE state <> ? ORDER BY first_seen, id",
            (AlarmState.RESOLVED.value,),
        )
        return [alarm_from(r) for r in rows]

    # Overrides

    async def add_override(self, override: Override) -> Override:
        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO overrides (kind, targets, desired, start_ts, until_ts, reason, event,"
                " created_by, created_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    override.kind,
                    codec.dump_targets(override.targets),
                    codec.dump_desired(override.state),
                    override.start,
                    override.until,
                    override.reason,
                    override.event,
                    override.created_by,
                    override.created_at,
                    override.ended_at,
                ),
            )
            return int(cur.lastrowid or 0)

        new_id = await self._db.transaction(write)
        row = await self._one(f"SELECT {OVERRIDE_COLS} FROM overrides WHERE id = ?", (new_id,))
        return override_from(row)  # type: ignore[arg-type]

    async def end_override(self, override_id: int, at: float) -> Override | None:
        row = await self._end("overrides", OVERRIDE_COLS, override_id, at)
        return None if row is None else override_from(row)

    async def active_overrides(self, now: float) -> list[Override]:
        rows = await self._all(
            f"SELECT {OVERRIDE_COLS} FROM overrides WHERE start_ts <= ? AND until_ts > ?"
            " AND (ended_at IS NULL OR ended_at > ?) ORDER BY created_at, id",
            (now, now, now),
        )
        return [override_from(r) for r in rows]

    async def list_overrides(
        self,
        limit: int = 100,
        offset: int = 0,
        active_at: float | None = None,
        ending_after: float | None = None,
    ) -> tuple[list[Override], int]:
        where, params = active_clause(active_at, ending_after)
        rows, total = await self._page(
            f"SELECT {OVERRIDE_COLS} FROM overrides{where} ORDER BY created_at DESC, id DESC",
            f"SELECT COUNT(*) FROM overrides{where}",
            params,
            limit,
            offset,
        )
        return [override_from(r) for r in rows], total

    # Maintenance

    async def add_maintenance(self, window: Maintenance) -> Maintenance:
        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO maintenance (targets, start_ts, until_ts, reason, created_by, created_at,"
                " ended_at) VALUES (?,?,?,?,?,?,?)",
                (
                    codec.dump_targets(window.targets),
                    window.start,
                    window.until,
                    window.reason,
                    window.created_by,
                    window.created_at,
                    window.ended_at,
                ),
            )
            return int(cur.lastrowid or 0)

        new_id = await self._db.transaction(write)
        row = await self._one(f"SELECT {MAINT_COLS} FROM maintenance WHERE id = ?", (new_id,))
        return maintenance_from(row)  # type: ignore[arg-type]

    async def end_maintenance(self, window_id: int, at: float) -> Maintenance | None:
        row = await self._end("maintenance", MAINT_COLS, window_id, at)
        return None if row is None else maintenance_from(row)

    async def active_maintenance(self, now: float) -> list[Maintenance]:
        rows = await self._all(
            f"SELECT {MAINT_COLS} FROM maintenance WHERE start_ts <= ? AND until_ts > ?"
            " AND (ended_at IS NULL OR ended_at > ?) ORDER BY created_at, id",
            (now, now, now),
        )
        return [maintenance_from(r) for r in rows]

    async def list_maintenance(
        self,
        limit: int = 100,
        offset: int = 0,
        active_at: float | None = None,
        ending_after: float | None = None,
    ) -> tuple[list[Maintenance], int]:
        where, params = active_clause(active_at, ending_after)
        rows, total = await self._page(
            f"SELECT {MAINT_COLS} FROM maintenance{where} ORDER BY created_at DESC, id DESC",
            f"SELECT COUNT(*) FROM maintenance{where}",
            params,
            limit,
            offset,
        )
        return [maintenance_from(r) for r in rows], total

    # Nightly energy figures

    async def save_energy_night(self, night: EnergyNight) -> None:
        row = (night.night.isoformat(), night.owner, night.devices, night.programs, night.program, night.kwh)
        await self._db.transaction(
            lambda conn: conn.execute(
                f"INSERT INTO energy_nights ({ENERGY_COLS}) VALUES (?,?,?,?,?,?)"
                f" ON CONFLICT (night, owner) DO UPDATE SET {ENERGY_UPDATE}",
                row,
            )
        )

    async def load_energy_nights(self, since: dt.date) -> list[EnergyNight]:
        rows = await self._all(
            f"SELECT {ENERGY_COLS} FROM energy_nights WHERE night >= ? ORDER BY night, owner",
            (since.isoformat(),),
        )
        return [energy_night_from(r) for r in rows]

    async def prune_energy_nights(self, before: dt.date) -> int:
        return await self._db.transaction(
            lambda conn: (
                conn.execute("DELETE FROM energy_nights WHERE night < ?", (before.isoformat(),)).rowcount
            )
        )

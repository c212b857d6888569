"""The state database on PostgreSQL, shared by several lightctl instances (design.md section 8).

Same behaviour as SqliteStateDB, method for method; what differs is that other writers exist. Ids
come from identity columns; an alarm's update locks its row, so its transition history is the
order the changes were committed in; and an open episode per (type, device) is unique in the
database (state_pg_schema.py), so two instances raising the same alarm share one episode.

Alarms, overrides, maintenance and nightly energy figures here; audit, commands and device state in state_pg_logs.py.
"""

from __future__ import annotations

import datetime as dt

from psycopg import errors as pg_errors

from lightctl.model import Alarm, AlarmState, Maintenance, Override
from lightctl.store import codec, state_pg_schema
from lightctl.store.pg_connection import Cursor, PgConnection
from lightctl.store.state import AlarmFilter, AlarmRecord, AlarmTransition, EnergyNight, Resolution
from lightctl.store.state_pg_logs import PgLogs
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

_RESOLVED = AlarmState.RESOLVED.value
_ALARM_SET = (
    "type, severity, device, state, first_seen, last_seen, parent, assignee, note, held, resolved_at,"
    " resolution, detail"
)
_ACTIVE = "start_ts <= %s AND until_ts > %s AND (ended_at IS NULL OR ended_at > %s)"


class DuplicateEpisode(ValueError):
    """An update would leave two open alarms of one type on one device (e.g. reopening a resolved
    alarm while a newer episode is open)."""


class PgStateDB(PgLogs):
    """Implements state.StateDB. Open with `await PgStateDB.open(dsn)`; the tables live in the first
    schema of the connection's search_path (set it in the DSN: options=-csearch_path=...)."""

    @classmethod
    async def open(cls, dsn: str, audit_retention_days: int = 400) -> PgStateDB:
        db = PgConnection(dsn)
        try:
            await db.with_connection(state_pg_schema.migrate)
        except BaseException:
            await db.close()
            raise
        return cls(db, audit_retention_days)

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        return await self._db.run(state_pg_schema.current_version, snapshot=True)

    # Alarms

    async def upsert_alarm(
        self,
        alarm: Alarm,
        *,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
    ) -> Alarm:
        """Inserting an open alarm whose (type, device) already has an open episode, perhaps raised by
        another instance, inserts nothing and returns that episode as stored."""
        when = float(alarm.last_seen if at is None else at)

        async def write(cur: Cursor) -> Alarm:
            previous: AlarmState | None = None
            resolved_at: float | None = None
            how: str | None = None
            if alarm.id is not None:
                # Locks the row until COMMIT: another instance's change to it waits, then sees ours.
                await cur.execute(
                    "SELECT state, resolved_at, resolution FROM alarms WHERE id = %s FOR NO KEY UPDATE",
                    (alarm.id,),
                )
                row = await cur.fetchone()
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
                float(alarm.first_seen),
                float(alarm.last_seen),
                alarm.parent,
                alarm.assignee,
                alarm.note,
                alarm.held,
                resolved_at,
                how,
                alarm.detail,
            )
            if alarm.id is None:
                inserted = await _insert_or_find(cur, alarm, values)
                if isinstance(inserted, Alarm):
                    return inserted
                alarm_id = inserted
            else:
                alarm_id = alarm.id
                try:
                    await cur.execute(
                        "UPDATE alarms SET type=%s, severity=%s, device=%s, state=%s, first_seen=%s,"
                        " last_seen=%s, parent=%s, assignee=%s, note=%s, held=%s, resolved_at=%s,"
                        " resolution=%s, detail=%s WHERE id=%s",
                        (*values, alarm_id),
                    )
                except pg_errors.UniqueViolation as exc:
                    raise DuplicateEpisode(
                        f"alarm {alarm_id}: another {alarm.type} alarm on {alarm.device} is open"
                    ) from exc
            if previous is not alarm.state:
                await cur.execute(
                    "INSERT INTO alarm_transitions (alarm_id, ts, from_state, to_state, actor, note)"
                    " VALUES (%s,%s,%s,%s,%s,%s)",
                    (
                        alarm_id,
                        float(alarm.first_seen) if previous is None else when,
                        None if previous is None else previous.value,
                        alarm.state.value,
                        actor,
                        alarm.note,
                    ),
                )
            await cur.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE id = %s", (alarm_id,))
            return alarm_from(await _fetched(cur))

        return await self._db.run(write)

    async def get_alarm(self, alarm_id: int) -> Alarm | None:
        row = await self._one(f"SELECT {ALARM_COLS} FROM alarms WHERE id = %s", (alarm_id,))
        return None if row is None else alarm_from(row)

    async def alarm_record(self, alarm_id: int) -> AlarmRecord | None:
        async def read(cur: Cursor) -> AlarmRecord | None:
            await cur.execute(f"SELECT {ALARM_COLS} FROM alarms WHERE id = %s", (alarm_id,))
            row = await cur.fetchone()
            if row is None:
                return None
            await cur.execute(
                "SELECT alarm_id, ts, from_state, to_state, actor, note FROM alarm_transitions"
                " WHERE alarm_id = %s ORDER BY ts, id",
                (alarm_id,),
            )
            steps = await cur.fetchall()
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

        return await self._db.run(read, snapshot=True)

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
                clauses.append(f"{column} = %s")
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
            f"SELECT {ALARM_COLS} FROM alarms WHERE state <> %s ORDER BY first_seen, id", (_RESOLVED,)
        )
        return [alarm_from(r) for r in rows]

    # Overrides

    async def add_override(self, override: Override) -> Override:
        new_id = await self._insert(
            "INSERT INTO overrides (kind, targets, desired, start_ts, until_ts, reason, event,"
            " created_by, created_at, ended_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (
                override.kind,
                codec.dump_targets(override.targets),
                codec.dump_desired(override.state),
                float(override.start),
                float(override.until),
                override.reason,
                override.event,
                override.created_by,
                override.created_at,
                override.ended_at,
            ),
        )
        row = await self._one(f"SELECT {OVERRIDE_COLS} FROM overrides WHERE id = %s", (new_id,))
        return override_from(row)  # type: ignore[arg-type]

    async def end_override(self, override_id: int, at: float) -> Override | None:
        row = await self._end("overrides", OVERRIDE_COLS, override_id, float(at))
        return None if row is None else override_from(row)

    async def active_overrides(self, now: float) -> list[Override]:
        rows = await self._all(
            f"SELECT {OVERRIDE_COLS} FROM overrides WHERE {_ACTIVE} ORDER BY created_at, id", (now,) * 3
        )
        return [override_from(r) for r in rows]

    async def list_overrides(
        self,
        limit: int = 100,
        offset: int = 0,
        active_at: float | None = None,
        ending_after: float | None = None,
    ) -> tuple[list[Override], int]:
        where, params = _active_where(active_at, ending_after)
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
        new_id = await self._insert(
            "INSERT INTO maintenance (targets, start_ts, until_ts, reason, created_by, created_at,"
            " ended_at) VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (
                codec.dump_targets(window.targets),
                float(window.start),
                float(window.until),
                window.reason,
                window.created_by,
                window.created_at,
                window.ended_at,
            ),
        )
        row = await self._one(f"SELECT {MAINT_COLS} FROM maintenance WHERE id = %s", (new_id,))
        return maintenance_from(row)  # type: ignore[arg-type]

    async def end_maintenance(self, window_id: int, at: float) -> Maintenance | None:
        row = await self._end("maintenance", MAINT_COLS, window_id, float(at))
        return None if row is None else maintenance_from(row)

    async def active_maintenance(self, now: float) -> list[Maintenance]:
        rows = await self._all(
            f"SELECT {MAINT_COLS} FROM maintenance WHERE {_ACTIVE} ORDER BY created_at, id", (now,) * 3
        )
        return [maintenance_from(r) for r in rows]

    async def list_maintenance(
        self,
        limit: int = 100,
        offset: int = 0,
        active_at: float | None = None,
        ending_after: float | None = None,
    ) -> tuple[list[Maintenance], int]:
        where, params = _active_where(active_at, ending_after)
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
        row = (night.night, night.owner, night.devices, night.programs, night.program, night.kwh)

        async def write(cur: Cursor) -> None:
            await cur.execute(
                f"INSERT INTO energy_nights ({ENERGY_COLS}) VALUES (%s,%s,%s,%s,%s,%s)"
                f" ON CONFLICT (night, owner) DO UPDATE SET {ENERGY_UPDATE}",
                row,
            )

        await self._db.run(write)

    async def load_energy_nights(self, since: dt.date) -> list[EnergyNight]:
        rows = await self._all(
            f"SELECT {ENERGY_COLS} FROM energy_nights WHERE night >= %s ORDER BY night, owner", (since,)
        )
        return [energy_night_from(r) for r in rows]

    async def prune_energy_nights(self, before: dt.date) -> int:
        async def write(cur: Cursor) -> int:
            await cur.execute("DELETE FROM energy_nights WHERE night < %s", (before,))
            return cur.rowcount

        return await self._db.run(write)


def _active_where(active_at: float | None, ending_after: float | None) -> tuple[str, list[object]]:
    return active_clause(active_at, ending_after, mark="%s")


async def _fetched(cur: Cursor) -> tuple[object, ...]:
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("a row written in this transaction is missing")
    return row


async def _insert_or_find(cur: Cursor, alarm: Alarm, values: tuple[object, ...]) -> int | Alarm:
    """The new alarm's id, or the open episode of its (type, device) if there already is one."""
    for _ in range(3):
        await cur.execute(
            f"INSERT INTO alarms ({_ALARM_SET}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            f" ON CONFLICT (type, device) WHERE state <> '{_RESOLVED}' DO NOTHING RETURNING id",
            values,
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
        # ON CONFLICT waited for the other writer's COMMIT; under READ COMMITTED each statement
        # sees what was committed before it began, so this finds that episode, unless it was
        # resolved in between: then the insert is tried again.
        await cur.execute(
            f"SELECT {ALARM_COLS} FROM alarms WHERE type = %s AND device = %s AND state <> %s",
            (alarm.type, alarm.device, _RESOLVED),
        )
        found = await cur.fetchone()
        if found is not None:
            return alarm_from(found)
    raise RuntimeError(f"the open {alarm.type} alarm on {alarm.device} keeps changing; try again")

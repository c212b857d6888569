"""Audit log, command log and last known device state on PostgreSQL (part of PgStateDB)."""

from __future__ import annotations

from collections.abc import Sequence

from lightctl.store import codec
from lightctl.store.pg_connection import Cursor, PgConnection
from lightctl.store.state import AuditEntry, CommandLogEntry, DeviceSnapshot
from lightctl.store.state_logs import DAY_S
from lightctl.store.state_rows import COMMAND_COLS, COMMAND_UPSERT, Row, command_rows


class PgTables:
    def __init__(self, db: PgConnection) -> None:
        self._db = db

    async def _one(self, sql: str, params: Sequence[object]) -> Row | None:
        async def read(cur: Cursor) -> Row | None:
            await cur.execute(sql, params)
            return await cur.fetchone()

        return await self._db.run(read)

    async def _all(self, sql: str, params: Sequence[object]) -> list[Row]:
        async def read(cur: Cursor) -> list[Row]:
            await cur.execute(sql, params)
            return await cur.fetchall()

        return await self._db.run(read)

    async def _page(
        self, sql: str, count_sql: str, params: Sequence[object], limit: int, offset: int
    ) -> tuple[list[Row], int]:
        async def read(cur: Cursor) -> tuple[list[Row], int]:
            await cur.execute(count_sql, params)
            counted = await cur.fetchone()
            await cur.execute(f"{sql} LIMIT %s OFFSET %s", (*params, limit, offset))
            return await cur.fetchall(), int(counted[0]) if counted else 0

        return await self._db.run(read, snapshot=True)

    async def _end(self, table: str, cols: str, row_id: int, at: float) -> Row | None:
        async def write(cur: Cursor) -> Row | None:
            # Ending twice keeps the first end; ending after expiry changes nothing that matters.
            await cur.execute(
                f"UPDATE {table} SET ended_at = %s WHERE id = %s AND ended_at IS NULL", (at, row_id)
            )
            await cur.execute(f"SELECT {cols} FROM {table} WHERE id = %s", (row_id,))
            return await cur.fetchone()

        return await self._db.run(write)

    async def _insert(self, sql: str, params: Sequence[object]) -> int:
        """Run an INSERT ... RETURNING id; returns the id."""

        async def write(cur: Cursor) -> int:
            await cur.execute(sql, params)
            row = await cur.fetchone()
            if row is None:
                raise RuntimeError(f"no id returned by {sql[:40]!r}")
            return int(row[0])

        return await self._db.run(write)


def _merged(snapshots: Sequence[DeviceSnapshot]) -> list[DeviceSnapshot]:
    """One snapshot per device, as applying them in order would leave it (one statement updates a row
    only once): the last one wins, except that a reading-less one keeps the last reading."""
    by_device: dict[str, DeviceSnapshot] = {}
    for s in snapshots:
        before = by_device.get(s.device)
        if s.reading is None and before is not None and before.reading is not None:
            s = DeviceSnapshot(s.device, before.reading, s.online, s.updated)
        by_device[s.device] = s
    # Sorted, so that two instances writing overlapping devices lock rows in one order (no deadlock).
    return [by_device[d] for d in sorted(by_device)]


class PgLogs(PgTables):
    def __init__(self, db: PgConnection, audit_retention_days: int) -> None:
        super().__init__(db)
        self.audit_retention_days = audit_retention_days

    # Audit

    async def append_audit(self, entry: AuditEntry) -> int:
        return await self._insert(
            "INSERT INTO audit (ts, who, role, action, body, result) VALUES (%s,%s,%s,%s,%s,%s) RETURNING id",
            (float(entry.ts), entry.who, entry.role, entry.action, entry.body, entry.result),
        )

    async def list_audit(
        self, limit: int = 100, offset: int = 0, who: str | None = None, since: float | None = None
    ) -> tuple[list[AuditEntry], int]:
        clauses: list[str] = []
        params: list[object] = []
        if who is not None:
            clauses.append("who = %s")
            params.append(who)
        if since is not None:
            clauses.append("ts >= %s")
            params.append(float(since))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows, total = await self._page(
            f"SELECT id, ts, who, role, action, body, result FROM audit{where} ORDER BY ts DESC, id DESC",
            f"SELECT COUNT(*) FROM audit{where}",
            params,
            limit,
            offset,
        )
        return [AuditEntry(*r) for r in rows], total

    async def prune_audit(self, now: float) -> int:
        cutoff = float(now - self.audit_retention_days * DAY_S)

        async def write(cur: Cursor) -> int:
            await cur.execute("DELETE FROM audit WHERE ts < %s", (cutoff,))
            return cur.rowcount

        return await self._db.run(write)

    # Commands

    async def log_command(self, entry: CommandLogEntry) -> None:
        await self.log_commands([entry])

    async def log_commands(self, entries: Sequence[CommandLogEntry]) -> None:
        """One transaction for many entries. The first entry of an id records the command; later ones
        with the same id add its result."""
        rows = command_rows(entries, ok_as_int=False)
        if not rows:
            return

        async def write(cur: Cursor) -> None:
            await cur.executemany(
                f"INSERT INTO commands ({COMMAND_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s){COMMAND_UPSERT}",
                rows,
            )

        await self._db.run(write)

    async def list_commands(self, device: str | None = None, limit: int = 100) -> list[CommandLogEntry]:
        where, params = (" WHERE device = %s", [device]) if device is not None else ("", [])
        rows = await self._all(
            f"SELECT {COMMAND_COLS} FROM commands{where} ORDER BY issued DESC, id DESC LIMIT %s",
            (*params, limit),
        )
        return [
            CommandLogEntry(
                id=r[0],
                device=r[1],
                desired=codec.load_desired(r[2]),
                issued=r[3],
                ok=r[4],
                result=r[5],
                confirmed_by=r[6],
                latency_s=r[7],
                completed=r[8],
            )
            for r in rows
        ]

    # Device state

    async def save_device_states(self, snapshots: Sequence[DeviceSnapshot]) -> None:
        merged = _merged(snapshots)
        if not merged:
            return
        columns = (
            [s.device for s in merged],
            [None if s.reading is None else codec.dump_reading(s.reading).decode() for s in merged],
            [s.online for s in merged],
            [float(s.updated) for s in merged],
        )

        async def write(cur: Cursor) -> None:
            # One statement over arrays: a whole district's snapshots in one round trip.
            # A reading-less snapshot (only availability changed) keeps the stored reading.
            await cur.execute(
                "INSERT INTO device_state (device, reading, online, updated)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::double precision[])"
                " ON CONFLICT (device) DO UPDATE SET reading = COALESCE(excluded.reading,"
                " device_state.reading), online = excluded.online, updated = excluded.updated",
                columns,
            )

        await self._db.run(write)

    async def load_device_states(self) -> dict[str, DeviceSnapshot]:
        rows = await self._all("SELECT device, reading, online, updated FROM device_state", ())
        snapshots: dict[str, DeviceSnapshot] = {}
        for device, reading, online, updated in rows:
            try:
                parsed = None if reading is None else codec.load_reading(reading)
            except codec.CorruptRecord:
                parsed = None  # a damaged row loses its reading, not the whole restart
            snapshots[device] = DeviceSnapshot(device, parsed, online, updated)
        return snapshots

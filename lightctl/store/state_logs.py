"""Audit log, command log and last known device state (part of SqliteStateDB)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from lightctl.store import codec
from lightctl.store.sqlite_thread import SqliteThread
from lightctl.store.state import AuditEntry, CommandLogEntry, DeviceSnapshot
from lightctl.store.state_rows import COMMAND_COLS, COMMAND_UPSERT, SqliteTables, command_rows

DAY_S = 86400.0


class SqliteLogs(SqliteTables):
    def __init__(self, db: SqliteThread, audit_retention_days: int) -> None:
        super().__init__(db)
        self.audit_retention_days = audit_retention_days

    # Audit

    async def append_audit(self, entry: AuditEntry) -> int:
        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO audit (ts, who, role, action, body, result) VALUES (?,?,?,?,?,?)",
                (entry.ts, entry.who, entry.role, entry.action, entry.body, entry.result),
            )
            return int(cur.lastrowid or 0)

        return await self._db.transaction(write)

    async def list_audit(
        self, limit: int = 100, offset: int = 0, who: str | None = None, since: float | None = None
    ) -> tuple[list[AuditEntry], int]:
        clauses, params = [], []
        if who is not None:
            clauses.append("who = ?")
            params.append(who)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)  # type: ignore[arg-type]
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
        cutoff = now - self.audit_retention_days * DAY_S
        return await self._db.transaction(
            lambda conn: conn.execute("DELETE FROM audit WHERE ts < ?", (cutoff,)).rowcount
        )

    # Commands

    async def log_command(self, entry: CommandLogEntry) -> None:
        await self.log_commands([entry])

    async def log_commands(self, entries: Sequence[CommandLogEntry]) -> None:
        """One transaction for many entries. The first entry of an id records the command; later ones
        with the same id add its result."""
        rows = command_rows(entries, ok_as_int=True)
        if not rows:
            return
        await self._db.transaction(
            lambda conn: conn.executemany(
                f"INSERT INTO commands ({COMMAND_COLS}) VALUES (?,?,?,?,?,?,?,?,?){COMMAND_UPSERT}",
                rows,
            )
        )

    async def list_commands(self, device: str | None = None, limit: int = 100) -> list[CommandLogEntry]:
        where, params = (" WHERE device = ?", [device]) if device is not None else ("", [])
        rows = await self._all(
            f"SELECT {COMMAND_COLS} FROM commands{where} ORDER BY issued DESC LIMIT ?", (*params, limit)
        )
        return [
            CommandLogEntry(
                id=r[0],
                device=r[1],
                desired=codec.load_desired(r[2]),
                issued=r[3],
                ok=None if r[4] is None else bool(r[4]),
                result=r[5],
                confirmed_by=r[6],
                latency_s=r[7],
                completed=r[8],
            )
            for r in rows
        ]

    # Device state

    async def save_device_states(self, snapshots: Sequence[DeviceSnapshot]) -> None:
        rows = [
            (
                s.device,
                None if s.reading is None else codec.dump_reading(s.reading).decode(),
                int(s.online),
                s.updated,
            )
            for s in snapshots
        ]
        if not rows:
            return
        # A reading-less snapshot (only availability changed) keeps the stored reading.
        await self._db.transaction(
            lambda conn: conn.executemany(
                "INSERT INTO device_state (device, reading, online, updated) VALUES (?,?,?,?)"
                " ON CONFLICT (device) DO UPDATE SET reading = COALESCE(excluded.reading,"
                " device_state.reading), online = excluded.online, updated = excluded.updated",
                rows,
            )
        )

    async def load_device_states(self) -> dict[str, DeviceSnapshot]:
        rows = await self._all("SELECT device, reading, online, updated FROM device_state", ())
        snapshots: dict[str, DeviceSnapshot] = {}
        for device, reading, online, updated in rows:
            try:
                parsed = None if reading is None else codec.load_reading(reading)
            except codec.CorruptRecord:
                parsed = None  # a damaged row loses its reading, not the whole restart
            snapshots[device] = DeviceSnapshot(device, parsed, bool(online), updated)
        return snapshots

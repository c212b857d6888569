"""Versioned schema of the state database.

Each migration is applied once, in order, in its own transaction, and recorded in `schema_version`;
a database written by a newer lightctl is refused rather than guessed at. The DDL is SQLite's; the
queries in state_sqlite.py keep to SQL that PostgreSQL also speaks, so a PostgreSQL backend needs
its own DDL list here and little else.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


class SchemaError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "alarms, overrides, maintenance, audit, commands, last device state",
        (
            """CREATE TABLE alarms (
                id INTEGER PRIMARY KEY,
                type TEXT NOT NULL,
                severity TEXT NOT NULL,
                device TEXT NOT NULL,
                state TEXT NOT NULL,
                first_seen REAL NOT NULL,
                last_seen REAL NOT NULL,
                parent INTEGER REFERENCES alarms(id),
                assignee TEXT,
                note TEXT,
                held INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX alarms_state ON alarms(state, first_seen)",
            "CREATE INDEX alarms_device ON alarms(device, first_seen)",
            """CREATE TABLE overrides (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                targets TEXT NOT NULL,
                desired TEXT NOT NULL,
                start_ts REAL NOT NULL,
                until_ts REAL NOT NULL,
                reason TEXT NOT NULL,
                event TEXT,
                created_by TEXT NOT NULL,
                created_at REAL NOT NULL,
                ended_at REAL
            )""",
            "CREATE INDEX overrides_until ON overrides(until_ts)",
            """CREATE TABLE maintenance (
                id INTEGER PRIMARY KEY,
                targets TEXT NOT NULL,
                start_ts REAL NOT NULL,
                until_ts REAL NOT NULL,
                reason TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at REAL NOT NULL,
                ended_at REAL
            )""",
            "CREATE INDEX maintenance_until ON maintenance(until_ts)",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY,
                ts REAL NOT NULL,
                who TEXT NOT NULL,
                role TEXT NOT NULL,
                action TEXT NOT NULL,
                body TEXT NOT NULL,
                result TEXT NOT NULL
            )""",
            "CREATE INDEX audit_ts ON audit(ts)",
            """CREATE TABLE commands (
                id TEXT PRIMARY KEY,
                device TEXT NOT NULL,
                desired TEXT NOT NULL,
                issued REAL NOT NULL,
                ok INTEGER,
                result TEXT,
                confirmed_by TEXT,
                latency_s REAL,
                completed REAL
            )""",
            "CREATE INDEX commands_device ON commands(device, issued)",
            """CREATE TABLE device_state (
                device TEXT PRIMARY KEY,
                reading TEXT,
                online INTEGER NOT NULL,
                updated REAL NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "alarm resolution and transition history",
        (
            "ALTER TABLE alarms ADD COLUMN resolved_at REAL",
            "ALTER TABLE alarms ADD COLUMN resolution TEXT",
            """CREATE TABLE alarm_transitions (
                id INTEGER PRIMARY KEY,
                alarm_id INTEGER NOT NULL REFERENCES alarms(id),
                ts REAL NOT NULL,
                from_state TEXT,
                to_state TEXT NOT NULL,
                actor TEXT NOT NULL,
                note TEXT
            )""",
            "CREATE INDEX alarm_transitions_alarm ON alarm_transitions(alarm_id, ts)",
            # Alarms resolved under version 1 have no record of how; say so rather than invent it.
            "UPDATE alarms SET resolved_at = last_seen, resolution = 'unknown' WHERE state = 'resolved'",
        ),
    ),
    Migration(
        3,
        "alarm evidence (Alarm.detail)",
        # Alarms written before version 3 keep an empty detail: their evidence was not stored.
        ("ALTER TABLE alarms ADD COLUMN detail TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        4,
        "nightly energy figures (state.EnergyNight)",
        # Empty after the upgrade: the energy watch reads the missing nights from telemetry once.
        (
            """CREATE TABLE energy_nights (
                night TEXT NOT NULL,
                owner TEXT NOT NULL,
                devices BLOB NOT NULL,
                programs TEXT NOT NULL,
                program BLOB NOT NULL,
                kwh BLOB NOT NULL,
                PRIMARY KEY (night, owner)
            )""",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, target: int = LATEST) -> list[int]:
    """Bring the database up to `target`; returns the versions applied. `conn` is in autocommit mode."""
    version = current_version(conn)
    if version > LATEST:
        raise SchemaError(
            f"database schema version {version} is newer than this lightctl knows ({LATEST}): "
            "upgrade lightctl, or restore a backup made before the upgrade"
        )
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version <= version or migration.version > target:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (migration.version,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(migration.version)
    return applied

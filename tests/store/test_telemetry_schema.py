"""The SQLite telemetry file's schema: a version 1 file (readings clustered by their key) is migrated
to version 2 (rowid table, key in a unique index) with its readings, and replays are still ignored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lightctl.store.sqlite_ts import VERSION, SqliteTelemetry
from tests.store.conftest import reading

T0 = 1_750_003_600.0

V1 = (
    """CREATE TABLE readings (device TEXT NOT NULL, ts REAL NOT NULL, seq INTEGER NOT NULL,
        flags TEXT NOT NULL, received REAL NOT NULL, vals TEXT NOT NULL,
        PRIMARY KEY (device, ts, seq)) WITHOUT ROWID""",
    "CREATE TABLE devices (device TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE rollup_pending (hour REAL PRIMARY KEY)",
    """CREATE TABLE rollups (device TEXT NOT NULL, hour REAL NOT NULL, count INTEGER NOT NULL,
        lit INTEGER NOT NULL, stats TEXT NOT NULL, PRIMARY KEY (device, hour)) WITHOUT ROWID""",
    "PRAGMA user_version = 1",
)


def write_v1(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for statement in V1:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO readings VALUES (?,?,?,?,?,?)",
            [
                (
                    "ha-001",
                    T0 + 60 * i,
                    i,
                    "tilt" if i == 3 else "",
                    T0 + 60 * i + 1,
                    f'{{"power":{100 + i}.5}}',
                )
                for i in range(10)
            ],
        )
        conn.execute("INSERT INTO devices VALUES ('ha-001')")
    conn.close()


def schema_of(path: Path) -> tuple[int, str, list[str]]:
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'readings'").fetchone()[0]
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'readings' AND type = 'index'"
            )
        ]
    conn.close()
    return version, table, indexes


async def test_a_version_1_file_is_migrated_with_its_readings(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    write_v1(path)
    backend = SqliteTelemetry(path)
    await backend.open()
    try:
        version, table, indexes = schema_of(path)
        assert (version, "WITHOUT ROWID" in table, indexes) == (VERSION, False, ["readings_key"])
        stored = await backend.raw("ha-001", T0, T0 + 3600)
        assert [(r.ts, r.seq, r.values, r.flags) for r in stored] == [
            (T0 + 60 * i, i, {"power": 100 + i + 0.5}, frozenset({"tilt"}) if i == 3 else frozenset())
            for i in range(10)
        ]
        # A replay of a migrated reading is still ignored; a new one is stored after them.
        await backend.write(
            [reading("ha-001", T0 + 60 * 4, 4, power=1.0), reading("ha-001", T0 + 600, 10, power=2.0)]
        )
        assert await backend.count_raw() == 11
        assert (await backend.raw("ha-001", T0 + 240, T0 + 241))[0].values == {"power": 104.5}
    finally:
        await backend.close()


async def test_a_new_file_is_version_2_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    backend = SqliteTelemetry(tmp_path / "new.db")
    await backend.open()
    await backend.write([reading("ha-001", T0, 1, power=3.0), reading("ha-001", T0, 1, power=4.0)])
    assert await backend.count_raw() == 1
    await backend.close()
    assert schema_of(tmp_path / "new.db")[0] == VERSION
    with sqlite3.connect(tmp_path / "new.db") as conn:
        conn.execute(f"PRAGMA user_version = {VERSION + 1}")
    conn.close()
    newer = SqliteTelemetry(tmp_path / "new.db")
    with pytest.raises(RuntimeError, match="newer than this lightctl"):
        await newer.open()
    await newer.close()

"""The embedded telemetry backend: raw readings and hourly rollups in one SQLite file (WAL).

Raw readings are keyed by (device, ts, seq), so a replayed reading is ignored, not duplicated. Each
write marks the hours it touched as pending; `maintain` rolls up every complete pending hour from
the raw readings (so readings replayed late, after an outage, correct the rollup of their hour) and
then applies retention: raw readings for `raw_retention_days`, rollups for `rollup_retention_days`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import orjson

from lightctl.model import Reading
from lightctl.store.series import DEFAULT_LIT_THRESHOLD_W, Bucket, QuantityStats, bucketise, regroup
from lightctl.store.sqlite_thread import SqliteThread
from lightctl.store.telemetry import BackendUnavailable

HOUR = 3600
DAY_S = 86400.0
ROLLUP_GRACE_S = 60.0  # wait for stragglers before rolling up an hour that just ended
RETENTION_EVERY_S = 3600.0

# Raw readings in arrival order (a rowid table: a batch is appended to the last pages) with the
# (device, ts, seq) key in an index of its own. Clustered by that key (version 1), every reading of a
# batch landed on another page of the table, each rewritten whole: twice the CPU per row at 20,000
# devices, four times at 100,000.
_READINGS = """CREATE TABLE IF NOT EXISTS readings (
        device TEXT NOT NULL,
        ts REAL NOT NULL,
        seq INTEGER NOT NULL,  -- -1: the device sends none
        flags TEXT NOT NULL,
        received REAL NOT NULL,
        vals TEXT NOT NULL  -- JSON object quantity -> value
    )"""
_READINGS_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS readings_key ON readings (device, ts, seq)"
VERSION = 2
_SCHEMA = (
    _READINGS,
    _READINGS_KEY,
    "CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS rollup_pending (hour REAL PRIMARY KEY)",
    """CREATE TABLE IF NOT EXISTS rollups (
        device TEXT NOT NULL,
        hour REAL NOT NULL,
        count INTEGER NOT NULL,
        lit INTEGER NOT NULL,
        stats TEXT NOT NULL,  -- JSON object quantity -> [n, min, max, mean, first, last]
        PRIMARY KEY (device, hour)
    ) WITHOUT ROWID""",
    f"PRAGMA user_version = {VERSION}",
)


def _migrate(conn: sqlite3.Connection) -> None:
    """Version 1 (readings clustered by their key) to 2, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE readings RENAME TO readings_v1")
        conn.execute(_READINGS)
        conn.execute(
            "INSERT INTO readings SELECT device, ts, seq, flags, received, vals FROM readings_v1 ORDER BY ts"
        )
        conn.execute("DROP TABLE readings_v1")
        conn.execute(_READINGS_KEY)
        conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_Row = tuple[str, float, int, str, float, str]
_FLAG_TEXT: dict[frozenset[str], str] = {frozenset(): ""}  # the codecs share their flag sets


def _rows(batch: Sequence[Reading]) -> list[_Row]:
    """Rows in primary-key order (neighbours share B-tree pages), straight from the Readings."""
    dumps, flag_text = orjson.dumps, _FLAG_TEXT
    rows: list[_Row] = []
    add = rows.append
    for r in batch:
        vals = dumps(r.values)
        if b"null" in vals:  # orjson writes NaN and infinities as null: leave those values out
            vals = dumps({k: v for k, v in r.values.items() if math.isfinite(v)})
        flags = flag_text.get(r.flags)
        if flags is None:
            flags = ",".join(sorted(r.flags))
            if len(flag_text) < 4096:
                flag_text[r.flags] = flags
        seq = r.seq
        add((r.device, r.ts, -1 if seq is None else seq, flags, r.received, vals.decode()))
    rows.sort()
    return rows


def _reading(row: _Row) -> Reading:
    device, ts, seq, flags, received, vals = row
    return Reading(
        device=device,
        ts=ts,
        seq=None if seq < 0 else seq,
        values=orjson.loads(vals),
        flags=frozenset(flags.split(",")) if flags else frozenset(),
        received=received,
    )


class SqliteTelemetry:
    """Implements telemetry.TelemetryBackend on SQLite."""

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        raw_retention_days: int = 30,
        rollup_retention_days: int = 3 * 366,
        lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
    ) -> None:
        self._db = SqliteThread(path, "telemetry")
        self.raw_retention_days = raw_retention_days
        self.rollup_retention_days = rollup_retention_days
        self.lit_threshold_w = lit_threshold_w
        self._last_retention = -math.inf

    async def open(self) -> None:
        await self._db.open()

        def create(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 1:
                _migrate(conn)
            elif version > VERSION:
                raise RuntimeError(f"{self._db.path}: telemetry schema {version} is newer than this lightctl")
            for statement in _SCHEMA:
                conn.execute(statement)

        await self._db.run(create)

    async def close(self) -> None:
        await self._db.close()

    async def write(self, batch: Sequence[Reading]) -> None:
        if not batch:
            return

        def insert(conn: sqlite3.Connection) -> None:
            # Rows are built here, on the database thread, to keep the event loop's share small.
            rows = _rows(batch)
            hours = {r[1] // HOUR for r in rows}
            devices = {r[0] for r in rows}
            conn.executemany("INSERT OR IGNORE INTO readings VALUES (?,?,?,?,?,?)", rows)
            conn.executemany("INSERT OR IGNORE INTO devices VALUES (?)", [(d,) for d in sorted(devices)])
            conn.executemany("INSERT OR IGNORE INTO rollup_pending VALUES (?)", [(h * HOUR,) for h in hours])

        try:
            await self._db.transaction(insert)
        except sqlite3.Error as exc:  # disk full, I/O error, locked: the buffer keeps the batch
            raise BackendUnavailable(f"sqlite telemetry write failed: {exc}") from exc

    async def raw(self, device: str, start: float, end: float, limit: int = 10_000) -> list[Reading]:
        rows = await self._db.run(
            lambda conn: conn.execute(
                "SELECT device, ts, seq, flags, received, vals FROM readings"
                " WHERE device = ? AND ts >= ? AND ts < ? ORDER BY ts, seq LIMIT ?",
                (device, start, end, limit),
            ).fetchall()
        )
        return [_reading(r) for r in rows]

    async def buckets(
        self,
        devices: Sequence[str] | None,
        start: float,
        end: float,
        every_s: int,
        origin_s: float = 0.0,
    ) -> list[Bucket]:
        if end <= start:
            return []
        if every_s % HOUR == 0 and origin_s % HOUR == 0:
            hourly = await self._db.run(lambda conn: self._hourly(conn, devices, start, end))
            return hourly if every_s == HOUR else regroup(hourly, every_s, origin_s)
        readings = await self._db.run(lambda conn: self._raw_ranges(conn, devices, [(start, end)]))
        return bucketise(readings, every_s, origin_s, self.lit_threshold_w)

    def _device_list(self, conn: sqlite3.Connection, devices: Sequence[str] | None) -> list[str]:
        if devices is not None:
            return list(devices)
        return [r[0] for r in conn.execute("SELECT device FROM devices ORDER BY device")]

    def _raw_ranges(
        self, conn: sqlite3.Connection, devices: Sequence[str] | None, ranges: list[tuple[float, float]]
    ) -> list[Reading]:
        out: list[Reading] = []
        for device in self._device_list(conn, devices):
            for lo, hi in ranges:
                rows = conn.execute(
                    "SELECT device, ts, seq, flags, received, vals FROM readings"
                    " WHERE device = ? AND ts >= ? AND ts < ? ORDER BY ts, seq",
                    (device, lo, hi),
                ).fetchall()
                out.extend(_reading(r) for r in rows)
        return out

    def _hourly(
        self, conn: sqlite3.Connection, devices: Sequence[str] | None, start: float, end: float
    ) -> list[Bucket]:
        """Hour buckets: rollups where a whole, rolled-up hour lies inside, raw readings elsewhere."""
        first_full = math.ceil(start / HOUR) * HOUR
        last_full = math.floor(end / HOUR) * HOUR
        if first_full >= last_full:
            readings = self._raw_ranges(conn, devices, [(start, end)])
            return bucketise(readings, HOUR, 0.0, self.lit_threshold_w)
        pending = [
            r[0]
            for r in conn.execute(
                "SELECT hour FROM rollup_pending WHERE hour >= ? AND hour < ? ORDER BY hour",
                (first_full, last_full),
            )
        ]
        ranges = [(start, first_full), *((h, h + HOUR) for h in pending), (last_full, end)]
        ranges = [(lo, hi) for lo, hi in ranges if hi > lo]
        buckets = bucketise(self._raw_ranges(conn, devices, ranges), HOUR, 0.0, self.lit_threshold_w)
        skip = set(pending)
        for device in self._device_list(conn, devices):
            for hour, count, lit, stats in conn.execute(
                "SELECT hour, count, lit, stats FROM rollups WHERE device = ? AND hour >= ? AND hour < ?",
                (device, first_full, last_full),
            ):
                if hour not in skip:
                    buckets.append(Bucket(device, hour, HOUR, count, lit, _load_stats(stats)))
        buckets.sort(key=lambda b: (b.device, b.start))
        return buckets

    async def maintain(self, now: float) -> None:
        await self._db.run(lambda conn: self._roll_up(conn, now))
        if now - self._last_retention >= RETENTION_EVERY_S:
            await self._db.run(lambda conn: self._retention(conn, now))
            self._last_retention = now

    def _roll_up(self, conn: sqlite3.Connection, now: float) -> int:
        """Recompute the rollups of every complete pending hour; returns how many hours."""
        due = [
            r[0]
            for r in conn.execute(
                "SELECT hour FROM rollup_pending WHERE hour <= ? ORDER BY hour",
                (now - HOUR - ROLLUP_GRACE_S,),
            )
        ]
        raw_cutoff = now - self.raw_retention_days * DAY_S
        for hour in due:
            readings = self._raw_ranges(conn, None, [(hour, hour + HOUR)])
            conn.execute("BEGIN IMMEDIATE")
            try:
                # An hour whose raw data retention already removed keeps its rollup: recomputing
                # it from a few late readings would throw the rest of the hour away.
                keep_old = hour < raw_cutoff
                if not keep_old:
                    conn.execute("DELETE FROM rollups WHERE hour = ?", (hour,))
                conn.executemany(
                    f"INSERT OR {'IGNORE' if keep_old else 'REPLACE'} INTO rollups VALUES (?,?,?,?,?)",
                    [
                        (b.device, b.start, b.count, b.lit, _dump_stats(b.stats))
                        for b in bucketise(readings, HOUR, 0.0, self.lit_threshold_w)
                    ],
                )
                conn.execute("DELETE FROM rollup_pending WHERE hour = ?", (hour,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return len(due)

    def _retention(self, conn: sqlite3.Connection, now: float) -> None:
        raw_cutoff = now - self.raw_retention_days * DAY_S
        rollup_cutoff = now - self.rollup_retention_days * DAY_S
        # Per device, so each delete is a range of the primary key rather than a table scan.
        for device in self._device_list(conn, None):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM readings WHERE device = ? AND ts < ?", (device, raw_cutoff))
            conn.execute("DELETE FROM rollups WHERE device = ? AND hour < ?", (device, rollup_cutoff))
            conn.execute("COMMIT")

    async def roll_up_now(self, now: float) -> int:
        """Roll up due hours immediately (tests, shutdown); `maintain` does this periodically."""
        return await self._db.run(lambda conn: self._roll_up(conn, now))

    async def apply_retention(self, now: float) -> None:
        await self._db.run(lambda conn: self._retention(conn, now))
        self._last_retention = now

    async def count_raw(self) -> int:
        row = await self._db.run(lambda conn: conn.execute("SELECT COUNT(*) FROM readings").fetchone())
        return int(row[0])


def _dump_stats(stats: dict[str, QuantityStats]) -> str:
    return orjson.dumps({q: [s.n, s.min, s.max, s.mean, s.first, s.last] for q, s in stats.items()}).decode()


def _load_stats(text: str) -> dict[str, QuantityStats]:
    raw: dict[str, list[float]] = orjson.loads(text)
    return {q: QuantityStats(int(v[0]), v[1], v[2], v[3], v[4], v[5]) for q, v in raw.items()}

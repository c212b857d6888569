"""Telemetry backends on real servers, and ways to read back what they stored without lightctl's code;
the state database on SQLite and on a PostgreSQL schema of its own."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lightctl.config.settings import Influx
from lightctl.model import Reading
from lightctl.store.influx import InfluxTelemetry
from lightctl.store.sqlite_ts import SqliteTelemetry
from lightctl.store.state_pg import PgStateDB
from lightctl.store.state_sqlite import SqliteStateDB
from lightctl.store.telemetry import TelemetryBackend
from tests import servers

MEASUREMENT = "lighting"
KINDS = {"ha-001": "lamp", "ha-002": "lamp", "gw1-u01": "group"}


@dataclass(frozen=True)
class Stored:
    """One point as the server holds it, read with the server's own query interface."""

    device: str
    ts_ms: int  # the point's timestamp
    seq: int | None
    values: dict[str, float]


Readback = Callable[[], Awaitable[list[Stored]]]


@dataclass
class Target:
    name: str
    backend: TelemetryBackend
    readback: Readback
    server: servers.InfluxDB | servers.VictoriaMetrics | None = None


def base_time() -> float:
    """Midnight UTC yesterday: inside victoria-metrics' window, whole hours and days."""
    return math.floor(time.time() / 86400) * 86400 - 86400


@pytest.fixture
def vm_dedup() -> Iterator[servers.VictoriaMetrics]:
    """victoria-metrics with -dedup.minScrapeInterval=1ms, as docs/storage.md tells production to run it:
    without it a replayed point is kept twice (InfluxDB overwrites it)."""
    with servers.VictoriaMetrics("-dedup.minScrapeInterval=1ms") as server:
        yield server


def sqlite_readback(path: Path) -> Readback:
    async def read() -> list[Stored]:
        def query() -> list[Stored]:
            with sqlite3.connect(path) as conn:
                rows = conn.execute("SELECT device, ts, seq, vals FROM readings").fetchall()
            return [
                Stored(d, round(ts * 1000), None if seq < 0 else seq, orjson.loads(v))
                for d, ts, seq, v in rows
            ]

        return await asyncio.to_thread(query)

    return read


def influx_readback(server: servers.InfluxDB, db: str) -> Readback:
    async def read() -> list[Stored]:
        answer = await asyncio.to_thread(server.query, f'SELECT * FROM "{MEASUREMENT}"', db)
        out: list[Stored] = []
        for series in answer["results"][0].get("series", []):
            columns = series["columns"]
            for row in series["values"]:
                record = dict(zip(columns, row, strict=True))
                values = {
                    k: float(v)
                    for k, v in record.items()
                    if k not in ("time", "device", "kind", "seq", "flags") and v is not None
                }
                ts_ms = _rfc3339_ms(record["time"])
                out.append(Stored(record["device"], ts_ms, record.get("seq"), values))
        return out

    return read


def _rfc3339_ms(text: str) -> int:
    # InfluxDB 1.x answers RFC 3339 with up to 9 fractional digits when no epoch is asked for.
    whole, _, frac = text.rstrip("Z").partition(".")
    seconds = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC).timestamp()
    return round(seconds * 1000) + int((frac + "000")[:3] or 0)


def vm_readback(server: servers.VictoriaMetrics) -> Readback:
    async def read() -> list[Stored]:
        await asyncio.to_thread(server.flush)
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            response = await client.get(
                f"{server.url}/api/v1/export", params={"match[]": f'{{__name__=~"{MEASUREMENT}_.*"}}'}
            )
        response.raise_for_status()
        points: dict[tuple[str, int], dict[str, float]] = {}
        duplicates: list[Stored] = []
        for text in response.text.splitlines():
            if not text.strip():
                continue
            item = orjson.loads(text)
            field = item["metric"]["__name__"].removeprefix(f"{MEASUREMENT}_")
            device = item["metric"]["device"]
            seen: set[int] = set()
            for value, ts_ms in zip(item["values"], item["timestamps"], strict=True):
                if ts_ms in seen:  # the same field twice at one timestamp: a duplicate point
                    duplicates.append(Stored(device, ts_ms, None, {field: value}))
                seen.add(ts_ms)
                points.setdefault((device, ts_ms), {})[field] = value
        out = [
            Stored(
                device,
                ts_ms,
                None if "seq" not in fields else int(fields["seq"]),
                {k: v for k, v in fields.items() if k not in ("seq", "flags")},
            )
            for (device, ts_ms), fields in points.items()
        ]
        return out + duplicates

    return read


@pytest.fixture
async def telemetry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """A telemetry backend, opened; parametrize indirectly with sqlite | influxdb | victoria-metrics."""
    kind = request.param
    target: Target
    if kind == "sqlite":
        path = tmp_path / "telemetry.db"
        target = Target(kind, SqliteTelemetry(path), sqlite_readback(path))
    elif kind == "influxdb":
        server = request.getfixturevalue("influxdb")
        server.create_database("lightctl")
        settings = Influx(url=server.url, api="v1", database="lightctl", measurement=MEASUREMENT)
        target = Target(kind, InfluxTelemetry(settings, KINDS), influx_readback(server, "lightctl"), server)
    elif kind == "victoria-metrics":
        server = request.getfixturevalue("vm_dedup")
        settings = Influx(
            url=server.url, api="v2", bucket="lightctl", org="district", measurement=MEASUREMENT
        )
        target = Target(kind, InfluxTelemetry(settings, KINDS), vm_readback(server), server)
    else:
        raise ValueError(kind)
    await target.backend.open()
    try:
        yield target
    finally:
        await target.backend.close()


async def wait_for(check: Callable[[], Awaitable[bool]], within_s: float = 20.0, what: str = "") -> None:
    """Poll `check` until true; fail after `within_s` (a functional deadline, generous)."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for {what or check}")
        await asyncio.sleep(0.1)


def reading(device: str, ts: float, seq: int | None, **values: float) -> Reading:
    return Reading(device=device, ts=ts, seq=seq, values=dict(values))


# --- the state database ---------------------------------------------------------------------------

# The machine's PostgreSQL (scripts/install-system-deps.sh starts it); LIGHTCTL_TEST_POSTGRES=<dsn>
# points the tests elsewhere. Each test works in a schema of its own, dropped afterwards, so tests
# never see each other's rows and can run while other things use the server.
POSTGRES_DSNS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)


def _postgres_answers(dsn: str) -> str | None:
    """None if `dsn` accepts a connection, else why not."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def require_postgresql() -> str:
    """A DSN of a PostgreSQL that lets tests create schemas; if none answers, fail under CI=true,
    else skip loudly and list the test in the session summary (as servers.require does)."""
    candidates = (
        [os.environ["LIGHTCTL_TEST_POSTGRES"]] if os.environ.get("LIGHTCTL_TEST_POSTGRES") else POSTGRES_DSNS
    )
    why = ""
    for dsn in candidates:
        problem = _postgres_answers(dsn)
        if problem is None:
            return dsn
        why = why or problem
    shown = {k: v for k, v in conninfo_to_dict(candidates[0]).items() if k != "password"}
    message = (
        f"PostgreSQL does not answer at {make_conninfo(**shown)} ({why}): run `sudo scripts/install-system-deps.sh`"
        " (it starts an installed PostgreSQL) or set LIGHTCTL_TEST_POSTGRES to a DSN"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    test_id = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    servers.MISSING.setdefault(message, set()).add(test_id)
    pytest.skip(f"!!! {servers.SKIP_MARKER} !!! {message}")


@pytest.fixture(scope="session")
def postgresql() -> str:
    """The DSN of the test PostgreSQL (a superuser's, to create and drop schemas)."""
    return require_postgresql()


@dataclass(frozen=True)
class PgSchema:
    name: str
    dsn: str  # connects with search_path = this schema and application_name = its name
    admin_dsn: str


@pytest.fixture
def pg_schema(postgresql: str) -> Iterator[PgSchema]:
    """A fresh schema; dropped with everything in it after the test."""
    name = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgresql, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    dsn = make_conninfo(postgresql, options=f"-c search_path={name}", application_name=name)
    try:
        yield PgSchema(name, dsn, postgresql)
    finally:
        with psycopg.connect(postgresql, autocommit=True) as admin:
            # A connection the test left open would hold no locks while idle; one stuck in a
            # transaction must not hang the session, so give up on it after a while.
            admin.execute("SET lock_timeout = '10s'")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@dataclass(frozen=True)
class StateTarget:
    """Where a test's state database lives; `open` may be called again to reopen the same one."""

    kind: str  # "sqlite" | "postgresql"
    location: str  # the SQLite file, or a DSN whose search_path is the test's own schema

    async def open(self, audit_retention_days: int = 400) -> SqliteStateDB | PgStateDB:
        if self.kind == "sqlite":
            return await SqliteStateDB.open(self.location, audit_retention_days)
        return await PgStateDB.open(self.location, audit_retention_days)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_target(request: pytest.FixtureRequest, tmp_path: Path) -> StateTarget:
    if request.param == "postgresql":
        schema: PgSchema = request.getfixturevalue("pg_schema")
        return StateTarget("postgresql", schema.dsn)
    return StateTarget("sqlite", str(tmp_path / "state.db"))


@pytest.fixture
async def state_db(state_target: StateTarget) -> AsyncIterator[SqliteStateDB | PgStateDB]:
    """The state database on each backend, opened with a 180-day audit retention."""
    db = await state_target.open(audit_retention_days=180)
    try:
        yield db
    finally:
        await db.close()


async def wait_until_blocked(schema: PgSchema, within_s: float = 10.0) -> None:
    """Until a connection of the test's schema waits for a lock held by another."""
    deadline = time.monotonic() + within_s
    async with await psycopg.AsyncConnection.connect(schema.admin_dsn, autocommit=True) as admin:
        while True:
            cur = await admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event_type = 'Lock'",
                (schema.name,),
            )
            row = await cur.fetchone()
            if row and row[0] >= 1:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"no connection blocked on a lock within {within_s} s")
            await asyncio.sleep(0.02)

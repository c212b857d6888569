"""Telemetry backends on real servers, and ways to read back what they stored without lightctl's code."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from lightctl.config.settings import Influx
from lightctl.model import Reading
from lightctl.store.influx import InfluxTelemetry
from lightctl.store.sqlite_ts import SqliteTelemetry
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

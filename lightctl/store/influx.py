"""The InfluxDB telemetry backend: line protocol over HTTP for writes, InfluxQL over /query for reads.

Writes go to `/api/v2/write` (api v2: InfluxDB 2.x, 3.x, Cloud and anything that speaks it, e.g.
VictoriaMetrics) or to `/write` (api v1: InfluxDB 1.x), both with httpx rather than influxdb-client:
the same line protocol serves both APIs, one HTTP client keeps one set of timeouts and error
classes, and batching and retries are lightctl's own (pipeline.py) whichever API is used. Reads use
InfluxQL, which 1.x answers natively and 2.x / 3.x through their v1 compatibility endpoint.

A point is measurement + tags (device, kind) + one float field per quantity, `seq` (integer) and
`flags` (comma-separated names; always written, so counting it counts points). Its timestamp (ns)
is the reading's ts to the microsecond; a reading stamped in whole seconds with a seq (SLC-M1) gets
seq mod 1000 as its milliseconds, so two reports in the same second (one right after a command)
stay two points even in a store with millisecond resolution, while a replayed reading lands on the
same timestamp and overwrites itself instead of adding a duplicate.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from lightctl.config.settings import Influx
from lightctl.model import Reading
from lightctl.store.series import DEFAULT_LIT_THRESHOLD_W, Bucket, QuantityStats
from lightctl.store.telemetry import BackendRejected, BackendUnavailable

_RESERVED_FIELDS = ("seq", "flags")
_AGGREGATES = ("min", "max", "mean", "first", "last")


def _escape_key(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _escape_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def point_ns(reading: Reading) -> int:
    whole = int(reading.ts)
    if reading.seq is not None and reading.ts == whole:
        return whole * 1_000_000_000 + (reading.seq % 1000) * 1_000_000
    return round(reading.ts * 1_000_000) * 1000


def ts_from_point(ns: int, seq: int | None) -> float:
    """The reading's ts back from its point timestamp (the inverse of `point_ns`)."""
    if seq is not None and ns % 1_000_000 == 0 and (ns // 1_000_000) % 1000 == seq % 1000:
        return float(ns // 1_000_000_000)
    return (ns // 1000) / 1_000_000


def line(measurement: str, reading: Reading, kind: str | None) -> str:
    tags = f"{measurement},device={_escape_key(reading.device)}"
    if kind:
        tags += f",kind={_escape_key(kind)}"
    fields = [
        f"{_escape_key(q)}={float(v)!r}"
        for q, v in reading.values.items()
        if q not in _RESERVED_FIELDS and math.isfinite(v)
    ]
    if reading.seq is not None:
        fields.append(f"seq={reading.seq}i")
    fields.append(f'flags="{_escape_string(",".join(sorted(reading.flags)))}"')
    return f"{tags} {','.join(fields)} {point_ns(reading)}"


def _quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxTelemetry:
    """Implements telemetry.TelemetryBackend on InfluxDB (api v1 or v2 for writes, InfluxQL reads)."""

    name = "influxdb"

    def __init__(
        self,
        settings: Influx,
        kinds: Mapping[str, str] | None = None,
        lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
        timeout_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.kinds = kinds or {}
        self.lit_threshold_w = lit_threshold_w
        self._timeout = timeout_s
        self._client: httpx.AsyncClient | None = None
        self._measurement = _escape_measurement(settings.measurement)
        self._from = _quote_ident(settings.measurement)
        if settings.api == "v1" and settings.retention_policy:
            self._from = f"{_quote_ident(settings.retention_policy)}.{self._from}"

    async def open(self) -> None:
        s = self.settings
        headers = {"Authorization": f"Token {s.token}"} if s.api == "v2" and s.token else {}
        auth = (s.username, s.password or "") if s.api == "v1" and s.username else None
        # trust_env=False: the database is reached directly, never through a proxy from the env.
        self._client = httpx.AsyncClient(
            base_url=s.url, headers=headers, auth=auth, timeout=self._timeout, trust_env=False
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("InfluxTelemetry is not open")
        return self._client

    async def write(self, batch: Sequence[Reading]) -> None:
        if not batch:
            return
        # ~6 us a reading: a 5000-reading batch would hold the loop for 30 ms, so build it aside.
        body = await asyncio.to_thread(self._body, batch)
        s = self.settings
        if s.api == "v2":
            path, params = "/api/v2/write", {"org": s.org or "", "bucket": s.bucket or "", "precision": "ns"}
        else:
            path, params = "/write", {"db": s.database or "", "precision": "ns"}
            if s.retention_policy:
                params["rp"] = s.retention_policy
        try:
            response = await self._http().post(
                path, params=params, content=body, headers={"Content-Type": "text/plain"}
            )
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{s.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (200, 204):
            return
        detail = f"{s.url}{path}: HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code in (400, 413, 422):
            raise BackendRejected(detail)
        # 401/403/404 are configuration (token, database) an operator can fix: keep the data.
        raise BackendUnavailable(detail)

    def _body(self, batch: Sequence[Reading]) -> bytes:
        return "\n".join(line(self._measurement, r, self.kinds.get(r.device)) for r in batch).encode()

    async def query(self, statements: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the per-statement results (JSON of the /query answer)."""
        s = self.settings
        params = {"q": statements, "epoch": "ns"}
        params["db"] = (s.database if s.api == "v1" else s.bucket) or ""
        if s.api == "v1" and s.retention_policy:
            params["rp"] = s.retention_policy
        try:
            response = await self._http().post("/query", params=params)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{s.url}/query: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise BackendUnavailable(f"{s.url}/query: HTTP {response.status_code}: {response.text[:300]}")
        answer = response.json()
        results: list[dict[str, Any]] = answer.get("results", [])
        errors = [r["error"] for r in results if "error" in r]
        if "error" in answer or errors:
            raise BackendUnavailable(f"{s.url}/query: {answer.get('error') or errors}")
        return results

    def _where(self, devices: Sequence[str] | None, start: float, end: float) -> str:
        clause = f"time >= {math.ceil(start * 1e9)} AND time < {math.ceil(end * 1e9)}"
        if devices is None:
            return clause
        if len(devices) == 1:
            return f"{clause} AND device = {_quote_string(devices[0])}"
        # Inventory ids are [a-z0-9-] slugs, so they need no regex escaping beyond '-'.
        alternatives = "|".join(d.replace("-", "\\-") for d in devices)
        return f"{clause} AND device =~ /^({alternatives})$/"

    async def raw(self, device: str, start: float, end: float, limit: int = 10_000) -> list[Reading]:
        results = await self.query(
            f"SELECT * FROM {self._from} WHERE {self._where([device], start, end)} ORDER BY time LIMIT {limit}"
        )
        out: list[Reading] = []
        for series in results[0].get("series", []):
            columns: list[str] = series["columns"]
            for row in series["values"]:
                record = dict(zip(columns, row, strict=True))
                values = {
                    k: float(v)
                    for k, v in record.items()
                    if k not in ("time", "device", "kind", *_RESERVED_FIELDS) and isinstance(v, int | float)
                }
                flags = record.get("flags") or ""
                seq = record.get("seq")
                out.append(
                    Reading(
                        device=device,
                        ts=ts_from_point(int(record["time"]), None if seq is None else int(seq)),
                        seq=None if seq is None else int(seq),
                        values=values,
                        flags=frozenset(str(flags).split(",")) if flags else frozenset(),
                    )
                )
        return out

    async def buckets(
        self,
        devices: Sequence[str] | None,
        start: float,
        end: float,
        every_s: int,
        origin_s: float = 0.0,
    ) -> list[Bucket]:
        if end <= start or (devices is not None and not devices):
            return []
        where = self._where(devices, start, end)
        group = f"GROUP BY time({every_s}s, {int(origin_s % every_s)}s), device fill(none)"
        aggregates = ", ".join(f"{fn}(*)" for fn in _AGGREGATES)
        thr = repr(float(self.lit_threshold_w))
        results = await self.query(
            f"SELECT {aggregates}, count(*) FROM {self._from} WHERE {where} {group};"
            f"SELECT count(power) FROM {self._from} WHERE {where} AND power > {thr} {group};"
            f'SELECT count("on") FROM {self._from} WHERE {where} AND "on" >= 0.5 {group}'
        )
        lit_power = _counts(results[1])
        lit_on = _counts(results[2])
        buckets: list[Bucket] = []
        for series in results[0].get("series", []):
            device = series["tags"]["device"]
            columns: list[str] = series["columns"]
            for row in series["values"]:
                record = dict(zip(columns, row, strict=True))
                ns = int(record["time"])
                stats = _stats(record)
                key = (device, ns)
                lit = lit_power.get(key, 0) if "power" in stats else lit_on.get(key, 0)
                count = int(record.get("count_flags") or 0)
                buckets.append(Bucket(device, ns / 1e9, every_s, count, lit, stats))
        buckets.sort(key=lambda b: (b.device, b.start))
        return buckets

    async def maintain(self, now: float) -> None:
        return None  # retention belongs to the server (retention policy / bucket retention)


def _counts(result: dict[str, Any]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for series in result.get("series", []):
        device = series["tags"]["device"]
        for ns, count in series["values"]:
            out[(device, int(ns))] = int(count or 0)
    return out


def _stats(record: dict[str, Any]) -> dict[str, QuantityStats]:
    quantities = {k.removeprefix("min_") for k in record if k.startswith("min_")}
    stats: dict[str, QuantityStats] = {}
    for quantity in sorted(quantities):
        if quantity in _RESERVED_FIELDS:
            continue
        values = [record.get(f"{fn}_{quantity}") for fn in _AGGREGATES]
        if any(not isinstance(v, int | float) for v in values):
            continue
        n = int(record.get(f"count_{quantity}") or 0)
        stats[quantity] = QuantityStats(n, *(float(v) for v in values))  # type: ignore[arg-type]
    return stats

"""GET /telemetry/{id} (time series, raw or aggregated) and GET /reports/energy (JSON, CSV, XLSX).

`telemetry_router(get_store, get_district, require_viewer)`: the three are FastAPI dependencies that
app.py supplies, so this module knows nothing of how the services or authentication are built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel

from lightctl.config.loader import District
from lightctl.model import Reading
from lightctl.store import energy, report
from lightctl.store.series import Bucket
from lightctl.store.telemetry import BackendUnavailable, TelemetryBackend, parse_every

MAX_BUCKETS = 20_000
MAX_RAW = 10_000
DEFAULT_WINDOW = dt.timedelta(hours=24)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class StatsOut(BaseModel):
    n: int
    min: float
    max: float
    mean: float
    first: float
    last: float


class PointOut(BaseModel):
    ts: str
    seq: int | None
    values: dict[str, float]
    flags: list[str]


class BucketOut(BaseModel):
    start: str
    count: int
    lit: int
    stats: dict[str, StatsOut]


class TelemetryOut(BaseModel):
    device: str
    start: str
    end: str
    every: str | None  # None: raw readings in `points`; else aggregates in `buckets`
    points: list[PointOut]
    buckets: list[BucketOut]
    truncated: bool  # more raw readings exist than `limit`


class EnergyRowOut(BaseModel):
    key: str
    name: str
    devices: int
    kwh: float
    burning_h: float
    full_kwh: float
    saving_kwh: float
    saving_pct: float | None


class EnergyOut(BaseModel):
    start: str
    end: str
    by: str
    items: list[EnergyRowOut]
    total: EnergyRowOut


def _iso(ts: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def _epoch(value: dt.datetime, tz: ZoneInfo) -> float:
    # A time without an offset is the site's local time, as an operator would mean it.
    return (value if value.tzinfo else value.replace(tzinfo=tz)).timestamp()


def _window(start: dt.datetime | None, end: dt.datetime | None, tz: ZoneInfo) -> tuple[float, float]:
    end_s = _epoch(end, tz) if end else dt.datetime.now(tz).timestamp()
    start_s = _epoch(start, tz) if start else end_s - DEFAULT_WINDOW.total_seconds()
    if end_s <= start_s:
        raise HTTPException(status_code=422, detail="end must be after start")
    return start_s, end_s


def _local_origin(ts: float, tz: ZoneInfo) -> float:
    offset = dt.datetime.fromtimestamp(ts, tz).utcoffset() or dt.timedelta()
    return -offset.total_seconds()


def _point(reading: Reading, tz: ZoneInfo) -> PointOut:
    return PointOut(
        ts=_iso(reading.ts, tz), seq=reading.seq, values=reading.values, flags=sorted(reading.flags)
    )


def _bucket(bucket: Bucket, tz: ZoneInfo) -> BucketOut:
    return BucketOut(
        start=_iso(bucket.start, tz),
        count=bucket.count,
        lit=bucket.lit,
        stats={
            q: StatsOut(n=s.n, min=s.min, max=s.max, mean=s.mean, first=s.first, last=s.last)
            for q, s in bucket.stats.items()
        },
    )


def _row(row: energy.EnergyRow) -> EnergyRowOut:
    return EnergyRowOut(
        key=row.key,
        name=row.name,
        devices=row.devices,
        kwh=row.kwh,
        burning_h=row.burning_h,
        full_kwh=row.full_kwh,
        saving_kwh=row.saving_kwh,
        saving_pct=row.saving_pct,
    )


def _total(rows: list[energy.EnergyRow]) -> EnergyRowOut:
    kwh = sum(r.kwh for r in rows)
    full = sum(r.full_kwh for r in rows)
    return EnergyRowOut(
        key="total",
        name="合计",
        devices=sum(r.devices for r in rows),
        kwh=kwh,
        burning_h=sum(r.burning_h for r in rows),
        full_kwh=full,
        saving_kwh=full - kwh,
        saving_pct=(full - kwh) / full * 100 if full > 0 else None,
    )


def _group_names(district: District, by: energy.GroupBy) -> dict[str, str]:
    if by != "road":
        return {}
    names = {g.id: g.name for g in district.gateways.values()}
    names.update({z.id: z.name for z in district.zones.values()})
    names.update({r.id: r.name for r in district.roads.values()})
    return names


def telemetry_router(
    get_store: Callable[..., Any],
    get_district: Callable[..., Any],
    require_viewer: Callable[..., Any],
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_viewer)], tags=["telemetry"])

    @router.get("/telemetry/{device_id}", response_model=TelemetryOut)
    async def telemetry(
        device_id: str,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        every: Annotated[str | None, Query(description="5m, 1h, 1d ...; omit for raw readings")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RAW)] = MAX_RAW,
        store: TelemetryBackend = Depends(get_store),
        district: District = Depends(get_district),
    ) -> TelemetryOut:
        if device_id not in district.devices:
            raise HTTPException(status_code=404, detail=f"no device {device_id!r}")
        tz = ZoneInfo(district.settings.site.timezone)
        start_s, end_s = _window(start, end, tz)
        points: list[PointOut] = []
        buckets: list[BucketOut] = []
        truncated = False
        try:
            if every is None:
                readings = await store.raw(device_id, start_s, end_s, limit + 1)
                truncated = len(readings) > limit
                points = [_point(r, tz) for r in readings[:limit]]
            else:
                try:
                    every_s = parse_every(every)
                except ValueError as exc:
                    raise HTTPException(status_code=422, detail=str(exc)) from None
                if (end_s - start_s) / every_s > MAX_BUCKETS:
                    raise HTTPException(
                        status_code=422, detail=f"more than {MAX_BUCKETS} intervals: widen every"
                    )
                origin = _local_origin(start_s, tz)
                found = await store.buckets([device_id], start_s, end_s, every_s, origin)
                buckets = [_bucket(b, tz) for b in found]
        except BackendUnavailable as exc:
            raise HTTPException(status_code=503, detail=f"telemetry store unavailable: {exc}") from None
        return TelemetryOut(
            device=device_id,
            start=_iso(start_s, tz),
            end=_iso(end_s, tz),
            every=every,
            points=points,
            buckets=buckets,
            truncated=truncated,
        )

    @router.get(
        "/reports/energy",
        response_model=EnergyOut,
        responses={200: {"content": {"text/csv": {}, XLSX: {}}}},
    )
    async def energy_report(
        start: dt.datetime,
        end: dt.datetime,
        by: energy.GroupBy = "road",
        format: Literal["json", "csv", "xlsx"] = "json",
        store: TelemetryBackend = Depends(get_store),
        district: District = Depends(get_district),
    ) -> Any:
        tz = ZoneInfo(district.settings.site.timezone)
        start_s, end_s = _window(start, end, tz)
        if end_s - start_s > 400 * 86400:
            raise HTTPException(status_code=422, detail="a report covers at most 400 days")
        try:
            hourly = await store.buckets(None, start_s - energy.LOOKBACK_S, end_s, energy.HOUR)
        except BackendUnavailable as exc:
            raise HTTPException(status_code=503, detail=f"telemetry store unavailable: {exc}") from None
        per_device = energy.devices_energy(hourly, start_s, end_s, store.lit_threshold_w)
        rows = energy.energy_report(per_device, district.devices, by, _group_names(district, by))
        start_iso, end_iso = _iso(start_s, tz), _iso(end_s, tz)
        stem = f"energy-{by}-{dt.datetime.fromtimestamp(start_s, tz):%Y%m%d}"
        if format == "csv":
            return Response(
                report.render_csv(rows, by, start_iso, end_iso),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'},
            )
        if format == "xlsx":
            return Response(
                report.render_xlsx(rows, by, start_iso, end_iso),
                media_type=XLSX,
                headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'},
            )
        return EnergyOut(
            start=start_iso, end=end_iso, by=by, items=[_row(r) for r in rows], total=_total(rows)
        )

    return router

"""Health and devices."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from lightctl import __version__
from lightctl.api.deps import require, services
from lightctl.api.limits import MAX_OFFSET
from lightctl.model import Device
from lightctl.services import Services
from lightctl.state import DeviceStatus

router = APIRouter()
viewer = require("viewer")


class DeviceOut(BaseModel):
    id: str
    kind: str
    name: str
    road: str | None
    zone: str | None
    gateway: str | None
    lat: float
    lon: float
    online: bool | None
    on: bool | None
    level: int | None
    k1: bool | None
    k2: bool | None
    scene: int | None
    power_w: float | None
    last_seen: str | None
    open_alarms: int
    maintenance: bool


class DeviceList(BaseModel):
    items: list[DeviceOut]
    total: int
    limit: int
    offset: int


def iso(ts: float | None, tz: ZoneInfo) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def site_tz(svc: Services) -> ZoneInfo:
    return ZoneInfo(svc.district.settings.site.timezone)


def device_out(dev: Device, st: DeviceStatus, svc: Services) -> DeviceOut:
    tz = site_tz(svc)
    alarms = svc.extras.get("alarms")
    maintenance = svc.extras.get("maintenance")
    return DeviceOut(
        id=dev.id,
        kind=dev.kind,
        name=dev.name,
        road=dev.road,
        zone=dev.zone,
        gateway=dev.gateway or dev.concentrator,
        lat=dev.lat,
        lon=dev.lon,
        online=st.online,
        on=st.on,
        level=st.level if dev.kind != "facade" else st.brightness,
        k1=st.k1 if dev.kind == "group" else None,
        k2=st.k2 if dev.kind == "group" else None,
        scene=st.scene if dev.kind == "facade" else None,
        power_w=None if st.power_w is None else round(st.power_w, 1),
        last_seen=iso(st.last_seen, tz),
        open_alarms=alarms.open_count(dev.id) if alarms is not None else 0,
        maintenance=maintenance.in_maintenance(dev.id) if maintenance is not None else False,
    )


@router.get("/health")
def health(svc: Services = Depends(services)) -> dict[str, object]:
    devices = svc.district.devices
    by_kind: dict[str, dict[str, int]] = {}
    for dev_id, dev in devices.items():
        row = by_kind.setdefault(dev.kind, {"online": 0, "total": 0})
        row["total"] += 1
        row["online"] += 1 if svc.live.status[dev_id].online else 0
    calendar = svc.extras.get("calendar_coverage")
    return {
        "status": "ok",
        "version": __version__,
        "site": svc.district.settings.site.id,
        "demo": svc.demo,
        "now": iso(svc.clock.now(), site_tz(svc)),
        "clock_speed": svc.clock.speed,
        "devices": {"online": svc.live.online_count(), "total": len(devices), "by_kind": by_kind},
        "calendar": calendar() if callable(calendar) else None,
        "links": links() if callable(links := svc.extras.get("links")) else None,
        "storage": storage() if callable(storage := svc.extras.get("storage")) else None,
        "dropped_payloads": {name: dict(d.by_reason) for name, d in svc.drops.items()},
    }


@router.get("/devices", response_model=DeviceList)
def list_devices(
    kind: Literal["lamp", "group", "facade"] | None = None,
    road: str | None = None,
    zone: str | None = None,
    gateway: str | None = None,
    status: Literal["online", "offline", "unknown", "on", "off", "alarm", "maintenance"] | None = None,
    limit: int = Query(100, ge=1, le=10000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    svc: Services = Depends(services),
    _: object = Depends(viewer),
) -> DeviceList:
    selected: list[DeviceOut] = []
    total = 0
    for dev in svc.district.devices.values():
        if (kind and dev.kind != kind) or (road and dev.road != road) or (zone and dev.zone != zone):
            continue
        if gateway and gateway not in (dev.gateway, dev.concentrator):
            continue
        st = svc.live.status[dev.id]
        if status is not None:
            out = device_out(dev, st, svc)
            if not _status_matches(out, status):
                continue
        total += 1
        if offset < total <= offset + limit:
            selected.append(device_out(dev, st, svc))
    return DeviceList(items=selected, total=total, limit=limit, offset=offset)


def _status_matches(out: DeviceOut, status: str) -> bool:
    return {
        "online": out.online is True,
        "offline": out.online is False,
        "unknown": out.online is None,
        "on": out.on is True,
        "off": out.on is False,
        "alarm": out.open_alarms > 0,
        "maintenance": out.maintenance,
    }[status]


@router.get("/devices/{device_id}")
def get_device(
    device_id: str, svc: Services = Depends(services), _: object = Depends(viewer)
) -> dict[str, object]:
    dev = svc.district.devices.get(device_id)
    if dev is None:
        raise HTTPException(status_code=404, detail=f"no device {device_id!r}")
    st = svc.live.status[device_id]
    last = st.last
    profile = svc.district.profiles[dev.profile]
    return {
        **device_out(dev, st, svc).model_dump(),
        "profile": {"id": profile.id, "model": profile.model, "transport": profile.transport},
        "rated_w": dev.rated_w,
        "address": {
            "mqtt_id": dev.mqtt_id,
            "concentrator": dev.concentrator,
            "gateway": dev.gateway,
            "host": dev.host,
            "port": dev.port,
            "unit_id": dev.unit_id,
        },
        "telemetry": None
        if last is None
        else {"ts": last.ts, "seq": last.seq, "values": last.values, "flags": sorted(last.flags)},
    }


@router.get("/inventory")
def inventory(svc: Services = Depends(services), _: object = Depends(viewer)) -> dict[str, object]:
    """Names and places that the device list only refers to by id: for the console's map and filters."""
    d = svc.district
    site = d.settings.site
    return {
        "site": {
            "id": site.id,
            "name": site.name,
            "lat": site.lat,
            "lon": site.lon,
            "timezone": site.timezone,
        },
        "roads": [
            {
                "id": r.id,
                "name": r.name,
                "class": r.road_class,
                "path": [list(p) for p in r.path],
                "lamps": len(r.lamps),
            }
            for r in d.roads.values()
        ],
        "zones": [
            {"id": z.id, "name": z.name, "class": z.zone_class, "devices": list(z.devices)}
            for z in d.zones.values()
        ],
        "gateways": [
            {"id": g.id, "name": g.name, "lat": g.lat, "lon": g.lon, "units": len(g.units)}
            for g in d.gateways.values()
        ],
        "concentrators": [
            {"id": c.id, "name": c.name, "lat": c.lat, "lon": c.lon, "lamps": len(c.lamps)}
            for c in d.concentrators.values()
        ],
        "counts": d.counts(),
    }

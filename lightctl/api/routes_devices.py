"""Health and devices."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from lightctl import __version__
from lightctl.api.deps import require, services
from lightctl.api.device_index import device_index
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
    index = device_index(svc)
    by_kind = {
        kind: {"online": svc.live.count("online", True, kind), "total": len(ids)}
        for kind, ids in index.by["kind"].items()
    }
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
    """A page costs O(limit) whatever the inventory's size: the ids come from lists built once, and
    `total` from their lengths or, for a status, from the live state's tallies. Only a status that
    live state does not count (alarm, maintenance) or several filters at once walk the candidates."""
    index = device_index(svc)
    devices, live = svc.district.devices, svc.live.status
    filters = {"kind": kind, "road": road, "zone": zone, "gateway": gateway}
    given = {name: value for name, value in filters.items() if value}
    lists = [index.ids(name, value) for name, value in given.items()]
    ids = min(lists, key=len) if lists else index.all
    rest = len(given) > 1
    if not rest and status is None:
        page = ids[offset : offset + limit]
        items = [device_out(devices[i], live[i], svc) for i in page]
        return DeviceList(items=items, total=len(ids), limit=limit, offset=offset)
    tallied = TALLIED.get(status or "") if not rest and set(given) <= {"kind"} else None
    alarms = svc.extras.get("alarms")
    maintenance = svc.extras.get("maintenance")
    selected: list[DeviceOut] = []
    total = 0
    for dev_id in ids:
        dev = devices[dev_id]
        if rest and not _in(dev, given):
            continue
        st = live[dev_id]
        if status is not None and not _status_matches(dev_id, st, status, alarms, maintenance):
            continue
        total += 1
        if offset < total <= offset + limit:
            selected.append(device_out(dev, st, svc))
        elif tallied is not None and total > offset + limit:
            total = svc.live.count(*tallied, kind)
            break
    return DeviceList(items=selected, total=total, limit=limit, offset=offset)


TALLIED: dict[str, tuple[str, bool | None]] = {
    "online": ("online", True),
    "offline": ("online", False),
    "unknown": ("online", None),
    "on": ("on", True),
    "off": ("on", False),
}


def _status_matches(dev_id: str, st: DeviceStatus, status: str, alarms: Any, maintenance: Any) -> bool:
    if status in TALLIED:
        field, value = TALLIED[status]
        return (st.online if field == "online" else st.on) is value
    if status == "alarm":
        return alarms is not None and alarms.open_count(dev_id) > 0
    return maintenance is not None and bool(maintenance.in_maintenance(dev_id))


def _in(dev: Device, given: dict[str, str]) -> bool:
    for name, value in given.items():
        if name == "gateway":
            if value not in (dev.gateway, dev.concentrator):
                return False
        elif getattr(dev, name) != value:
            return False
    return True


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

"""Alarms (list, ack, resolve, assign) and the KPIs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from lightctl.api.auth import Identity
from lightctl.api.deps import require, services
from lightctl.api.limits import MAX_ID, MAX_OFFSET
from lightctl.api.routes_devices import iso, site_tz
from lightctl.faults.kpi import KpiService, Rate, Rows
from lightctl.faults.lifecycle import AlarmConflict, AlarmManager, AlarmNotFound
from lightctl.model import Alarm, AlarmState, Severity
from lightctl.services import Services
from lightctl.store.state import AlarmFilter

router = APIRouter()
as_viewer = require("viewer")
as_maintenance = require("maintenance")


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=4000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=4000)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(min_length=1, max_length=100)


def alarms_of(svc: Services = Depends(services)) -> AlarmManager:
    manager = svc.extras.get("alarms")
    if not isinstance(manager, AlarmManager):
        raise HTTPException(status_code=503, detail="fault detection is not running")
    return manager


def alarm_json(a: Alarm, manager: AlarmManager, svc: Services) -> dict[str, object]:
    tz = site_tz(svc)
    return {
        "id": a.id,
        "type": a.type,
        "severity": a.severity.value,
        "device": a.device,
        "device_name": _name(svc, a.device),
        "state": a.state.value,
        "first_seen": iso(a.first_seen, tz),
        "last_seen": iso(a.last_seen, tz),
        "parent": a.parent,
        "assignee": a.assignee,
        "note": a.note,
        "overdue": manager.is_overdue(a, svc.clock.now()),
        "due": iso(manager.due_at(a), tz),
        "held": a.held,
        "detail": a.detail,
    }


def _name(svc: Services, ident: str) -> str | None:
    d = svc.district
    for table in (d.devices, d.gateways, d.concentrators):
        item = table.get(ident)
        if item is not None:
            return item.name
    return None


@router.get("/alarms")
async def list_alarms(
    state: AlarmState | None = None,
    severity: Severity | None = None,
    type: str | None = Query(None, max_length=64),
    device: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    _: Identity = Depends(as_viewer),
    svc: Services = Depends(services),
    manager: AlarmManager = Depends(alarms_of),
) -> dict[str, object]:
    where = AlarmFilter(state=state, severity=severity, type=type, device=device)
    items, total = await manager.list_alarms(where, limit, offset)
    return {
        "items": [alarm_json(a, manager, svc) for a in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/alarms/{alarm_id}")
async def get_alarm(
    alarm_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    _: Identity = Depends(as_viewer),
    svc: Services = Depends(services),
    manager: AlarmManager = Depends(alarms_of),
) -> dict[str, object]:
    alarm = await manager.get_alarm(alarm_id)
    if alarm is None:
        raise HTTPException(status_code=404, detail=f"no alarm {alarm_id}")
    return alarm_json(alarm, manager, svc)


async def _act(kind: str, alarm_id: int, manager: AlarmManager, who: Identity, value: str | None) -> Alarm:
    try:
        if kind == "ack":
            return await manager.ack(alarm_id, who.name, value)
        if kind == "assign":
            return await manager.assign(alarm_id, who.name, value or "")
        return await manager.resolve(alarm_id, who.name, value)
    except AlarmNotFound:
        raise HTTPException(status_code=404, detail=f"no alarm {alarm_id}") from None
    except AlarmConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@router.post("/alarms/{alarm_id}/ack")
async def ack(
    alarm_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: NoteIn | None = None,
    who: Identity = Depends(as_maintenance),
    svc: Services = Depends(services),
    manager: AlarmManager = Depends(alarms_of),
) -> dict[str, object]:
    alarm = await _act("ack", alarm_id, manager, who, body.note if body else None)
    return alarm_json(alarm, manager, svc)


@router.post("/alarms/{alarm_id}/resolve")
async def resolve(
    alarm_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: ResolveIn,
    who: Identity = Depends(as_maintenance),
    svc: Services = Depends(services),
    manager: AlarmManager = Depends(alarms_of),
) -> dict[str, object]:
    alarm = await _act("resolve", alarm_id, manager, who, body.note)
    return alarm_json(alarm, manager, svc)


@router.post("/alarms/{alarm_id}/assign")
async def assign(
    alarm_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: AssignIn,
    who: Identity = Depends(as_maintenance),
    svc: Services = Depends(services),
    manager: AlarmManager = Depends(alarms_of),
) -> dict[str, object]:
    alarm = await _act("assign", alarm_id, manager, who, body.assignee)
    return alarm_json(alarm, manager, svc)


def _rate(r: Rate) -> dict[str, object]:
    return {
        "value": r.value,
        "ok": r.ok,
        "total": r.total,
        "target": r.target,
        "meets": r.meets,
        "unknown": r.unknown,
    }


def _rows(rows: Rows) -> dict[str, object]:
    return {
        "overall": _rate(rows.overall),
        "by_road": {k: _rate(v) for k, v in rows.by_road.items()},
        "by_kind": {k: _rate(v) for k, v in rows.by_kind.items()},
    }


@router.get("/kpi")
def kpi(
    night: dt.date | None = None,
    _: Identity = Depends(as_viewer),
    svc: Services = Depends(services),
) -> dict[str, object]:
    service = svc.extras.get("kpi")
    if not isinstance(service, KpiService):
        raise HTTPException(status_code=503, detail="fault detection is not running")
    snap = service.now()
    avg = service.night_average(night)
    return {
        "at": iso(snap.at, site_tz(svc)),
        "lighting_rate": _rows(snap.lighting),
        "intact_rate": _rows(snap.intact),
        "online_rate": _rows(snap.online),
        "lighting_rate_night": {
            "night": avg.night.isoformat(),
            "samples": avg.samples,
            "overall": avg.overall,
            "by_road": avg.by_road,
            "by_kind": avg.by_kind,
        },
    }

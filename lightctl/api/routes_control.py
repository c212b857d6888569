"""Overrides, event scenes, emergencies, maintenance windows and the night preview."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lightctl.api.auth import Identity
from lightctl.api.deps import require, services
from lightctl.api.limits import MAX_ID, MAX_OFFSET
from lightctl.api.routes_devices import iso, site_tz
from lightctl.model import DesiredState, Maintenance, Override
from lightctl.operations import ActionError, Operations
from lightctl.schedule.night import night_of
from lightctl.schedule.preview import preview_night
from lightctl.schedule.resolve import Resolver
from lightctl.services import Services

router = APIRouter()
as_viewer = require("viewer")
as_maintenance = require("maintenance")
as_operator = require("operator")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverrideIn(Body):
    targets: list[str] = Field(min_length=1, max_length=10000)
    kind: Literal["manual", "event"] = "manual"
    event: str | None = Field(None, min_length=1, max_length=200)
    on: bool | None = None
    level: int | None = Field(None, ge=0, le=100)
    k1: bool | None = None
    k2: bool | None = None
    scene: int | None = Field(None, ge=0, le=15)
    brightness: int | None = Field(None, ge=0, le=100)
    start: dt.datetime | None = None
    until: dt.datetime
    reason: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _sets_something(self) -> OverrideIn:
        if all(getattr(self, f) is None for f in ("on", "level", "k1", "k2", "scene", "brightness")):
            raise ValueError("set at least one of on, level, k1, k2, scene, brightness")
        return self


class EmergencyIn(Body):
    action: Literal["all_on", "all_off", "clear"]
    targets: list[str] | None = Field(None, max_length=10000)
    until: dt.datetime | None = None
    reason: str = Field(min_length=1, max_length=2000)


class MaintenanceIn(Body):
    targets: list[str] = Field(min_length=1, max_length=10000)
    start: dt.datetime | None = None
    until: dt.datetime
    reason: str = Field(min_length=1, max_length=2000)


def operations(svc: Services = Depends(services)) -> Operations:
    ops = svc.extras.get("operations")
    if not isinstance(ops, Operations):
        raise HTTPException(status_code=503, detail="overrides need the state database, which is not running")
    return ops


def _ts(value: dt.datetime | None, svc: Services) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=site_tz(svc))  # a time without an offset is site time
    return value.timestamp()


def _refuse(exc: ActionError) -> HTTPException:
    return HTTPException(
        status_code=422, detail=[{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
    )


def override_json(o: Override, svc: Services) -> dict[str, object]:
    tz = site_tz(svc)
    s = o.state
    now = svc.clock.now()
    return {
        "id": o.id,
        "kind": o.kind,
        "event": o.event,
        "targets": list(o.targets),
        "state": {
            "on": s.on,
            "level": s.level,
            "k1": s.k1,
            "k2": s.k2,
            "scene": s.scene,
            "brightness": s.brightness,
        },
        "start": iso(o.start, tz),
        "until": iso(o.until, tz),
        "reason": o.reason,
        "created_by": o.created_by,
        "created_at": iso(o.created_at, tz),
        "ended_at": iso(o.ended_at, tz),
        "active": o.active(now),
    }


def maintenance_json(m: Maintenance, svc: Services) -> dict[str, object]:
    tz = site_tz(svc)
    return {
        "id": m.id,
        "targets": list(m.targets),
        "start": iso(m.start, tz),
        "until": iso(m.until, tz),
        "reason": m.reason,
        "created_by": m.created_by,
        "created_at": iso(m.created_at, tz),
        "ended_at": iso(m.ended_at, tz),
        "active": m.active(svc.clock.now()),
    }


@router.post("/overrides", status_code=201)
async def create_override(
    body: OverrideIn,
    who: Identity = Depends(as_operator),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    state = DesiredState(
        on=body.on, level=body.level, k1=body.k1, k2=body.k2, scene=body.scene, brightness=body.brightness
    )
    try:
        saved = await ops.add_override(
            kind=body.kind,
            targets=body.targets,
            state=state,
            start=_ts(body.start, svc),
            until=_ts(body.until, svc) or 0.0,
            reason=body.reason,
            who=who.name,
            event=body.event,
        )
    except ActionError as exc:
        raise _refuse(exc) from None
    return override_json(saved, svc)


@router.get("/overrides")
async def list_overrides(
    active: bool | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    _: Identity = Depends(as_viewer),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    now = svc.clock.now()
    if active is None:
        items, total = await ops.state.list_overrides(limit=limit, offset=offset)
    else:
        chosen = sorted((o for o in ops.overrides if o.active(now) == active), key=lambda o: -(o.id or 0))
        items, total = chosen[offset : offset + limit], len(chosen)
    return {"items": [override_json(o, svc) for o in items], "total": total, "limit": limit, "offset": offset}


@router.delete("/overrides/{override_id}")
async def end_override(
    override_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    _: Identity = Depends(as_operator),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    ended = await ops.end_override(override_id)
    if ended is None:
        raise HTTPException(status_code=404, detail=f"no override {override_id}")
    return override_json(ended, svc)


@router.post("/emergency")
async def emergency(
    body: EmergencyIn,
    who: Identity = Depends(as_operator),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    try:
        done = await ops.emergency(body.action, body.targets, _ts(body.until, svc), body.reason, who.name)
    except ActionError as exc:
        raise _refuse(exc) from None
    return {"action": body.action, "overrides": [override_json(o, svc) for o in done]}


@router.post("/maintenance", status_code=201)
async def create_maintenance(
    body: MaintenanceIn,
    who: Identity = Depends(as_maintenance),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    try:
        saved = await ops.add_maintenance(
            body.targets, _ts(body.until, svc) or 0.0, body.reason, who.name, start=_ts(body.start, svc)
        )
    except ActionError as exc:
        raise _refuse(exc) from None
    return maintenance_json(saved, svc)


@router.get("/maintenance")
async def list_maintenance(
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    _: Identity = Depends(as_maintenance),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    items, total = await ops.state.list_maintenance(limit=limit, offset=offset)
    return {
        "items": [maintenance_json(m, svc) for m in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.delete("/maintenance/{window_id}")
async def end_maintenance(
    window_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    _: Identity = Depends(as_maintenance),
    svc: Services = Depends(services),
    ops: Operations = Depends(operations),
) -> dict[str, object]:
    ended = await ops.end_maintenance(window_id)
    if ended is None:
        raise HTTPException(status_code=404, detail=f"no maintenance window {window_id}")
    return maintenance_json(ended, svc)


@router.get("/plan")
def plan(
    date: dt.date | None = None,
    target: str | None = Query(None, max_length=200),
    _: Identity = Depends(as_viewer),
    svc: Services = Depends(services),
) -> dict[str, object]:
    resolver = svc.extras.get("resolver")
    if not isinstance(resolver, Resolver):
        resolver = Resolver.for_district(svc.district)
    night = date or night_of(svc.clock.now(), site_tz(svc))
    try:
        preview = preview_night(resolver, night, target, svc.district.profiles)
    except ValueError as exc:
        raise HTTPException(
            status_code=422, detail=[{"loc": ["query", "target"], "msg": str(exc), "type": "value_error"}]
        ) from None
    out: dict[str, object] = preview.to_json()  # type: ignore[assignment]
    return out

"""Stand-ins for the endpoints other parts provide (alarms, overrides, plan, KPIs), shaped as
design.md section 5 describes them, so the console's pages can be driven before those parts land.
They record what the console sent, which is what the tests check."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from lightctl.api.auth import Identity
from lightctl.api.deps import require
from lightctl.api.events import EventHub

TZ = dt.timezone(dt.timedelta(hours=8))


def alarm(alarm_id: int, device: str, kind: str, severity: str, state: str = "open") -> dict[str, Any]:
    return {
        "id": alarm_id, "type": kind, "severity": severity, "device": device, "state": state,
        "first_seen": "2026-10-01T19:02:11+08:00", "last_seen": "2026-10-01T19:30:40+08:00",
        "parent": None, "assignee": None, "note": None, "overdue": False,
    }  # fmt: skip


@dataclass
class Stubs:
    hub: EventHub
    alarms: list[dict[str, Any]] = field(
        default_factory=lambda: [
            alarm(1, "ha-007", "lamp_failure", "major"),
            alarm(2, "zhg-01-u05", "leakage", "critical"),
            alarm(3, "ha-020", "voltage_high", "minor", state="acked"),
        ]
    )
    overrides: list[dict[str, Any]] = field(default_factory=list)
    received: list[tuple[str, Any]] = field(default_factory=list)  # (what, body)
    plan_queries: list[dict[str, str | None]] = field(default_factory=list)

    def router(self) -> APIRouter:
        router = APIRouter()
        viewer, maintenance, operator = require("viewer"), require("maintenance"), require("operator")

        @router.get("/alarms")
        def list_alarms(
            state: str | None = None,
            severity: str | None = None,
            limit: int = Query(100, ge=1),
            offset: int = Query(0, ge=0),
            _: Identity = Depends(viewer),
        ) -> dict[str, Any]:
            chosen = [
                a
                for a in self.alarms
                if (not state or a["state"] == state) and (not severity or a["severity"] == severity)
            ]
            return {
                "items": chosen[offset : offset + limit],
                "total": len(chosen),
                "limit": limit,
                "offset": offset,
            }

        @router.post("/alarms/{alarm_id}/{action}")
        def act(
            alarm_id: int, action: str, body: dict[str, Any], who: Identity = Depends(maintenance)
        ) -> dict[str, Any]:
            target = next((a for a in self.alarms if a["id"] == alarm_id), None)
            if target is None or action not in ("ack", "resolve", "assign"):
                raise HTTPException(404, f"no alarm {alarm_id}")
            self.received.append((f"{action} {alarm_id}", body))
            if action == "ack":
                target["state"] = "acked"
            elif action == "resolve":
                if not body.get("note"):
                    raise HTTPException(422, "note required")
                target["state"] = "resolved"
            else:
                target["assignee"] = body["assignee"]
            if "note" in body:
                target["note"] = body["note"]
            self.hub.publish("alarm", target)
            return target

        @router.get("/overrides")
        def list_overrides(limit: int = 100, _: Identity = Depends(viewer)) -> dict[str, Any]:
            return {
                "items": self.overrides[:limit],
                "total": len(self.overrides),
                "limit": limit,
                "offset": 0,
            }

        @router.post("/overrides", status_code=201)
        def create_override(body: dict[str, Any], who: Identity = Depends(operator)) -> dict[str, Any]:
            self.received.append(("override", body))
            created = {"id": len(self.overrides) + 1, **body, "created_by": who.name, "ended_at": None}
            self.overrides.append(created)
            self.hub.publish("override", created)
            return {"id": created["id"]}

        @router.get("/plan")
        def plan(
            date: str | None = None, target: str | None = None, _: Identity = Depends(viewer)
        ) -> dict[str, Any]:
            self.plan_queries.append({"date": date, "target": target})
            return preview(dt.date.fromisoformat(date) if date else dt.date(2026, 10, 1))

        @router.get("/kpi")
        def kpi(_: Identity = Depends(viewer)) -> dict[str, Any]:
            return {
                "overall": {
                    "lighting_rate": {"value": 0.985, "target": 0.98},
                    "intact_rate": 0.962,
                    "online_rate": 0.991,
                }
            }

        return router


def preview(night: dt.date) -> dict[str, Any]:
    def at(hour: int, minute: int) -> str:
        day = night if hour >= 12 else night + dt.timedelta(days=1)
        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).isoformat()

    return {
        "date": night.isoformat(),
        "day_type": "holiday",
        "holiday": "国庆节",
        "sun": {"sunset": at(17, 58), "sunrise": at(6, 12), "civil_dusk": at(18, 22), "civil_dawn": at(5, 48)},
        "energy_kwh": 1234.5,
        "targets": [
            {
                "target": "road:hengan-lu", "name": "恒安路", "program": "arterial",
                "steps": [
                    {"at": at(18, 3), "on": True, "level": 100, "source": "plan: arterial"},
                    {"at": at(23, 0), "level": 70, "source": "plan: arterial"},
                    {"at": at(1, 0), "level": 50, "source": "plan: arterial"},
                    {"at": at(5, 0), "level": 80, "source": "plan: arterial"},
                    {"at": at(6, 12), "on": False, "source": "plan: arterial"},
                ],
            },
            {
                "target": "kind:group", "name": "中华灯", "program": "zhonghua",
                "steps": [
                    {"at": at(17, 58), "k1": True, "k2": True, "source": "plan: zhonghua"},
                    {"at": at(23, 30), "k2": False, "k1": True, "source": "plan: zhonghua"},
                    {"at": at(6, 12), "k1": False, "k2": False, "source": "plan: zhonghua"},
                ],
            },
            {
                "target": "zone:longcheng", "name": "龙城国际", "program": "major-event",
                "steps": [
                    {"at": at(17, 58), "scene": 3, "brightness": 100, "source": "plan: National Day"},
                    {"at": at(0, 0), "scene": 0, "source": "plan: National Day"},
                ],
            },
        ],
    }  # fmt: skip

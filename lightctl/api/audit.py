"""The audit log: every control action, who did it, when, with what body and what came of it.

A pure ASGI recorder sits around the API so no router can forget to write its record: it records
every POST / PUT / PATCH / DELETE under /api/v1 made by an identified caller (including refusals,
403 and 422), and every login attempt. Unauthenticated noise is not recorded, so nobody without a
token can fill the log. Secrets in bodies (token, password ... fields) are masked before recording.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Protocol

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightctl.api.auth import Identity
from lightctl.api.deps import require, services
from lightctl.api.limits import MAX_OFFSET
from lightctl.api.routes_devices import iso, site_tz
from lightctl.services import Services
from lightctl.store.state import AuditEntry

log = logging.getLogger(__name__)

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "/api/v1/"
LOGIN_PATH = "/api/v1/session"
MAX_RECORDED_BODY = 16 * 1024
SECRET_FIELD = re.compile(r"token|passw|secret|api[-_]?key|authorization|cookie|hash|credential", re.I)
MASK = "***"


class AuditSink(Protocol):
    """Where records go: the state database (store/state.py's StateDB has these two methods)."""

    async def append_audit(self, entry: AuditEntry) -> int: ...

    async def list_audit(
        self, limit: int = 100, offset: int = 0, who: str | None = None, since: float | None = None
    ) -> tuple[list[AuditEntry], int]: ...


class MemoryAudit:
    """An AuditSink kept in memory, for tests and for an API running without a state database."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.entries: list[AuditEntry] = []
        self._max = max_entries
        self._next_id = 1

    async def append_audit(self, entry: AuditEntry) -> int:
        entry_id = self._next_id
        self._next_id += 1
        self.entries.append(
            AuditEntry(entry_id, entry.ts, entry.who, entry.role, entry.action, entry.body, entry.result)
        )
        if len(self.entries) > self._max:
            del self.entries[: len(self.entries) - self._max]
        return entry_id

    async def list_audit(
        self, limit: int = 100, offset: int = 0, who: str | None = None, since: float | None = None
    ) -> tuple[list[AuditEntry], int]:
        chosen = [
            e
            for e in reversed(self.entries)
            if (who is None or e.who == who) and (since is None or e.ts >= since)
        ]
        return chosen[offset : offset + limit], len(chosen)


class AuditStats:
    def __init__(self) -> None:
        self.recorded = 0
        self.failures = 0  # records the sink could not take (shown in /metrics)


def audit_sink(app: FastAPI) -> AuditSink:
    """The state database when app.py attached one (svc.extras["audit"]), else the in-memory log."""
    svc: Services = app.state.services
    sink: AuditSink = svc.extras.get("audit") or app.state.memory_audit
    return sink


def mask_body(raw: bytes, content_type: str = "") -> str:
    """The body as it is kept in the log: JSON with secret fields masked, or a description."""
    if not raw:
        return ""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        kind = content_type.split(";")[0].strip() or "unknown type"
        return f"<{len(raw)} bytes, {kind}, not JSON>"
    text = orjson.dumps(_mask(value)).decode()
    if len(text) > MAX_RECORDED_BODY:
        return text[:MAX_RECORDED_BODY] + "...(truncated)"
    return text


def _mask(value: object) -> object:
    if isinstance(value, dict):
        return {k: MASK if SECRET_FIELD.search(str(k)) else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


class AuditRecorder:
    """ASGI middleware: buffers an audited request's body, runs the request, records the outcome."""

    def __init__(self, app: ASGIApp, owner: Callable[[], FastAPI]) -> None:
        self.app = app
        self._owner = owner  # the FastAPI app, known only once it is built

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # bounded by limits.BodyLimit, which wraps this
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status: int | None = None
        head = bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and len(head) < 4096:
                head.extend(message.get("body", b"")[: 4096 - len(head)])
            await send(message)

        state: dict[str, object] = scope.setdefault("state", {})
        try:
            await self.app(scope, replay, watch)
        finally:
            who = state.get("identity")
            if isinstance(who, Identity) or (path == LOGIN_PATH and status in (200, 401, 422)):
                await self._record(
                    scope, who if isinstance(who, Identity) else None, body, status, bytes(head)
                )

    async def _record(
        self, scope: Scope, who: Identity | None, body: bytes, status: int | None, head: bytes
    ) -> None:
        app = self._owner()
        svc: Services = app.state.services
        stats: AuditStats = app.state.audit_stats
        query = scope.get("query_string", b"").decode("latin-1")
        action = f"{scope['method']} {scope['path']}" + (f"?{query}" if query else "")
        content_type = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), "")
        entry = AuditEntry(
            id=None,
            ts=svc.clock.now(),
            who=who.name if who else "",
            role=who.role if who else "",
            action=action,
            body=mask_body(body, content_type),
            result=_result(status, head),
        )
        try:
            await audit_sink(app).append_audit(entry)
            stats.recorded += 1
        except Exception:
            # The action itself has happened; losing its record is logged loudly and counted.
            stats.failures += 1
            log.exception("audit record lost: %s by %s (%s)", action, entry.who, entry.result)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see the disconnect on its own receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _result(status: int | None, head: bytes) -> str:
    if status is None:
        return "500 (no response)"
    if 200 <= status < 300 and head.startswith(b"{"):
        try:
            doc = orjson.loads(head)
        except orjson.JSONDecodeError:
            return str(status)
        if isinstance(doc, dict) and "id" in doc:
            return f"{status} id={doc['id']}"
    return str(status)


# GET /audit ----------------------------------------------------------------------------------------

router = APIRouter()
admin = require("admin")


class AuditOut(BaseModel):
    id: int | None
    ts: str | None
    who: str
    role: str
    action: str
    body: str
    result: str


class AuditList(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


@router.get("/audit", response_model=AuditList)
async def list_audit(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    who: str | None = Query(None, max_length=64, description="only this token name"),
    svc: Services = Depends(services),
    _: Identity = Depends(admin),
) -> AuditList:
    entries, total = await audit_sink(request.app).list_audit(limit=limit, offset=offset, who=who)
    tz = site_tz(svc)
    items = [
        AuditOut(
            id=e.id, ts=iso(e.ts, tz), who=e.who, role=e.role, action=e.action, body=e.body, result=e.result
        )
        for e in entries
    ]
    return AuditList(items=items, total=total, limit=limit, offset=offset)

"""Every control action lands in the audit log with who, when, what and the outcome; secrets masked."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from lightctl.api.app import create_app
from lightctl.api.audit import MemoryAudit, mask_body
from lightctl.api.auth import Identity
from lightctl.api.deps import require
from lightctl.config.loader import District
from lightctl.store.state import AuditEntry
from tests.api.conftest import TOKENS, ThreadServer, bearer, make_services, wait_until


class OverrideIn(BaseModel):
    targets: list[str]
    reason: str


def with_control_router(app: FastAPI) -> FastAPI:
    """A stand-in control endpoint: the recorder must cover routers it has never heard of."""
    router = APIRouter()
    operator = require("operator")

    @router.post("/stand-in-action", status_code=201)
    def create(body: OverrideIn, _: Identity = Depends(operator)) -> dict[str, object]:
        return {"id": 17, "targets": body.targets}

    app.include_router(router, prefix="/api/v1")
    return app


def audit_items(client: httpx.Client, base: str, **params: str | int) -> dict[str, Any]:
    response = client.get(f"{base}/api/v1/audit", headers=bearer("admin"), params=params)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_control_actions_are_recorded_with_who_what_and_result(district: District) -> None:
    svc = make_services(district)
    app = with_control_router(create_app(svc))
    before = time.time()
    with ThreadServer(app) as server, httpx.Client(timeout=10) as client:
        body = {"targets": ["zone:longcheng"], "reason": "国庆灯光秀"}
        created = client.post(f"{server.url}/api/v1/stand-in-action", json=body, headers=bearer("operator"))
        assert created.status_code == 201
        refused = client.post(
            f"{server.url}/api/v1/stand-in-action", json=body, headers=bearer("maintenance")
        )
        assert refused.status_code == 403
        invalid = client.post(
            f"{server.url}/api/v1/stand-in-action", json={"targets": []}, headers=bearer("operator")
        )
        assert invalid.status_code == 422
        anonymous = client.post(f"{server.url}/api/v1/stand-in-action", json=body)
        assert anonymous.status_code == 401
        page = audit_items(client, server.url)
    items = page["items"]
    assert isinstance(items, list)
    assert page["total"] == 3  # the anonymous attempt is not recorded
    newest, middle, oldest = items
    assert (oldest["who"], oldest["role"], oldest["action"]) == (
        "operator-user",
        "operator",
        "POST /api/v1/stand-in-action",
    )
    assert oldest["result"] == "201 id=17"
    assert json.loads(oldest["body"]) == body
    assert (middle["who"], middle["result"]) == ("maintenance-user", "403")
    assert (newest["who"], newest["result"]) == ("operator-user", "422")
    # The time is the service clock's, shown in the site's offset.
    assert all(item["ts"].endswith("+08:00") for item in items)
    assert int(before) <= datetime.fromisoformat(oldest["ts"]).timestamp() <= time.time()


def test_logins_are_recorded_with_the_token_masked(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        assert (
            client.post(f"{server.url}/api/v1/session", json={"token": TOKENS["viewer"]}).status_code == 200
        )
        assert client.post(f"{server.url}/api/v1/session", json={"token": "wrong-guess"}).status_code == 401
        assert client.delete(f"{server.url}/api/v1/session").status_code == 204
        page = audit_items(client, server.url)
    logout, failed, success = page["items"]
    assert (success["who"], success["result"], success["action"]) == (
        "viewer-user",
        "200",
        "POST /api/v1/session",
    )
    assert (failed["who"], failed["result"]) == ("", "401")
    assert (logout["who"], logout["action"]) == ("viewer-user", "DELETE /api/v1/session")
    for entry in (success, failed):
        assert json.loads(entry["body"]) == {"token": "***"}
    everything = json.dumps(page)
    assert TOKENS["viewer"] not in everything
    assert "wrong-guess" not in everything


def test_reading_is_not_audited(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        client.get(f"{server.url}/api/v1/devices", headers=bearer("admin"))
        client.get(f"{server.url}/api/v1/audit", headers=bearer("admin"))
        assert audit_items(client, server.url)["total"] == 0


def test_paging_and_filtering(district: District) -> None:
    sink = MemoryAudit()
    app = create_app(make_services(district, audit=sink))
    with ThreadServer(app) as server, httpx.Client(timeout=10) as client:
        for role in ("viewer", "operator", "viewer"):
            client.post(f"{server.url}/api/v1/session", json={"token": TOKENS[role]})
        # the sink app.py attaches is the one written to (the record is written just after the answer)
        wait_until(lambda: len(sink.entries) == 3, 5, "three audit records")
        first = audit_items(client, server.url, limit=2, offset=0)
        second = audit_items(client, server.url, limit=2, offset=2)
        viewers = audit_items(client, server.url, who="viewer-user")
        assert (
            client.get(f"{server.url}/api/v1/audit", params={"limit": 0}, headers=bearer("admin")).status_code
            == 422
        )
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (3, 2, 0, 2)
    assert (second["total"], len(second["items"])) == (3, 1)
    assert viewers["total"] == 2
    ids = [i["id"] for i in [*first["items"], *second["items"]]]
    assert ids == sorted(ids, reverse=True)


class FailingSink(MemoryAudit):
    async def append_audit(self, entry: AuditEntry) -> int:
        raise OSError("disk full")


def test_a_failing_store_does_not_undo_the_action_and_is_counted(district: District) -> None:
    app = create_app(make_services(district, audit=FailingSink()))
    with ThreadServer(app) as server, httpx.Client(timeout=10) as client:
        response = client.post(f"{server.url}/api/v1/session", json={"token": TOKENS["viewer"]})
        assert response.status_code == 200
        metrics = client.get(f"{server.url}/metrics").text
    assert "lightctl_audit_failures_total 1.0" in metrics


async def test_the_state_database_is_an_audit_sink(district: District, tmp_path: Path) -> None:
    from lightctl.store.state_sqlite import SqliteStateDB

    async def scenario() -> tuple[list[AuditEntry], int]:
        db = await SqliteStateDB.open(tmp_path / "state.db")
        try:
            app = create_app(make_services(district, audit=db))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                ok = await client.post("/api/v1/session", json={"token": TOKENS["office"]})
                assert ok.status_code == 200
            return await db.list_audit()
        finally:
            await db.close()

    entries, total = await scenario()
    assert total == 1
    assert (entries[0].who, entries[0].role, entries[0].result) == ("office-user", "office", "200")


def test_masking_finds_secrets_at_any_depth() -> None:
    raw = json.dumps(
        {"token": "t", "nested": {"Password": "p", "ok": 1}, "list": [{"api_key": "k"}, {"reason": "r"}]}
    ).encode()
    assert json.loads(mask_body(raw)) == {
        "token": "***",
        "nested": {"Password": "***", "ok": 1},
        "list": [{"api_key": "***"}, {"reason": "r"}],
    }
    assert (
        mask_body(b"\x00\x01binary", "application/octet-stream")
        == "<8 bytes, application/octet-stream, not JSON>"
    )
    assert mask_body(b"") == ""

"""Roles on every mutating endpoint, against the real service.

tests/api/test_permissions.py checks the whole matrix table-driven from docs/api.md on an app with no
running parts (an empty body: an allowed caller gets 422 or 503). Here: (1) the mutating routes and
their roles are pinned to design.md section 5, so a weakened row in docs/api.md cannot pass that
matrix unnoticed; (2) `lightctl serve` with its state database and fault detection answers each
mutating request with a valid body: 401 without or with a wrong token, 403 below the role (by token
and by session cookie) with nothing changed, and success at the role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lightctl.api.app import create_app
from lightctl.api.auth import RANK
from lightctl.config.loader import load
from lightctl.config.settings import ROLES
from tests.api.conftest import REPO, make_services
from tests.api.test_permissions import declared_roles, registered, shape
from tests.procs import Api, DistrictCopy, LightctlProcess, wait_until
from tests.security.conftest import ONE_ROAD, ApiTokens, SecuredBroker, serve_config, sim_config

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}

# design.md section 5 (with the console's session endpoints from docs/api.md).
DESIGNED: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/overrides"): "operator",
    ("DELETE", "/api/v1/overrides/{}"): "operator",
    ("POST", "/api/v1/emergency"): "operator",
    ("POST", "/api/v1/maintenance"): "maintenance",
    ("DELETE", "/api/v1/maintenance/{}"): "maintenance",
    ("POST", "/api/v1/alarms/{}/ack"): "maintenance",
    ("POST", "/api/v1/alarms/{}/resolve"): "maintenance",
    ("POST", "/api/v1/alarms/{}/assign"): "maintenance",
    ("POST", "/api/v1/reload"): "office",
    ("POST", "/api/v1/session"): "open",
    ("DELETE", "/api/v1/session"): "viewer",
}


def test_the_permission_matrix_covers_every_mutating_route_with_the_designed_role() -> None:
    app = create_app(make_services(load(REPO / "config.yaml")))
    mutating = {(e.method, shape(e.path)) for e in registered(app) if e.method in MUTATING}
    assert mutating == set(DESIGNED), "a mutating route was added or removed: review its role here"
    declared = declared_roles()  # what tests/api/test_permissions.py checks every route against
    wrong = {k: (declared.get(k), role) for k, role in DESIGNED.items() if declared.get(k) != role}
    assert not wrong, f"docs/api.md (declared, designed): {wrong}"


# --- against `lightctl serve` ------------------------------------------------------------------------------


def later(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


@dataclass
class Action:
    method: str
    path: str
    role: str
    body: dict[str, Any] | None
    state: Callable[[Api], object]  # what it would change, read back as the admin


def test_every_mutating_endpoint_refuses_below_its_role_and_changes_nothing(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    config = serve_config(district, secured_broker, api_tokens, partition=ONE_ROAD)
    sim = LightctlProcess.sim(
        sim_config(district, secured_broker), tmp_path / "sim.log", faults="tilt:ha-003"
    )
    with LightctlProcess.serve(config, tmp_path / "serve.log") as serve, sim:
        serve.wait_serving()
        base = serve.base_url()
        callers: dict[str, Api] = {role: Api(base, api_tokens.of(role)) for role in ROLES}
        admin = callers["admin"]
        try:
            alarm = wait_until(lambda: admin.alarms(type="pole_tilt", device="ha-003"), 60, "an alarm")[0]
            made = callers["operator"].post(
                "/api/v1/overrides",
                {"targets": ["ha-001"], "on": True, "level": 30, "until": later(60), "reason": "fixture"},
            )
            window = callers["maintenance"].post(
                "/api/v1/maintenance", {"targets": ["ha-002"], "until": later(60), "reason": "fixture"}
            )
            assert made.status_code == 201, made.text
            assert window.status_code == 201, window.text
            override_id, window_id, alarm_id = made.json()["id"], window.json()["id"], alarm["id"]

            def overrides(api: Api) -> object:
                return sorted(
                    (o["id"], o["kind"], o["ended_at"]) for o in api.get("/api/v1/overrides")["items"]
                )

            def windows(api: Api) -> object:
                return sorted((m["id"], m["ended_at"]) for m in api.get("/api/v1/maintenance")["items"])

            def the_alarm(api: Api) -> object:
                a = api.get(f"/api/v1/alarms/{alarm_id}")
                return (a["state"], a["assignee"], a["note"])

            def nothing(api: Api) -> object:
                return None

            override = {"targets": ["ha-003"], "on": False, "until": later(30), "reason": "role test"}
            actions = [
                Action("POST", "/api/v1/overrides", "operator", override, overrides),
                Action("DELETE", f"/api/v1/overrides/{override_id}", "operator", None, overrides),
                Action(
                    "POST",
                    "/api/v1/emergency",
                    "operator",
                    {"action": "all_off", "reason": "role test"},
                    overrides,
                ),
                Action(
                    "POST",
                    "/api/v1/maintenance",
                    "maintenance",
                    {"targets": ["ha-004"], "until": later(30), "reason": "t"},
                    windows,
                ),
                Action("DELETE", f"/api/v1/maintenance/{window_id}", "maintenance", None, windows),
                Action(
                    "POST",
                    f"/api/v1/alarms/{alarm_id}/assign",
                    "maintenance",
                    {"assignee": "crew 7"},
                    the_alarm,
                ),
                Action(
                    "POST", f"/api/v1/alarms/{alarm_id}/ack", "maintenance", {"note": "on my way"}, the_alarm
                ),
                Action(
                    "POST",
                    f"/api/v1/alarms/{alarm_id}/resolve",
                    "maintenance",
                    {"note": "pole replaced"},
                    the_alarm,
                ),
                Action("POST", "/api/v1/reload", "office", {}, nothing),
                Action("DELETE", "/api/v1/session", "viewer", None, nothing),
            ]
            covered = {(a.method, shape(_template(a.path))) for a in actions} | {("POST", "/api/v1/session")}
            assert covered == set(DESIGNED)

            failures: list[str] = []
            cookies = _cookie_clients(base, api_tokens)
            wrong = httpx.Client(
                base_url=base,
                headers={"Authorization": "Bearer wrong-" + api_tokens.of("admin")},
                timeout=15,
                trust_env=False,
            )
            anonymous = httpx.Client(base_url=base, timeout=15, trust_env=False)
            refusals: set[tuple[str, str]] = set()  # (token name, action) refused with 403
            try:
                for action in actions:
                    before = action.state(admin)
                    name = f"{action.method} {action.path}"
                    tries: list[tuple[str, httpx.Client, int]] = [
                        ("no credentials", anonymous, 401),
                        ("a wrong token", wrong, 401),
                    ]
                    for role in ROLES:
                        if RANK[role] < RANK[action.role]:
                            tries.append((f"{role} token", callers[role].client, 403))
                            tries.append((f"{role} session cookie", cookies[role], 403))
                            refusals.add((f"{role}-user", name))
                    for who, client, expected in tries:
                        status = client.request(action.method, action.path, json=action.body).status_code
                        if status != expected:
                            failures.append(f"{name} with {who}: {status}, expected {expected}")
                    if action.state(admin) != before:
                        failures.append(f"{name}: refused callers changed {before} to {action.state(admin)}")
                    allowed = callers[action.role].client.request(
                        action.method, action.path, json=action.body
                    )
                    if not allowed.is_success:
                        failures.append(
                            f"{name} as {action.role}: {allowed.status_code} {allowed.text[:200]}"
                        )
                    elif action.state is not nothing and action.state(admin) == before:
                        failures.append(f"{name} as {action.role} succeeded but changed nothing")
            finally:
                for client in [*cookies.values(), wrong, anonymous]:
                    client.close()
            # Every refusal of a known caller is in the audit log, with who tried and the outcome.
            audit = admin.get("/api/v1/audit", limit=1000)["items"]
            audited = {(r["who"], r["action"]) for r in audit if r["result"] == "403"}
            failures += [f"refusal not audited: {who} {what}" for who, what in sorted(refusals - audited)]
        finally:
            for api in callers.values():
                api.close()
    assert not failures, "\n".join(failures)


def _template(path: str) -> str:
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def _cookie_clients(base: str, tokens: ApiTokens) -> dict[str, httpx.Client]:
    """One logged-in console session per role (the cookie only, no Authorization header)."""
    clients: dict[str, httpx.Client] = {}
    for role in ROLES:
        client = httpx.Client(base_url=base, timeout=15, trust_env=False)
        login = client.post("/api/v1/session", json={"token": tokens.of(role)})
        assert login.status_code == 200, login.text
        clients[role] = client
    return clients

"""The permission matrix, for every endpoint the app registers, as docs/api.md declares it.

The roles are read from the table in docs/api.md, the endpoints from the app's routes: an endpoint
without a declared role fails, so one added later cannot slip through unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI: included routes are plain entries of app.routes
    iter_route_contexts = None  # type: ignore[assignment]

from lightctl.api.auth import RANK
from lightctl.config.settings import ROLES
from tests.api.conftest import REPO, ThreadServer, bearer

ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`?([^`|\s]+)`?\s*\|\s*(\w+)\s*\|")
SPECIAL = ("open", "loopback")


def declared_roles() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for line in (REPO / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            method, path, role = match.groups()
            assert role in ROLES or role in SPECIAL, f"docs/api.md: unknown role {role!r} for {method} {path}"
            table[(method, shape(path))] = role
    return table


def shape(path: str) -> str:
    """The path with its parameters unnamed, so `{id}` and `{alarm_id}` declare the same endpoint."""
    return re.sub(r"\{[^}]+\}", "{}", path)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    def url(self, base: str) -> str:
        return base + re.sub(r"\{[^}]+\}", "1", self.path)


def registered(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app answers, hidden ones included, plus what OpenAPI lists."""
    found: set[Endpoint] = set()
    # FastAPI >= 0.16x keeps included routers as lazy entries; iter_route_contexts flattens them.
    routes = list(iter_route_contexts(app.routes)) if iter_route_contexts is not None else app.routes
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path is None or methods is None:
            continue  # mounts (the console's static files)
        found.update(Endpoint(m, path) for m in methods if m != "HEAD")
    for path, operations in app.openapi()["paths"].items():
        found.update(Endpoint(m.upper(), path) for m in operations)
    return sorted(found, key=lambda e: (e.path, e.method))


def status_of(client: httpx.Client, endpoint: Endpoint, base: str, headers: dict[str, str]) -> int:
    body: dict[str, object] | None = {} if endpoint.method in ("POST", "PUT", "PATCH") else None
    # Streamed so that the event stream answers with its status without being read to the end.
    with client.stream(endpoint.method, endpoint.url(base), headers=headers, json=body) as response:
        return response.status_code


def test_every_registered_endpoint_has_a_declared_role(app: FastAPI) -> None:
    table = declared_roles()
    undeclared = [f"{e.method} {e.path}" for e in registered(app) if (e.method, shape(e.path)) not in table]
    assert not undeclared, f"declare a role in docs/api.md's table for: {undeclared}"


def test_permission_matrix(server: ThreadServer) -> None:
    table = declared_roles()
    endpoints = registered(server.app)
    assert len(endpoints) >= 8  # the matrix below must have something to check
    failures: list[str] = []
    with httpx.Client(timeout=10) as client:
        for endpoint in endpoints:
            role = table[(endpoint.method, shape(endpoint.path))]
            anonymous = status_of(client, endpoint, server.url, {})
            name = f"{endpoint.method} {endpoint.path}"
            if role in SPECIAL:
                if anonymous in (401, 403):
                    failures.append(f"{name} is {role} but answered {anonymous} without credentials")
                continue
            if anonymous != 401:
                failures.append(f"{name} without credentials: {anonymous}, expected 401")
            for caller in ROLES:
                status = status_of(client, endpoint, server.url, bearer(caller))
                allowed = RANK[caller] >= RANK[role]
                if allowed and status in (401, 403):
                    failures.append(f"{name} as {caller} (needs {role}): {status}, expected access")
                if not allowed and status != 403:
                    failures.append(f"{name} as {caller} (needs {role}): {status}, expected 403")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
def test_a_wrong_token_is_401_whatever_the_endpoint_needs(server: ThreadServer, role: str) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{server.url}/api/v1/devices", headers={"Authorization": f"Bearer x{role}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_only_health_is_open_under_the_api_prefix() -> None:
    table = declared_roles()
    open_api = sorted(
        f"{method} {path}"
        for (method, path), role in table.items()
        if role == "open" and path.startswith("/api/v1/")
    )
    # Login is open by nature: its body carries the token it checks.
    assert open_api == ["GET /api/v1/health", "POST /api/v1/session"]

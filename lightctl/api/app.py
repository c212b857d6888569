"""The FastAPI application: everything under /api/v1, OpenAPI at /openapi.json, the console at /."""

from __future__ import annotations

from fastapi import Depends, FastAPI, HTTPException
from starlette.middleware import Middleware

from lightctl import __version__
from lightctl.api import (
    audit,
    console,
    events,
    limits,
    metrics,
    routes_admin,
    routes_alarms,
    routes_control,
    routes_devices,
    routes_reports,
    routes_session,
    routes_telemetry,
)
from lightctl.api.auth import FailureThrottle
from lightctl.api.deps import require, services
from lightctl.api.routes_devices import site_tz
from lightctl.api.session import SessionStore
from lightctl.services import Services
from lightctl.store.telemetry import TelemetryBackend


def create_app(svc: Services) -> FastAPI:
    """The API over the running parts in `svc`.

    The parts the API owns are made here when app.py has not supplied them: the event hub
    (svc.extras["events"], which other parts publish to) and an in-memory audit log used until a
    state database is attached as svc.extras["audit"].
    """
    holder: list[FastAPI] = []
    app = FastAPI(
        title="lightctl",
        version=__version__,
        docs_url=None,  # Swagger UI loads from a CDN; the console must work on a closed network
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 here: Bearer tokens and the session cookie
        # Outermost first: refuse tokens in URLs and oversized bodies before anything reads them.
        middleware=[
            Middleware(limits.QueryTokenRefusal),
            Middleware(limits.BodyLimit, max_bytes=limits.MAX_BODY_BYTES),
            Middleware(audit.AuditRecorder, owner=lambda: holder[0]),
        ],
    )
    holder.append(app)

    if svc.extras.get("events") is None:
        svc.extras["events"] = events.EventHub(svc.live, site_tz(svc), svc.clock.now)
    sessions = SessionStore(lifetime_s=svc.district.settings.api.session_hours * 3600)
    audit_stats = audit.AuditStats()
    app.state.services = svc
    app.state.sessions = sessions
    app.state.auth_throttle = FailureThrottle()
    app.state.memory_audit = audit.MemoryAudit()
    app.state.audit_stats = audit_stats
    app.state.metrics_registry = metrics.build_registry(svc, svc.extras["events"], sessions, audit_stats)

    for router in (
        routes_devices.router,
        routes_session.router,
        routes_control.router,
        routes_alarms.router,
        routes_admin.router,
        routes_reports.router,
        audit.router,
        events.router,
    ):
        app.include_router(router, prefix="/api/v1")
    app.include_router(
        routes_telemetry.telemetry_router(_telemetry_of, lambda: svc.district, require("viewer")),
        prefix="/api/v1",
    )
    app.include_router(metrics.router)
    app.include_router(console.router)
    app.mount("/ui", console.console_files(), name="console")
    return app


def _telemetry_of(svc: Services = Depends(services)) -> TelemetryBackend:
    backend = svc.extras.get("telemetry")
    if backend is None:
        raise HTTPException(status_code=503, detail="telemetry storage is not running")
    result: TelemetryBackend = backend
    return result

"""The FastAPI application: everything under /api/v1, OpenAPI at /openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

from lightctl import __version__
from lightctl.api import routes_devices
from lightctl.services import Services


def create_app(svc: Services) -> FastAPI:
    app = FastAPI(title="lightctl", version=__version__, docs_url="/api/docs", redoc_url=None)
    app.state.services = svc
    app.include_router(routes_devices.router, prefix="/api/v1")
    return app

"""Request dependencies: the services and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request

from lightctl.api.auth import Identity
from lightctl.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def identity(request: Request, svc: Services = Depends(services)) -> Identity:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        who = svc.tokens.identify(token.strip())
        if who is not None:
            return who
    raise HTTPException(
        status_code=401, detail="missing or invalid token", headers={"WWW-Authenticate": "Bearer"}
    )


def require(role: str) -> Callable[[Identity], Identity]:
    def check(who: Identity = Depends(identity)) -> Identity:
        if not who.can(role):
            raise HTTPException(status_code=403, detail=f"role {who.role} may not do this; it needs {role}")
        return who

    return check

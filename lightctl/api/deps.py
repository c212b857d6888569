"""Request dependencies: the services and the caller's identity (a Bearer token or a session cookie)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import Depends, HTTPException, Request

from lightctl.api.auth import FailureThrottle, Identity
from lightctl.api.session import COOKIE, sessions_of
from lightctl.services import Services

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AuthVia = Literal["bearer", "cookie"]


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def throttle_of(request: Request) -> FailureThrottle:
    throttle: FailureThrottle = request.app.state.auth_throttle
    return throttle


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def refuse_if_throttled(request: Request) -> None:
    wait = throttle_of(request).blocked_for(client_address(request))
    if wait > 0:
        raise HTTPException(
            status_code=429,
            detail=f"too many failed logins from this address; try again in {wait:.0f} s",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


def identity(request: Request, svc: Services = Depends(services)) -> Identity:
    """Who is calling: the Bearer token if an Authorization header is sent, else the session cookie.

    The identity is also left in request.state for the audit recorder, which runs outside FastAPI.
    (A token in the query string is refused earlier, by limits.QueryTokenRefusal.)
    """
    header = request.headers.get("authorization")
    via: AuthVia
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("use the header Authorization: Bearer <token>")
        refuse_if_throttled(request)
        who = svc.tokens.identify(token.strip())
        if who is None:
            throttle_of(request).failed(client_address(request))
            raise unauthorized("invalid token")
        via = "bearer"
    else:
        sid = request.cookies.get(COOKIE)
        if not sid:
            raise unauthorized(
                "not logged in: send Authorization: Bearer <token>, or log in with POST /api/v1/session"
            )
        session = sessions_of(request.app).get(sid)
        if session is None or not svc.tokens.holds(session.identity):
            raise unauthorized("session expired or ended: log in again")
        if request.method in UNSAFE_METHODS and not same_origin(request):
            # SameSite=Strict already keeps the cookie off cross-site requests; this is the second lock.
            raise HTTPException(status_code=403, detail="cross-site request refused")
        who = session.identity
        via = "cookie"
    request.state.identity = who
    request.state.auth_via = via
    return who


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not sent by non-browser clients; browsers send it on every unsafe request
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def require(role: str) -> Callable[[Identity], Identity]:
    def check(who: Identity = Depends(identity)) -> Identity:
        if not who.can(role):
            raise HTTPException(status_code=403, detail=f"role {who.role} may not do this; it needs {role}")
        return who

    return check

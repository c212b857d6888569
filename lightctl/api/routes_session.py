"""Log in once with a token and get a session cookie; who am I; log out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from lightctl.api.auth import Identity
from lightctl.api.deps import (
    client_address,
    refuse_if_throttled,
    require,
    services,
    throttle_of,
    unauthorized,
)
from lightctl.api.routes_devices import iso, site_tz
from lightctl.api.session import COOKIE, sessions_of
from lightctl.services import Services

router = APIRouter()
anyone = require("viewer")


class LoginIn(BaseModel):
    token: str = Field(min_length=1, max_length=512)


class SessionOut(BaseModel):
    name: str
    role: str
    via: str
    expires: str | None


@router.post("/session", response_model=SessionOut)
def login(
    body: LoginIn, request: Request, response: Response, svc: Services = Depends(services)
) -> SessionOut:
    refuse_if_throttled(request)
    who = svc.tokens.identify(body.token)
    if who is None:
        throttle_of(request).failed(client_address(request))
        raise unauthorized("invalid token")
    store = sessions_of(request.app)
    old = request.cookies.get(COOKIE)
    if old:
        store.end(old)  # a fresh id on every login: a planted cookie never becomes a session
    sid, session = store.create(who)
    request.state.identity = who  # for the audit record
    response.set_cookie(
        COOKIE,
        sid,
        max_age=int(store.lifetime_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return SessionOut(name=who.name, role=who.role, via="cookie", expires=_iso(svc, session.expires))


@router.get("/session", response_model=SessionOut)
def whoami(
    request: Request, who: Identity = Depends(anyone), svc: Services = Depends(services)
) -> SessionOut:
    expires = None
    if request.state.auth_via == "cookie":
        session = sessions_of(request.app).get(request.cookies.get(COOKIE, ""))
        expires = None if session is None else _iso(svc, session.expires)
    return SessionOut(name=who.name, role=who.role, via=request.state.auth_via, expires=expires)


@router.delete("/session", status_code=204)
def logout(request: Request, _: Identity = Depends(anyone)) -> Response:
    sid = request.cookies.get(COOKIE)
    if sid:
        sessions_of(request.app).end(sid)
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


def _iso(svc: Services, ts: float) -> str | None:
    return iso(ts, site_tz(svc))

"""Configuration reload (office): re-read the files; a bad file changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, HTTPException

from lightctl.api.auth import Identity
from lightctl.api.deps import require, services
from lightctl.services import Services

router = APIRouter()
as_office = require("office")

Reload = Callable[[], Awaitable[list[str]]]


@router.post("/reload")
async def reload(_: Identity = Depends(as_office), svc: Services = Depends(services)) -> dict[str, object]:
    do_reload: Reload | None = svc.extras.get("reload")
    if do_reload is None:
        raise HTTPException(status_code=503, detail="reload is not available in this mode")
    try:
        notes = await do_reload()
    except ReloadRefused as exc:
        raise HTTPException(
            status_code=422,
            detail={
                "message": "configuration not reloaded; the running one stays in force",
                "errors": exc.errors,
            },
        ) from None
    return {"reloaded": True, "notes": notes}


class ReloadRefused(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors

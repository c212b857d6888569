"""The API under test: the repository's district, one token per role, real uvicorn servers on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI

from lightctl.api.app import create_app
from lightctl.api.auth import TokenBook
from lightctl.api.events import hub_of
from lightctl.clock import SystemClock
from lightctl.config.loader import District, load
from lightctl.config.settings import ROLES, Token
from lightctl.services import Services
from lightctl.state import LiveState
from tests import servers

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Tokens hashed with cheap argon2 parameters: verification reads the parameters from the hash, so
# tests do not pay the production cost (tens of milliseconds per attempt) hundreds of times.
_cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TOKENS: dict[str, str] = {role: f"test-{role}-token" for role in ROLES}
TOKEN_LIST = [
    Token(name=f"{role}-user", role=role, hash=_cheap.hash(secret)) for role, secret in TOKENS.items()
]


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="session")
def district() -> District:
    return load(REPO / "config.yaml")


def make_services(district: District, **extras: Any) -> Services:
    return Services(
        district=district,
        live=LiveState(district),
        tokens=TokenBook(TOKEN_LIST),
        clock=SystemClock(),
        demo=False,
        extras=dict(extras),
    )


@pytest.fixture
def svc(district: District) -> Services:
    return make_services(district)


@pytest.fixture
def app(svc: Services) -> FastAPI:
    return create_app(svc)


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class ThreadServer:
    """uvicorn serving `app` on a free loopback port from its own thread and event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = servers.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs fn on the server's loop (where drivers would call LiveState) and returns its result."""
        assert self.loop is not None

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Awaits `coro` on the server's loop (where the API's stores and tasks live)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        wait_until(lambda: self.server.started, timeout=10, what="uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self._thread.is_alive():
            # Open event streams would otherwise hold the server's graceful shutdown forever.
            self.loop.call_soon_threadsafe(hub_of(self.app).close)
        self.server.should_exit = True
        self._thread.join(timeout=15)


@pytest.fixture
def server(app: FastAPI) -> Iterator[ThreadServer]:
    with ThreadServer(app) as running:
        yield running

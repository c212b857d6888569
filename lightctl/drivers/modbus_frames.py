"""Undecodable answers from a gateway, reported as one line instead of a traceback.

pymodbus decodes a gateway's answer inside its protocol's `data_received`; a frame it cannot decode
(a wrong length, a garbled header) raises there, and asyncio closes the connection and logs "Fatal
error: protocol.data_received() call failed" with a 20-line traceback at ERROR. Nothing is lost:
the request in flight fails with a timeout and the gateway's worker reconnects. So for pymodbus'
protocols the loop's exception handler counts the frame in the driver's drops
(`undecodable_frame`) and logs one WARNING naming the gateway, at most once a minute per gateway;
every other error goes to the handler that was there before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from lightctl.drivers.sink import Drops

log = logging.getLogger("lightctl.drivers.modbus")

REPORT_EVERY_S = 60.0
Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class UndecodableFrames:
    def __init__(self, gateways: Mapping[tuple[str, int], str], drops: Drops) -> None:
        self.gateways = gateways  # (host, port) -> gateway id
        self.drops = drops
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Handler | None = None
        self._unreported: dict[str, int] = {}
        self._reported_at: dict[str, float] = {}

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._previous = loop, loop.get_exception_handler()
        loop.set_exception_handler(self._handle)

    def uninstall(self) -> None:
        loop = self._loop
        if loop is not None and loop.get_exception_handler() == self._handle:
            loop.set_exception_handler(self._previous)
        self._loop = None

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        protocol = context.get("protocol")
        exc = context.get("exception")
        if exc is None or not type(protocol).__module__.startswith("pymodbus."):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.drops.count("undecodable_frame")
        transport = context.get("transport")
        peer = transport.get_extra_info("peername") if transport is not None else None
        where = self.gateways.get(tuple(peer[:2])) if peer else None
        name = where or (f"{peer[0]}:{peer[1]}" if peer else "a Modbus gateway")
        self._unreported[name] = self._unreported.get(name, 0) + 1
        now = time.monotonic()
        if now - self._reported_at.get(name, -REPORT_EVERY_S) < REPORT_EVERY_S:
            return
        count, self._unreported[name] = self._unreported[name], 0
        self._reported_at[name] = now
        log.warning(
            "gateway %s: %d undecodable answer(s) (%s); the connection was closed and is opened again",
            name, count, exc,
        )  # fmt: skip

"""Injected time: every part that looks at the clock or sleeps takes a Clock.

SystemClock is wall time. ScaledClock runs from a chosen start at a chosen speed (`demo --speed 60`
shows a night in twelve minutes). ManualClock only moves when a test moves it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC) on this clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    @property
    def speed(self) -> float:
        """Clock seconds per real second (1 for wall time)."""
        ...


class SystemClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Starts at `start` (epoch seconds) and runs `speed` times faster than wall time."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._origin_real = time.monotonic()
        self._origin = time.time() if start is None else start
        self._speed = speed

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin_real) * self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class ManualClock:
    """A clock for tests: `advance` moves it, sleepers wake when their time has come."""

    speed = 1.0

    def __init__(self, start: float) -> None:
        self._now = start
        self._moved = asyncio.Event() if _has_loop() else None

    def now(self) -> float:
        return self._now

    def set(self, when: float) -> None:
        self._now = when
        self._wake()

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def _wake(self) -> None:
        if self._moved is not None:
            self._moved.set()
            self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        until = self._now + max(0.0, seconds)
        while self._now < until:
            if self._moved is None:
                self._moved = asyncio.Event()
            await self._moved.wait()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True

"""What drivers hand their results to. The composition root (app.py) supplies the implementation."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from lightctl.model import Reading


class ReadingSink(Protocol):
    def readings(self, batch: list[Reading]) -> None:
        """New telemetry, in arrival order; called from the driver's own task, must not block."""
        ...

    def availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        """A device (or a gateway / concentrator, by its inventory id) came online or went offline."""
        ...


class Drops:
    """Malformed or unwanted input, dropped and counted by reason (shown in health and /metrics)."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()

    def count(self, reason: str, n: int = 1) -> None:
        self.by_reason[reason] += n

    def total(self) -> int:
        return sum(self.by_reason.values())


class CollectingSink:
    """A sink that keeps everything, for tests and the bench harness."""

    def __init__(self) -> None:
        self.items: list[Reading] = []
        self.events: list[tuple[str, bool, float, str]] = []

    def readings(self, batch: list[Reading]) -> None:
        self.items.extend(batch)

    def availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        self.events.append((device_id, online, ts, reason))

"""The telemetry store's interface, shared by the `sqlite` and `influxdb` backends.

Writes go through TelemetryWriter (pipeline.py), which batches them and buffers them on disk while a
backend is unreachable; readers call `raw` and `buckets` directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from lightctl.model import Reading
from lightctl.store.series import Bucket


class BackendUnavailable(RuntimeError):
    """The backend could not take the write now (down, timeout, overloaded): buffer and retry."""


class BackendRejected(RuntimeError):
    """The backend refused the data itself (e.g. a field type conflict): retrying cannot help."""


EVERY_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")


def parse_every(text: str) -> int:
    """`5m` -> 300. Raises ValueError with a message fit for a 422."""
    match = _EVERY.match(text.strip())
    if not match:
        raise ValueError(f"every must be a number and a unit s, m, h or d (e.g. 5m, 1h, 1d), not {text!r}")
    seconds = int(match.group(1)) * EVERY_UNITS[match.group(2)]
    if seconds < 1 or seconds > 366 * 86400:
        raise ValueError(f"every {text!r} is out of range")
    return seconds


class TelemetryBackend(Protocol):
    name: str
    lit_threshold_w: float  # what Bucket.lit counts as lit (series.is_lit)

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, batch: Sequence[Reading]) -> None:
        """Store the readings; a reading already stored (same device, ts, seq) is not duplicated.

        Raises BackendUnavailable or BackendRejected; nothing else escapes.
        """
        ...

    async def raw(self, device: str, start: float, end: float, limit: int = 10_000) -> list[Reading]:
        """Readings of `device` with start <= ts < end, oldest first, at most `limit`."""
        ...

    async def buckets(
        self,
        devices: Sequence[str] | None,
        start: float,
        end: float,
        every_s: int,
        origin_s: float = 0.0,
    ) -> list[Bucket]:
        """Aggregates per device and interval over [start, end), sorted by (device, start).

        `devices` None means every device. Intervals are aligned to `origin_s` (mod every_s), so a
        day can start at local midnight. Empty intervals are left out.
        """
        ...

    async def maintain(self, now: float) -> None:
        """Periodic housekeeping (retention, rollups); cheap when there is nothing to do."""
        ...

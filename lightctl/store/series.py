"""Aggregated telemetry: buckets of one device's readings, and the pure functions that build them.

Both telemetry backends answer aggregate queries with these types, so the API, the energy report
and the tests never care which one is configured. The SQLite backend builds its hourly rollups with
`summarise`; InfluxDB computes the same figures with InfluxQL (min, max, mean, first, last, count).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lightctl.model import Reading

DEFAULT_LIT_THRESHOLD_W = 2.0  # above SLC-M1 standby (0.5 W) with margin; below any dimmed lamp


@dataclass(frozen=True, slots=True)
class QuantityStats:
    n: int  # readings that carried this quantity
    min: float
    max: float
    mean: float
    first: float  # value of the earliest such reading in the bucket
    last: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """One device's readings in [start, start + every_s)."""

    device: str
    start: float
    every_s: int
    count: int  # readings
    lit: int  # readings in which the device was lit (see `is_lit`)
    stats: dict[str, QuantityStats]

    def get(self, quantity: str) -> QuantityStats | None:
        return self.stats.get(quantity)


def is_lit(reading: Reading, threshold_w: float = DEFAULT_LIT_THRESHOLD_W) -> bool:
    """Lit: measured power above the threshold; without a power figure, the reported `on`."""
    power = reading.values.get("power")
    if power is not None:
        return power > threshold_w
    on = reading.values.get("on")
    return on is not None and on >= 0.5


def stats_lit_last(bucket: Bucket, threshold_w: float) -> bool | None:
    return _lit_from(bucket, threshold_w, last=True)


def stats_lit_first(bucket: Bucket, threshold_w: float) -> bool | None:
    return _lit_from(bucket, threshold_w, last=False)


def _lit_from(bucket: Bucket, threshold_w: float, last: bool) -> bool | None:
    power = bucket.stats.get("power")
    if power is not None:
        return (power.last if last else power.first) > threshold_w
    on = bucket.stats.get("on")
    if on is not None:
        return (on.last if last else on.first) >= 0.5
    return None


def bucket_start(ts: float, every_s: int, origin_s: float = 0.0) -> float:
    """Start of the bucket holding `ts`; buckets are aligned to `origin_s` (e.g. local midnight)."""
    return math.floor((ts - origin_s) / every_s) * every_s + origin_s


def summarise(
    device: str,
    start: float,
    every_s: int,
    readings: Sequence[Reading],
    lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
) -> Bucket:
    """One bucket from one device's readings, which must be in time order."""
    acc: dict[str, list[float]] = {}  # quantity -> [n, min, max, sum, first, last]
    lit = 0
    for reading in readings:
        if is_lit(reading, lit_threshold_w):
            lit += 1
        for quantity, value in reading.values.items():
            if not math.isfinite(value):
                continue
            a = acc.get(quantity)
            if a is None:
                acc[quantity] = [1.0, value, value, value, value, value]
            else:
                a[0] += 1
                a[1] = min(a[1], value)
                a[2] = max(a[2], value)
                a[3] += value
                a[5] = value
    stats = {
        q: QuantityStats(n=int(a[0]), min=a[1], max=a[2], mean=a[3] / a[0], first=a[4], last=a[5])
        for q, a in acc.items()
    }
    return Bucket(device, start, every_s, len(readings), lit, stats)


def bucketise(
    readings: Iterable[Reading],
    every_s: int,
    origin_s: float = 0.0,
    lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
) -> list[Bucket]:
    """Buckets per device and interval, from readings in any order; sorted by (device, start)."""
    groups: dict[tuple[str, float], list[Reading]] = {}
    for reading in readings:
        key = (reading.device, bucket_start(reading.ts, every_s, origin_s))
        groups.setdefault(key, []).append(reading)
    out = []
    for (device, start), items in sorted(groups.items()):
        items.sort(key=lambda r: (r.ts, -1 if r.seq is None else r.seq))
        out.append(summarise(device, start, every_s, items, lit_threshold_w))
    return out


def merge(buckets: Sequence[Bucket], start: float, every_s: int) -> Bucket:
    """Coarser bucket from finer ones of one device, given in time order (1h rollups -> 1d)."""
    if not buckets:
        raise ValueError("nothing to merge")
    stats: dict[str, QuantityStats] = {}
    for bucket in buckets:
        for quantity, s in bucket.stats.items():
            prev = stats.get(quantity)
            if prev is None:
                stats[quantity] = s
                continue
            n = prev.n + s.n
            stats[quantity] = QuantityStats(
                n=n,
                min=min(prev.min, s.min),
                max=max(prev.max, s.max),
                mean=(prev.mean * prev.n + s.mean * s.n) / n,
                first=prev.first,
                last=s.last,
            )
    return Bucket(
        device=buckets[0].device,
        start=start,
        every_s=every_s,
        count=sum(b.count for b in buckets),
        lit=sum(b.lit for b in buckets),
        stats=stats,
    )


def regroup(buckets: Iterable[Bucket], every_s: int, origin_s: float = 0.0) -> list[Bucket]:
    """Merge fine buckets (sorted by device, start) into coarser ones of `every_s`."""
    groups: dict[tuple[str, float], list[Bucket]] = {}
    for bucket in buckets:
        key = (bucket.device, bucket_start(bucket.start, every_s, origin_s))
        groups.setdefault(key, []).append(bucket)
    return [merge(items, start, every_s) for (_, start), items in sorted(groups.items())]

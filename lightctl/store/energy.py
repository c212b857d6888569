"""Energy and saving, as pure functions of readings or hourly buckets (series.py).

kWh come from the cumulative energy counters, never from integrating power:
- a gap (missing readings) costs nothing: the counter difference across it still counts;
- a counter that goes down was reset (the meter or controller was replaced, and a new one counts
  from zero), so the step counts the new reading itself, as Prometheus' increase() does;
- every counter step is counted in the interval of the later reading, so [a, b) + [b, c) = [a, c):
  pass buckets from LOOKBACK_S before `start` too, so that the step from the last reading before
  `start` to the first inside is found (those buckets contribute nothing else).

Burning hours: within an hour bucket, the share of readings that were lit (series.is_lit) times the
part of the hour inside [start, end); across a gap between buckets, the gap counts fully when the
readings on both sides were lit, half when one was. The saving is what the same burning hours would
have cost at full (rated) power, minus what was used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

from lightctl.model import Device, Reading
from lightctl.store.series import (
    DEFAULT_LIT_THRESHOLD_W,
    Bucket,
    QuantityStats,
    bucketise,
    stats_lit_first,
    stats_lit_last,
)

GroupBy = Literal["road", "kind", "device"]
ENERGY = "energy_kwh"
HOUR = 3600
LOOKBACK_S = 2 * HOUR  # how far before a window to look for the reading preceding it


@dataclass(frozen=True, slots=True)
class DeviceEnergy:
    device: str
    kwh: float
    burning_h: float
    samples: int
    resets: int  # counter resets seen (meter replaced)


@dataclass(frozen=True, slots=True)
class EnergyRow:
    key: str  # road id, kind or device id
    name: str
    devices: int  # devices with readings in the period
    kwh: float
    burning_h: float
    full_kwh: float  # the same burning hours at rated power
    saving_kwh: float
    saving_pct: float | None  # of full_kwh; None when nothing burned


def counter_step(before: float, after: float) -> tuple[float, bool]:
    """Energy between two counter readings, and whether the counter was reset in between."""
    if after >= before:
        return after - before, False
    return after, True


def counter_increase(values: Iterable[float]) -> tuple[float, int]:
    """Total increase of a cumulative counter over its readings in time order, and resets seen."""
    total, resets = 0.0, 0
    previous: float | None = None
    for value in values:
        if previous is not None:
            step, reset = counter_step(previous, value)
            total += step
            resets += reset
        previous = value
    return total, resets


def inner_increase(stats: QuantityStats) -> tuple[float, bool]:
    """Counter increase within one bucket from its first, last and max (exact for <= 1 reset)."""
    if stats.last >= stats.first:
        return stats.last - stats.first, False
    return (stats.max - stats.first) + stats.last, True


def device_energy(
    buckets: Sequence[Bucket],
    start: float,
    end: float,
    lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
) -> DeviceEnergy:
    """One device's energy and burning hours over [start, end) from its buckets, in time order."""
    kwh = burning_s = 0.0
    resets = samples = 0
    previous: Bucket | None = None
    previous_counter: QuantityStats | None = None
    for bucket in buckets:
        counter = bucket.stats.get(ENERGY)
        if bucket.start + bucket.every_s <= start:  # before the window: only its last reading counts
            previous = bucket
            previous_counter = counter or previous_counter
            continue
        samples += bucket.count
        lo, hi = max(bucket.start, start), min(bucket.start + bucket.every_s, end)
        if bucket.count and hi > lo:
            burning_s += bucket.lit / bucket.count * (hi - lo)
        if previous is not None:
            gap_lo = max(previous.start + previous.every_s, start)
            gap = min(bucket.start, end) - gap_lo
            if gap > 0:
                sides = (stats_lit_last(previous, lit_threshold_w), stats_lit_first(bucket, lit_threshold_w))
                burning_s += gap * sum(1 for lit in sides if lit) / 2
        if counter is not None:
            inner, reset = inner_increase(counter)
            kwh += inner
            resets += reset
            if previous_counter is not None:
                step, reset = counter_step(previous_counter.last, counter.first)
                kwh += step
                resets += reset
            previous_counter = counter
        previous = bucket
    device = buckets[0].device if buckets else ""
    return DeviceEnergy(device, kwh, burning_s / 3600, samples, resets)


def devices_energy(
    buckets: Iterable[Bucket], start: float, end: float, lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W
) -> list[DeviceEnergy]:
    """Per device, from hour buckets of many devices sorted by (device, start)."""
    found = (
        device_energy(list(items), start, end, lit_threshold_w)
        for _, items in groupby(buckets, lambda b: b.device)
    )
    return [e for e in found if e.samples]  # devices heard only before the window are not in it


def energy_from_readings(
    readings: Iterable[Reading],
    start: float,
    end: float,
    lit_threshold_w: float = DEFAULT_LIT_THRESHOLD_W,
) -> list[DeviceEnergy]:
    """The same figures straight from raw readings (those before `end`; earlier ones only as the
    reading that precedes the window)."""
    inside = [r for r in readings if start - LOOKBACK_S <= r.ts < end]
    return devices_energy(bucketise(inside, HOUR, 0.0, lit_threshold_w), start, end, lit_threshold_w)


def group_key(device: Device | None, device_id: str, by: GroupBy) -> str:
    if by == "device":
        return device_id
    if device is None:
        return "unknown"
    if by == "kind":
        return device.kind
    return device.road or device.zone or device.gateway or "-"


def energy_report(
    per_device: Iterable[DeviceEnergy],
    inventory: Mapping[str, Device],
    by: GroupBy,
    names: Mapping[str, str] | None = None,
) -> list[EnergyRow]:
    """Rows grouped by road (zone or gateway for devices on no road), kind or device, sorted by key."""
    names = names or {}
    groups: dict[str, list[tuple[DeviceEnergy, float]]] = {}
    for item in per_device:
        device = inventory.get(item.device)
        full_kwh = item.burning_h * (device.rated_w if device else 0.0) / 1000
        groups.setdefault(group_key(device, item.device, by), []).append((item, full_kwh))
    rows: list[EnergyRow] = []
    for key in sorted(groups):
        items = groups[key]
        kwh = sum(i.kwh for i, _ in items)
        full = sum(f for _, f in items)
        name = names.get(key) or (inventory[key].name if by == "device" and key in inventory else key)
        rows.append(
            EnergyRow(
                key=key,
                name=name,
                devices=len(items),
                kwh=kwh,
                burning_h=sum(i.burning_h for i, _ in items),
                full_kwh=full,
                saving_kwh=full - kwh,
                saving_pct=(full - kwh) / full * 100 if full > 0 else None,
            )
        )
    return rows

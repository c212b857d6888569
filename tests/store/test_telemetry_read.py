"""The read path, the same tests against sqlite and InfluxDB 1.6 (InfluxQL); victoria-metrics has no InfluxQL.

Expected aggregates are computed here from the test's own readings, with plain arithmetic.
"""

from __future__ import annotations

import statistics

import pytest

from lightctl.model import Reading
from tests.store.conftest import Target, base_time, reading

BACKENDS = ["sqlite", "influxdb"]


def night(start: float) -> list[Reading]:
    """Two lamps for three hours: one reporting every 60 s, one every 150 s, dark for a while."""
    out = []
    for i in range(180):
        ts = start + 60 * i
        lit = i < 100 or i >= 150
        out.append(
            Reading(
                device="ha-001",
                ts=ts,
                seq=i,
                values={
                    "power": (80.0 + (i % 7)) if lit else 0.5,
                    "voltage": 218.0 + (i % 11) * 0.5,
                    "energy_kwh": 500.0 + i * 0.001,
                    "on": 1.0 if lit else 0.0,
                },
                flags=frozenset({"door_open"}) if i == 42 else frozenset(),
            )
        )
    for i in range(72):
        out.append(reading("ha-002", start + 150 * i + 0.25, None, power=40.0 + i, voltage=230.0 - i * 0.1))
    return out


def expected_buckets(
    readings: list[Reading], device: str, every: int, origin: float = 0.0
) -> dict[float, list[Reading]]:
    groups: dict[float, list[Reading]] = {}
    for r in sorted(readings, key=lambda r: r.ts):
        if r.device == device:
            groups.setdefault((r.ts - origin) // every * every + origin, []).append(r)
    return groups


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
async def test_raw_range_is_half_open_and_ordered(telemetry: Target) -> None:
    start = base_time()
    readings = night(start)
    await telemetry.backend.write(readings[::-1])  # arrival order must not matter

    got = await telemetry.backend.raw("ha-001", start + 600, start + 1200)

    assert [r.seq for r in got] == list(range(10, 20))  # 1200 itself excluded
    assert got[0].ts == pytest.approx(start + 600)
    assert got[0].values["power"] == pytest.approx(readings[10].values["power"])
    door = await telemetry.backend.raw("ha-001", start + 42 * 60, start + 43 * 60)
    assert door[0].flags == frozenset({"door_open"})
    assert len(await telemetry.backend.raw("ha-001", start, start + 86400, limit=25)) == 25
    other = await telemetry.backend.raw("ha-002", start, start + 400)
    assert [r.ts for r in other] == pytest.approx([start + 0.25, start + 150.25, start + 300.25])
    assert all(r.seq is None for r in other)


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
@pytest.mark.parametrize("every", [300, 3600])
async def test_aggregates_match_the_readings(telemetry: Target, every: int) -> None:
    start = base_time()
    readings = night(start)
    await telemetry.backend.write(readings)

    got = await telemetry.backend.buckets(None, start, start + 3 * 3600, every)

    assert sorted({b.device for b in got}) == ["ha-001", "ha-002"]
    for device in ("ha-001", "ha-002"):
        expected = expected_buckets(readings, device, every)
        buckets = [b for b in got if b.device == device]
        assert [b.start for b in buckets] == pytest.approx(sorted(expected))
        for bucket in buckets:
            items = expected[min(expected, key=lambda s: abs(s - bucket.start))]
            power = [r.values["power"] for r in items]
            assert bucket.count == len(items)
            assert bucket.lit == sum(1 for p in power if p > 2.0)
            stats = bucket.stats["power"]
            assert stats.n == len(items)
            assert stats.min == pytest.approx(min(power))
            assert stats.max == pytest.approx(max(power))
            assert stats.mean == pytest.approx(statistics.fmean(power))
            assert stats.first == pytest.approx(power[0])
            assert stats.last == pytest.approx(power[-1])
            if device == "ha-001":
                energy = bucket.stats["energy_kwh"]
                assert energy.first == pytest.approx(items[0].values["energy_kwh"])
                assert energy.last == pytest.approx(items[-1].values["energy_kwh"])


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
async def test_daily_buckets_start_at_local_midnight(telemetry: Target) -> None:
    start = base_time()  # 00:00 UTC = 08:00 in Asia/Shanghai
    readings = night(start)
    await telemetry.backend.write(readings)
    origin = -8 * 3600.0  # local midnight is 16:00 UTC

    got = await telemetry.backend.buckets(["ha-001"], start - 86400, start + 86400, 86400, origin)

    assert len(got) == 1
    assert got[0].start == pytest.approx(start - 8 * 3600)
    assert got[0].count == 180
    assert got[0].stats["voltage"].mean == pytest.approx(
        statistics.fmean(r.values["voltage"] for r in readings if r.device == "ha-001")
    )


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
async def test_device_filter_and_empty_windows(telemetry: Target) -> None:
    start = base_time()
    await telemetry.backend.write(night(start))

    only = await telemetry.backend.buckets(["ha-002"], start, start + 3600, 3600)
    assert {b.device for b in only} == {"ha-002"}
    assert only[0].count == 24
    assert await telemetry.backend.buckets(None, start - 7200, start - 3600, 300) == []
    assert await telemetry.backend.raw("ha-001", start - 7200, start) == []
    assert await telemetry.backend.raw("nobody", start, start + 3600) == []

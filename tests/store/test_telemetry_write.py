"""The write path, the same tests against sqlite, InfluxDB 1.6 (v1 /write) and victoria-metrics (v2 write).

What was stored is read back with each server's own interface (sqlite3, InfluxQL, /api/v1/export),
not with lightctl's reading code.
"""

from __future__ import annotations

from collections import Counter

import pytest

from lightctl.model import Reading
from tests.store.conftest import Stored, Target, base_time, reading, wait_for

BACKENDS = ["sqlite", "influxdb", "victoria-metrics"]


def stream(start: float) -> list[Reading]:
    readings = []
    for i in range(40):
        readings.append(
            Reading(
                device="ha-001",
                ts=start + 60 * i,  # whole seconds, as SLC-M1 stamps them
                seq=65530 + i,  # wraps at 65536: seq is not monotonic
                values={
                    "power": 100.5 + i,
                    "voltage": 220.0 + i / 10,
                    "energy_kwh": 12.0 + i / 100,
                    "on": 1.0,
                },
                flags=frozenset({"tilt"}) if i == 7 else frozenset(),
            )
        )
    # A report right after a command, in the same second as the regular one.
    readings.append(reading("ha-001", start + 60 * 5, 9, power=0.0, on=0.0))
    # Modbus devices: lightctl's own clock, fractional seconds, no seq.
    readings += [
        reading("gw1-u01", start + 30 * i + 0.123456, None, power=300.0 + i, k1=1.0) for i in range(20)
    ]
    readings.append(reading("ha-002", start + 15.5, 3, power=50.0, voltage=219.5))
    return readings


def by_identity(points: list[Stored]) -> Counter[tuple[str, int, int | None]]:
    return Counter((p.device, p.ts_ms, p.seq) for p in points)


def expected_ms(r: Reading) -> int:
    # Whole-second readings with a seq carry seq mod 1000 as milliseconds (influx.py's point_ns).
    return round(r.ts * 1000)


async def wait_stored(target: Target, count: int) -> list[Stored]:
    points: list[Stored] = []

    async def enough() -> bool:
        nonlocal points
        points = await target.readback()
        return len(points) >= count

    await wait_for(enough, what=f"{count} points in {target.name}")
    return points


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
async def test_every_reading_is_stored_once_with_its_values(telemetry: Target) -> None:
    readings = stream(base_time())
    await telemetry.backend.write(readings[:30])
    await telemetry.backend.write(readings[30:])

    points = await wait_stored(telemetry, len(readings))

    assert len(points) == len(readings)
    stored = {(p.device, p.seq, p.ts_ms // 1000 if p.seq is not None else p.ts_ms): p for p in points}
    for r in readings:
        key = (r.device, r.seq, int(r.ts) if r.seq is not None else expected_ms(r))
        assert key in stored, f"{r} missing"
        point = stored[key]
        for quantity, value in r.values.items():
            assert point.values[quantity] == pytest.approx(value), (r, quantity)
        assert set(point.values) == set(r.values)


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
async def test_replayed_readings_are_not_duplicated(telemetry: Target) -> None:
    readings = stream(base_time())
    await telemetry.backend.write(readings)
    # A replay after an outage resends what may already be stored, overlapping new readings.
    await telemetry.backend.write(readings[10:25])
    await telemetry.backend.write(readings)

    points = await wait_stored(telemetry, len(readings))

    counts = by_identity(points)
    assert sum(counts.values()) == len(readings)
    assert max(counts.values()) == 1


@pytest.mark.parametrize("telemetry", BACKENDS, indirect=True)
async def test_values_that_cannot_be_stored_are_left_out_not_fatal(telemetry: Target) -> None:
    start = base_time()
    readings = [
        reading("ha-002", start + 1, 1, power=float("nan"), voltage=221.0),
        reading("ha-002", start + 2, 2, power=float("inf"), voltage=222.0),
    ]
    await telemetry.backend.write(readings)

    points = await wait_stored(telemetry, 2)

    assert sorted(p.values["voltage"] for p in points) == [221.0, 222.0]
    assert all("power" not in p.values for p in points)

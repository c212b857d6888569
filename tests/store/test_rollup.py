"""sqlite backend: hourly rollups summarise the raw readings exactly, and outlive them."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from lightctl.model import Reading
from lightctl.store.sqlite_ts import SqliteTelemetry

DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def readings(start: float, hours: int, device: str = "ha-001") -> list[Reading]:
    out = []
    for i in range(hours * 12):  # every 5 minutes
        ts = start + 300 * i + 7
        out.append(
            Reading(
                device=device,
                ts=ts,
                seq=i,
                values={
                    "power": 60.0 + (i * 37) % 23,
                    "voltage": 215.0 + (i * 13) % 17,
                    "energy_kwh": 100.0 + 0.005 * i,
                },
            )
        )
    return out


def check_hour(
    bucket_stats: dict[str, tuple[float, float, float, float, float]], items: list[Reading]
) -> None:
    for quantity, (lo, hi, mean, first, last) in bucket_stats.items():
        values = [r.values[quantity] for r in items]
        assert lo == pytest.approx(min(values)), quantity
        assert hi == pytest.approx(max(values)), quantity
        assert mean == pytest.approx(statistics.fmean(values)), quantity
        assert first == pytest.approx(values[0]), quantity
        assert last == pytest.approx(values[-1]), quantity


@pytest.fixture
async def store(tmp_path: Path) -> SqliteTelemetry:
    backend = SqliteTelemetry(tmp_path / "t.db", raw_retention_days=30, rollup_retention_days=3 * 366)
    await backend.open()
    yield backend  # type: ignore[misc]
    await backend.close()


async def test_rollups_equal_the_raw_data_they_summarise_after_raw_retention(store: SqliteTelemetry) -> None:
    data = readings(T0, 6) + readings(T0, 6, device="ha-002")
    await store.write(data)
    assert await store.roll_up_now(T0 + 7 * 3600) == 6

    # 40 days on, raw readings are gone and only the rollups can answer.
    await store.apply_retention(T0 + 40 * DAY)
    assert await store.count_raw() == 0
    got = await store.buckets(None, T0, T0 + 6 * 3600, 3600)

    assert len(got) == 12
    for bucket in got:
        items = [r for r in data if r.device == bucket.device and bucket.start <= r.ts < bucket.start + 3600]
        assert bucket.count == len(items) == 12
        check_hour({q: (s.min, s.max, s.mean, s.first, s.last) for q, s in bucket.stats.items()}, items)
    daily = await store.buckets(["ha-001"], T0, T0 + DAY, 86400)
    assert len(daily) == 1
    assert daily[0].count == 72
    check_hour(
        {q: (s.min, s.max, s.mean, s.first, s.last) for q, s in daily[0].stats.items()},
        [r for r in data if r.device == "ha-001"],
    )


async def test_late_readings_correct_the_rollup_of_their_hour(store: SqliteTelemetry) -> None:
    data = readings(T0, 2)
    early, late = data[::2], data[1::2]
    await store.write(early)
    await store.roll_up_now(T0 + 3 * 3600)

    await store.write(late)  # replayed from the buffer after an outage
    await store.roll_up_now(T0 + 3 * 3600)
    await store.apply_retention(T0 + 40 * DAY)

    got = await store.buckets(["ha-001"], T0, T0 + 2 * 3600, 3600)
    assert [b.count for b in got] == [12, 12]
    check_hour({q: (s.min, s.max, s.mean, s.first, s.last) for q, s in got[0].stats.items()}, data[:12])


async def test_rollups_and_raw_combine_at_the_edges_of_a_window(store: SqliteTelemetry) -> None:
    data = readings(T0, 4)
    await store.write(data)
    await store.roll_up_now(T0 + 2 * 3600)  # hours 0 and 1 rolled up; 2 and 3 still raw only

    # A window starting mid-hour: its first hour comes from raw readings, clipped.
    got = await store.buckets(["ha-001"], T0 + 1800, T0 + 4 * 3600, 3600)

    assert [b.count for b in got] == [6, 12, 12, 12]
    assert got[0].stats["power"].first == data[6].values["power"]


async def test_rollups_expire_after_their_retention(store: SqliteTelemetry) -> None:
    await store.write(readings(T0, 2))
    await store.roll_up_now(T0 + 3 * 3600)
    await store.apply_retention(T0 + 3 * 366 * DAY + DAY)
    assert await store.buckets(None, T0, T0 + 2 * 3600, 3600) == []

"""Storage outage: the server stops in the middle of a stream and comes back; every reading ends up
stored exactly once, also when lightctl itself restarts during the outage."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from lightctl.model import Reading
from lightctl.store.buffer import DiskBuffer
from lightctl.store.pipeline import TelemetryWriter
from tests.store.conftest import Stored, Target, base_time, wait_for

TOTAL = 3000
BATCH = 50


def make_stream(start: float) -> list[Reading]:
    return [
        Reading(f"ha-{i % 5 + 1:03d}", start + i // 5, i, {"power": 40.0 + i % 13, "on": 1.0})
        for i in range(TOTAL)
    ]


def writer_for(target: Target, buffer_dir: Path) -> TelemetryWriter:
    return TelemetryWriter(
        target.backend,
        DiskBuffer(buffer_dir, max_bytes=64 << 20),
        batch_size=200,
        flush_s=0.05,
        retry_min_s=0.1,
        retry_max_s=0.5,
        maintain_every_s=3600,
    )


def assert_exactly_once(points: list[Stored]) -> None:
    counts = Counter(p.seq for p in points)
    missing = set(range(TOTAL)) - set(counts)
    assert not missing, f"{len(missing)} readings lost, e.g. seq {sorted(missing)[:5]}"
    twice = [seq for seq, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} readings stored more than once, e.g. seq {twice[:5]}"


async def all_stored(target: Target) -> None:
    async def complete() -> bool:
        return len({p.seq for p in await target.readback()}) >= TOTAL

    await wait_for(complete, within_s=60, what=f"all {TOTAL} readings in {target.name}")


@pytest.mark.parametrize("telemetry", ["influxdb", "victoria-metrics"], indirect=True)
async def test_server_stopped_mid_stream_loses_and_duplicates_nothing(
    telemetry: Target, tmp_path: Path
) -> None:
    server = telemetry.server
    assert server is not None
    writer = writer_for(telemetry, tmp_path / "buffer")
    await writer.start()
    stream = make_stream(base_time())
    most_buffered = 0
    try:
        for n, i in enumerate(range(0, TOTAL, BATCH)):
            writer.readings(stream[i : i + BATCH])
            if n == 15:
                await asyncio.to_thread(server.stop)
            if n == 45:
                await asyncio.to_thread(server.start)
            most_buffered = max(most_buffered, writer.status().backlog.records)
            await asyncio.sleep(0.02)
        await wait_for(lambda: _drained(writer), within_s=60, what="the buffer to drain")
        await writer.flush()
    finally:
        await writer.stop()

    assert most_buffered > 0, "the outage never reached the buffer: the test did not test it"
    status = writer.status()
    assert status.backlog.dropped == status.queue_dropped == status.rejected == 0
    await all_stored(telemetry)
    assert_exactly_once(await telemetry.readback())


@pytest.mark.parametrize("telemetry", ["influxdb"], indirect=True)
async def test_backlog_survives_a_restart_of_lightctl(telemetry: Target, tmp_path: Path) -> None:
    server = telemetry.server
    assert server is not None
    stream = make_stream(base_time())
    first = writer_for(telemetry, tmp_path / "buffer")
    await first.start()
    first.readings(stream[:1000])
    await first.flush()
    await asyncio.to_thread(server.stop)
    first.readings(stream[1000:2500])
    await first.flush()
    await first.stop()  # shut down mid-outage: the backlog stays on disk
    assert first.status().backlog.records == 1500

    await asyncio.to_thread(server.start)
    second = writer_for(telemetry, tmp_path / "buffer")
    await second.start()
    try:
        second.readings(stream[2500:])
        await wait_for(lambda: _drained(second), within_s=60, what="the buffer to drain")
        await second.flush()
    finally:
        await second.stop()

    await all_stored(telemetry)
    assert_exactly_once(await telemetry.readback())


async def _drained(writer: TelemetryWriter) -> bool:
    status = writer.status()
    return status.backlog.records == 0 and status.pending == 0 and status.last_error is None

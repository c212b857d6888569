"""Operators' actions (lightctl/operations.py) on a real SQLite state database: what they announce on
the event stream, and what a second instance's watch picks up from the shared database."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lightctl.clock import ManualClock
from lightctl.config.loader import District, load
from lightctl.model import DesiredState
from lightctl.operations import KEEP_ENDED_S, Operations
from lightctl.schedule.resolve import Resolver
from lightctl.store.state_sqlite import SqliteStateDB

REPO = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC).timestamp()
HOUR = 3600.0


@pytest.fixture(scope="module")
def district() -> District:
    return load(REPO / "config.yaml")


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[SqliteStateDB]:
    db = await SqliteStateDB.open(tmp_path / "state.db")
    try:
        yield db
    finally:
        await db.close()


def operations(district: District, state: SqliteStateDB, clock: ManualClock) -> tuple[Operations, list]:
    heard: list[tuple[str, dict[str, object]]] = []
    ops = Operations(
        state, Resolver.for_district(district), clock, announce=lambda k, d: heard.append((k, d))
    )
    return ops, heard


async def test_overrides_and_maintenance_are_announced_with_until_as_an_iso_time(
    district: District, state: SqliteStateDB
) -> None:
    clock = ManualClock(T0)
    ops, heard = operations(district, state, clock)
    saved = await ops.add_override(
        kind="manual", targets=["road:hengan-lu"], state=DesiredState(on=True, level=50),
        until=T0 + 2 * HOUR, reason="test", who="duty-1",
    )  # fmt: skip
    await ops.add_maintenance(["ha-001"], T0 + HOUR, "relamping", "crew-1")
    assert heard == [
        ("override", {"id": saved.id, "targets": ["road:hengan-lu"], "until": "2025-10-01T22:00:00+08:00"}),
        ("maintenance", {"id": 1, "targets": ["ha-001"], "until": "2025-10-01T21:00:00+08:00"}),
    ]
    assert dt.datetime.fromisoformat(str(heard[0][1]["until"])).timestamp() == T0 + 2 * HOUR


async def test_the_watch_reads_what_is_not_over_and_keeps_a_day_of_ended_ones(
    district: District, state: SqliteStateDB
) -> None:
    clock = ManualClock(T0)
    writer, _ = operations(district, state, clock)
    old = await writer.add_override(
        kind="manual", targets=["road:hengan-lu"], state=DesiredState(on=False),
        until=T0 + HOUR, reason="old", who="duty-1",
    )  # fmt: skip
    clock.set(T0 + 3 * HOUR)
    ended = await writer.add_override(
        kind="manual", targets=["road:zishan-lu"], state=DesiredState(on=True, level=30),
        until=T0 + 5 * HOUR, reason="ended early", who="duty-1",
    )  # fmt: skip
    await writer.end_override(ended.id or 0)
    later = await writer.add_override(
        kind="event", targets=["zone:longcheng"], state=DesiredState(scene=3),
        until=T0 + 30 * HOUR, reason="festival", who="duty-2", start=T0 + 28 * HOUR, event="灯会",
    )  # fmt: skip

    reader, _ = operations(district, state, clock)  # another instance on the same database
    clock.set(T0 + HOUR + KEEP_ENDED_S - 1)
    await reader.load_quietly()
    assert {o.id for o in reader.overrides} == {old.id, ended.id, later.id}
    clock.set(T0 + 3 * HOUR + KEEP_ENDED_S + 1)  # a day after both ended: forgotten
    await reader.load_quietly()
    assert [o.id for o in reader.overrides] == [later.id]

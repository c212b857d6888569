"""The batched command log on both state backends: every entry arrives, results merge into their
command, order and content survive a database that is away for a while."""

from __future__ import annotations

from lightctl.model import DesiredState
from lightctl.store.command_log import CommandLog
from lightctl.store.state import CommandLogEntry, StateDB
from tests.store.conftest import StateTarget

T0 = 1_764_180_000.0


def issued(i: int) -> CommandLogEntry:
    return CommandLogEntry(f"c-{i}", f"ha-{i % 7:03d}", DesiredState(on=True, level=i % 101), T0 + i)


def confirmed(i: int) -> CommandLogEntry:
    e = issued(i)
    return CommandLogEntry(
        e.id, e.device, e.desired, e.issued, ok=True, result="acknowledged", confirmed_by="ack",
        latency_s=0.01 * (i % 50), completed=T0 + i + 1,
    )  # fmt: skip


async def test_a_fan_out_is_written_in_one_flush_with_results_merged(state_db: StateDB) -> None:
    log = CommandLog(state_db)
    for i in range(3000):
        log.add(issued(i))
    for i in range(0, 3000, 2):
        log.add(confirmed(i))
    await log.flush()
    assert log.written == 4500
    rows = {e.id: e for e in await state_db.list_commands(limit=10_000)}
    assert len(rows) == 3000
    assert rows["c-10"].ok is True
    assert rows["c-10"].confirmed_by == "ack"
    assert rows["c-10"].desired == DesiredState(on=True, level=10)
    assert rows["c-11"].ok is None
    assert rows["c-11"].completed is None
    assert rows["c-2998"].latency_s == 0.01 * (2998 % 50)


async def test_entries_wait_while_the_database_is_away_and_none_is_lost(
    state_target: StateTarget,
) -> None:
    db = await state_target.open(audit_retention_days=180)
    log = CommandLog(db)
    for i in range(100):
        log.add(issued(i))
    await db.close()  # gone: the flush fails and keeps the entries
    await log.flush()
    assert (log.written, log.dropped) == (0, 0)
    log.add(confirmed(5))
    log.state = db = await state_target.open(audit_retention_days=180)
    try:
        await log.flush()
        assert log.written == 101
        rows = {e.id: e for e in await db.list_commands(limit=1000)}
        assert len(rows) == 100
        assert rows["c-5"].ok is True  # the result came after its command, as it was queued
    finally:
        await db.close()

"""The command log, written in batches.

A fan-out to 20,000 lamps finishes thousands of commands a second; a transaction (and an executor
round trip) per command cost more than the commands. Entries are queued and written together every
half second by one task; the service writes what is left when it stops (Runtime.stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from lightctl.store.state import CommandLogEntry, StateDB

log = logging.getLogger(__name__)


class CommandLog:
    def __init__(self, state: StateDB, interval_s: float = 0.5, max_queued: int = 200_000) -> None:
        self.state = state
        self.interval_s = interval_s  # real seconds: the database's pace, not the clock's
        self.max_queued = max_queued
        self._queue: deque[CommandLogEntry] = deque()
        self.written = 0
        self.dropped = 0  # only if the database stays unreachable for long under a command flood

    def add(self, entry: CommandLogEntry) -> None:
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(entry)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self) -> None:
        if not self._queue:
            return
        batch, self._queue = self._queue, deque()
        try:
            await self.state.log_commands(batch)
        except BaseException as exc:
            # Kept for the next try, in order, ahead of what came meanwhile; also when cancelled
            # (PostgreSQL rolls the batch back): writing an entry twice changes nothing.
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("command log not written (%d entries kept): %s", len(batch), exc)
            batch.extend(self._queue)
            self._queue = batch
            while len(self._queue) > self.max_queued:
                self._queue.popleft()
                self.dropped += 1
            if not isinstance(exc, Exception):
                raise
            return
        self.written += len(batch)

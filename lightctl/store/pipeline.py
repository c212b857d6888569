"""TelemetryWriter: readings from the drivers to the telemetry backend, batched, never lost to an outage.

`readings()` only appends to a list, so drivers never wait. One task flushes every `flush_s` (sooner
once `batch_size` readings are waiting): straight to the backend while it answers; when a write
fails, that batch and everything after it go to the disk buffer, and from then on new readings are
appended behind them until the replay (retried with backoff) has emptied the buffer, so the backend
receives readings in the order they arrived. One task does both, so appends and replay never race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from lightctl.clock import Clock, SystemClock
from lightctl.model import Reading
from lightctl.store.buffer import Backlog, DiskBuffer
from lightctl.store.telemetry import BackendRejected, BackendUnavailable, TelemetryBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterStatus:
    backend: str
    healthy: bool  # last write or replay succeeded and nothing waits in the buffer
    last_error: str | None
    pending: int  # in memory, not yet flushed
    written: int  # readings the backend accepted (replays included)
    rejected: int  # readings in batches the backend refused as invalid
    queue_dropped: int  # lost because memory filled while a write hung
    backlog: Backlog


class TelemetryWriter:
    def __init__(
        self,
        backend: TelemetryBackend,
        buffer: DiskBuffer,
        *,
        batch_size: int = 5000,
        flush_s: float = 1.0,
        max_pending: int | None = None,
        retry_min_s: float = 0.5,
        retry_max_s: float = 5.0,  # a returning backend gets the backlog within seconds
        maintain_every_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.backend = backend
        self.buffer = buffer
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.max_pending = max_pending or 50 * batch_size
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.maintain_every_s = maintain_every_s
        self.clock = clock or SystemClock()
        self._pending: list[Reading] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_delay = retry_min_s
        self._next_retry = 0.0
        self._last_error: str | None = None
        self._written = 0
        self._rejected = 0
        self._queue_dropped = 0
        self._cycles_started = 0
        self._cycles_done = 0
        self._progress = asyncio.Event()

    # ReadingSink half (app.py fans the drivers' sink out to this and to the live state).

    def readings(self, batch: Sequence[Reading]) -> None:
        self._pending.extend(batch)
        overflow = len(self._pending) - self.max_pending
        if overflow > 0:
            del self._pending[:overflow]
            self._queue_dropped += overflow
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    def status(self) -> WriterStatus:
        backlog = self.buffer.backlog()
        return WriterStatus(
            backend=self.backend.name,
            healthy=self._last_error is None and backlog.records == 0,
            last_error=self._last_error,
            pending=len(self._pending),
            written=self._written,
            rejected=self._rejected,
            queue_dropped=self._queue_dropped,
            backlog=backlog,
        )

    # Lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._next_retry = loop.time()
        self._tasks = [
            asyncio.create_task(self._run(), name="telemetry-writer"),
            asyncio.create_task(self._maintain(), name="telemetry-maintenance"),
        ]

    async def stop(self) -> None:
        """Flush what is pending (to the backend, else to the buffer) and stop."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._cycle(replay=False)
        await asyncio.to_thread(self.buffer.close)

    async def flush(self) -> None:
        """Wait until everything accepted so far has been through a flush cycle (tests, shutdown)."""
        target = self._cycles_started + 1
        self._wake.set()
        while self._cycles_done < target:
            self._progress.clear()
            await self._progress.wait()

    # The writer task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            self._cycles_started += 1
            try:
                await self._cycle(replay=True)
            except Exception:  # a bug here must not stop telemetry for good
                log.exception("telemetry writer cycle failed")
            self._cycles_done += 1
            self._progress.set()

    async def _cycle(self, replay: bool) -> None:
        batch, self._pending = self._pending, []
        if batch:
            await self._store(batch)
        loop = asyncio.get_running_loop()
        if replay and loop.time() >= self._next_retry and not self.buffer.empty:
            await self._replay()

    async def _store(self, batch: list[Reading]) -> None:
        if not self.buffer.empty:
            await self._spill(batch)
            return
        for i in range(0, len(batch), self.batch_size):
            chunk = batch[i : i + self.batch_size]
            try:
                await self.backend.write(chunk)
            except BackendUnavailable as exc:
                self._failed(exc)
                await self._spill(batch[i:])
                return
            except BackendRejected as exc:
                self._reject(len(chunk), exc)
                continue
            self._written += len(chunk)
            self._last_error = None

    async def _spill(self, readings: list[Reading]) -> None:
        try:
            await asyncio.to_thread(self.buffer.append, readings)
        except OSError:
            self._queue_dropped += len(readings)  # disk full or gone: counted, never silent
            log.exception("telemetry buffer append failed; %d readings lost", len(readings))

    async def _replay(self) -> None:
        while True:
            chunk = await asyncio.to_thread(self.buffer.peek, self.batch_size)
            if chunk is None:
                self._retry_delay = self.retry_min_s
                return
            try:
                await self.backend.write(chunk.readings)
            except BackendUnavailable as exc:
                self._failed(exc)
                return
            except BackendRejected as exc:
                self._reject(len(chunk.readings), exc)
            else:
                self._written += len(chunk.readings)
                self._last_error = None
            await asyncio.to_thread(self.buffer.commit, chunk)
            if len(self._pending) >= self.batch_size:
                return  # move the newcomers to the buffer first, to bound memory

    def _failed(self, exc: Exception) -> None:
        if self._last_error is None:
            log.warning("telemetry backend %s unavailable, buffering on disk: %s", self.backend.name, exc)
        self._last_error = str(exc)
        self._next_retry = asyncio.get_running_loop().time() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self.retry_max_s)

    def _reject(self, count: int, exc: Exception) -> None:
        self._rejected += count
        log.error("telemetry backend %s rejected %d readings: %s", self.backend.name, count, exc)

    async def _maintain(self) -> None:
        while True:
            try:
                await self.backend.maintain(self.clock.now())
            except BackendUnavailable as exc:
                log.warning("telemetry maintenance skipped: %s", exc)
            except Exception:
                log.exception("telemetry maintenance failed")
            await asyncio.sleep(self.maintain_every_s)

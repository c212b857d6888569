"""An alarm episode in memory, the events it produces, and the writer that persists episodes in order.

Writes go to the store through one FIFO queue; an episode's events (for the event stream and the
notification channels) leave only after its write, so they carry the alarm's id. A parent's first
write always precedes any write naming it as parent, so a child is written with its parent's id.
If the store fails, the write stays at the head of the queue and is tried again: nothing accepted
is lost, notifications wait for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lightctl.clock import Clock
from lightctl.faults.store import AlarmStore
from lightctl.model import Alarm, AlarmState
from lightctl.store.state import Resolution

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (type, device)
EventKind = Literal["raised", "updated", "acked", "assigned", "resolved", "escalated", "overdue"]
Notice = Literal["sent", "deferred", "quiet"]


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """Something happened to an alarm. `notify`: crews are told (webhooks, MQTT, mail); the event
    stream gets every event."""

    kind: EventKind
    alarm: Alarm
    notify: bool
    at: float
    children: int = 0


class EventSink(Protocol):
    def alarm_event(self, event: AlarmEvent) -> None: ...


@dataclass(eq=False, slots=True)
class Episode:
    alarm: Alarm
    active: bool = True  # the condition holds (as far as anyone knows)
    clear_since: float | None = None
    resolve_at: float = float("inf")
    parent: Episode | None = None
    notice: Notice = "quiet"  # sent: crews were told; deferred: waiting for correlation
    overdue_noted: bool = False
    written_at: float = float("-inf")
    children: int = 0

    @property
    def key(self) -> Key:
        return (self.alarm.type, self.alarm.device)

    @property
    def open(self) -> bool:
        return self.alarm.state is not AlarmState.RESOLVED

    def view(self) -> Alarm:
        """A copy of its alarm, with the parent's id."""
        parent = None if self.parent is None else self.parent.alarm.id
        return dataclasses.replace(self.alarm, parent=parent)


@dataclass(slots=True)
class _Write:
    episode: Episode
    snapshot: Alarm
    parent: Episode | None
    actor: str = ""
    at: float | None = None
    resolution: Resolution | None = None
    events: tuple[tuple[EventKind, bool], ...] = ()
    done: asyncio.Future[Alarm] | None = field(default=None)


class AlarmWriter:
    def __init__(
        self, store: AlarmStore, clock: Clock, events: EventSink | None, on_id: Callable[[Episode], None]
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = events
        self.on_id = on_id  # an episode just got its id from the store
        self._queue: deque[_Write] = deque()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def write(
        self,
        ep: Episode,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
        events: tuple[tuple[EventKind, bool], ...] = (),
        wait: bool = False,
    ) -> asyncio.Future[Alarm] | None:
        """Queue the episode's present state (and its events); `wait`: a future for the stored alarm."""
        done: asyncio.Future[Alarm] | None = None
        if wait:
            done = asyncio.get_running_loop().create_future()
        self._queue.append(
            _Write(ep, dataclasses.replace(ep.alarm), ep.parent, actor, at, resolution, events, done)
        )
        ep.written_at = self.clock.now()
        self._wake.set()
        return done

    def emit(self, event: AlarmEvent) -> None:
        if self.events is None:
            return
        try:
            self.events.alarm_event(event)
        except Exception:
            log.exception("alarms: event sink failed on %s of alarm %s", event.kind, event.alarm.id)

    async def flush(self) -> None:
        async with self._lock:
            while self._queue:
                op = self._queue[0]
                ep = op.episode
                snap = op.snapshot
                snap.id = ep.alarm.id
                snap.parent = None if op.parent is None else op.parent.alarm.id
                saved = await self.store.upsert_alarm(
                    snap, actor=op.actor, at=op.at, resolution=op.resolution
                )
                self._queue.popleft()
                if ep.alarm.id is None:
                    ep.alarm.id = saved.id
                    self.on_id(ep)
                snap.id = saved.id
                now = self.clock.now()
                for kind, notify in op.events:
                    self.emit(AlarmEvent(kind, dataclasses.replace(snap), notify, now, ep.children))
                if op.done is not None and not op.done.done():
                    op.done.set_result(dataclasses.replace(snap))

    async def run(self) -> None:
        """Persist queued changes as they come, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("alarms: store write failed; retrying")
                await asyncio.sleep(1.0)
                self._wake.set()

    def pending(self) -> int:
        return len(self._queue)

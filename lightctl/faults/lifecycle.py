"""Alarm episodes: raised once, open -> acked -> resolved, auto-resolved when the condition clears.

The AlarmManager is the one owner of alarms. The fault engine tells it when a condition becomes
active (`activate`), is seen again (`seen`) or clears (`deactivate`); other parts raise and clear
their own alarm types (`raise_alarm` / `clear_alarm`); the API acknowledges, resolves and assigns.

An episode is keyed by (type, device): while one is unresolved, the same condition firing again
continues it (last_seen moves) instead of raising a new alarm. A cleared condition resolves its
alarm only after it has stayed clear for the hold-off (flapping suppression); the resolution is
recorded at the moment the condition cleared, as "auto". Memory is authoritative for deduplication;
writes go to the store in order through one queue, and events (for the event stream and the
notification channels) leave only after the write, so they carry the alarm's id. `load()` after a
restart brings back the open alarms, so nothing is raised twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping

from lightctl.clock import Clock
from lightctl.faults.catalog import SEVERITY, SEVERITY_RANK
from lightctl.faults.episodes import AlarmEvent, AlarmWriter, Episode, EventKind, EventSink, Key
from lightctl.faults.store import EVERY_ALARM, AlarmStore
from lightctl.model import Alarm, AlarmState, Severity
from lightctl.store.state import AlarmFilter, Resolution

log = logging.getLogger(__name__)

__all__ = ["AlarmConflict", "AlarmEvent", "AlarmManager", "AlarmNotFound", "Episode", "EventSink"]

DEFAULT_REPAIR_HOURS = {"critical": 1.0, "major": 24.0, "minor": 72.0}


class AlarmNotFound(LookupError):
    pass


class AlarmConflict(ValueError):
    """The operation does not apply to the alarm in its present state (e.g. acking a resolved one)."""


class AlarmManager:
    def __init__(
        self,
        store: AlarmStore,
        clock: Clock,
        *,
        repair_hours: Mapping[str, float] | None = None,
        events: EventSink | None = None,
        persist_every_s: float = 60.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.repair_s = {sev: h * 3600.0 for sev, h in (repair_hours or DEFAULT_REPAIR_HOURS).items()}
        self.persist_every_s = persist_every_s
        self.in_maintenance: Callable[[str], bool] = lambda device: False
        self.on_manual_resolve: Callable[[str, str], None] | None = None  # (type, device): engine resets
        self._by_key: dict[Key, Episode] = {}
        self._by_id: dict[int, Episode] = {}
        self._per_device: dict[str, int] = {}
        self._clearing: set[Episode] = set()
        self._held: set[Episode] = set()
        self._dirty: set[Episode] = set()
        self.writer = AlarmWriter(store, clock, events, self._got_id)
        self._next_overdue_scan = float("-inf")

    # --- what the engine calls -------------------------------------------------------------------

    def episode(self, alarm_type: str, device: str) -> Episode | None:
        return self._by_key.get((alarm_type, device))

    def activate(
        self,
        alarm_type: str,
        device: str,
        at: float,
        detail: str = "",
        *,
        severity: Severity | None = None,
        parent: Episode | None = None,
        defer: bool = False,
    ) -> Episode:
        """The condition holds: continue its open episode, or raise a new alarm.

        `parent`: raise it as that alarm's child (not notified). `defer`: record it now but hold the
        notification until `release` (or `adopt` makes it a child)."""
        sev = severity or SEVERITY[alarm_type]
        ep = self._by_key.get((alarm_type, device))
        if ep is not None:
            ep.active = True
            ep.clear_since = None
            ep.resolve_at = float("inf")
            self._clearing.discard(ep)
            self.seen(alarm_type, device, at, detail)
            if SEVERITY_RANK[sev] > SEVERITY_RANK[ep.alarm.severity]:
                self.escalate(ep, sev, at)
            return ep
        held = self.in_maintenance(device)
        alarm = Alarm(None, alarm_type, sev, device, AlarmState.OPEN, at, at, held=held, detail=detail)
        ep = Episode(alarm)
        if parent is not None and parent.open:
            ep.parent = parent
            parent.children += 1
        if held or ep.parent is not None:
            ep.notice = "quiet"
        else:
            ep.notice = "deferred" if defer else "sent"
        self._by_key[ep.key] = ep
        self._per_device[device] = self._per_device.get(device, 0) + 1
        if held:
            self._held.add(ep)
        self._write(ep, events=(("raised", ep.notice == "sent"),))
        return ep

    def seen(self, alarm_type: str, device: str, at: float, detail: str = "") -> None:
        ep = self._by_key.get((alarm_type, device))
        if ep is None:
            return
        if at > ep.alarm.last_seen:
            ep.alarm.last_seen = at
            self._dirty.add(ep)
        if detail:
            ep.alarm.detail = detail

    def deactivate(self, alarm_type: str, device: str, at: float, holdoff_s: float) -> None:
        """The condition cleared: resolve after it has stayed clear for `holdoff_s`."""
        ep = self._by_key.get((alarm_type, device))
        if ep is None or not ep.active:
            return
        ep.active = False
        ep.clear_since = at
        if holdoff_s <= 0:
            self._resolve(ep, at, actor="", note=None, resolution="auto")
        else:
            ep.resolve_at = at + holdoff_s
            self._clearing.add(ep)

    def adopt(self, child: Episode, parent: Episode) -> None:
        """Make `child` a child of `parent`: it is not notified on its own (if it was not yet)."""
        if child is parent or child.parent is parent or not child.open:
            return
        if child.parent is not None:
            child.parent.children -= 1
        child.parent = parent
        parent.children += 1
        if child.notice == "deferred":
            child.notice = "quiet"
        self._write(child, events=(("updated", False),))

    def release(self, ep: Episode) -> None:
        """Correlation found no parent for a deferred alarm: notify it on its own now."""
        if ep.notice != "deferred" or not ep.open:
            return
        ep.notice = "quiet" if ep.alarm.held or ep.parent is not None else "sent"
        self._write(ep, events=(("raised", ep.notice == "sent"),))

    def detach(self, ep: Episode) -> None:
        """The parent recovered but this child did not: it becomes an alarm of its own."""
        if ep.parent is None or not ep.open:
            return
        ep.parent.children -= 1
        ep.parent = None
        tell = ep.notice != "sent" and not ep.alarm.held
        if tell:
            ep.notice = "sent"
        self._write(ep, events=(("raised" if tell else "updated", tell),))

    def escalate(self, ep: Episode, severity: Severity, at: float) -> None:
        if not ep.open or SEVERITY_RANK[severity] <= SEVERITY_RANK[ep.alarm.severity]:
            return
        ep.alarm.severity = severity
        self._write(ep, events=(("escalated", ep.notice == "sent"),))

    def open_episodes(self) -> list[Episode]:
        return list(self._by_key.values())

    def tick(self, now: float) -> None:
        """Auto-resolve what stayed clear, release held alarms after maintenance, mark overdue."""
        for ep in [e for e in self._clearing if now >= e.resolve_at]:
            self._resolve(ep, ep.clear_since if ep.clear_since is not None else now, "", None, "auto")
        for ep in [e for e in self._held if not self.in_maintenance(e.alarm.device)]:
            self._held.discard(ep)
            if not ep.active:
                continue  # cleared during the work: it resolves on its own, nobody needs telling
            ep.alarm.held = False
            tell = ep.parent is None and ep.notice != "sent"
            if tell:
                ep.notice = "sent"
            self._write(ep, events=(("raised" if tell else "updated", tell),))
        for ep in [e for e in self._dirty if now - e.written_at >= self.persist_every_s]:
            self._write(ep)
        if now >= self._next_overdue_scan:
            self._next_overdue_scan = now + 10.0
            for ep in self._by_key.values():
                if not ep.overdue_noted and ep.alarm.id is not None and self.is_overdue(ep.alarm, now):
                    ep.overdue_noted = True
                    self.writer.emit(
                        AlarmEvent("overdue", self._copy(ep), ep.notice == "sent", now, ep.children)
                    )

    # --- what other parts call --------------------------------------------------------------------

    def raise_alarm(self, alarm_type: str, device: str, ts: float, detail: str = "") -> None:
        """Raise (or continue) an alarm of a type detected elsewhere, e.g. command_failed."""
        if alarm_type not in SEVERITY:
            raise ValueError(f"unknown alarm type {alarm_type!r}")
        self.activate(alarm_type, device, ts, detail)

    def clear_alarm(self, alarm_type: str, device: str, ts: float) -> None:
        """Its condition is over: the alarm resolves at once (the caller judged it clear)."""
        self.deactivate(alarm_type, device, ts, holdoff_s=0.0)

    def open_count(self, device_id: str) -> int:
        return self._per_device.get(device_id, 0)

    def open_alarms(self, device: str | None = None) -> list[Alarm]:
        return [
            self._copy(ep)
            for ep in self._by_key.values()
            if ep.alarm.id is not None and (device is None or ep.alarm.device == device)
        ]

    def counts(self) -> dict[tuple[str, str], int]:
        """Unresolved alarms by (severity, state), for /metrics."""
        out: dict[tuple[str, str], int] = {}
        for ep in self._by_key.values():
            key = (ep.alarm.severity.value, ep.alarm.state.value)
            out[key] = out.get(key, 0) + 1
        return out

    def faulty_devices(self, types: frozenset[str]) -> set[str]:
        return {ep.alarm.device for ep in self._by_key.values() if ep.alarm.type in types}

    def is_overdue(self, alarm: Alarm, now: float) -> bool:
        limit = self.repair_s.get(alarm.severity.value)
        return alarm.state is not AlarmState.RESOLVED and limit is not None and now - alarm.first_seen > limit

    def due_at(self, alarm: Alarm) -> float | None:
        limit = self.repair_s.get(alarm.severity.value)
        return None if limit is None else alarm.first_seen + limit

    async def list_alarms(
        self, where: AlarmFilter = EVERY_ALARM, limit: int = 100, offset: int = 0
    ) -> tuple[list[Alarm], int]:
        await self.flush()
        return await self.store.list_alarms(where, limit, offset)

    async def get_alarm(self, alarm_id: int) -> Alarm | None:
        # The database is the record every instance shares (a crew may have acknowledged the alarm
        # through another one); what this instance has not written yet is flushed first.
        await self.flush()
        stored = await self.store.get_alarm(alarm_id)
        if stored is not None:
            return stored
        ep = self._by_id.get(alarm_id)
        return self._copy(ep) if ep is not None else None

    async def ack(self, alarm_id: int, who: str, note: str | None = None) -> Alarm:
        ep = await self._open_episode(alarm_id)
        if isinstance(ep, Alarm):
            return await self._change_stored(ep, who, AlarmState.ACKED, note=note)
        ep.alarm.state = AlarmState.ACKED
        if note is not None:
            ep.alarm.note = note
        return await self._write_and_wait(ep, who, ("acked", False))

    async def assign(self, alarm_id: int, who: str, assignee: str) -> Alarm:
        ep = await self._open_episode(alarm_id)
        if isinstance(ep, Alarm):
            return await self._change_stored(ep, who, ep.state, assignee=assignee)
        ep.alarm.assignee = assignee
        return await self._write_and_wait(ep, who, ("assigned", False))

    async def resolve(self, alarm_id: int, who: str, note: str | None = None) -> Alarm:
        """Resolved by a crew. Its children go with it; if the condition persists it is raised anew
        once the rule sees it again from scratch."""
        ep = await self._open_episode(alarm_id)
        if isinstance(ep, Alarm):
            return await self._change_stored(ep, who, AlarmState.RESOLVED, note=note)
        now = self.clock.now()
        for child in [e for e in self._by_key.values() if e.parent is ep]:
            self._resolve(child, now, who, note, "manual")
        done = self._resolve(ep, now, who, note, "manual", wait=True)
        if done is None:
            raise AlarmConflict(f"alarm {alarm_id} is already resolved")
        await self.flush()
        return await done

    # --- loading and writing ------------------------------------------------------------------------

    async def load(self) -> list[Alarm]:
        """Bring back the alarms left open by the previous run; returns them (the engine restores)."""
        alarms = await self.store.open_alarms()
        now = self.clock.now()
        for alarm in sorted(alarms, key=lambda a: a.id or 0):
            if alarm.id is None or (alarm.type, alarm.device) in self._by_key:
                continue
            ep = Episode(alarm, written_at=now)
            ep.notice = "quiet" if alarm.held or alarm.parent is not None else "sent"
            ep.overdue_noted = self.is_overdue(alarm, now)
            self._by_key[ep.key] = ep
            self._by_id[alarm.id] = ep
            self._per_device[alarm.device] = self._per_device.get(alarm.device, 0) + 1
            if alarm.held:
                self._held.add(ep)
        for ep in self._by_key.values():
            parent_id = ep.alarm.parent
            if parent_id is not None and parent_id in self._by_id:
                ep.parent = self._by_id[parent_id]
                ep.parent.children += 1
        return [self._copy(ep) for ep in self._by_key.values()]

    async def run(self) -> None:
        """The writer: persists queued changes in order, then sends their events."""
        await self.writer.run()

    async def flush(self) -> None:
        await self.writer.flush()

    def _got_id(self, ep: Episode) -> None:
        if ep.open and ep.alarm.id is not None:
            self._by_id[ep.alarm.id] = ep

    def _write(
        self,
        ep: Episode,
        actor: str = "",
        at: float | None = None,
        resolution: Resolution | None = None,
        events: tuple[tuple[EventKind, bool], ...] = (),
        wait: bool = False,
    ) -> asyncio.Future[Alarm] | None:
        self._dirty.discard(ep)
        return self.writer.write(ep, actor, at, resolution, events, wait)

    async def _write_and_wait(self, ep: Episode, who: str, event: tuple[EventKind, bool]) -> Alarm:
        done = self._write(ep, actor=who, at=self.clock.now(), events=(event,), wait=True)
        if done is None:
            raise RuntimeError("a waited write has a future")
        await self.flush()
        return await done

    def _resolve(
        self,
        ep: Episode,
        at: float,
        actor: str,
        note: str | None,
        resolution: Resolution,
        wait: bool = False,
    ) -> asyncio.Future[Alarm] | None:
        if not ep.open:
            return None
        ep.alarm.state = AlarmState.RESOLVED
        ep.active = False
        if note is not None:
            ep.alarm.note = note
        self._forget(ep)
        if actor and self.on_manual_resolve is not None:
            self.on_manual_resolve(ep.alarm.type, ep.alarm.device)
        return self._write(ep, actor, at, resolution, (("resolved", ep.notice == "sent"),), wait)

    def _forget(self, ep: Episode) -> None:
        if self._by_key.get(ep.key) is ep:
            del self._by_key[ep.key]
            n = self._per_device.get(ep.alarm.device, 0) - 1
            if n > 0:
                self._per_device[ep.alarm.device] = n
            else:
                self._per_device.pop(ep.alarm.device, None)
        if ep.alarm.id is not None:
            self._by_id.pop(ep.alarm.id, None)
        if ep.parent is not None:
            ep.parent.children -= 1
        self._clearing.discard(ep)
        self._held.discard(ep)
        self._dirty.discard(ep)

    async def _open_episode(self, alarm_id: int) -> Episode | Alarm:
        """This instance's open episode, or an open alarm another instance raised (shared database)."""
        await self.flush()  # so that an alarm raised a moment ago has its id
        ep = self._by_id.get(alarm_id)
        if ep is not None:
            return ep
        stored = await self.store.get_alarm(alarm_id)
        if stored is None:
            raise AlarmNotFound(f"no alarm {alarm_id}")
        if stored.state is AlarmState.RESOLVED:
            raise AlarmConflict(f"alarm {alarm_id} is {stored.state.value}")
        return stored

    async def _change_stored(
        self, stored: Alarm, who: str, state: AlarmState, note: str | None = None, assignee: str | None = None
    ) -> Alarm:
        """A crew's change to an alarm another instance owns; that instance adopts it (`sync`)."""
        alarm = dataclasses.replace(
            stored,
            state=state,
            note=note if note is not None else stored.note,
            assignee=assignee or stored.assignee,
        )
        resolution: Resolution | None = "manual" if alarm.state is AlarmState.RESOLVED else None
        return await self.store.upsert_alarm(alarm, actor=who, at=self.clock.now(), resolution=resolution)

    async def sync(self) -> None:
        """Adopt crews' changes made through another instance to this instance's open alarms, so its
        own writes do not undo them: acknowledged, assigned, noted or resolved elsewhere."""
        await self.flush()
        stored = {a.id: a for a in await self.store.open_alarms() if a.id is not None}
        for alarm_id, ep in list(self._by_id.items()):
            theirs = stored.get(alarm_id)
            if theirs is None:
                gone = await self.store.get_alarm(alarm_id)
                if gone is not None and gone.state is AlarmState.RESOLVED and ep.open:
                    ep.alarm.state = AlarmState.RESOLVED
                    ep.alarm.note = gone.note
                    ep.active = False
                    self._forget(ep)
                continue
            if theirs.state is AlarmState.ACKED and ep.alarm.state is AlarmState.OPEN:
                ep.alarm.state = AlarmState.ACKED
            if theirs.assignee is not None:
                ep.alarm.assignee = theirs.assignee
            if theirs.note is not None:
                ep.alarm.note = theirs.note

    async def watch_shared(self, every_s: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.sync()
            except Exception:
                log.exception("reading alarms changed by other instances failed; will try again")

    @staticmethod
    def _copy(ep: Episode) -> Alarm:
        return ep.view()

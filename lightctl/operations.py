"""Operators' actions on the desired state: overrides, event scenes, emergencies, maintenance.

The API calls these; they persist the action, hand the new set to the resolver, wake the reconciler
and announce it on the event stream. Nothing here talks to a device.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace

from lightctl.clock import Clock
from lightctl.model import DesiredState, Maintenance, Override, OverrideKind
from lightctl.schedule.device_state import EMERGENCY_DEFAULT_TARGETS, emergency_setting
from lightctl.schedule.plans import TargetIndex
from lightctl.schedule.resolve import Resolver
from lightctl.store.state import StateDB

log = logging.getLogger(__name__)

EMERGENCY_MAX_S = 24 * 3600.0
OVERRIDE_MAX_S = 7 * 24 * 3600.0  # a longer change belongs in the plan
MAINTENANCE_MAX_S = 30 * 24 * 3600.0
KEEP_ENDED_S = 24 * 3600.0  # ended overrides stay visible to tonight's preview


class ActionError(ValueError):
    """A request that cannot be carried out; `field` names the part of the body at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


Announce = Callable[[str, dict[str, object]], None]


class Operations:
    def __init__(
        self,
        state: StateDB,
        resolver: Resolver,
        clock: Clock,
        poke: Callable[[], None] = lambda: None,
        announce: Announce | None = None,
        targets: TargetIndex | None = None,
    ) -> None:
        self.state = state
        self.targets = targets  # what operators may name; by default this instance's devices
        self.resolver = resolver
        self.clock = clock
        self.poke = poke
        self.announce = announce
        self.overrides: list[Override] = []
        self.maintenance: list[Maintenance] = []

    async def load(self) -> None:
        """Read what is still in force from the state database (after a restart)."""
        await self.load_quietly()
        self._publish()

    async def watch(self, every_s: float = 2.0) -> None:
        """Pick up what other instances (or this one's earlier self) wrote to a shared state database."""
        while True:
            await asyncio.sleep(every_s)
            try:
                before = (self.overrides, self.maintenance)
                await self.load_quietly()
                if (self.overrides, self.maintenance) != before:
                    self._publish()
            except Exception:
                log.exception("reading overrides from the state database failed; will try again")

    async def load_quietly(self) -> None:
        # Only what has not been over for KEEP_ENDED_S: the tables keep every override ever given,
        # and this runs every 2 s.
        since = self.clock.now() - KEEP_ENDED_S
        overrides, _ = await self.state.list_overrides(limit=100_000, ending_after=since)
        self.overrides = [o for o in overrides if _end(o.until, o.ended_at) > since]
        windows, _ = await self.state.list_maintenance(limit=100_000, ending_after=since)
        self.maintenance = [m for m in windows if _end(m.until, m.ended_at) > since]

    def set_resolver(self, resolver: Resolver) -> None:
        """After a configuration reload: the new resolver takes over the overrides in force."""
        self.resolver = resolver
        self._publish()

    def _publish(self) -> None:
        self.resolver.set_overrides(self.overrides)
        self.resolver.set_maintenance(self.maintenance)
        self.poke()

    def _check_targets(self, targets: list[str]) -> tuple[str, ...]:
        if not targets:
            raise ActionError("targets", "give at least one target")
        unknown = (self.targets or self.resolver.targets).unknown(targets)
        if unknown:
            raise ActionError("targets", f"unknown target(s): {', '.join(unknown)}")
        return tuple(targets)

    def _window(self, start: float | None, until: float, longest: float) -> tuple[float, float]:
        now = self.clock.now()
        begin = now if start is None else start
        if until <= max(begin, now):
            raise ActionError("until", "until must be later than start and than now")
        if until - begin > longest:
            raise ActionError("until", f"at most {longest / 3600:g} h from start")
        return begin, until

    async def add_override(
        self,
        *,
        kind: OverrideKind,
        targets: list[str],
        state: DesiredState,
        until: float,
        reason: str,
        who: str,
        start: float | None = None,
        event: str | None = None,
    ) -> Override:
        if kind == "event" and not event:
            raise ActionError("event", "an event scene needs the event's name")
        begin, end = self._window(start, until, EMERGENCY_MAX_S if kind == "emergency" else OVERRIDE_MAX_S)
        override = Override(
            id=None,
            kind=kind,
            targets=self._check_targets(targets),
            state=replace(state, source=kind),
            start=begin,
            until=end,
            reason=reason,
            event=event,
            created_by=who,
            created_at=self.clock.now(),
        )
        saved = await self.state.add_override(override)
        self.overrides.append(saved)
        self._publish()
        self._announce("override", saved)
        return saved

    async def end_override(self, override_id: int) -> Override | None:
        ended = await self.state.end_override(override_id, self.clock.now())
        if ended is None:
            return None
        self.overrides = [ended if o.id == override_id else o for o in self.overrides]
        self._publish()
        self._announce("override", ended)
        return ended

    async def emergency(
        self, action: str, targets: list[str] | None, until: float | None, reason: str, who: str
    ) -> list[Override]:
        """all_on / all_off for at most 24 h; clear ends every emergency in force."""
        now = self.clock.now()
        if action == "clear":
            ended: list[Override] = []
            for o in list(self.overrides):
                if o.kind == "emergency" and o.active(now) and o.id is not None:
                    done = await self.end_override(o.id)
                    if done is not None:
                        ended.append(done)
            return ended
        chosen = list(targets) if targets else list(EMERGENCY_DEFAULT_TARGETS[action])
        end = min(until if until is not None else now + EMERGENCY_MAX_S, now + EMERGENCY_MAX_S)
        saved = await self.add_override(
            kind="emergency",
            targets=chosen,
            state=emergency_setting(action),
            until=end,
            reason=reason,
            who=who,
        )
        return [saved]

    async def add_maintenance(
        self, targets: list[str], until: float, reason: str, who: str, start: float | None = None
    ) -> Maintenance:
        begin, end = self._window(start, until, MAINTENANCE_MAX_S)
        window = Maintenance(
            id=None,
            targets=self._check_targets(targets),
            start=begin,
            until=end,
            reason=reason,
            created_by=who,
            created_at=self.clock.now(),
        )
        saved = await self.state.add_maintenance(window)
        self.maintenance.append(saved)
        self._publish()
        self._announce("maintenance", saved)
        return saved

    async def end_maintenance(self, window_id: int) -> Maintenance | None:
        ended = await self.state.end_maintenance(window_id, self.clock.now())
        if ended is None:
            return None
        self.maintenance = [ended if m.id == window_id else m for m in self.maintenance]
        self._publish()
        self._announce("maintenance", ended)
        return ended

    def in_maintenance(self, device_id: str) -> bool:
        return self.resolver.in_maintenance(device_id)

    def prune(self) -> None:
        """Forget what ended more than a day ago (it stays in the database)."""
        now = self.clock.now()
        self.overrides = [o for o in self.overrides if _end(o.until, o.ended_at) > now - KEEP_ENDED_S]
        self.maintenance = [m for m in self.maintenance if _end(m.until, m.ended_at) > now - KEEP_ENDED_S]
        self._publish()

    def _announce(self, kind: str, item: Override | Maintenance) -> None:
        if self.announce is None:
            return
        try:
            until = dt.datetime.fromtimestamp(item.until, self.resolver.sun.tz).isoformat(timespec="seconds")
            self.announce(kind, {"id": item.id, "targets": list(item.targets), "until": until})
        except Exception:
            log.exception("announcing a %s failed", kind)


def _end(until: float, ended_at: float | None) -> float:
    return until if ended_at is None else min(until, ended_at)

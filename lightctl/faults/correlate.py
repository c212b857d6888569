"""Parents and children: one alarm for a root cause, its consequences as children.

comm_loss: a device behind a gateway, a concentrator or lightctl's broker connection ("bridge") that
goes silent may just be the first sign of its parent going down. Its alarm is recorded at once but
its notification is deferred until the parent's fate is known: the parent is lost too (the child is
adopted, not notified), or the parent is heard from after the child went quiet, or the parent's own
silence deadline has passed without it being lost (the child is notified on its own). When a
parent comes back, children still lost after their own silence period become alarms of their own.

cable_theft_suspected: supply loss on `cable_theft_groups` groups of one gateway within one poll
cycle raises one critical alarm for the gateway with the groups' supply_loss alarms as its children.
A group's supply_loss notification waits until every other unit of its gateway has been polled
since (or the cycle's time is up), so that the first groups of a theft are not notified on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lightctl.faults.lifecycle import AlarmManager, Episode

COMM = "comm_loss"
SUPPLY = "supply_loss"
THEFT = "cable_theft_suspected"


@dataclass(slots=True)
class _Hold:
    episode: Episode
    since: float
    deadline: float


@dataclass(slots=True)
class _Feeder:
    """One gateway's recent supply losses."""

    recent: dict[str, float] = field(default_factory=dict)  # unit -> when its supply_loss began
    held: dict[str, _Hold] = field(default_factory=dict)  # unit -> deferred supply_loss
    polled: set[str] = field(default_factory=set)  # units heard since the first deferred one


@dataclass(frozen=True, slots=True)
class Topology:
    parent_of: Mapping[str, str]  # device, concentrator -> gateway / concentrator / bridge
    children_of: Mapping[str, tuple[str, ...]]  # parent -> devices (and concentrators)
    parent_wait_s: Mapping[str, float]  # parent -> how long a child's notification may wait for it
    gateway_units: Mapping[str, tuple[str, ...]]
    poll_s: float  # the configured Modbus poll interval
    theft_window_s: float  # one poll cycle
    theft_groups: int


class Correlator:
    def __init__(self, manager: AlarmManager, topo: Topology, holdoff_s: Callable[[str], float]) -> None:
        self.manager = manager
        self.topo = topo
        self.holdoff_s = holdoff_s  # device or parent id -> flapping hold-off of its alarms
        self._comm_holds: dict[str, dict[str, _Hold]] = {}  # parent -> child -> hold
        self._feeders: dict[str, _Feeder] = {}
        self._recovering: dict[str, float] = {}  # parent -> when it came back
        self._last_poll: dict[str, float] = {}  # gateway unit -> when it last answered
        self._cycle_s: dict[str, float] = {}  # gateway -> its last observed poll cycle

    def _wait(self, parent: str, fallback: float) -> float:
        """How long a child may wait for news of `parent`: configured, or longer when the gateway's
        real cycle is slower (many silent units, a scaled clock)."""
        return max(self.topo.parent_wait_s.get(parent, fallback), 1.5 * self._cycle_s.get(parent, 0.0))

    # --- comm_loss -------------------------------------------------------------------------------

    def lost(self, ident: str, at: float, detail: str) -> Episode:
        """`ident` (a device or a parent) lost communication."""
        m = self.manager
        parent = self.topo.parent_of.get(ident)
        parent_ep = None if parent is None else m.episode(COMM, parent)
        cause = self._supply_cause(ident)
        if cause is not None:  # a group (or feeder) without supply goes quiet once its capacitor is empty
            ep = m.activate(COMM, ident, at, detail, parent=cause)
        elif parent_ep is not None and parent_ep.active:
            ep = m.activate(COMM, ident, at, detail, parent=parent_ep)
        elif parent is not None:
            ep = m.activate(COMM, ident, at, detail, defer=True)
            if ep.notice == "deferred":
                self._comm_holds.setdefault(parent, {})[ident] = _Hold(ep, at, at + self._wait(parent, 0.0))
        else:
            ep = m.activate(COMM, ident, at, detail)
        if ident in self.topo.children_of:
            self._recovering.pop(ident, None)
            self._adopt_children(ident, ep)
        return ep

    def _supply_cause(self, ident: str) -> Episode | None:
        if ident in self.topo.gateway_units:
            theft = self.manager.episode(THEFT, ident)
            return theft if theft is not None and theft.active else None
        loss = self.manager.episode(SUPPLY, ident)
        if loss is None or not loss.active:
            return None
        return loss.parent if loss.parent is not None and loss.parent.open else loss

    def _adopt_children(self, parent: str, parent_ep: Episode) -> None:
        holds = self._comm_holds.pop(parent, {})
        for hold in holds.values():
            self.manager.adopt(hold.episode, parent_ep)
        for child in self.topo.children_of.get(parent, ()):
            ep = self.manager.episode(COMM, child)
            if ep is not None and ep.active and ep.parent is None:
                self.manager.adopt(ep, parent_ep)

    def back(self, ident: str, at: float) -> None:
        """`ident` is heard from again."""
        self.manager.deactivate(COMM, ident, at, self.holdoff_s(ident))
        if ident in self.topo.children_of:
            self._recovering[ident] = at
        self.parent_heard(ident, at)

    def parent_heard(self, parent: str, at: float) -> None:
        """Something of `parent` was heard at `at`: children that went quiet before it are not its fault."""
        holds = self._comm_holds.get(parent)
        if not holds:
            return
        for child, hold in list(holds.items()):
            if hold.since < at:
                del holds[child]
                self.manager.release(hold.episode)

    # --- cable theft ---------------------------------------------------------------------------

    def supply_lost(self, unit: str, gateway: str, at: float, detail: str) -> None:
        m = self.manager
        theft = m.episode(THEFT, gateway)
        if theft is not None and theft.active:
            m.activate(SUPPLY, unit, at, detail, parent=theft)
            return
        ep = m.activate(SUPPLY, unit, at, detail, defer=True)
        feeder = self._feeders.setdefault(gateway, _Feeder())
        window = max(self.topo.theft_window_s, 1.2 * self._cycle_s.get(gateway, 0.0))  # one poll cycle
        feeder.recent = {u: t for u, t in feeder.recent.items() if t >= at - window}
        feeder.recent[unit] = at
        if ep.notice == "deferred":
            if not feeder.held:
                feeder.polled = set()
            feeder.held[unit] = _Hold(ep, at, at + self._wait(gateway, window))
        if len(feeder.recent) >= self.topo.theft_groups:
            self._raise_theft(gateway, feeder, at)

    def _raise_theft(self, gateway: str, feeder: _Feeder, at: float) -> None:
        m = self.manager
        n = len(feeder.recent)
        theft = m.activate(THEFT, gateway, at, f"{n} groups lost supply within one poll cycle")
        for unit in self.topo.gateway_units.get(gateway, ()):
            ep = m.episode(SUPPLY, unit)
            if ep is not None and ep.active:
                m.adopt(ep, theft)
        feeder.held.clear()
        feeder.recent.clear()

    def supply_back(self, unit: str, gateway: str, at: float) -> None:
        m = self.manager
        m.deactivate(SUPPLY, unit, at, self.holdoff_s(unit))
        feeder = self._feeders.get(gateway)
        if feeder is not None:
            feeder.recent.pop(unit, None)
            hold = feeder.held.pop(unit, None)
            if hold is not None:
                m.release(hold.episode)
        theft = m.episode(THEFT, gateway)
        if theft is None or not theft.active:
            return
        still = 0
        for other in self.topo.gateway_units.get(gateway, ()):
            ep = m.episode(SUPPLY, other)
            if ep is not None and ep.active:
                still += 1
        if still < self.topo.theft_groups:
            m.deactivate(THEFT, gateway, at, self.holdoff_s(gateway))

    def unit_polled(self, unit: str, gateway: str, at: float, reachable: Callable[[str], bool]) -> None:
        """A unit of `gateway` answered: once all have since the first deferred supply loss, decide."""
        prev = self._last_poll.get(unit)
        self._last_poll[unit] = at
        if prev is not None and at > prev:
            # a unit back after an outage says nothing about the cycle: cap it
            self._cycle_s[gateway] = min(at - prev, 4.0 * self.topo.poll_s)
        feeder = self._feeders.get(gateway)
        if feeder is None or not feeder.held:
            return
        first = min(h.since for h in feeder.held.values())
        if at <= first:
            return
        feeder.polled.add(unit)
        units = self.topo.gateway_units.get(gateway, ())
        if all(u in feeder.polled or u in feeder.held or not reachable(u) for u in units):
            self._release_feeder(feeder)

    def _release_feeder(self, feeder: _Feeder) -> None:
        for hold in feeder.held.values():
            self.manager.release(hold.episode)
        feeder.held.clear()
        feeder.polled = set()

    # --- timer -----------------------------------------------------------------------------------

    def tick(self, now: float, interval_of: Callable[[str], float], silence_factor: float) -> None:
        for holds in self._comm_holds.values():
            for child, hold in list(holds.items()):
                if now >= hold.deadline:
                    del holds[child]
                    self.manager.release(hold.episode)
        for feeder in self._feeders.values():
            if feeder.held and now >= min(h.deadline for h in feeder.held.values()):
                self._release_feeder(feeder)
        for parent, since in list(self._recovering.items()):
            children = self.topo.children_of.get(parent, ())
            longest = max((interval_of(c) for c in children), default=0.0) * silence_factor
            if now - since < longest:
                continue
            del self._recovering[parent]
            for child in children:
                ep = self.manager.episode(COMM, child)
                if (
                    ep is not None
                    and ep.active
                    and ep.parent is not None
                    and ep.parent.alarm.device == parent
                ):
                    self.manager.detach(ep)

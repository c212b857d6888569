"""Desired state of every device: a pure function of (time, calendar, plans, overrides), made cheap.

Precedence, highest first: emergency > manual override > event scene > plan > device default (off).
Overrides layer field by field over the plan's output in that order, equals by creation time (the
later wins), and each applies only the fields that make sense for a device's kind (device_state).

Devices are resolved in cohorts, never one by one: a cohort is the devices sharing a plan chain (the
plans that target them, in order), a kind and the same active overrides. A night's step timeline is
computed once per cohort and shared; a tick with nothing due answers without looking at a device.
Devices in a maintenance window get their desired state as usual and are reported apart, so the
reconciler leaves them alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lightctl.model import DesiredState, Device, DeviceKind, Maintenance, Override
from lightctl.schedule.calendar import DayCalendar, DayInfo
from lightctl.schedule.device_state import applies_to, apply_setting, default_state, normalize
from lightctl.schedule.night import ONE_DAY, night_of, night_window
from lightctl.schedule.plans import PlanBook, PlanChoice, TargetIndex
from lightctl.schedule.programs import NightTimeline, build_timeline
from lightctl.schedule.sun import SunClock

if TYPE_CHECKING:
    from lightctl.config.loader import District

OVERRIDE_RANK: dict[str, int] = {"event": 1, "manual": 2, "emergency": 3}
LOOKAHEAD_NIGHTS = 8  # how far next_change looks for a plan change before giving up (rechecked later)

BaseKey = tuple[int, DeviceKind]  # (plan chain id, kind)
CohortKey = tuple[int, DeviceKind, tuple[int, ...]]  # + active overrides' indices, in application order


@dataclass(frozen=True, slots=True)
class Resolution:
    """Every device's desired state at one moment."""

    at: float
    night: dt.date
    states: Mapping[str, DesiredState]
    maintenance: frozenset[str]  # devices the reconciler must leave alone now
    next_change: float | None  # the next moment any desired state or the maintenance set changes


@dataclass(frozen=True, slots=True)
class TickResult:
    at: float
    changed: tuple[str, ...]  # desired output changed, or entered / left maintenance, since the last tick
    maintenance: frozenset[str]
    next_change: float | None


def override_label(override: Override) -> str:
    ident = "?" if override.id is None else str(override.id)
    return f"{override.kind}:{ident}"


def override_end(override: Override) -> float:
    return override.until if override.ended_at is None else min(override.until, override.ended_at)


class Resolver:
    """Resolves desired states for a district; `tick` reports only what changed since the last tick."""

    def __init__(
        self,
        devices: Mapping[str, Device],
        book: PlanBook,
        targets: TargetIndex,
        calendar: DayCalendar,
        sun: SunClock,
    ) -> None:
        self.devices = devices
        self.book = book
        self.targets = targets
        self.calendar = calendar
        self.sun = sun
        self.tz = sun.tz
        # One tuple per (chain, kind), shared by its devices: not 100,000 equal ones.
        self._base_of: dict[str, BaseKey] = {}
        shared: dict[BaseKey, BaseKey] = {}
        members: dict[BaseKey, list[str]] = {}
        for d in devices.values():
            key: BaseKey = (book.chain_of[d.id], d.kind)
            key = self._base_of[d.id] = shared.setdefault(key, key)
            members.setdefault(key, []).append(d.id)
        self._base_members = {b: tuple(m) for b, m in members.items()}
        self._timelines: dict[tuple[object, ...], NightTimeline] = {}
        self.overrides: tuple[Override, ...] = ()
        self._ov_devices: tuple[frozenset[str], ...] = ()
        self._maintenance: tuple[Maintenance, ...] = ()
        self._maint_devices: tuple[frozenset[str], ...] = ()
        # incremental state, as of the last tick
        self._last: float | None = None
        self._recheck_at = float("-inf")
        self._next: float | None = None
        self._active: tuple[int, ...] = ()
        self._ovmap: dict[str, tuple[int, ...]] = {}
        self._ov_members: dict[CohortKey, list[str]] = {}
        self._states: dict[CohortKey, DesiredState] = {}
        self._in_maintenance: frozenset[str] = frozenset()
        self._dirty = True

    @classmethod
    def for_district(cls, district: District) -> Resolver:
        site = district.settings.site
        targets = TargetIndex.for_district(district)
        book = PlanBook(district.plans, district.programs, targets)
        return cls(
            district.devices,
            book,
            targets,
            DayCalendar.for_district(district),
            SunClock(site.lat, site.lon, site.timezone),
        )

    # -- inputs that change -----------------------------------------------------------------------

    def set_overrides(self, overrides: Iterable[Override]) -> None:
        """The overrides known now (past, active and future); cheap when nothing differs."""
        ordered = tuple(sorted(overrides, key=lambda o: (OVERRIDE_RANK[o.kind], o.created_at, o.id or 0)))
        if ordered == self.overrides:
            return
        self.overrides = ordered
        self._ov_devices = tuple(
            frozenset(
                d for d in self.targets.expand_all(o.targets) if applies_to(self.devices[d].kind, o.state)
            )
            for o in ordered
        )
        self._dirty = True

    def set_maintenance(self, windows: Iterable[Maintenance]) -> None:
        ordered = tuple(windows)
        if ordered == self._maintenance:
            return
        self._maintenance = ordered
        self._maint_devices = tuple(self.targets.expand_all(m.targets) for m in ordered)
        self._dirty = True

    # -- pure evaluation ----------------------------------------------------------------------------

    def day(self, night: dt.date) -> DayInfo:
        return self.calendar.day(night)

    def base_of(self, device: str) -> BaseKey:
        return self._base_of[device]

    def base_members(self) -> Mapping[BaseKey, tuple[str, ...]]:
        return self._base_members

    def choice(self, base: BaseKey, night: dt.date) -> PlanChoice | None:
        return self.book.choose(base[0], base[1], self.calendar.day(night))

    def timeline(self, base: BaseKey, night: dt.date) -> NightTimeline:
        """The night's timeline of a plan chain and kind, starting from the previous night's end state
        (that night's program run from the device default)."""
        kind = base[1]
        previous = self._program_timeline(
            self.choice(base, night - ONE_DAY), night - ONE_DAY, kind, default_state(kind)
        )
        return self._program_timeline(self.choice(base, night), night, kind, previous.end_raw)

    def _program_timeline(
        self, choice: PlanChoice | None, night: dt.date, kind: DeviceKind, initial: DesiredState
    ) -> NightTimeline:
        label = "default" if choice is None else choice.label
        key = (label, night, kind, initial)
        timeline = self._timelines.get(key)
        if timeline is None:
            if len(self._timelines) > 8192:
                self._timelines.clear()
            program = None if choice is None else choice.program
            timeline = build_timeline(program, night, self.sun.night(night), self.tz, initial, label, kind)
            self._timelines[key] = timeline
        return timeline

    def plan_state(self, base: BaseKey, ts: float) -> DesiredState:
        return self.timeline(base, night_of(ts, self.tz)).state_at(ts)

    def layered_state(self, base: BaseKey, overrides: tuple[int, ...], ts: float) -> DesiredState:
        """The plan's output with the given overrides (indices into `overrides`, lowest first) on top."""
        state = self.plan_state(base, ts)
        kind = base[1]
        for i in overrides:
            ov = self.overrides[i]
            state = normalize(kind, apply_setting(kind, state, ov.state, override_label(ov)))
        return state

    def override_devices(self, index: int) -> frozenset[str]:
        """Devices override `index` applies to (targeted and of a kind its fields make sense for)."""
        return self._ov_devices[index]

    def active_overrides(self, ts: float) -> tuple[int, ...]:
        return tuple(i for i, o in enumerate(self.overrides) if o.active(ts))

    def maintenance_at(self, ts: float) -> frozenset[str]:
        out: set[str] = set()
        for window, devices in zip(self._maintenance, self._maint_devices, strict=True):
            if window.active(ts):
                out |= devices
        return frozenset(out)

    def maintenance_during(self, start: float, end: float) -> frozenset[str]:
        """Devices in a maintenance window at some moment of [start, end)."""
        out: set[str] = set()
        for window, devices in zip(self._maintenance, self._maint_devices, strict=True):
            until = window.until if window.ended_at is None else min(window.until, window.ended_at)
            if window.start < end and until > start and window.start < until:
                out |= devices
        return frozenset(out)

    def _override_map(self, active: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        lists: dict[str, list[int]] = {}
        for i in active:
            for device in self._ov_devices[i]:
                lists.setdefault(device, []).append(i)
        return {d: tuple(v) for d, v in lists.items()}

    def _cohorts(self, ovmap: Mapping[str, tuple[int, ...]]) -> set[CohortKey]:
        """The cohorts that have members: a plan cohort whose devices are all overridden has none."""
        overridden: dict[BaseKey, int] = {}
        cohorts: set[CohortKey] = set()
        for device, ovs in ovmap.items():
            base = self._base_of[device]
            overridden[base] = overridden.get(base, 0) + 1
            cohorts.add((*base, ovs))
        cohorts.update(
            (b[0], b[1], ())
            for b, members in self._base_members.items()
            if overridden.get(b, 0) < len(members)
        )
        return cohorts

    def resolve(self, now: float) -> Resolution:
        """Every device's desired state at `now` (does not touch the tick's state)."""
        ovmap = self._override_map(self.active_overrides(now))
        states = {c: self.layered_state((c[0], c[1]), c[2], now) for c in self._cohorts(ovmap)}
        out: dict[str, DesiredState] = {}
        for (chain, kind), members in self._base_members.items():
            plan_state = states.get((chain, kind, ()))
            if plan_state is not None:  # else every member is overridden, filled in below
                out.update(dict.fromkeys(members, plan_state))
        for device, ovs in ovmap.items():
            out[device] = states[(*self._base_of[device], ovs)]
        next_change, _ = self._next_change(now, states)
        return Resolution(now, night_of(now, self.tz), out, self.maintenance_at(now), next_change)

    def desired(self, device: str, now: float) -> DesiredState:
        ovs = tuple(i for i in self.active_overrides(now) if device in self._ov_devices[i])
        return self.layered_state(self._base_of[device], ovs, now)

    def next_change(self, now: float) -> float | None:
        ovmap = self._override_map(self.active_overrides(now))
        states = {c: self.layered_state((c[0], c[1]), c[2], now) for c in self._cohorts(ovmap)}
        return self._next_change(now, states)[0]

    def _next_change(
        self, now: float, states: Mapping[CohortKey, DesiredState]
    ) -> tuple[float | None, float]:
        """The next change after `now`, and when to look again if none is found within the lookahead."""
        first = night_of(now, self.tz)
        horizon = night_window(first + dt.timedelta(days=LOOKAHEAD_NIGHTS), self.tz)[0]
        best: float | None = None
        for o in self.overrides:
            for t in (o.start, override_end(o)):
                if now < t and (best is None or t < best):
                    best = t
        for m in self._maintenance:
            end = m.until if m.ended_at is None else min(m.until, m.ended_at)
            for t in (m.start, end):
                if now < t and (best is None or t < best):
                    best = t
        for cohort, current in states.items():
            found = self._cohort_change(cohort, current, now, first, best)
            if found is not None and (best is None or found < best):
                best = found
        return best, (horizon if best is None else min(best, horizon))

    def _cohort_change(
        self, cohort: CohortKey, current: DesiredState, now: float, first: dt.date, before: float | None
    ) -> float | None:
        base: BaseKey = (cohort[0], cohort[1])
        for n in range(LOOKAHEAD_NIGHTS):
            night = first + dt.timedelta(days=n)
            timeline = self.timeline(base, night)
            candidates = timeline.step_times_after(now) if n == 0 else (timeline.start, *timeline.times)
            for t in candidates:
                if before is not None and t >= before:
                    return None  # something else changes first
                if t >= timeline.end:
                    continue
                if not self.layered_state(base, cohort[2], t).same_output(current):
                    return t
        return None

    # -- incremental ----------------------------------------------------------------------------------

    def tick(self, now: float) -> TickResult:
        """Advance to `now`; the devices whose desired output (or maintenance) changed since the last tick.

        The first tick reports every device. Nothing is computed per device unless something is due.
        """
        if not self._dirty and self._last is not None and self._last <= now < self._recheck_at:
            self._last = now
            return TickResult(now, (), self._in_maintenance, self._next)
        first = self._last is None
        active = self.active_overrides(now)
        old_map, old_states = self._ovmap, self._states
        ovmap = old_map if (active == self._active and not self._dirty) else self._override_map(active)
        moved = [d for d in old_map.keys() | ovmap.keys() if old_map.get(d, ()) != ovmap.get(d, ())]
        before = {} if first else {d: old_states[(*self._base_of[d], old_map.get(d, ()))] for d in moved}
        states = {c: self.layered_state((c[0], c[1]), c[2], now) for c in self._cohorts(ovmap)}
        if ovmap is not old_map:
            self._ov_members = {}
            for device, ovs in ovmap.items():
                self._ov_members.setdefault((*self._base_of[device], ovs), []).append(device)
        changed: dict[str, None] = {}
        if first:
            changed = dict.fromkeys(self.devices)
        else:
            moved_set = set(moved)
            for cohort, state in states.items():
                old = old_states.get(cohort)
                if old is None or old.same_output(state):
                    continue
                if cohort[2]:
                    members: Iterable[str] = self._ov_members.get(cohort, ())
                else:
                    members = (d for d in self._base_members[(cohort[0], cohort[1])] if d not in ovmap)
                changed.update(dict.fromkeys(d for d in members if d not in moved_set))
            for device in moved:
                if not before[device].same_output(states[(*self._base_of[device], ovmap.get(device, ()))]):
                    changed[device] = None
        maintenance = self.maintenance_at(now)
        changed.update(dict.fromkeys(maintenance ^ self._in_maintenance))
        self._ovmap, self._states, self._active = ovmap, states, active
        self._in_maintenance = maintenance
        self._next, self._recheck_at = self._next_change(now, states)
        self._last = now
        self._dirty = False
        return TickResult(now, tuple(changed), maintenance, self._next)

    def state(self, device: str) -> DesiredState:
        """A device's desired state as of the last tick."""
        if self._last is None:
            raise RuntimeError("Resolver.state() before the first tick()")
        return self._states[(*self._base_of[device], self._ovmap.get(device, ()))]

    def in_maintenance(self, device: str) -> bool:
        return device in self._in_maintenance

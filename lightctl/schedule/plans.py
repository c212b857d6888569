"""Which program a device runs on a night: plans tried in order, first matching rule within a plan.

A rule matches a night when every condition it gives holds: its day types (see DayInfo.has_type),
its holiday names (only days of type `holiday`), its calendar event names, its date range; and its
program is for the device's kind (so one plan may hold rules for several kinds). A plan with no
rule matching a device's night passes the device on to the next plan that targets it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lightctl.config.loader import target_devices
from lightctl.config.schedules import Plan, Program, Rule
from lightctl.model import Concentrator, Device, DeviceKind, Gateway, Road, Zone
from lightctl.schedule.calendar import DayInfo
from lightctl.schedule.holidays import canonical_holiday

if TYPE_CHECKING:
    from lightctl.config.loader import District


class TargetIndex:
    """Expands targets (`id`, `road:`, `zone:`, `kind:`, `gateway:`, `concentrator:`) to device ids."""

    def __init__(
        self,
        devices: Mapping[str, Device],
        roads: Mapping[str, Road] | None = None,
        gateways: Mapping[str, Gateway] | None = None,
        concentrators: Mapping[str, Concentrator] | None = None,
        zones: Mapping[str, Zone] | None = None,
    ) -> None:
        self.devices = devices
        self._roads = dict(roads or {})
        self._gateways = dict(gateways or {})
        self._concentrators = dict(concentrators or {})
        self._zones = dict(zones or {})
        self._cache: dict[str, frozenset[str] | None] = {}

    @classmethod
    def for_district(cls, district: District) -> TargetIndex:
        return cls(
            district.devices, district.roads, district.gateways, district.concentrators, district.zones
        )

    def expand(self, target: str) -> frozenset[str] | None:
        """The device ids a target names, or None for an unknown target."""
        if target not in self._cache:
            devices = self.devices if isinstance(self.devices, dict) else dict(self.devices)
            found = target_devices(
                target, devices, self._roads, self._gateways, self._concentrators, self._zones
            )
            self._cache[target] = None if found is None else frozenset(found)
        return self._cache[target]

    def expand_all(self, targets: Iterable[str]) -> frozenset[str]:
        """The union of the targets' devices; unknown targets add nothing (see `unknown`)."""
        out: set[str] = set()
        for target in targets:
            out |= self.expand(target) or frozenset()
        return frozenset(out)

    def unknown(self, targets: Iterable[str]) -> list[str]:
        return [t for t in targets if self.expand(t) is None]


@dataclass(frozen=True, slots=True)
class RuleMatcher:
    """A rule compiled for matching: holiday names made canonical once."""

    rule: Rule
    day_types: frozenset[str]
    holidays: frozenset[str]
    events: frozenset[str]

    @classmethod
    def of(cls, rule: Rule) -> RuleMatcher:
        names = frozenset(canonical_holiday(h) or h for h in rule.holidays())
        return cls(rule, frozenset(rule.day_types()), names, frozenset(rule.events()))

    def matches(self, day: DayInfo) -> bool:
        if self.day_types and not any(day.has_type(t) for t in self.day_types):
            return False
        if self.holidays and not day.is_holiday_named(self.holidays):
            return False
        if self.events and not self.events.intersection(day.events):
            return False
        dates = self.rule.dates
        return dates is None or dates.start <= day.date <= dates.end


@dataclass(frozen=True, slots=True)
class PlanChoice:
    """The plan, rule and program a device runs on a night."""

    plan: str
    rule_index: int
    program: Program

    @property
    def label(self) -> str:
        return f"plan:{self.plan}/rules[{self.rule_index}]/program:{self.program.id}"


class PlanBook:
    """The plans, each device's chain (the plans that target it, in order), and the choice per night."""

    def __init__(self, plans: Sequence[Plan], programs: Mapping[str, Program], targets: TargetIndex) -> None:
        self.plans = tuple(plans)
        self.programs = programs
        self._rules = [[RuleMatcher.of(r) for r in plan.rules] for plan in self.plans]
        members = [targets.expand_all(plan.targets) for plan in self.plans]
        chain_ids: dict[tuple[int, ...], int] = {}
        self.chain_of: dict[str, int] = {}
        for device in targets.devices:
            chain = tuple(i for i, m in enumerate(members) if device in m)
            self.chain_of[device] = chain_ids.setdefault(chain, len(chain_ids))
        self.chains: tuple[tuple[int, ...], ...] = tuple(chain_ids)  # dicts keep insertion order
        self._choices: dict[tuple[int, DeviceKind, dt.date], PlanChoice | None] = {}

    def choose(self, chain_id: int, kind: DeviceKind, day: DayInfo) -> PlanChoice | None:
        key = (chain_id, kind, day.date)
        if key not in self._choices:
            if len(self._choices) > 65536:
                self._choices.clear()
            self._choices[key] = self._choose(self.chains[chain_id], kind, day)
        return self._choices[key]

    def _choose(self, chain: tuple[int, ...], kind: DeviceKind, day: DayInfo) -> PlanChoice | None:
        for plan_index in chain:
            plan = self.plans[plan_index]
            for rule_index, matcher in enumerate(self._rules[plan_index]):
                program = self.programs.get(matcher.rule.program)
                if program is None or program.kind != kind:
                    continue
                if matcher.matches(day):
                    return PlanChoice(plan.id, rule_index, program)
        return None

"""KPIs of design.md section 4: lighting rate (亮灯率), facility intact rate (设施完好率), online rate.

A unit is a lamp, a lamp group (中华灯, one unit whatever its heads) or a facade zone.
- lighting rate: units lit as they should be / units that should be lit now. A unit should be lit
  when its desired state says so; it is lit correctly when its last fresh reading shows it drawing
  at least lamp_failure_ratio of the expected power (every circuit that should be on, for a group).
  A unit without a fresh reading cannot be confirmed lit and counts against (`unknown` says how many).
  Targets: 98 % for arterial roads, 96 % for everything else.
- facility intact rate: units without an open facility fault (catalog.FACILITY_FAULTS) / all units.
  Targets: 95 %, landscape (facade zones of class landscape) 90 %.
- online rate: units online / all units.
Each is given overall, by road and by kind; a row's target is the stricter class target only when
all its units are of that class. The lighting rate is also averaged per night over 5-minute samples
taken while anything should be lit (between the night's first switch-on and last switch-off).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from lightctl.clock import Clock
from lightctl.faults.catalog import FACILITY_FAULTS
from lightctl.faults.context import NOMINAL_V, DeviceContext, facade_expected_w
from lightctl.model import DesiredState, Reading
from lightctl.schedule.night import night_of

LIGHTING_TARGETS = {"arterial": 0.98}
LIGHTING_DEFAULT = 0.96
INTACT_TARGETS = {"landscape": 0.90}
INTACT_DEFAULT = 0.95
SAMPLE_S = 300.0


@dataclass(frozen=True, slots=True)
class Rate:
    ok: int
    total: int
    target: float | None
    unknown: int = 0  # lighting: units that should be lit but have no fresh reading

    @property
    def value(self) -> float | None:
        return self.ok / self.total if self.total else None

    @property
    def meets(self) -> bool | None:
        value = self.value
        return None if value is None or self.target is None else value >= self.target


@dataclass(frozen=True, slots=True)
class Rows:
    overall: Rate
    by_road: dict[str, Rate]
    by_kind: dict[str, Rate]


@dataclass(frozen=True, slots=True)
class KpiSnapshot:
    at: float
    lighting: Rows
    intact: Rows
    online: Rows


class UnitStatus(Protocol):
    """What lightctl.state.DeviceStatus offers."""

    @property
    def online(self) -> bool | None: ...

    @property
    def last(self) -> Reading | None: ...

    @property
    def last_seen(self) -> float | None: ...


def should_be_lit(ctx: DeviceContext, desired: DesiredState | None) -> bool:
    if desired is None:
        return False
    if ctx.shape == "switched":
        return desired.on is True and (desired.level is None or desired.level > 0)
    if ctx.shape == "circuits":
        return bool(desired.k1) or bool(desired.k2)
    return (desired.scene or 0) > 0 and (desired.brightness is None or desired.brightness > 0)


def lit_correctly(ctx: DeviceContext, reading: Reading, desired: DesiredState) -> bool:
    """Is the unit drawing what a lit unit draws (for every circuit that should be on)?"""
    v = reading.values
    th = ctx.th
    power = v.get("power")
    if ctx.shape == "switched":
        if not v.get("on") or power is None:
            return False
        level = v.get("level", 100.0)
        expected = ctx.device.rated_w * level / 100.0 + ctx.standby_w
        return (
            power >= th.lamp_failure_ratio * expected if expected >= th.lamp_failure_min_expected_w else True
        )
    if ctx.shape == "circuits":
        volts = v.get("voltage") or NOMINAL_V
        if volts < th.supply_lost_v:
            return False
        factor = v.get("level", 100.0) / 100.0 if ctx.device.dimmable else 1.0
        pf = v.get("pf")
        pf_used = pf if pf is not None and 0.5 <= pf <= 1.0 else ctx.pf_nominal
        for c in ctx.circuits:
            if not getattr(desired, c.name):
                continue
            current = v.get(c.current)
            if not v.get(c.name) or current is None:
                return False
            expected_i = c.rated_w * factor / (volts * pf_used)
            if current < th.lamp_failure_ratio * expected_i:
                return False
        return True
    active = v.get("active_scene")
    if not active or power is None:
        return False
    expected = facade_expected_w(
        ctx, round(active), v.get("brightness", 100.0), v.get("failed_channels", 0.0)
    )
    return power >= th.lamp_failure_ratio * expected


def snapshot(
    contexts: Iterable[DeviceContext],
    units: Mapping[str, UnitStatus],
    desired: Mapping[str, DesiredState],
    faulty: set[str],
    at: float,
    stale_intervals: float = 3.0,
) -> KpiSnapshot:
    lighting = _Tally(LIGHTING_TARGETS, LIGHTING_DEFAULT)
    intact = _Tally(INTACT_TARGETS, INTACT_DEFAULT)
    online = _Tally({}, None)
    for ctx in contexts:
        dev = ctx.device
        status = units.get(dev.id)
        keys = (dev.road, dev.kind, dev.road_class or "")
        is_online = status is not None and status.online is True
        online.add(keys, is_online)
        intact.add(keys, dev.id not in faulty)
        want = desired.get(dev.id)
        if not should_be_lit(ctx, want):
            continue
        reading = None if status is None else status.last
        seen = None if status is None else status.last_seen
        fresh = (
            is_online
            and reading is not None
            and seen is not None
            and at - seen <= stale_intervals * ctx.interval_s
        )
        if not fresh or reading is None or want is None:
            lighting.add(keys, False, unknown=True)
        else:
            lighting.add(keys, lit_correctly(ctx, reading, want))
    return KpiSnapshot(at, lighting.rows(), intact.rows(), online.rows())


@dataclass
class _Count:
    ok: int = 0
    total: int = 0
    unknown: int = 0
    classes: set[str] = field(default_factory=set)


class _Tally:
    def __init__(self, targets: Mapping[str, float], default: float | None) -> None:
        self.targets = targets
        self.default = default
        self.overall = _Count()
        self.road: dict[str, _Count] = {}
        self.kind: dict[str, _Count] = {}

    def add(self, keys: tuple[str | None, str, str], ok: bool, unknown: bool = False) -> None:
        road, kind, cls = keys
        rows = [self.overall, self.kind.setdefault(kind, _Count())]
        if road is not None:
            rows.append(self.road.setdefault(road, _Count()))
        for row in rows:
            row.total += 1
            row.ok += ok
            row.unknown += unknown
            row.classes.add(cls)

    def _rate(self, c: _Count) -> Rate:
        target = self.default
        if len(c.classes) == 1:
            target = self.targets.get(next(iter(c.classes)), self.default)
        return Rate(c.ok, c.total, target, c.unknown)

    def rows(self) -> Rows:
        return Rows(
            self._rate(self.overall),
            {k: self._rate(c) for k, c in self.road.items()},
            {k: self._rate(c) for k, c in self.kind.items()},
        )


@dataclass
class NightAverage:
    night: dt.date
    samples: int
    overall: float | None
    by_road: dict[str, float]
    by_kind: dict[str, float]


class LightingNights:
    """The lighting rate averaged over a night's 5-minute samples (only those where anything should
    be lit); nights run noon to noon in the site's time zone."""

    def __init__(self, tz: ZoneInfo, keep: int = 400) -> None:
        self.tz = tz
        self.keep = keep
        self._sums: dict[dt.date, dict[str, list[float]]] = {}

    def add(self, snap: KpiSnapshot) -> None:
        rows = snap.lighting
        if rows.overall.total == 0:
            return  # nothing should be lit: not "at night"
        night = night_of(snap.at, self.tz)
        sums = self._sums.setdefault(night, {})
        entries = [("", rows.overall)]
        entries += [(f"road:{k}", r) for k, r in rows.by_road.items()]
        entries += [(f"kind:{k}", r) for k, r in rows.by_kind.items()]
        for key, rate in entries:
            value = rate.value
            if value is None:
                continue
            acc = sums.setdefault(key, [0.0, 0.0])
            acc[0] += value
            acc[1] += 1
        for old in sorted(self._sums)[: -self.keep]:
            del self._sums[old]

    def nights(self) -> list[dt.date]:
        return sorted(self._sums)

    def average(self, night: dt.date) -> NightAverage:
        sums = self._sums.get(night, {})

        def mean(key: str) -> float | None:
            acc = sums.get(key)
            return None if not acc else acc[0] / acc[1]

        def group(prefix: str) -> dict[str, float]:
            return {k[len(prefix) :]: a[0] / a[1] for k, a in sums.items() if k.startswith(prefix)}

        overall = sums.get("")
        return NightAverage(
            night, int(overall[1]) if overall else 0, mean(""), group("road:"), group("kind:")
        )


class KpiService:
    """Takes a sample every 5 minutes of clock time and answers `now()` and night averages."""

    def __init__(
        self,
        contexts: Callable[[], Iterable[DeviceContext]],
        units: Mapping[str, UnitStatus],
        desired: Callable[[], Mapping[str, DesiredState]],
        faulty: Callable[[], set[str]],
        clock: Clock,
        tz: ZoneInfo,
        sample_s: float = SAMPLE_S,
    ) -> None:
        self.contexts = contexts
        self.units = units
        self.desired = desired
        self.faulty = faulty
        self.clock = clock
        self.sample_s = sample_s
        self.nights = LightingNights(tz)

    def now(self) -> KpiSnapshot:
        return snapshot(self.contexts(), self.units, self.desired(), self.faulty(), self.clock.now())

    def sample(self) -> KpiSnapshot:
        snap = self.now()
        self.nights.add(snap)
        return snap

    def night_average(self, night: dt.date | None = None) -> NightAverage:
        return self.nights.average(night or night_of(self.clock.now(), self.nights.tz))

    async def run(self) -> None:
        while True:
            now = self.clock.now()
            await self.clock.sleep(self.sample_s - now % self.sample_s)
            self.sample()


def faulty_devices(manager_open: Callable[[frozenset[str]], set[str]]) -> Callable[[], set[str]]:
    """Adapts AlarmManager.faulty_devices to the facility faults."""
    return lambda: manager_open(FACILITY_FAULTS)

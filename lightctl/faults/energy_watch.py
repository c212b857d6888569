"""Closes each night's energy books: per device, the night's kWh from the telemetry store judged
against its baseline (energy.py), raising or clearing `energy_anomaly` (minor).

A night's energy window runs from one morning's close to the next: the first whole hour at least
CLOSE_AFTER_SUNRISE_S after sunrise, when the night's lamps are off and their last counters stored.
Whole hours let the store answer from its hourly rollups. The window's figures come from the
cumulative energy counters (lightctl/store/energy.py), so lost reports cost nothing. Each night is
judged a little after its close, and its figures are saved in the state database (state.EnergyNight,
one packed row per night). At start the watch loads the last `energy_lookback_nights` of them as
history (not judged again: the run that was up then judged them); only nights the state database
lacks (the first start after an upgrade, a store that was down) are read back from the telemetry
store, one query per night, and saved in turn, so that a city-size start reads them once.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zlib
from collections import Counter
from collections.abc import Callable

from lightctl.clock import Clock
from lightctl.config.loader import District
from lightctl.config.settings import Partition
from lightctl.faults.energy import EnergyHistory, judge_energy
from lightctl.faults.lifecycle import AlarmManager
from lightctl.model import DEVICE_KINDS
from lightctl.schedule.night import night_of
from lightctl.schedule.resolve import Resolver, override_end
from lightctl.store.energy import HOUR, LOOKBACK_S, devices_energy
from lightctl.store.state import EnergyNight, StateDB
from lightctl.store.telemetry import TelemetryBackend

ALARM = "energy_anomaly"
CLOSE_AFTER_SUNRISE_S = 1800.0
SETTLE_S = 120.0  # after the close, for the last readings to reach the store
RETRY_S = 300.0  # a store that could not answer is asked again this much later (clock time)
ONE_DAY = dt.timedelta(days=1)
log = logging.getLogger(__name__)

Figures = dict[str, tuple[str | None, float]]  # device -> (program or None, kWh)


class EnergyWatch:
    def __init__(
        self,
        district: District,
        resolver: Callable[[], Resolver],
        manager: AlarmManager,
        clock: Clock,
        store: TelemetryBackend,
        state: StateDB | None = None,  # None: history only from the telemetry store, nothing saved
    ) -> None:
        self.district = district
        self.resolver = resolver  # the current one (schedules may be reloaded)
        self.manager = manager
        self.clock = clock
        self.store = store
        self.state = state
        self.owner = owner_of(district.settings.partition)
        self.th = {kind: district.settings.thresholds_for(kind) for kind in DEVICE_KINDS}
        self.keep = max(th.energy_lookback_nights for th in self.th.values())
        self.history = EnergyHistory(district.devices, self.keep)
        self.stats: Counter[str] = Counter()

    def bounds(self, night: dt.date) -> tuple[float, float]:
        """The energy window of the night starting on the evening of `night`."""
        return self._close(night - ONE_DAY), self._close(night)

    def _close(self, night: dt.date) -> float:
        sunrise = self.resolver().sun.night(night).sunrise
        return math.ceil((sunrise + CLOSE_AFTER_SUNRISE_S) / HOUR) * HOUR

    def programs(self, night: dt.date, start: float, end: float) -> dict[str, str | None]:
        """The program each device ran that night; None if an override or maintenance touched it."""
        r = self.resolver()
        touched = set(r.maintenance_during(start, end))
        for i, ov in enumerate(r.overrides):
            if ov.start < end and override_end(ov) > start:
                touched |= r.override_devices(i)
        out: dict[str, str | None] = {}
        for base, members in r.base_members().items():
            choice = r.choice(base, night)
            program = None if choice is None else choice.program.id
            for dev in members:
                out[dev] = None if dev in touched else program
        return out

    async def figures(self, night: dt.date) -> Figures:
        start, end = self.bounds(night)
        buckets = await self.store.buckets(None, start - LOOKBACK_S, end, HOUR)
        programs = self.programs(night, start, end)
        out: Figures = {}
        for e in devices_energy(buckets, start, end, self.store.lit_threshold_w):
            if e.device in self.district.devices:
                # A meter replaced during the night gives no comparable figure.
                out[e.device] = (None if e.resets else programs.get(e.device), e.kwh)
        return out

    def judge(self, night: dt.date, figures: Figures, now: float) -> None:
        """Raise or clear energy_anomaly for every device with a figure, then keep the night."""
        devices = self.district.devices
        for dev_id, (program, kwh) in figures.items():
            th = self.th[devices[dev_id].kind]
            previous = self.history.previous(dev_id, program, night, th.energy_baseline_nights)
            verdict = judge_energy(night, kwh, program, previous, th)
            if not verdict.judged:
                self.stats["not_judged"] += 1
            elif verdict.evidence is not None:
                self.stats["anomalies"] += 1
                self.manager.raise_alarm(ALARM, dev_id, now, verdict.evidence)
            else:
                self.stats["normal"] += 1
                self.manager.clear_alarm(ALARM, dev_id, now)
        self.history.add(night, figures)

    async def save(self, night: dt.date) -> None:
        """Keep a night the history holds in the state database, and forget nights beyond the lookback."""
        columns = self.history.columns(night)
        if self.state is None or columns is None:
            return
        try:
            await self.state.save_energy_night(EnergyNight.pack(night, self.owner, *columns))
            await self.state.prune_energy_nights(night - (self.keep - 1) * ONE_DAY)
            self.stats["nights_saved"] += 1
        except Exception:
            # Not fatal: the next start reads this night back from the telemetry store instead.
            log.warning("energy: night %s not saved (state database)", night, exc_info=True)

    async def restore(self, first_open: dt.date) -> None:
        """The nights before `first_open` as history only: from the state database, and those it
        lacks from the telemetry store."""
        first = first_open - self.keep * ONE_DAY
        stored = await self._load(first, first_open)
        self.stats["nights_loaded"] += len(stored)
        for back in range(self.keep, 0, -1):
            night = first_open - back * ONE_DAY
            if night in stored:
                continue
            try:
                figures = await self.figures(night)
            except Exception:
                log.warning("energy: night %s not read back (telemetry store)", night, exc_info=True)
                continue
            self.stats["nights_read_back"] += 1
            if back == 1:
                # The last closed night is not in the database, so it was never judged (a restart
                # between its close and its judgement): judge it now, as of when it was due.
                self.judge(night, figures, self.bounds(night)[1] + SETTLE_S)
            else:
                self.history.add(night, figures)
            await self.save(night)

    async def _load(self, first: dt.date, first_open: dt.date) -> set[dt.date]:
        """Add the saved nights from `first` to before `first_open`; returns those that need no read-back:
        saved by this instance's partition, or holding figures of its devices (saved by another)."""
        if self.state is None:
            return set()
        try:
            nights = await self.state.load_energy_nights(first)
        except Exception:
            log.warning("energy: saved nights not loaded (state database)", exc_info=True)
            return set()
        found: set[dt.date] = set()
        for n in nights:
            if n.night >= first_open:
                continue
            try:
                columns = n.columns()
            except (ValueError, zlib.error):
                log.warning("energy: saved night %s (%r) is damaged; ignored", n.night, n.owner)
                continue
            if n.owner == self.owner or not self.history.slot.keys().isdisjoint(columns[0]):
                found.add(n.night)
            self.history.add_columns(n.night, *columns)
        return found

    async def run(self) -> None:
        now = self.clock.now()
        night = night_of(now, self.resolver().sun.tz) - ONE_DAY
        while self.bounds(night)[1] <= now:
            night += ONE_DAY
        await self.restore(night)
        while True:
            due = self.bounds(night)[1] + SETTLE_S
            await self.clock.sleep(max(0.0, due - self.clock.now()))
            try:
                figures = await self.figures(night)
            except Exception:
                log.warning("energy: night %s not judged yet (telemetry store)", night, exc_info=True)
                await self.clock.sleep(RETRY_S)
                continue
            # The night's figure is complete at `due`: that is when the anomaly was first seen,
            # however long the store took to answer (kept in stats).
            self.stats["last_judged_after_s"] = round(self.clock.now() - due)
            self.judge(night, figures, due)
            await self.save(night)
            night += ONE_DAY


def owner_of(partition: Partition | None) -> str:
    """The name a partition's nights are saved under: what it owns, as config.yaml says it."""
    if partition is None:
        return ""
    return ";".join(f"{k}={','.join(v)}" for k, v in partition.model_dump(exclude_none=True).items())

"""Closes each night's energy books: per device, the night's kWh from the telemetry store judged
against its baseline (energy.py), raising or clearing `energy_anomaly` (minor).

A night's energy window runs from one morning's close to the next: the first whole hour at least
CLOSE_AFTER_SUNRISE_S after sunrise, when the night's lamps are off and their last counters stored.
Whole hours let the store answer from its hourly rollups. The window's figures come from the
cumulative energy counters (lightctl/store/energy.py), so lost reports cost nothing. At start the
watch reads back `energy_lookback_nights` earlier nights as history (not judged again: the run that
was up then judged them); each night is then judged a little after its close.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import Counter
from collections.abc import Callable

from lightctl.clock import Clock
from lightctl.config.loader import District
from lightctl.faults.energy import EnergyHistory, judge_energy
from lightctl.faults.lifecycle import AlarmManager
from lightctl.model import DEVICE_KINDS
from lightctl.schedule.night import night_of
from lightctl.schedule.resolve import Resolver, override_end
from lightctl.store.energy import HOUR, LOOKBACK_S, devices_energy
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
    ) -> None:
        self.district = district
        self.resolver = resolver  # the current one (schedules may be reloaded)
        self.manager = manager
        self.clock = clock
        self.store = store
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

    async def backfill(self, first_open: dt.date) -> None:
        """Read the nights before `first_open` back from the store, as history only."""
        for back in range(self.keep, 0, -1):
            night = first_open - back * ONE_DAY
            try:
                self.history.add(night, await self.figures(night))
            except Exception:
                log.warning("energy: night %s not read back (telemetry store)", night, exc_info=True)

    async def run(self) -> None:
        now = self.clock.now()
        night = night_of(now, self.resolver().sun.tz) - ONE_DAY
        while self.bounds(night)[1] <= now:
            night += ONE_DAY
        await self.backfill(night)
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
            night += ONE_DAY

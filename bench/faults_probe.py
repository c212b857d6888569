"""What bench/faults.py watches besides the alarm store: the evidence each alarm was raised with,
the harness's own timing (how late the event loop wakes up, in clock seconds) and the gaps in
each device's readings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from lightctl.clock import Clock
from lightctl.faults.lifecycle import AlarmEvent, EventSink
from lightctl.model import Reading

STALL_REAL_S = 0.04  # a wake-up this late (real seconds) is recorded as a stall


@dataclass
class EvidenceRecorder:
    """Sits between the alarm writer and the notifier: keeps the evidence each alarm was raised
    with (the state database does not store it), and passes every event on unchanged."""

    inner: EventSink | None
    evidence: dict[int, str] = field(default_factory=dict)

    def alarm_event(self, event: AlarmEvent) -> None:
        alarm = event.alarm
        if alarm.id is not None and alarm.detail and alarm.id not in self.evidence:
            self.evidence[alarm.id] = alarm.detail
        if self.inner is not None:
            self.inner.alarm_event(event)


@dataclass
class LoopLag:
    """Samples how late the event loop wakes a short sleeper. On a ScaledClock every real
    millisecond of lag is `speed` milliseconds of clock time by which reports, polls and timers slip."""

    clock: Clock
    every_s: float = 0.01
    lags: list[float] = field(default_factory=list)
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (clock time, clock seconds lost)

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.every_s)
            lag = time.monotonic() - before - self.every_s
            self.lags.append(lag)
            if lag >= STALL_REAL_S:
                self.stalls.append((self.clock.now(), lag * self.clock.speed))

    def percentile_ms(self, pct: float) -> float:
        ordered = sorted(self.lags) or [0.0]
        return round(1000 * ordered[int(pct / 100 * (len(ordered) - 1))], 1)


@dataclass
class ReadingGaps:
    """A reading listener: the gaps longer than 1.5 report intervals between a device's readings
    (clock times of arrival), so a late detection can be told apart from late data."""

    interval_of: dict[str, float]
    last: dict[str, float] = field(default_factory=dict)
    gaps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # device -> (from, to)

    def readings(self, batch: list[Reading]) -> None:
        for r in batch:
            at = r.received or r.ts
            prev = self.last.get(r.device)
            if prev is not None and at - prev > 1.5 * self.interval_of.get(r.device, 60.0):
                self.gaps.setdefault(r.device, []).append((prev, at))
            self.last[r.device] = at

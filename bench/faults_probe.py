"""What bench/faults.py watches besides the alarm store: the evidence each alarm was raised with,
and the harness's own timing (how late the event loop wakes up, in clock seconds)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from lightctl.clock import Clock
from lightctl.faults.lifecycle import AlarmEvent, EventSink

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

"""Who was heard from when, and who has been silent too long.

MQTT lamps, concentrators and lightctl's own broker connection ("bridge") are judged by silence: no
report for `comm_loss_intervals` x their report interval. Modbus units and gateways are judged by
their driver, which reports them offline after N failed polls; a reading or `online` brings any of
them back. Deadlines sit in a heap that is only touched when an entry falls due (a report does not
push anything), so 100,000 lamps reporting cost one dict store each.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class CommWatch:
    def __init__(self) -> None:
        self.last_heard: dict[str, float] = {}
        self.silence_s: dict[str, float] = {}  # ids judged by silence -> allowed silence
        self.lost: set[str] = set()  # ids whose comm_loss condition holds
        self._heap: list[tuple[float, str]] = []

    def watch(self, ident: str, silence_s: float, since: float) -> None:
        """Judge `ident` by silence from `since` (start-up: a device never heard from counts from then)."""
        self.silence_s[ident] = silence_s
        self.last_heard[ident] = max(self.last_heard.get(ident, since), since)
        heapq.heappush(self._heap, (self.last_heard[ident] + silence_s, ident))

    def heard(self, ident: str, at: float) -> bool:
        """`ident` reported at `at`; True if it had been lost (its comm_loss clears)."""
        last = self.last_heard.get(ident)
        if last is None or at > last:
            self.last_heard[ident] = at
        if ident in self.lost:
            self.lost.discard(ident)
            silence = self.silence_s.get(ident)
            if silence is not None:
                heapq.heappush(self._heap, (self.last_heard[ident] + silence, ident))
            return True
        return False

    def rearm(self, idents: Iterable[str], at: float) -> None:
        """Count the silence of those not yet lost from `at` at the earliest: a broker or parent came
        back, and they report within one interval. (Those already lost stay lost until heard.)"""
        last = self.last_heard
        for ident in idents:
            if ident not in self.lost and last.get(ident, at) < at:
                last[ident] = at

    def reset(self, ident: str, at: float) -> None:
        """Forget that `ident` was lost and count its silence afresh from `at` (a crew resolved it)."""
        if self.last_heard.get(ident, at) < at:
            self.last_heard[ident] = at
        if ident in self.lost:
            self.lost.discard(ident)
            silence = self.silence_s.get(ident)
            if silence is not None:
                heapq.heappush(self._heap, (self.last_heard[ident] + silence, ident))

    def set_lost(self, ident: str) -> bool:
        """The driver says `ident` is offline; True if it was not lost before."""
        if ident in self.lost:
            return False
        self.lost.add(ident)
        return True

    def expired(self, now: float) -> list[str]:
        """Silence-judged ids whose deadline passed since the last call (now lost), oldest first."""
        heap = self._heap
        out: list[str] = []
        while heap and heap[0][0] <= now:
            _, ident = heapq.heappop(heap)
            if ident in self.lost:
                continue
            silence = self.silence_s.get(ident)
            if silence is None:
                continue
            due = self.last_heard.get(ident, now) + silence
            if due <= now:
                self.lost.add(ident)
                out.append(ident)
            else:
                heapq.heappush(heap, (due, ident))
        return out

    def silent_for(self, ident: str, now: float) -> float:
        return now - self.last_heard.get(ident, now)

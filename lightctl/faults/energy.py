"""energy_anomaly (design.md section 4): a night's energy against the device's baseline. Pure.

A device's baseline for a program is the median of its energy on its last `energy_baseline_nights`
(7) earlier nights on that program; with fewer than `energy_min_nights` (3) such nights, or a
baseline under `energy_min_kwh`, the night is not judged. The night is faulty when it deviates from
the baseline by more than `energy_deviation` (20 %) either way. A median ignores a few odd nights in
the baseline (earlier faults, a night cut short), yet a lasting change (lamps replaced by others)
becomes the baseline after half the window of nights, so it is not reported forever.

Nights a device spent under an override or in maintenance have no program (None): they are neither
judged nor part of a baseline, since the plan did not decide what it burned.

History is kept compact (an array per night, one slot per device) because it is held for every
device of the inventory.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from array import array
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lightctl.config.settings import Thresholds

NO_PROGRAM = 0


@dataclass(frozen=True, slots=True)
class EnergyVerdict:
    judged: bool  # False: no baseline yet, no program, too little energy to compare
    evidence: str | None  # the deviation when faulty (judged), else None
    baseline_kwh: float | None


def judge_energy(
    night: dt.date, kwh: float, program: str | None, previous: Sequence[float], th: Thresholds
) -> EnergyVerdict:
    """One device's night: `previous` are its earlier nights on the same program, newest last."""
    recent = list(previous[-th.energy_baseline_nights :]) if th.energy_baseline_nights > 0 else []
    if program is None or len(recent) < th.energy_min_nights:
        return EnergyVerdict(False, None, None)
    base = statistics.median(recent)
    if base < th.energy_min_kwh:
        return EnergyVerdict(False, None, base)
    deviation = (kwh - base) / base
    if abs(deviation) <= th.energy_deviation:
        return EnergyVerdict(True, None, base)
    text = (
        f"night of {night.isoformat()}: {kwh:.3f} kWh = {deviation:+.0%} against the baseline {base:.3f} kWh "
        f"(median of {len(recent)} nights on program {program})"
    )
    return EnergyVerdict(True, text, base)


@dataclass(slots=True)
class _Night:
    night: dt.date
    kwh: array[float]  # per device slot; NaN: no figure
    program: array[int]  # per device slot: index into EnergyHistory.programs; NO_PROGRAM: none


class EnergyHistory:
    """Nightly energy per device and program, for the last `keep` nights."""

    def __init__(self, devices: Iterable[str], keep: int) -> None:
        self.devices = list(devices)
        self.slot = {d: i for i, d in enumerate(self.devices)}
        self.programs: list[str] = [""]
        self._program_ix: dict[str, int] = {}
        self.nights: deque[_Night] = deque(maxlen=max(1, keep))

    def add(self, night: dt.date, figures: Mapping[str, tuple[str | None, float]]) -> None:
        """A night's (program, kWh) per device; devices not in `figures` have no figure. A night
        added again only fills the devices it had no figure for (several instances' parts of it)."""
        known = self._find(night)
        if known is not None:
            self._fill(known, figures)
            return
        n = len(self.slot)
        added = _Night(night, array("f", [math.nan]) * n, array("H", [NO_PROGRAM]) * n)
        self._fill(added, figures)
        self._append(added)

    def add_columns(
        self,
        night: dt.date,
        devices: Sequence[str],
        programs: Sequence[str | None],
        program: array[int],
        kwh: array[float],
    ) -> None:
        """A night as `columns` gives it (kWh NaN: no figure): the same as `add`, and a 100,000-device
        night in milliseconds instead of a tenth of a second when its devices are this history's in
        its order (saved by this instance with the same inventory)."""
        if self._find(night) is not None or devices != self.devices:
            figures = {d: (programs[p], v) for d, p, v in zip(devices, program, kwh, strict=True)}
            self.add(night, {d: f for d, f in figures.items() if not math.isnan(f[1])})
            return
        ix = [self._index(p) for p in programs]
        mapped = array("H", program) if ix == list(range(len(ix))) else array("H", [ix[p] for p in program])
        self._append(_Night(night, array("f", kwh), mapped))

    def columns(self, night: dt.date) -> tuple[list[str], list[str | None], array[int], array[float]] | None:
        """The night as (devices, programs, program index per device, kWh per device), for saving."""
        n = self._find(night)
        if n is None:
            return None
        return self.devices, [None, *self.programs[1:]], n.program, n.kwh

    def _find(self, night: dt.date) -> _Night | None:
        return next((n for n in self.nights if n.night == night), None)

    def _append(self, added: _Night) -> None:
        self.nights.append(added)
        if len(self.nights) > 1 and self.nights[-2].night > added.night:  # backfilled out of order
            self.nights = deque(sorted(self.nights, key=lambda x: x.night), maxlen=self.nights.maxlen)

    def previous(self, device: str, program: str | None, before: dt.date, limit: int) -> list[float]:
        """The device's figures on `program` on nights before `before`, oldest first, at most `limit`."""
        i = self.slot.get(device)
        ix = self._program_ix.get(program) if program is not None else None
        if i is None or ix is None:
            return []
        out: list[float] = []
        for n in reversed(self.nights):
            if n.night >= before or n.program[i] != ix:
                continue
            value = n.kwh[i]
            if not math.isnan(value):
                out.append(value)
                if len(out) >= limit:
                    break
        out.reverse()
        return out

    def _fill(self, n: _Night, figures: Mapping[str, tuple[str | None, float]]) -> None:
        for device, (prog, value) in figures.items():
            i = self.slot.get(device)
            if i is not None and math.isnan(n.kwh[i]):
                n.kwh[i] = value
                n.program[i] = self._index(prog)

    def _index(self, program: str | None) -> int:
        if program is None:
            return NO_PROGRAM
        ix = self._program_ix.get(program)
        if ix is None:
            ix = self._program_ix[program] = len(self.programs)
            self.programs.append(program)
        return ix

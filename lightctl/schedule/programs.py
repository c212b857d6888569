"""A program's steps resolved for one night into absolute times, and the state they add up to.

- Clock times before noon are the next morning; `24:00` is midnight at the end of the night's date;
  sunset / civil dusk are on the night's date, sunrise / civil dawn the next morning, plus offsets.
- Times are clamped into the night [noon, next noon]: a step that would fall outside applies at the
  nearest edge (a step at the end shapes the state the next night starts from).
- Steps apply in the order of their resolved times; equal times keep program order.
- The state at a moment is every step so far that night accumulated on the state the night started
  from (the previous night's end state: off for ordinary programs); a step sets only the fields it
  names.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from lightctl.config.schedules import Program, Step
from lightctl.model import DesiredState, DeviceKind
from lightctl.schedule.device_state import apply_setting, normalize
from lightctl.schedule.night import clock_ts, night_window
from lightctl.schedule.sun import SunTimes
from lightctl.schedule.timeexpr import TimeExpr, parse_time


@dataclass(frozen=True, slots=True)
class TimedStep:
    """One program step at its time in one night."""

    index: int  # position in the program's steps
    text: str  # the step's `at` as written
    at: float  # epoch seconds
    setting: DesiredState  # the fields the step names
    pinned: bool  # a sun event that does not happen that night (polar edge case): offset ignored
    raw: DesiredState  # accumulated state after the step
    output: DesiredState  # what the device is told after the step
    changes: bool  # the output differs from before the step


@dataclass(frozen=True, slots=True)
class NightTimeline:
    """The state of one program over one night, shared by every device that runs it that night."""

    label: str  # plan / rule / program, the prefix of every source
    kind: DeviceKind
    night: dt.date
    start: float
    end: float
    initial_raw: DesiredState
    initial: DesiredState  # output before the first step
    steps: tuple[TimedStep, ...]
    times: tuple[float, ...]  # steps' times, for bisect

    @property
    def end_raw(self) -> DesiredState:
        return self.steps[-1].raw if self.steps else self.initial_raw

    @property
    def end_output(self) -> DesiredState:
        return self.steps[-1].output if self.steps else self.initial

    def state_at(self, ts: float) -> DesiredState:
        """The output at `ts` (steps at exactly `ts` have applied)."""
        i = bisect.bisect_right(self.times, ts)
        return self.steps[i - 1].output if i else self.initial

    def step_times_after(self, ts: float) -> tuple[float, ...]:
        """Times of the steps after `ts` within the night (the night's end excluded)."""
        i = bisect.bisect_right(self.times, ts)
        return tuple(t for t in self.times[i:] if t < self.end)


def setting_of(step: Step) -> DesiredState:
    return DesiredState(
        on=step.on, level=step.level, k1=step.k1, k2=step.k2, scene=step.scene, brightness=step.brightness
    )


def step_time(expr: TimeExpr, night: dt.date, sun: SunTimes, tz: ZoneInfo) -> tuple[float, bool]:
    """Epoch seconds of a step time within a night, unclamped, and whether it is pinned."""
    if expr.clock is not None:
        return clock_ts(night, expr.clock, tz), False
    if expr.sun is None:  # parse_time gives one or the other
        raise ValueError(f"step time {expr.text!r} has neither a clock time nor a sun event")
    if expr.sun in sun.pinned:
        return sun.at(expr.sun), True
    return sun.at(expr.sun) + expr.offset_min * 60, False


def build_timeline(
    program: Program | None,
    night: dt.date,
    sun: SunTimes,
    tz: ZoneInfo,
    initial_raw: DesiredState,
    label: str,
    kind: DeviceKind,
) -> NightTimeline:
    """Resolve `program` (None: no program that night, the state stays as it started) for a night."""
    start, end = night_window(night, tz)
    placed: list[tuple[float, int, Step, bool]] = []
    if program is not None:
        for index, step in enumerate(program.steps):
            at, pinned = step_time(parse_time(step.at), night, sun, tz)
            placed.append((min(max(at, start), end), index, step, pinned))
    placed.sort(key=lambda p: (p[0], p[1]))
    raw = initial_raw
    before = initial = normalize(kind, initial_raw)
    steps: list[TimedStep] = []
    for at, index, step, pinned in placed:
        setting = setting_of(step)
        raw = apply_setting(kind, raw, setting, f"{label}/steps[{index}]")
        output = normalize(kind, raw)
        steps.append(
            TimedStep(index, step.at, at, setting, pinned, raw, output, not output.same_output(before))
        )
        before = output
    return NightTimeline(
        label=label,
        kind=kind,
        night=night,
        start=start,
        end=end,
        initial_raw=initial_raw,
        initial=initial,
        steps=tuple(steps),
        times=tuple(s.at for s in steps),
    )

"""Scoring of bench/faults.py: raised alarms against the injected ground truth. Pure.

A detection is an alarm of the expected type on the expected device (the gateway for a cable theft,
the gateway or concentrator for its own comm_loss), first seen at or after the injection started
and no later than its deadline (the rule's own window plus one report interval, design.md section
9). Each injection is detected at most once and each alarm detects at most one injection.
Alarms with a parent are part of their parent's detection and are not scored on their own.

An alarm of the right type and device first seen after the deadline, while the fault lasted or
soon after, is `late`: the injection counts as missed, the alarm is not a false positive. Every
other alarm is a false positive. Precision = alarms that matched an injection (on time or late) /
all alarms of the type; recall = injections detected on time / injections.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Truth:
    """One injection as it happened (times from the simulators' fault logs, clock seconds)."""

    night: str
    ident: int
    variant: str
    alarm: str | None  # expected alarm type; None: a condition that must raise nothing
    device: str  # where the expected alarm belongs
    start: float
    end: float
    deadline_s: float
    late_s: float  # an alarm first seen up to end + late_s is still this fault's (late)
    members: tuple[str, ...] = ()  # devices it affects (a gateway's units), for explaining alarms


@dataclass(frozen=True, slots=True)
class Raised:
    """One alarm as lightctl recorded it."""

    night: str
    ident: int
    type: str
    device: str
    first_seen: float
    parent: int | None
    detail: str


@dataclass
class TypeScore:
    injected: int = 0
    detected: int = 0
    late: int = 0
    false_positives: int = 0
    delays: list[float] = field(default_factory=list)
    deadlines: set[float] = field(default_factory=set)

    @property
    def alarms(self) -> int:
        return self.detected + self.late + self.false_positives

    @property
    def precision(self) -> float | None:
        return _ratio(self.detected + self.late, self.alarms)

    @property
    def recall(self) -> float | None:
        return _ratio(self.detected, self.injected)

    def summary(self) -> dict[str, object]:
        return {
            "injected": self.injected,
            "detected": self.detected,
            "late": self.late,
            "missed": self.injected - self.detected,
            "false_positives": self.false_positives,
            "precision": self.precision,
            "recall": self.recall,
            "delay_p50_s": _percentile(self.delays, 50),
            "delay_p95_s": _percentile(self.delays, 95),
            "delay_max_s": round(max(self.delays), 1) if self.delays else None,
            "deadline_s": sorted(self.deadlines),
        }


@dataclass
class Outcome:
    types: dict[str, TypeScore]
    variants: dict[str, TypeScore]
    misses: list[dict[str, object]]
    false_positives: list[dict[str, object]]
    explained: list[dict[str, object]] = field(default_factory=list)  # energy_anomaly of other faults


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 4)


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: with few samples it names a real delay)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


Stalls = dict[str, list[tuple[float, float]]]  # night -> (clock time, clock seconds the harness lost)
Gaps = dict[str, dict[str, list[tuple[float, float]]]]  # night -> device -> (from, to) without readings


# A night's energy is the sum of everything that happened to the device that night: an
# energy_anomaly on a device that had other injected faults that night (a lamp left at full power
# for two hours by a missed dimming command) is theirs, not a false positive, and is not scored.
NIGHTLY = "energy_anomaly"


def score(
    truths: list[Truth], alarms: list[Raised], stalls: Stalls | None = None, gaps: Gaps | None = None
) -> Outcome:
    types: dict[str, TypeScore] = defaultdict(TypeScore)
    variants: dict[str, TypeScore] = defaultdict(TypeScore)
    misses: list[dict[str, object]] = []
    fps: list[dict[str, object]] = []
    explained: list[dict[str, object]] = []
    scored = [a for a in alarms if a.parent is None]
    used: set[tuple[str, int]] = set()
    for t in sorted(truths, key=lambda t: t.start):
        if t.alarm is None:
            variants[t.variant].injected += 1
            continue
        for s in (types[t.alarm], variants[t.variant]):
            s.injected += 1
            s.deadlines.add(t.deadline_s)
        mine = [
            a
            for a in scored
            if (a.night, a.ident) not in used
            and a.night == t.night
            and a.type == t.alarm
            and a.device == t.device
        ]
        on_time = [a for a in mine if t.start <= a.first_seen <= t.start + t.deadline_s]
        if on_time:
            a = min(on_time, key=lambda a: a.first_seen)
            used.add((a.night, a.ident))
            delay = a.first_seen - t.start
            for s in (types[t.alarm], variants[t.variant]):
                s.detected += 1
                s.delays.append(delay)
            continue
        late = [a for a in mine if t.start + t.deadline_s < a.first_seen <= t.end + t.late_s]
        seen_at: float | None = None
        if late:
            a = min(late, key=lambda a: a.first_seen)
            used.add((a.night, a.ident))
            seen_at = a.first_seen - t.start
            types[t.alarm].late += 1
            variants[t.variant].late += 1
        misses.append(
            {
                "night": t.night,
                "variant": t.variant,
                "device": t.device,
                "start": t.start,
                "duration_s": round(t.end - t.start),
                "deadline_s": t.deadline_s,
                "late_alarm_after_s": None if seen_at is None else round(seen_at, 1),
                "alarms_there": _nearby(t, alarms),
                "harness_stall_s": _stall(stalls, t.night, t.start, t.start + t.deadline_s),
                "reading_gaps": _gaps(
                    gaps, t.night, {t.device, *t.members}, t.start, t.start - 60.0, t.start + t.deadline_s
                ),
            }
        )
    touched = {(t.night, d) for t in truths if t.alarm != NIGHTLY for d in (t.device, *t.members)}
    for a in scored:
        if (a.night, a.ident) in used:
            continue
        if a.type == NIGHTLY and (a.night, a.device) in touched:
            explained.append({"night": a.night, "device": a.device, "detail": a.detail})
            continue
        types[a.type].false_positives += 1
        during = _explain(a, truths)
        if during is not None:
            variants[during.variant].false_positives += 1
        fps.append(
            {
                "night": a.night,
                "type": a.type,
                "device": a.device,
                "first_seen": a.first_seen,
                "detail": a.detail,
                "during": None
                if during is None
                else f"{during.variant} on {during.device} since {a.first_seen - during.start:.0f} s",
                "harness_stall_s": _stall(stalls, a.night, a.first_seen - 300.0, a.first_seen),
                "reading_gaps": _gaps(
                    gaps, a.night, {a.device}, a.first_seen, a.first_seen - 300.0, a.first_seen
                ),
            }
        )
    return Outcome(dict(types), dict(variants), misses, fps, explained)


def _stall(stalls: Stalls | None, night: str, start: float, end: float) -> float:
    """The longest the harness's event loop stalled (clock seconds) between start and end."""
    found = [lost for at, lost in (stalls or {}).get(night, []) if start <= at <= end + lost]
    return round(max(found, default=0.0), 1)


def _gaps(
    gaps: Gaps | None, night: str, devices: set[str], origin: float, start: float, end: float
) -> list[str]:
    """Gaps in the readings of `devices` overlapping [start, end], in seconds from `origin`."""
    out = []
    by_device = (gaps or {}).get(night, {})
    for dev in devices:
        for a, b in by_device.get(dev, []):
            if a <= end and b >= start:
                out.append(f"{dev}: none from {a - origin:+.0f} s to {b - origin:+.0f} s")
    return sorted(out)


def _nearby(t: Truth, alarms: list[Raised]) -> list[str]:
    """Alarms on the injection's device (or its members) around it, to tell why it was missed."""
    out = []
    for a in alarms:
        mine = a.night == t.night and (a.device == t.device or a.device in t.members)
        if mine and t.start - 600.0 <= a.first_seen <= t.end + t.late_s:
            child = " (child)" if a.parent is not None else ""
            out.append(f"{a.type}{child} on {a.device} at {a.first_seen - t.start:+.0f} s: {a.detail}")
    return out


def _explain(a: Raised, truths: list[Truth]) -> Truth | None:
    """The injection, if any, that was under way on the alarm's device when it was raised."""
    for t in truths:
        if t.night != a.night or not (t.start - 120.0 <= a.first_seen <= t.end + t.late_s):
            continue
        if a.device == t.device or a.device in t.members:
            return t
    return None

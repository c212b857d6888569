"""Preview of a night for a target: its day, sun times, every change with its time and source, and
the estimated energy. `lightctl plan` prints `to_text()`; the API returns `to_json()`.

Devices are shown in groups that share a plan choice and the overrides touching them that night;
a group's steps are the moments its desired output or source changes (the night's start, program
steps, overrides starting and ending), evaluated by the same resolver the scheduler runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lightctl.model import DesiredState, DeviceKind
from lightctl.profiles import Profile
from lightctl.schedule.device_state import describe
from lightctl.schedule.energy import count_loads, energy_kwh
from lightctl.schedule.night import night_window, to_local
from lightctl.schedule.resolve import BaseKey, Resolver, override_end, override_label

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
Trigger = Literal["night_start", "step", "override_start", "override_end"]

DAY_TYPE_ZH = {
    "workday": "工作日",
    "weekend": "周末",
    "holiday": "法定节假日",
    "makeup_workday": "调休上班",
    "event": "活动日",
}
KIND_ZH = {"lamp": "单灯", "group": "中华灯组", "facade": "楼体亮化"}


@dataclass(frozen=True, slots=True)
class PreviewStep:
    at: dt.datetime
    what: str  # the step time as written (`sunset+5m`, `23:00`), or which override starts / ends
    trigger: Trigger
    state: DesiredState  # the output from this moment (its source inside)

    def to_json(self) -> dict[str, JsonValue]:
        s = self.state
        return {
            "at": self.at.isoformat(),
            "what": self.what,
            "trigger": self.trigger,
            "source": s.source,
            "state": {
                "on": s.on,
                "level": s.level,
                "k1": s.k1,
                "k2": s.k2,
                "scene": s.scene,
                "brightness": s.brightness,
            },
            "summary": describe(s),
        }


@dataclass(frozen=True, slots=True)
class PreviewGroup:
    kind: DeviceKind
    devices: tuple[str, ...]
    plan: str | None
    rule_index: int | None
    program: str | None
    program_name: str
    overrides: tuple[str, ...]  # labels of the overrides touching these devices this night
    steps: tuple[PreviewStep, ...]
    energy_kwh: float

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "kind": self.kind,
            "devices": list(self.devices),
            "plan": self.plan,
            "rule": self.rule_index,
            "program": self.program,
            "program_name": self.program_name,
            "overrides": list(self.overrides),
            "steps": [s.to_json() for s in self.steps],
            "energy_kwh": round(self.energy_kwh, 3),
        }


@dataclass(frozen=True, slots=True)
class SunSummary:
    sunset: dt.datetime
    civil_dusk: dt.datetime
    civil_dawn: dt.datetime
    sunrise: dt.datetime
    pinned: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NightPreview:
    night: dt.date
    target: str | None
    start: dt.datetime
    end: dt.datetime
    day_type: str
    statutory: str
    holiday: str | None
    holiday_zh: str | None
    events: tuple[str, ...]
    estimated: bool
    calendar_source: str
    sun: SunSummary
    groups: tuple[PreviewGroup, ...]
    maintenance: tuple[str, ...]  # devices in a maintenance window at some time this night
    energy_kwh: float

    @property
    def device_count(self) -> int:
        return sum(len(g.devices) for g in self.groups)

    def to_json(self) -> dict[str, JsonValue]:
        sun = self.sun
        return {
            "date": self.night.isoformat(),
            "target": self.target,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "day_type": self.day_type,
            "statutory_type": self.statutory,
            "holiday": self.holiday,
            "holiday_zh": self.holiday_zh,
            "events": list(self.events),
            "estimated": self.estimated,
            "calendar_source": self.calendar_source,
            "sun": {
                "sunset": sun.sunset.isoformat(),
                "civil_dusk": sun.civil_dusk.isoformat(),
                "civil_dawn": sun.civil_dawn.isoformat(),
                "sunrise": sun.sunrise.isoformat(),
                "pinned": list(sun.pinned),
            },
            "devices": self.device_count,
            "groups": [g.to_json() for g in self.groups],
            "maintenance": list(self.maintenance),
            "energy_kwh": round(self.energy_kwh, 3),
        }

    def to_text(self) -> str:
        hhmm = "%H:%M"
        day = DAY_TYPE_ZH.get(self.day_type, self.day_type) + f" ({self.day_type})"
        if self.holiday:
            day += f"  {self.holiday_zh} {self.holiday}"
            if self.statutory == "makeup_workday":
                day += " 调休 (makeup workday, not a holiday)"
        if self.events:
            day += "  活动: " + "、".join(self.events)
        if self.estimated:
            day += "  [估算 estimated: no holiday data for this year]"
        s = self.sun
        lines = [
            f"{self.night.isoformat()} 夜 (night {self.start:%m-%d %H:%M} - {self.end:%m-%d %H:%M})",
            f"日类型 day type: {day}",
            f"日落 sunset {s.sunset:{hhmm}}  民用昏影 civil dusk {s.civil_dusk:{hhmm}}  "
            f"民用晨光 civil dawn {s.civil_dawn:{hhmm}}  日出 sunrise {s.sunrise:{hhmm}}"
            + (f"  (pinned: {', '.join(s.pinned)})" if s.pinned else ""),
            f"对象 target: {self.target or 'all'} ({self.device_count} devices)  "
            f"预计电量 estimated energy: {self.energy_kwh:.1f} kWh",
        ]
        if self.maintenance:
            lines.append(f"检修 maintenance: {len(self.maintenance)} devices")
        for g in self.groups:
            names = ", ".join(g.devices[:4]) + (f" ... (+{len(g.devices) - 4})" if len(g.devices) > 4 else "")
            via = (
                "no plan: device default"
                if g.plan is None
                else f"{g.plan} rules[{g.rule_index}] -> {g.program}"
            )
            lines.append("")
            lines.append(f"[{KIND_ZH[g.kind]} {g.kind} x{len(g.devices)}] {via} {g.program_name}".rstrip())
            lines.append(f"  devices: {names}")
            if g.overrides:
                lines.append(f"  overrides: {', '.join(g.overrides)}")
            for step in g.steps:
                when = f"{step.at:%H:%M}" + ("" if step.at.date() == self.night else "+1")
                lines.append(f"  {when:<8} {step.what:<22} {describe(step.state):<32} {step.state.source}")
            lines.append(f"  energy {g.energy_kwh:.2f} kWh")
        return "\n".join(lines)


def preview_night(
    resolver: Resolver,
    night: dt.date,
    target: str | None = None,
    profiles: Mapping[str, Profile] | None = None,
) -> NightPreview:
    """The preview of one night (noon of `night` to the next noon) with the resolver's overrides."""
    tz = resolver.tz
    if target is None:
        devices = frozenset(resolver.devices)
    else:
        found = resolver.targets.expand(target)
        if found is None:
            raise ValueError(
                f"unknown target {target!r}: use a device id, road:<id>, zone:<id>, kind:lamp|group|facade, "
                "gateway:<id> or concentrator:<id>"
            )
        devices = found
    start, end = night_window(night, tz)
    touching = [i for i, o in enumerate(resolver.overrides) if o.start < end and override_end(o) > start]
    groups: dict[tuple[BaseKey, tuple[int, ...]], list[str]] = {}
    for device in sorted(devices):
        ovs = tuple(i for i in touching if device in resolver.override_devices(i))
        groups.setdefault((resolver.base_of(device), ovs), []).append(device)
    profiles = profiles or {}
    built = [
        _group(resolver, night, base, ovs, members, profiles, start, end)
        for (base, ovs), members in sorted(groups.items(), key=lambda kv: (kv[0][0][1], kv[1][0]))
    ]
    day = resolver.day(night)
    sun = resolver.sun.night(night)
    maintenance = sorted(devices & resolver.maintenance_during(start, end))
    return NightPreview(
        night=night,
        target=target,
        start=to_local(start, tz),
        end=to_local(end, tz),
        day_type=day.day_type,
        statutory=day.statutory,
        holiday=day.holiday,
        holiday_zh=day.holiday_zh,
        events=day.events,
        estimated=day.estimated,
        calendar_source=day.source,
        sun=SunSummary(
            sunset=to_local(sun.sunset, tz),
            civil_dusk=to_local(sun.civil_dusk, tz),
            civil_dawn=to_local(sun.civil_dawn, tz),
            sunrise=to_local(sun.sunrise, tz),
            pinned=tuple(sorted(sun.pinned)),
        ),
        groups=tuple(built),
        maintenance=tuple(maintenance),
        energy_kwh=sum(g.energy_kwh for g in built),
    )


def _group(
    resolver: Resolver,
    night: dt.date,
    base: BaseKey,
    ovs: tuple[int, ...],
    members: list[str],
    profiles: Mapping[str, Profile],
    start: float,
    end: float,
) -> PreviewGroup:
    tz = resolver.tz
    timeline = resolver.timeline(base, night)
    moments: dict[float, list[tuple[Trigger, str]]] = {start: [("night_start", "start of night")]}
    for step in timeline.steps:
        if step.at < end:
            moments.setdefault(step.at, []).append(("step", step.text))
    for i in ovs:
        o = resolver.overrides[i]
        bounds: tuple[tuple[float, Trigger, str], ...] = (
            (o.start, "override_start", "starts"),
            (override_end(o), "override_end", "ends"),
        )
        for t, trig, verb in bounds:
            if start < t < end:
                moments.setdefault(t, []).append((trig, f"{override_label(o)} {verb}"))
    steps: list[PreviewStep] = []
    intervals: list[tuple[float, float, DesiredState]] = []
    times = sorted(moments)
    for n, t in enumerate(times):
        active = tuple(i for i in ovs if resolver.overrides[i].active(t))
        state = resolver.layered_state(base, active, t)
        intervals.append((t, times[n + 1] if n + 1 < len(times) else end, state))
        previous = steps[-1].state if steps else None
        if previous is None or not previous.same_output(state) or previous.source != state.source:
            entries = [e for e in moments[t] if e[0] != "night_start"] or moments[t]
            what = " / ".join(text for _, text in entries)
            trigger = entries[0][0]
            steps.append(PreviewStep(to_local(t, tz), what, trigger, state))
    choice = resolver.choice(base, night)
    loads = count_loads((resolver.devices[d] for d in members), profiles)
    return PreviewGroup(
        kind=base[1],
        devices=tuple(members),
        plan=None if choice is None else choice.plan,
        rule_index=None if choice is None else choice.rule_index,
        program=None if choice is None else choice.program.id,
        program_name="" if choice is None else choice.program.name,
        overrides=tuple(override_label(resolver.overrides[i]) for i in ovs),
        steps=tuple(steps),
        energy_kwh=energy_kwh(loads, intervals),
    )

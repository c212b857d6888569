"""Cross-checks of schedules against the inventory: targets, programs, holidays, events."""

from __future__ import annotations

from pathlib import Path

from lightctl import model
from lightctl.config.collect import Collector as _Collector
from lightctl.config.district import target_devices
from lightctl.config.schedules import Event, Plan, Program, ScheduleFile
from lightctl.schedule.holidays import canonical_holiday


def check_schedules(
    col: _Collector,
    files: list[tuple[Path, ScheduleFile]],
    devices: dict[str, model.Device],
    roads: dict[str, model.Road],
    gateways: dict[str, model.Gateway],
    concentrators: dict[str, model.Concentrator],
    zones: dict[str, model.Zone],
) -> tuple[dict[str, Program], list[Plan], list[Event]]:
    programs: dict[str, Program] = {}
    plans: list[Plan] = []
    events: list[Event] = []
    seen_program: dict[str, str] = {}
    seen_plan: dict[str, str] = {}
    for path, f in files:
        for i, prog in enumerate(f.programs):
            if prog.id in seen_program:
                col.add(
                    path,
                    f"programs[{i}].id",
                    f"duplicate program {prog.id!r} (also in {seen_program[prog.id]})",
                )
                continue
            seen_program[prog.id] = col.name(path)
            programs[prog.id] = prog
        if f.calendar is not None:
            events.extend(f.calendar.events)
    event_names = {e.name for e in events}
    for path, f in files:
        for i, plan in enumerate(f.plans):
            where = f"plans[{i}]"
            if plan.id in seen_plan:
                col.add(path, f"{where}.id", f"duplicate plan {plan.id!r} (also in {seen_plan[plan.id]})")
                continue
            seen_plan[plan.id] = col.name(path)
            kinds: set[str] = set()
            for j, target in enumerate(plan.targets):
                matched = target_devices(target, devices, roads, gateways, concentrators, zones)
                if matched is None:
                    if col.inventory_ok:
                        col.add(path, f"{where}.targets[{j}]", f"unknown target {target!r}")
                else:
                    kinds.update(devices[d].kind for d in matched)
            for j, rule in enumerate(plan.rules):
                used = programs.get(rule.program)
                if used is None and col.schedules_ok:
                    col.add(path, f"{where}.rules[{j}].program", f"unknown program {rule.program!r}")
                elif used is not None and kinds and used.kind not in kinds:
                    col.add(
                        path,
                        f"{where}.rules[{j}].program",
                        f"program {used.id!r} is for {used.kind} devices; the plan targets {', '.join(sorted(kinds))}",
                    )
                for name in rule.holidays():
                    if canonical_holiday(name) is None:
                        col.add(path, f"{where}.rules[{j}].holiday", f"unknown holiday {name!r}")
                for name in rule.events():
                    if name not in event_names and col.schedules_ok:
                        col.add(
                            path,
                            f"{where}.rules[{j}].event",
                            f"unknown event {name!r} (define it under calendar.events)",
                        )
            plans.append(plan)
    return programs, plans, events

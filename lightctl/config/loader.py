"""Load and cross-check config.yaml, devices/ and schedules/ into one District.

Every problem of a load is collected and reported as `<file>: <path>: <what is wrong>`; nothing
starts on an invalid configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from lightctl import model
from lightctl.config import inventory as inv
from lightctl.config.schedules import Event, HolidayFile, Plan, Program, ScheduleFile
from lightctl.config.settings import Settings
from lightctl.config.yamlfile import YamlError, load_yaml
from lightctl.profiles import Profile
from lightctl.schedule.holidays import canonical_holiday

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """All the problems found in one load, each a line `<file>: <path>: <message>`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class District:
    """Everything lightctl was configured with, validated and expanded."""

    base_dir: Path
    settings: Settings
    profiles: dict[str, Profile]
    devices: dict[str, model.Device]
    roads: dict[str, model.Road]
    gateways: dict[str, model.Gateway]
    concentrators: dict[str, model.Concentrator]
    zones: dict[str, model.Zone]
    programs: dict[str, Program]
    plans: list[Plan]
    events: list[Event]
    holiday_files: dict[int, HolidayFile] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        kinds = [d.kind for d in self.devices.values()]
        return {
            "roads": len(self.roads),
            "lamps": kinds.count("lamp"),
            "concentrators": len(self.concentrators),
            "groups": kinds.count("group"),
            "gateways": len(self.gateways),
            "zones": len(self.zones),
            "programs": len(self.programs),
            "plans": len(self.plans),
        }

    def path(self, relative: str) -> Path:
        """A path from config.yaml, relative to the configuration's directory."""
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p


def format_loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _message(err: dict[str, object]) -> str:
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err.get("type") == "extra_forbidden":
        msg = "unknown key (check the spelling)"
    return msg


class _Collector:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.errors: list[str] = []
        # A file that failed to parse leaves its ids unknown: don't report every reference to them.
        self.inventory_ok = True
        self.schedules_ok = True

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base))
        except ValueError:
            return str(path)

    def add(self, path: Path, where: str, message: str) -> None:
        self.errors.append(f"{self.name(path)}: {where}: {message}")

    def parse(self, path: Path, cls: type[M]) -> M | None:
        try:
            data = load_yaml(path)
        except FileNotFoundError:
            self.add(path, "(file)", "file not found")
            return None
        except YamlError as exc:
            self.add(path, exc.where, f"YAML syntax error: {exc.message}")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.add(path, "(file)", f"cannot read: {exc}")
            return None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(path, "(top)", f"expected a mapping of keys, got {type(data).__name__}")
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self.add(path, format_loc(err["loc"]), _message(dict(err)))
            return None


def load(config_path: str | Path = "config.yaml") -> District:
    """Load a whole configuration; raises ConfigError listing every problem."""
    config_file = Path(config_path).resolve()
    base = config_file.parent
    col = _Collector(base)
    settings = col.parse(config_file, Settings)
    # Even with a broken config.yaml the other files are checked (in their default folders), so
    # one run of `lightctl check` shows every problem.
    devices_dir = base / (settings.devices_dir if settings else "devices")
    schedules_dir = base / (settings.schedules_dir if settings else "schedules")
    if settings is None and not devices_dir.is_dir():
        raise ConfigError(col.errors)
    profiles = _load_profiles(col, devices_dir / "profiles")
    before = len(col.errors)
    inventory = _load_all(col, devices_dir, inv.InventoryFile)
    inventory_ok = len(col.errors) == before
    before = len(col.errors)
    schedules = _load_all(col, schedules_dir, ScheduleFile)
    col.schedules_ok = len(col.errors) == before
    col.inventory_ok = inventory_ok
    holidays = _load_holidays(col, schedules_dir / "holidays")
    if settings is None:
        raise ConfigError(col.errors)
    district = _assemble(col, base, settings, profiles, inventory, schedules, holidays)
    if col.errors:
        raise ConfigError(col.errors)
    return district


def _load_profiles(col: _Collector, folder: Path) -> dict[str, tuple[Path, Profile]]:
    out: dict[str, tuple[Path, Profile]] = {}
    if not folder.is_dir():
        col.add(folder, "(folder)", "profiles folder not found")
        return out
    for path in sorted(folder.glob("*.yaml")):
        profile = col.parse(path, Profile)
        if profile is None:
            continue
        if profile.id in out:
            col.add(
                path, "id", f"profile id {profile.id!r} already defined in {col.name(out[profile.id][0])}"
            )
            continue
        out[profile.id] = (path, profile)
    return out


def _load_all(col: _Collector, folder: Path, cls: type[M]) -> list[tuple[Path, M]]:
    if not folder.is_dir():
        col.add(folder, "(folder)", "folder not found")
        return []
    files = sorted(folder.glob("*.yaml"))
    if not files:
        col.add(folder, "(folder)", "no .yaml files")
    parsed = [(p, col.parse(p, cls)) for p in files]
    return [(p, m) for p, m in parsed if m is not None]


def _load_holidays(col: _Collector, folder: Path) -> dict[int, HolidayFile]:
    out: dict[int, HolidayFile] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.yaml")):
        parsed = col.parse(path, HolidayFile)
        if parsed is None:
            continue
        if path.stem != str(parsed.year):
            col.add(path, "year", f"file for {parsed.year} must be named {parsed.year}.yaml")
            continue
        out[parsed.year] = parsed
    return out


@dataclass
class _Ids:
    """One namespace for every inventory id, and one for wire addresses."""

    col: _Collector
    seen: dict[str, str] = field(default_factory=dict)
    wire: dict[str, str] = field(default_factory=dict)

    def claim(self, ident: str, path: Path, where: str) -> bool:
        here = f"{self.col.name(path)}: {where}"
        if ident in self.seen:
            self.col.add(path, where, f"duplicate id {ident!r} (also at {self.seen[ident]})")
            return False
        self.seen[ident] = here
        return True

    def claim_wire(self, address: str, path: Path, where: str) -> None:
        here = f"{self.col.name(path)}: {where}"
        if address in self.wire:
            self.col.add(path, where, f"address {address} already used at {self.wire[address]}")
        else:
            self.wire[address] = here


def _assemble(
    col: _Collector,
    base: Path,
    settings: Settings,
    profiles: dict[str, tuple[Path, Profile]],
    inventory: list[tuple[Path, inv.InventoryFile]],
    schedules: list[tuple[Path, ScheduleFile]],
    holidays: dict[int, HolidayFile],
) -> District:
    ids = _Ids(col)
    devices: dict[str, model.Device] = {}
    roads: dict[str, model.Road] = {}
    gateways: dict[str, model.Gateway] = {}
    concentrators: dict[str, model.Concentrator] = {}
    zones: dict[str, model.Zone] = {}

    def profile_for(path: Path, where: str, pid: str, kind: str) -> Profile | None:
        if pid not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            col.add(path, where, f"unknown profile {pid!r} (known: {known})")
            return None
        prof = profiles[pid][1]
        if prof.kind != kind:
            col.add(path, where, f"profile {pid!r} is for {prof.kind} devices, not {kind}")
            return None
        return prof

    conc_specs: dict[str, tuple[Path, int, inv.Concentrator]] = {}
    for path, f in inventory:
        for i, c in enumerate(f.concentrators):
            if ids.claim(c.id, path, f"concentrators[{i}].id"):
                ids.claim_wire(f"mqtt:{c.mqtt_id}", path, f"concentrators[{i}].mqtt_id")
                conc_specs[c.id] = (path, i, c)
    conc_lamps: dict[str, list[str]] = {cid: [] for cid in conc_specs}

    for path, f in inventory:
        for i, road in enumerate(f.roads):
            where = f"roads[{i}]"
            if not ids.claim(road.id, path, f"{where}.id"):
                continue
            prof = profile_for(path, f"{where}.profile", road.profile, "lamp")
            if road.concentrator is not None and road.concentrator not in conc_specs:
                col.add(path, f"{where}.concentrator", f"unknown concentrator {road.concentrator!r}")
            lamp_ids: list[str] = []
            if road.spacing_m is not None and road.id_prefix and road.mqtt_prefix and road.rated_w:
                points = inv.along(list(road.path), road.spacing_m)
                for n, (lat, lon) in enumerate(points, start=1):
                    lamp = inv.LampSpec(
                        id=f"{road.id_prefix}-{n:03d}",
                        mqtt_id=f"{road.mqtt_prefix}-{n:03d}",
                        name=f"{road.name} {n}号灯",
                        at=(lat, lon),
                        rated_w=road.rated_w,
                    )
                    _add_lamp(col, ids, devices, path, f"{where}.path", road, lamp, prof, lamp_ids)
            for j, lamp in enumerate(road.lamps):
                lprof = (
                    prof
                    if lamp.profile is None
                    else profile_for(path, f"{where}.lamps[{j}].profile", lamp.profile, "lamp")
                )
                _add_lamp(col, ids, devices, path, f"{where}.lamps[{j}]", road, lamp, lprof, lamp_ids)
            if road.concentrator in conc_lamps:
                conc_lamps[road.concentrator].extend(lamp_ids)
            roads[road.id] = model.Road(
                road.id, road.name, road.road_class, tuple(road.path), tuple(lamp_ids)
            )

    for cid, (_, _, c) in conc_specs.items():
        concentrators[cid] = model.Concentrator(
            cid, c.name or cid, c.mqtt_id, c.batch_s, c.at[0], c.at[1], tuple(conc_lamps[cid])
        )

    for path, f in inventory:
        for i, gw in enumerate(f.gateways):
            where = f"gateways[{i}]"
            if not ids.claim(gw.id, path, f"{where}.id"):
                continue
            prof = profile_for(path, f"{where}.profile", gw.profile, "group")
            if gw.road is not None and gw.road not in roads:
                col.add(path, f"{where}.road", f"unknown road {gw.road!r}")
            units = inv.parse_units(gw.units)
            if prof is not None and prof.modbus is not None:
                lo, hi = prof.modbus.unit_ids
                bad = [u for u in units if not lo <= u <= hi]
                if bad:
                    col.add(
                        path,
                        f"{where}.units",
                        f"unit id {bad[0]} out of range {lo}-{hi} for profile {prof.id}",
                    )
            fixed = set(inv.parse_units(gw.not_dimmable)) if gw.not_dimmable is not None else set()
            if fixed - set(units):
                col.add(
                    path, f"{where}.not_dimmable", f"unit {min(fixed - set(units))} is not on this gateway"
                )
            ids.claim_wire(f"modbus:{gw.host}:{gw.port}", path, f"{where}.port")
            default_dim = gw.dimmable if gw.dimmable is not None else (prof.dimmable if prof else False)
            group_ids: list[str] = []
            prefix = gw.group_prefix or gw.id
            for (lat, lon), unit in zip(inv.spread(list(gw.path), len(units)), units, strict=True):
                gid = f"{prefix}-u{unit:02d}" if gw.group_prefix is None else f"{prefix}-{unit:02d}"
                if not ids.claim(gid, path, f"{where}.units"):
                    continue
                devices[gid] = model.Device(
                    id=gid,
                    kind="group",
                    name=f"{gw.name or gw.id} {unit}号中华灯",
                    profile=gw.profile,
                    lat=lat,
                    lon=lon,
                    rated_w=gw.k1_w + gw.k2_w,
                    dimmable=default_dim and unit not in fixed,
                    road=gw.road,
                    gateway=gw.id,
                    unit_id=unit,
                    host=gw.host,
                    port=gw.port,
                    k1_w=gw.k1_w,
                    k2_w=gw.k2_w,
                )
                group_ids.append(gid)
            lat0, lon0 = gw.path[0]
            gateways[gw.id] = model.Gateway(
                gw.id, gw.name or gw.id, gw.host, gw.port, lat0, lon0, tuple(group_ids)
            )

    for path, f in inventory:
        for i, z in enumerate(f.zones):
            where = f"zones[{i}]"
            if not ids.claim(z.id, path, f"{where}.id"):
                continue
            prof = profile_for(path, f"{where}.profile", z.profile, "facade")
            ids.claim_wire(f"modbus:{z.host}:{z.port}", path, f"{where}.port")
            devices[z.id] = model.Device(
                id=z.id,
                kind="facade",
                name=z.name,
                profile=z.profile,
                lat=z.at[0],
                lon=z.at[1],
                rated_w=z.load_w,
                dimmable=prof.dimmable if prof else True,
                zone=z.id,
                unit_id=z.unit_id,
                host=z.host,
                port=z.port,
                road_class=z.zone_class,
            )
            zones[z.id] = model.Zone(z.id, z.name, z.zone_class, (z.id,))

    for path, f in inventory:
        for i, road in enumerate(f.roads):
            if road.id in roads and not roads[road.id].lamps:
                col.add(path, f"roads[{i}].path", "road is too short for one lamp at this spacing")

    programs, plans, events = _schedules(col, schedules, devices, roads, gateways, concentrators, zones)
    return District(
        base_dir=base,
        settings=settings,
        profiles={pid: p for pid, (_, p) in profiles.items()},
        devices=devices,
        roads=roads,
        gateways=gateways,
        concentrators=concentrators,
        zones=zones,
        programs=programs,
        plans=plans,
        events=events,
        holiday_files=holidays,
    )


def _add_lamp(
    col: _Collector,
    ids: _Ids,
    devices: dict[str, model.Device],
    path: Path,
    where: str,
    road: inv.Road,
    lamp: inv.LampSpec,
    prof: Profile | None,
    out: list[str],
) -> None:
    if not ids.claim(lamp.id, path, f"{where}.id" if road.lamps and lamp in road.lamps else where):
        return
    if prof is not None and prof.mqtt is not None:
        ids.claim_wire(f"mqtt:{lamp.mqtt_id}", path, f"{where}.mqtt_id")
    dimmable = lamp.dimmable if lamp.dimmable is not None else road.dimmable
    devices[lamp.id] = model.Device(
        id=lamp.id,
        kind="lamp",
        name=lamp.name or f"{road.name} {lamp.mqtt_id}",
        profile=lamp.profile or road.profile,
        lat=lamp.at[0],
        lon=lamp.at[1],
        rated_w=lamp.rated_w,
        dimmable=dimmable if dimmable is not None else (prof.dimmable if prof else True),
        road=road.id,
        concentrator=road.concentrator,
        mqtt_id=lamp.mqtt_id,
        report_s=lamp.report_s or road.report_s,
        road_class=road.road_class,
    )
    out.append(lamp.id)


def _schedules(
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


def target_devices(
    target: str,
    devices: dict[str, model.Device],
    roads: dict[str, model.Road],
    gateways: dict[str, model.Gateway],
    concentrators: dict[str, model.Concentrator],
    zones: dict[str, model.Zone],
) -> list[str] | None:
    """Device ids a target names (`id`, `road:<id>`, `zone:<id>`, `kind:<k>`, `gateway:<id>`), or None."""
    scope, _, ident = target.rpartition(":")
    if scope == "":
        return [ident] if ident in devices else None
    if scope == "kind":
        return [d.id for d in devices.values() if d.kind == ident]
    table: (
        dict[str, model.Road]
        | dict[str, model.Gateway]
        | dict[str, model.Concentrator]
        | dict[str, model.Zone]
    )
    table = {"road": roads, "gateway": gateways, "concentrator": concentrators, "zone": zones}.get(scope, {})  # type: ignore[assignment]
    item = table.get(ident)
    if item is None:
        return None
    members = (
        item.lamps
        if isinstance(item, model.Road | model.Concentrator)
        else (item.units if isinstance(item, model.Gateway) else item.devices)
    )
    return list(members)

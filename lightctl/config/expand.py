"""Expand the inventory's compact forms (lamps along a path, unit-id ranges) into devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lightctl import model
from lightctl.config import inventory as inv
from lightctl.config.collect import Collector as _Collector
from lightctl.config.crossref import check_schedules
from lightctl.config.district import District
from lightctl.config.schedules import HolidayFile, ScheduleFile
from lightctl.config.settings import Settings
from lightctl.profiles import Profile


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


def assemble(
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

    programs, plans, events = check_schedules(col, schedules, devices, roads, gateways, concentrators, zones)
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

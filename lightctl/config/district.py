"""The validated, expanded configuration that every other part of lightctl reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lightctl import model
from lightctl.config.schedules import Event, HolidayFile, Plan, Program
from lightctl.config.settings import Settings
from lightctl.profiles import Profile


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

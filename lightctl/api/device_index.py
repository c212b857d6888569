"""Device ids by kind, road, zone and gateway, in inventory order: built once per district, so that
a page of the device list does not walk 100,000 devices to find its 100."""

from __future__ import annotations

from collections.abc import Mapping

from lightctl.model import Device
from lightctl.services import Services

FIELDS = ("kind", "road", "zone", "gateway")
_NONE: list[str] = []


class DeviceIndex:
    def __init__(self, devices: Mapping[str, Device]) -> None:
        self.all = list(devices)
        self.by: dict[str, dict[str, list[str]]] = {name: {} for name in FIELDS}
        kinds, roads, zones, gateways = (self.by[name] for name in FIELDS)
        for dev in devices.values():
            kinds.setdefault(dev.kind, []).append(dev.id)
            if dev.road:
                roads.setdefault(dev.road, []).append(dev.id)
            if dev.zone:
                zones.setdefault(dev.zone, []).append(dev.id)
            for parent in {dev.gateway, dev.concentrator}:
                if parent:
                    gateways.setdefault(parent, []).append(dev.id)

    def ids(self, field: str, value: str) -> list[str]:
        return self.by[field].get(value, _NONE)


def device_index(svc: Services) -> DeviceIndex:
    """The index of the services' district (the inventory only changes with a restart)."""
    cached = svc.extras.get("device_index")
    if cached is None or cached[0] is not svc.district:
        cached = svc.extras["device_index"] = (svc.district, DeviceIndex(svc.district.devices))
    index: DeviceIndex = cached[1]
    return index

"""One instance's share of the inventory, when several lightctl instances run a city.

`partition:` in config.yaml names the roads, gateways, concentrators and zones this instance owns;
it polls, commands and subscribes to those devices only (docs/scaling.md).
"""

from __future__ import annotations

import dataclasses

from lightctl.config.district import District
from lightctl.config.settings import Partition
from lightctl.model import Device


def owns(partition: Partition, dev: Device) -> bool:
    return bool(
        (partition.roads and dev.road in partition.roads)
        or (partition.gateways and dev.gateway in partition.gateways)
        or (partition.concentrators and dev.concentrator in partition.concentrators)
        or (partition.zones and dev.zone in partition.zones)
    )


def partition_district(district: District) -> District:
    """The district reduced to this instance's devices (unchanged without a partition)."""
    part = district.settings.partition
    if part is None:
        return district
    devices = {k: d for k, d in district.devices.items() if owns(part, d)}
    return dataclasses.replace(
        district,
        devices=devices,
        roads={k: r for k, r in district.roads.items() if any(i in devices for i in r.lamps)},
        gateways={k: g for k, g in district.gateways.items() if any(i in devices for i in g.units)},
        concentrators={k: c for k, c in district.concentrators.items() if any(i in devices for i in c.lamps)},
        zones={k: z for k, z in district.zones.items() if any(i in devices for i in z.devices)},
    )

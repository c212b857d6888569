"""A small district cut from the repository's own: a few lamps direct and behind the concentrator,
one gateway with five groups, one facade zone."""

from __future__ import annotations

import dataclasses

import pytest

from lightctl.config.loader import District, load

from .factory import ROOT

DIRECT = ("ha-001", "ha-002", "ha-003", "ha-004")
BEHIND = ("hcx-001", "hcx-002", "hcx-003")
UNITS = tuple(f"zhg-01-u0{n}" for n in range(1, 6))
OTHER_UNITS = tuple(f"zhg-02-u0{n}" for n in range(1, 4))
ZONE = "gymnasium"


@pytest.fixture(scope="session")
def full_district() -> District:
    return load(ROOT / "config.yaml")


@pytest.fixture
def district(full_district: District) -> District:
    d = full_district
    keep = set(DIRECT + BEHIND + UNITS + OTHER_UNITS + (ZONE,))
    conc = d.concentrators["hcx-plc-1"]
    return dataclasses.replace(
        d,
        devices={k: v for k, v in d.devices.items() if k in keep},
        gateways={
            "zhg-01": dataclasses.replace(d.gateways["zhg-01"], units=UNITS),
            "zhg-02": dataclasses.replace(d.gateways["zhg-02"], units=OTHER_UNITS),
        },
        concentrators={conc.id: dataclasses.replace(conc, lamps=BEHIND)},
    )


@pytest.fixture
def feeder_district(district: District) -> District:
    """Only the Modbus side: groups on their gateways (no MQTT device to fall silent meanwhile)."""
    return dataclasses.replace(
        district,
        devices={k: v for k, v in district.devices.items() if v.kind == "group"},
        concentrators={},
    )

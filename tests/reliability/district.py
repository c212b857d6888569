"""The generated configuration of a reliability rig: a small district on free loopback ports, with
the repo's profiles and schedules (plan targets naming roads it lacks left out)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.servers import HOST

REPO = Path(__file__).resolve().parents[2]
EARTH_RADIUS_M = 6_371_000  # the inventory's own distance model (config/inventory.py)


@dataclass(frozen=True)
class Inventory:
    """How big the generated district is; every device on loopback."""

    lamps: int = 40  # on hengan-lu, each on the broker directly
    concentrator_lamps: int = 10  # on huanchengxi-lu, behind the PLC concentrator hcx-plc-1
    gateways: int = 2  # zhg-01 ... each with `units` ZHD-G2 groups
    units: int = 10
    facades: int = 1  # admin-centre, ...
    report_s: int = 10  # the SLC-M1 minimum: silence is judged within 30 s
    batch_s: int = 5


FACADE_IDS = ("admin-centre", "longcheng", "natatorium", "gymnasium")


def gateway_id(n: int) -> str:
    return f"zhg-{n:02d}"


def write_district(
    where: Path, inv: Inventory, ports: Mapping[str, int], settings: Mapping[str, Any]
) -> Path:
    """config.yaml, devices/ and schedules/ in `where` (replaced); the path of config.yaml."""
    if where.exists():
        shutil.rmtree(where)
    (where / "devices").mkdir(parents=True)
    shutil.copytree(REPO / "devices" / "profiles", where / "devices" / "profiles")
    shutil.copytree(REPO / "schedules", where / "schedules")
    _dump(where / "devices" / "district.yaml", inventory_yaml(inv, ports))
    _dump(where / "schedules" / "plans.yaml", plans_yaml(where / "schedules" / "plans.yaml", inv))
    path = where / "config.yaml"
    _dump(path, settings)
    return path


def inventory_yaml(inv: Inventory, ports: Mapping[str, int]) -> dict[str, Any]:
    """devices/district.yaml: roads, the concentrator, gateways and facade zones."""
    lat = 28.6950
    roads: list[dict[str, Any]] = [
        {
            "id": "hengan-lu", "name": "恒安路", "class": "arterial", "profile": "slc-m1", "rated_w": 150,
            "spacing_m": 35, "id_prefix": "ha", "mqtt_prefix": "HA", "report_s": inv.report_s,
            "path": _road_path(lat, 115.8700, inv.lamps, 35),
        }
    ]  # fmt: skip
    concentrators = []
    if inv.concentrator_lamps:
        concentrators.append(
            {"id": "hcx-plc-1", "name": "环城西路 PLC 集中器", "mqtt_id": "HCX-GW01", "batch_s": inv.batch_s,
             "at": [28.6800, 115.8642]}
        )  # fmt: skip
        roads.append(
            {"id": "huanchengxi-lu", "name": "环城西路", "class": "arterial", "profile": "slc-m1",
             "rated_w": 150, "spacing_m": 40, "id_prefix": "hcx", "mqtt_prefix": "HCX",
             "concentrator": "hcx-plc-1", "report_s": inv.report_s,
             "path": _road_path(28.6600, 115.8650, inv.concentrator_lamps, 40)}
        )  # fmt: skip
    gateways = [
        {"id": gw, "name": f"{n}号箱变", "host": HOST, "port": ports[gw], "profile": "zhd-g2",
         "units": f"1-{inv.units}", "k1_w": 150, "k2_w": 400,
         "path": [[28.6700 + 0.0045 * n, 115.8990], [28.6730 + 0.0045 * n, 115.9005]]}
        for n, gw in ((n, gateway_id(n)) for n in range(1, inv.gateways + 1))
    ]  # fmt: skip
    zones = [
        {"id": z, "name": f"楼体 {z}", "class": "landscape", "profile": "fcd-s1", "host": HOST, "port": ports[z],
         "load_w": 30000, "at": [28.6830 + 0.001 * n, 115.8870]}
        for n, z in enumerate(FACADE_IDS[: inv.facades])
    ]  # fmt: skip
    return {"concentrators": concentrators, "roads": roads, "gateways": gateways, "zones": zones}


def plans_yaml(path: Path, inv: Inventory) -> dict[str, Any]:
    """The repo's plans, keeping only targets this inventory has (the loader refuses the others)."""
    known = {"road:hengan-lu", "kind:group", "kind:facade", "kind:lamp"}
    if inv.concentrator_lamps:
        known.add("road:huanchengxi-lu")
    doc = yaml.safe_load(path.read_text())
    plans = []
    for plan in doc["plans"]:
        targets = [t for t in plan["targets"] if t in known]
        if targets:
            plans.append({**plan, "targets": targets})
    return {**doc, "plans": plans}


def _road_path(lat: float, lon: float, lamps: int, spacing_m: float) -> list[list[float]]:
    """A straight east-west road just long enough for `lamps` lamps at `spacing_m`."""
    length = (lamps - 1 + 0.5) * spacing_m
    dlon = math.degrees(length / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return [[lat, lon], [lat, round(lon + dlon, 7)]]


def _dump(path: Path, doc: Mapping[str, Any]) -> None:
    path.write_text(yaml.safe_dump(dict(doc), allow_unicode=True, sort_keys=False))

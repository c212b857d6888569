"""GET /devices: pages and totals from the index and the live state's tallies agree with a plain walk
over every device, for every filter and status, alone and combined."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest

from lightctl.api.app import create_app
from lightctl.config.loader import District
from lightctl.model import Reading
from lightctl.services import Services
from tests.api.conftest import ThreadServer, bearer, make_services


class Alarms:
    def __init__(self, devices: set[str]) -> None:
        self.devices = devices

    def open_count(self, device_id: str) -> int:
        return 2 if device_id in self.devices else 0


class Maintenance:
    def __init__(self, devices: set[str]) -> None:
        self.devices = devices

    def in_maintenance(self, device_id: str) -> bool:
        return device_id in self.devices


def expected(svc: Services, params: dict[str, Any]) -> tuple[list[str], int]:
    """The ids of the page and the total, by walking every device."""
    alarms, maintenance = svc.extras["alarms"], svc.extras["maintenance"]
    matching = []
    for dev in svc.district.devices.values():
        st = svc.live.status[dev.id]
        checks = {
            "kind": lambda v, dev=dev: dev.kind == v,
            "road": lambda v, dev=dev: dev.road == v,
            "zone": lambda v, dev=dev: dev.zone == v,
            "gateway": lambda v, dev=dev: v in (dev.gateway, dev.concentrator),
            "status": lambda v, st=st, dev=dev: {
                "online": st.online is True,
                "offline": st.online is False,
                "unknown": st.online is None,
                "on": st.on is True,
                "off": st.on is False,
                "alarm": alarms.open_count(dev.id) > 0,
                "maintenance": maintenance.in_maintenance(dev.id),
            }[v],
        }
        if all(checks[k](v) for k, v in params.items() if k in checks):
            matching.append(dev.id)
    offset, limit = params.get("offset", 0), params.get("limit", 100)
    return matching[offset : offset + limit], len(matching)


@pytest.fixture(scope="module")
def listed(district: District) -> Any:
    devices = list(district.devices.values())
    svc = make_services(
        district,
        alarms=Alarms({d.id for d in devices[::7]}),
        maintenance=Maintenance({d.id for d in devices[3::11]}),
    )
    now = time.time()
    readings = [
        Reading(d.id, now, values={"on": float(i % 3 != 0), "level": 50.0})
        if d.kind == "lamp"
        else Reading(d.id, now, values={"k1": float(i % 2), "k2": 0.0})
        for i, d in enumerate(devices)
        if i % 5 != 0
    ]
    with ThreadServer(create_app(svc)) as server:
        server.call(svc.live.readings, readings)
        for d in devices[1::13]:
            server.call(svc.live.availability, d.id, False, now, "test")
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=bearer("viewer"), timeout=10) as client:
            yield svc, client


def test_pages_and_totals_agree_with_a_walk_over_every_device(listed: Any) -> None:
    svc, client = listed
    district = svc.district
    lamps = [d for d in district.devices.values() if d.kind == "lamp"]
    road = lamps[0].road
    conc = next(d.concentrator for d in lamps if d.concentrator)
    group = next(d for d in district.devices.values() if d.kind == "group")
    facade = next(d for d in district.devices.values() if d.kind == "facade")
    places: list[dict[str, Any]] = [
        {},
        {"kind": "lamp"},
        {"kind": "group"},
        {"road": road},
        {"zone": facade.zone},
        {"gateway": group.gateway},
        {"gateway": conc},
        {"road": "no-such-road"},
        {"kind": "lamp", "road": road},
        {"kind": "group", "gateway": group.gateway},
        {"kind": "lamp", "gateway": group.gateway},
        {"kind": "lamp", "gateway": conc},
    ]
    statuses = [None, "online", "offline", "unknown", "on", "off", "alarm", "maintenance"]
    pages = [{}, {"offset": 5, "limit": 7}, {"offset": 250, "limit": 100}, {"offset": 100000, "limit": 5}]
    checked = 0
    for place, status, page in itertools.product(places, statuses, pages):
        params = {k: v for k, v in {**place, **page, "status": status}.items() if v is not None}
        response = client.get("/devices", params=params)
        assert response.status_code == 200, (params, response.text)
        body = response.json()
        ids, total = expected(svc, params)
        assert ([item["id"] for item in body["items"]], body["total"]) == (ids, total), params
        checked += total > 0
    assert checked > 100  # most combinations select something


def test_health_counts_online_devices_per_kind_from_the_tallies(listed: Any) -> None:
    svc, client = listed
    body = client.get("/health").json()["devices"]
    kinds = {d.kind for d in svc.district.devices.values()}
    assert body["by_kind"] == {
        kind: {
            "online": sum(
                1 for d in svc.district.devices.values() if d.kind == kind and svc.live.status[d.id].online
            ),
            "total": sum(1 for d in svc.district.devices.values() if d.kind == kind),
        }
        for kind in kinds
    }
    assert body["online"] == sum(1 for st in svc.live.status.values() if st.online)
    assert 0 < body["online"] < body["total"] == len(svc.district.devices)

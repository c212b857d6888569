"""The daily lighting-rate report: each night the mean of its samples, as JSON, CSV and XLSX."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from lightctl.api.app import create_app
from lightctl.clock import ManualClock
from lightctl.config.loader import District
from lightctl.faults.kpi import KpiService, KpiSnapshot, Rate, Rows
from tests.api.conftest import bearer, make_services

TZ = ZoneInfo("Asia/Shanghai")


def rows(ok: int, total: int, road_ok: int) -> Rows:
    return Rows(
        overall=Rate(ok, total, 0.96),
        by_road={"hengan-lu": Rate(road_ok, 10, 0.98)},
        by_kind={"lamp": Rate(ok, total, 0.96)},
    )


def at(day: int, hour: int) -> float:
    return dt.datetime(2026, 11, day, hour, 0, tzinfo=TZ).timestamp()


def service_with_two_nights() -> KpiService:
    clock = ManualClock(at(27, 20))
    kpi = KpiService(lambda: [], {}, dict, set, clock, TZ)
    # night of 25 Nov: 90 % then 100 % -> 95 %; the road 8/10 then 10/10 -> 90 %
    kpi.nights.add(KpiSnapshot(at(25, 19), rows(9, 10, 8), rows(1, 1, 1), rows(1, 1, 1)))
    kpi.nights.add(KpiSnapshot(at(26, 2), rows(10, 10, 10), rows(1, 1, 1), rows(1, 1, 1)))
    # night of 26 Nov (samples after noon on the 26th belong to it): 50 %
    kpi.nights.add(KpiSnapshot(at(26, 20), rows(5, 10, 5), rows(1, 1, 1), rows(1, 1, 1)))
    # a daytime sample with nothing to light is not "at night" and changes nothing
    kpi.nights.add(KpiSnapshot(at(26, 13), rows(0, 0, 0), rows(1, 1, 1), rows(1, 1, 1)))
    return kpi


def test_each_night_is_the_mean_of_its_samples(district: District) -> None:
    client = TestClient(create_app(make_services(district, kpi=service_with_two_nights())))
    body = client.get("/api/v1/reports/lighting", headers=bearer("viewer")).json()
    assert body["columns"][:4] == ["night 夜", "samples 样本数", "lighting rate 亮灯率 %", "恒安路 %"]
    assert body["rows"] == [["2026-11-25", 2, 95.0, 90.0, 95.0], ["2026-11-26", 1, 50.0, 50.0, 50.0]]
    only = client.get("/api/v1/reports/lighting?start=2026-11-26", headers=bearer("viewer")).json()
    assert [r[0] for r in only["rows"]] == ["2026-11-26"]


def test_csv_and_xlsx_downloads(district: District) -> None:
    client = TestClient(create_app(make_services(district, kpi=service_with_two_nights())))
    csv_body = client.get("/api/v1/reports/lighting?format=csv", headers=bearer("viewer"))
    assert csv_body.headers["content-type"].startswith("text/csv")
    text = csv_body.content.decode("utf-8-sig").splitlines()
    assert text[1] == "2026-11-25,2,95.0,90.0,95.0"
    xlsx = client.get("/api/v1/reports/lighting?format=xlsx", headers=bearer("viewer"))
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert [c.value for c in sheet[3]] == ["2026-11-26", 1, 50, 50, 50]
    assert client.get("/api/v1/reports/lighting?format=pdf", headers=bearer("viewer")).status_code == 422

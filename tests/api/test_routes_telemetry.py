"""GET /telemetry/{id} and GET /reports/energy over the sqlite telemetry backend and the repo's district."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openpyxl
import pytest
from fastapi import FastAPI, Header, HTTPException

from lightctl.api.routes_telemetry import telemetry_router
from lightctl.config.loader import District, load
from lightctl.model import Reading
from lightctl.store.sqlite_ts import SqliteTelemetry

REPO = Path(__file__).resolve().parents[2]
START = 1_767_261_600.0  # 2026-01-01 18:00 +08:00
HOUR = 3600.0


@pytest.fixture(scope="module")
def district() -> District:
    return load(REPO / "config.yaml")


def night(device: str, rated_w: float, level: float) -> list[Reading]:
    """Every 5 minutes from 17:55 to 06:00 at `level` of rated power; the counter follows the power."""
    out = []
    meter = 10.0
    for step in range(146):
        power = rated_w * level
        ts = START + 300 * (step - 1)
        out.append(Reading(device, ts, step, {"power": power, "energy_kwh": meter, "on": 1.0}))
        meter += power * 300 / 3.6e6
    return out


@pytest.fixture
async def client(tmp_path: Path, district: District) -> AsyncIterator[httpx.AsyncClient]:
    store = SqliteTelemetry(tmp_path / "t.db")
    await store.open()
    await store.write(
        night("ha-001", 150.0, 0.5) + night("ha-002", 150.0, 1.0) + night("zhg-01-u01", 550.0, 1.0)
    )

    def viewer(authorization: str = Header("")) -> None:
        if authorization != "Bearer let-me-see":
            raise HTTPException(status_code=401, detail="no")

    app = FastAPI()
    app.include_router(telemetry_router(lambda: store, lambda: district, viewer), prefix="/api/v1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers={"Authorization": "Bearer let-me-see"}
    ) as c:
        yield c
    await store.close()


async def test_the_viewer_dependency_guards_both_routes(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/telemetry/ha-001", "/api/v1/reports/energy?start=2026-01-01&end=2026-01-02"):
        assert (await client.get(path, headers={"Authorization": ""})).status_code == 401


async def test_raw_series_in_site_time(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/api/v1/telemetry/ha-001",
        params={"start": "2026-01-01T18:00:00+08:00", "end": "2026-01-01T18:30:00"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["every"] is None
    assert body["buckets"] == []
    assert not body["truncated"]
    assert [p["seq"] for p in body["points"]] == [1, 2, 3, 4, 5, 6]  # naive end = site time, exclusive
    assert body["points"][1]["ts"] == "2026-01-01T18:05:00.000+08:00"
    assert body["points"][0]["values"]["power"] == 75.0


async def test_aggregated_series(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/api/v1/telemetry/ha-002",
        params={"start": "2026-01-01T18:00:00+08:00", "end": "2026-01-02T06:00:00+08:00", "every": "1h"},
    )
    assert answer.status_code == 200
    buckets = answer.json()["buckets"]
    assert len(buckets) == 12
    assert buckets[0]["start"] == "2026-01-01T18:00:00.000+08:00"
    assert buckets[0]["count"] == 12
    assert buckets[0]["lit"] == 12
    assert buckets[0]["stats"]["power"]["mean"] == 150.0
    daily = await client.get(
        "/api/v1/telemetry/ha-002",
        params={"start": "2026-01-01T00:00:00+08:00", "end": "2026-01-03T00:00:00+08:00", "every": "1d"},
    )
    assert [b["start"] for b in daily.json()["buckets"]] == [
        "2026-01-01T00:00:00.000+08:00",
        "2026-01-02T00:00:00.000+08:00",
    ]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/telemetry/no-such-lamp", 404),
        ("/api/v1/telemetry/ha-001?every=5x", 422),
        ("/api/v1/telemetry/ha-001?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", 422),
        ("/api/v1/telemetry/ha-001?start=2025-01-01T00:00:00Z&end=2026-01-01T00:00:00Z&every=1s", 422),
        ("/api/v1/reports/energy?start=2026-01-01&end=2026-01-02&by=street", 422),
        ("/api/v1/reports/energy?start=2026-01-01&end=2026-01-02&format=pdf", 422),
        ("/api/v1/reports/energy?start=2026-01-01", 422),
    ],
)
async def test_bad_requests_say_what_is_wrong(client: httpx.AsyncClient, path: str, status: int) -> None:
    answer = await client.get(path)
    assert answer.status_code == status
    assert answer.json()["detail"]


async def test_energy_report_in_three_formats(client: httpx.AsyncClient) -> None:
    params = {"start": "2026-01-01T18:00:00+08:00", "end": "2026-01-02T06:00:00+08:00", "by": "road"}
    body = (await client.get("/api/v1/reports/energy", params=params)).json()

    rows = {r["key"]: r for r in body["items"]}
    assert set(rows) == {"hengan-lu", "zhg-01"}
    hengan = rows["hengan-lu"]
    assert hengan["name"] == "恒安路"
    assert hengan["devices"] == 2
    assert hengan["kwh"] == pytest.approx(12 * (0.075 + 0.150))  # half and full power for 12 h
    assert hengan["burning_h"] == pytest.approx(24.0)
    assert hengan["full_kwh"] == pytest.approx(24 * 0.150)
    assert hengan["saving_pct"] == pytest.approx(25.0)
    assert body["total"]["kwh"] == pytest.approx(12 * (0.075 + 0.150 + 0.550))

    as_csv = await client.get("/api/v1/reports/energy", params=params | {"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert [row[0] for row in table[2:]] == ["hengan-lu", "zhg-01"]

    as_xlsx = await client.get("/api/v1/reports/energy", params=params | {"format": "xlsx", "by": "kind"})
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).active
    assert [sheet.cell(row=r, column=1).value for r in (3, 4)] == ["group", "lamp"]
    assert sheet.cell(row=4, column=4).value == pytest.approx(12 * 0.225, abs=1e-3)

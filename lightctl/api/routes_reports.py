"""The daily lighting-rate report (亮灯率日报) the office takes away as CSV or XLSX.

Each night's figure is the average of its 5-minute samples between the first switch-on and the last
switch-off, overall, by road and by kind. The samples are kept in memory for the nights since the
service started (up to 400).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Response
from openpyxl import Workbook
from openpyxl.styles import Font

from lightctl.api.auth import Identity
from lightctl.api.deps import require, services
from lightctl.faults.kpi import KpiService, NightAverage
from lightctl.services import Services

router = APIRouter()
as_viewer = require("viewer")


def _table(nights: list[NightAverage], svc: Services) -> list[list[object]]:
    roads = sorted({r for n in nights for r in n.by_road})
    kinds = sorted({k for n in nights for k in n.by_kind})
    names = {r: svc.district.roads[r].name if r in svc.district.roads else r for r in roads}
    head: list[object] = ["night 夜", "samples 样本数", "lighting rate 亮灯率 %"]
    head += [f"{names[r]} %" for r in roads] + [f"{k} %" for k in kinds]
    rows: list[list[object]] = [head]

    def pct(v: float | None) -> object:
        return None if v is None else round(100 * v, 2)

    for n in nights:
        row: list[object] = [n.night.isoformat(), n.samples, pct(n.overall)]
        row += [pct(n.by_road.get(r)) for r in roads] + [pct(n.by_kind.get(k)) for k in kinds]
        rows.append(row)
    return rows


@router.get("/reports/lighting")
def lighting_report(
    start: dt.date | None = None,
    end: dt.date | None = None,
    format: Literal["json", "csv", "xlsx"] = "json",
    _: Identity = Depends(as_viewer),
    svc: Services = Depends(services),
) -> Response:
    service = svc.extras.get("kpi")
    if not isinstance(service, KpiService):
        raise HTTPException(status_code=503, detail="fault detection is not running")
    nights = [
        service.night_average(n)
        for n in service.nights.nights()
        if (start is None or n >= start) and (end is None or n <= end)
    ]
    rows = _table(nights, svc)
    if format == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows([["" if c is None else c for c in r] for r in rows])
        return Response(
            ("\ufeff" + out.getvalue()).encode("utf-8"),  # the byte-order mark lets Excel show Chinese
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="lighting-rate.csv"'},
        )
    if format == "xlsx":
        book = Workbook()
        sheet = book.active
        sheet.title = "lighting rate"
        for row in rows:
            sheet.append(row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        buf = io.BytesIO()
        book.save(buf)
        return Response(
            buf.getvalue(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": 'attachment; filename="lighting-rate.xlsx"'},
        )
    head, *body = rows
    return Response(content=orjson.dumps({"columns": head, "rows": body}), media_type="application/json")

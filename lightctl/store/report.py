"""The energy report as CSV and XLSX, for the lighting office's spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Font

from lightctl.store.energy import EnergyRow, GroupBy

COLUMNS = ("key", "name", "devices", "kwh", "burning_h", "full_kwh", "saving_kwh", "saving_pct")
KEY_HEADINGS = {"road": "road 道路/区域", "kind": "kind 类型", "device": "device 设备"}
HEADINGS = {
    "name": "name 名称",
    "devices": "devices 设备数",
    "kwh": "energy kWh 用电量",
    "burning_h": "burning hours 亮灯小时",
    "full_kwh": "at full power kWh 全功率用电",
    "saving_kwh": "saving kWh 节电量",
    "saving_pct": "saving % 节电率",
}


def _heading(column: str, by: GroupBy) -> str:
    return KEY_HEADINGS[by] if column == "key" else HEADINGS[column]


def _cells(row: EnergyRow) -> list[object]:
    return [
        row.key,
        row.name,
        row.devices,
        round(row.kwh, 3),
        round(row.burning_h, 2),
        round(row.full_kwh, 3),
        round(row.saving_kwh, 3),
        None if row.saving_pct is None else round(row.saving_pct, 1),
    ]


def render_csv(rows: Sequence[EnergyRow], by: GroupBy, start: str, end: str) -> bytes:
    """UTF-8 with a byte-order mark, which Excel needs to show Chinese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["period", start, end])
    writer.writerow([_heading(c, by) for c in COLUMNS])
    for row in rows:
        writer.writerow(["" if v is None else v for v in _cells(row)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def render_xlsx(rows: Sequence[EnergyRow], by: GroupBy, start: str, end: str) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "energy"
    sheet.append(["period", start, end])
    sheet.append([_heading(c, by) for c in COLUMNS])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(_cells(row))
    if rows:
        total_row = len(rows) + 2
        sheet.append(
            [
                "total",
                "合计",
                f"=SUM(C3:C{total_row})",
                f"=SUM(D3:D{total_row})",
                f"=SUM(E3:E{total_row})",
                f"=SUM(F3:F{total_row})",
                f"=SUM(G3:G{total_row})",
                None,
            ]
        )
    for column, width in zip("ABCDEFGH", (18, 24, 10, 14, 14, 16, 14, 12), strict=True):
        sheet.column_dimensions[column].width = width
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()

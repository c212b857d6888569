"""Energy from cumulative counters across a meter replacement and a gap, burning hours and saving."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from lightctl.model import Device, Reading
from lightctl.store import energy, report
from lightctl.store.energy import DeviceEnergy
from tests.store.conftest import Target, base_time

HOUR = 3600.0
STEP = 300.0


def simulated_night(device: str, start: float, rated_w: float) -> tuple[list[Reading], float]:
    """A lamp's night: full power to 23:00, half to 05:00, off to 06:00; the meter is replaced
    at 01:30 (the new one counts from zero) and nothing is heard from 02:00 to 03:30.

    Returns the readings and the energy actually drawn between the first and the last of them.
    """
    readings: list[Reading] = []
    meter = 4321.0
    drawn = last_reading_drawn = previous_interval = 0.0
    for step in range(144):
        ts = start + step * STEP
        hour = (ts - start) / HOUR  # 0 = 18:00
        power = rated_w if hour < 5 else rated_w / 2 if hour < 11 else 0.5
        if start + 7.5 * HOUR == ts:
            meter = previous_interval  # the new meter was fitted at the previous reading
        if not (start + 8 * HOUR <= ts < start + 9.5 * HOUR):
            readings.append(
                Reading(device, ts, step, {"energy_kwh": meter, "power": power, "on": float(power > 1)})
            )
            last_reading_drawn = drawn
        previous_interval = power * STEP / 3.6e6
        meter += previous_interval
        drawn += previous_interval
    return readings, last_reading_drawn


def test_counter_increase_counts_across_a_reset_and_a_gap() -> None:
    assert energy.counter_increase([10.0, 12.0, 15.0, 2.0, 4.0]) == (9.0, 1)
    assert energy.counter_increase([7.0]) == (0.0, 0)
    assert energy.counter_increase([1.0, 1.0, 3.5]) == (2.5, 0)


def test_energy_and_burning_hours_of_a_night_with_a_reset_and_a_gap() -> None:
    start = 1_767_261_600.0  # 2026-01-01 18:00 +08:00 is 10:00 UTC; whole hours either way
    readings, drawn = simulated_night("ha-001", start, 100.0)

    (result,) = energy.energy_from_readings(readings, start, start + 12 * HOUR)

    assert result.kwh == pytest.approx(drawn, rel=1e-9)
    pairwise, resets = energy.counter_increase(r.values["energy_kwh"] for r in readings)
    assert result.kwh == pytest.approx(pairwise)
    assert result.resets == resets == 1
    assert result.burning_h == pytest.approx(11.0)
    assert result.samples == len(readings) == 144 - 18


def test_report_groups_and_saving() -> None:
    inventory = {
        "ha-001": Device("ha-001", "lamp", "恒安路 1", "slc-m1", 0, 0, 100.0, True, road="hengan"),
        "ha-002": Device("ha-002", "lamp", "恒安路 2", "slc-m1", 0, 0, 100.0, True, road="hengan"),
        "gw1-u01": Device("gw1-u01", "group", "中华灯 1", "zhd-g2", 0, 0, 400.0, False, gateway="gw1"),
    }
    per_device = [
        DeviceEnergy("ha-001", kwh=0.8, burning_h=11.0, samples=100, resets=0),
        DeviceEnergy("ha-002", kwh=0.5, burning_h=10.0, samples=100, resets=0),
        DeviceEnergy("gw1-u01", kwh=3.0, burning_h=10.0, samples=100, resets=0),
    ]

    rows = energy.energy_report(per_device, inventory, "road", {"hengan": "恒安路"})

    assert [(r.key, r.name, r.devices) for r in rows] == [("gw1", "gw1", 1), ("hengan", "恒安路", 2)]
    hengan = rows[1]
    assert hengan.kwh == pytest.approx(1.3)
    assert hengan.full_kwh == pytest.approx(2.1)  # 21 burning hours at 100 W
    assert hengan.saving_kwh == pytest.approx(0.8)
    assert hengan.saving_pct == pytest.approx(0.8 / 2.1 * 100)
    by_kind = energy.energy_report(per_device, inventory, "kind")
    assert [(r.key, r.full_kwh) for r in by_kind] == [
        ("group", pytest.approx(4.0)),
        ("lamp", pytest.approx(2.1)),
    ]

    text = report.render_csv(rows, "road", "2026-01-01T18:00+08:00", "2026-01-02T06:00+08:00").decode(
        "utf-8-sig"
    )
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][0] == "period"
    assert table[3][:3] == ["hengan", "恒安路", "2"]
    assert float(table[3][3]) == pytest.approx(1.3)

    book = openpyxl.load_workbook(io.BytesIO(report.render_xlsx(rows, "road", "a", "b")))
    sheet = book.active
    assert sheet.cell(row=4, column=2).value == "恒安路"
    assert sheet.cell(row=4, column=7).value == pytest.approx(0.8)
    assert sheet.cell(row=5, column=4).value == "=SUM(D3:D4)"


@pytest.mark.parametrize("telemetry", ["sqlite", "influxdb"], indirect=True)
async def test_store_buckets_give_the_same_energy_as_the_readings(telemetry: Target) -> None:
    start = base_time() + 10 * HOUR
    readings, drawn = simulated_night("ha-001", start, 100.0)
    other, other_drawn = simulated_night("ha-002", start, 60.0)
    await telemetry.backend.write(readings + other)

    hourly = await telemetry.backend.buckets(None, start, start + 12 * HOUR, 3600)
    results = {e.device: e for e in energy.devices_energy(hourly, start, start + 12 * HOUR)}

    assert results["ha-001"].kwh == pytest.approx(drawn, rel=1e-9)
    assert results["ha-002"].kwh == pytest.approx(other_drawn, rel=1e-9)
    assert results["ha-001"].burning_h == pytest.approx(11.0)
    assert results["ha-001"].resets == 1

"""Day types: chinesecalendar, local holiday files, event days, and the estimate beyond the data."""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import chinese_calendar
import pytest
from lunardate import LunarDate

from lightctl.config.loader import District, load
from lightctl.config.schedules import Event, HolidayFile
from lightctl.schedule.calendar import DayCalendar
from tests.schedule.conftest import REPO

D = dt.date.fromisoformat


def first_year_without_package_data() -> int:
    """Found by asking the installed chinesecalendar, not from lightctl's own bookkeeping."""
    year = dt.date.today().year
    while True:
        try:
            chinese_calendar.is_workday(dt.date(year, 6, 1))
        except NotImplementedError:
            return year
        year += 1


def lunar(year: int, month: int, day: int) -> dt.date:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        solar: dt.date = LunarDate(year, month, day).toSolarDate()
    return solar


def test_ordinary_days_from_the_package() -> None:
    cal = DayCalendar()
    workday, weekend = cal.day(D("2026-11-25")), cal.day(D("2026-11-28"))
    assert (workday.day_type, workday.holiday, workday.estimated) == ("workday", None, False)
    assert (weekend.day_type, weekend.holiday, weekend.estimated) == ("weekend", None, False)
    assert workday.source == weekend.source == "package"


def test_national_day_is_a_holiday() -> None:
    day = DayCalendar().day(D("2026-10-01"))
    assert day.day_type == "holiday"
    assert day.holiday == "National Day"
    assert day.holiday_zh == "国庆节"


def test_makeup_workday_carries_the_name_but_is_not_a_holiday() -> None:
    day = DayCalendar().day(D("2026-02-14"))
    assert D("2026-02-14").weekday() == 5  # a Saturday
    assert day.day_type == "makeup_workday"
    assert day.holiday == "Spring Festival"  # chinesecalendar names it after the holiday it makes up for
    assert not day.has_type("holiday")
    assert not day.has_type("weekend")
    assert not day.is_holiday_named(frozenset({"Spring Festival"}))


def test_event_day_wins_over_workday_and_weekend() -> None:
    cal = DayCalendar(
        [Event(name="跨年灯光秀", dates=[D("2026-12-31")]), Event(name="马拉松", dates=[D("2026-11-08")])]
    )
    thursday, sunday = cal.day(D("2026-12-31")), cal.day(D("2026-11-08"))
    assert thursday.statutory == "workday"
    assert thursday.day_type == "event"
    assert sunday.statutory == "weekend"
    assert sunday.day_type == "event"
    assert not thursday.has_type("workday")
    assert not sunday.has_type("weekend")
    assert thursday.events == ("跨年灯光秀",)


def test_holiday_that_is_also_an_event_day_stays_a_holiday_and_matches_both() -> None:
    cal = DayCalendar([Event(name="国庆灯光节", ranges=[{"start": D("2026-10-01"), "end": D("2026-10-03")}])])
    day = cal.day(D("2026-10-02"))
    assert day.day_type == "holiday"
    assert day.has_type("holiday")
    assert day.has_type("event")
    assert day.is_holiday_named(frozenset({"National Day"}))
    assert cal.day(D("2026-10-04")).events == ()


def test_first_year_beyond_the_data_is_estimated() -> None:
    year = first_year_without_package_data()
    cal = DayCalendar()
    spring = lunar(year, 1, 1)
    for day in (spring - dt.timedelta(days=1), spring, spring + dt.timedelta(days=2)):
        info = cal.day(day)
        assert (info.day_type, info.holiday, info.estimated) == ("holiday", "Spring Festival", True), day
    after = cal.day(spring + dt.timedelta(days=3))
    assert after.holiday is None or after.holiday != "Spring Festival"
    assert cal.day(lunar(year, 5, 5)).holiday == "Dragon Boat Festival"
    assert cal.day(lunar(year, 8, 15)).holiday == "Mid-autumn Festival"
    assert cal.day(dt.date(year, 1, 1)).holiday == "New Year's Day"
    assert all(cal.day(dt.date(year, 5, d)).day_type == "holiday" for d in range(1, 6))
    assert all(
        cal.day(dt.date(year, 10, d)).day_type == "holiday"
        for d in range(1, 8)
        if dt.date(year, 10, d) != lunar(year, 8, 15)
    )
    ordinary = next(
        dt.date(year, 3, d)
        for d in range(2, 28)
        if dt.date(year, 3, d).weekday() < 5 and dt.date(year, 3, d) != spring
    )
    assert (cal.day(ordinary).day_type, cal.day(ordinary).estimated) == ("workday", True)
    saturday = ordinary + dt.timedelta(days=5 - ordinary.weekday())
    assert cal.day(saturday).day_type == "weekend"
    assert cal.day(dt.date(year - 1, 3, 3)).estimated is False


def test_calendar_data_missing_from_thirty_days_before_the_year() -> None:
    year = first_year_without_package_data()
    cal = DayCalendar()
    new_year = dt.date(year, 1, 1)
    assert not cal.calendar_data_missing(new_year - dt.timedelta(days=31))
    assert cal.calendar_data_missing(new_year - dt.timedelta(days=30))
    assert cal.calendar_data_missing(new_year + dt.timedelta(days=100))
    assert cal.missing_year(new_year - dt.timedelta(days=5)) == year
    assert cal.coverage(new_year - dt.timedelta(days=5)).first_missing_year == year


def test_a_complete_local_file_fills_the_year() -> None:
    year = first_year_without_package_data()
    spring = lunar(year, 1, 1)
    makeup = spring + dt.timedelta(days=8)
    local = HolidayFile(
        year=year,
        complete=True,
        days=[
            {"date": spring, "type": "holiday", "name": "春节"},
            {"date": makeup, "type": "makeup_workday", "name": "春节"},
        ],
    )
    cal = DayCalendar(holiday_files={year: local})
    assert not cal.calendar_data_missing(dt.date(year, 1, 1) - dt.timedelta(days=5))
    first = cal.day(spring)
    assert (first.day_type, first.holiday, first.estimated, first.source) == (
        "holiday",
        "Spring Festival",
        False,
        "local",
    )
    assert cal.day(makeup).day_type == "makeup_workday"
    # complete: the days it does not list are plain weeks, not the estimate's festivals
    eve = cal.day(spring - dt.timedelta(days=1))
    assert eve.holiday is None
    assert eve.estimated is False
    assert cal.day(dt.date(year, 10, 1)).day_type in ("workday", "weekend")


def test_an_incomplete_local_file_overlays_the_estimate() -> None:
    year = first_year_without_package_data()
    local = HolidayFile(
        year=year,
        complete=False,
        days=[{"date": dt.date(year, 10, 8), "type": "holiday", "name": "National Day"}],
    )
    cal = DayCalendar(holiday_files={year: local})
    assert cal.calendar_data_missing(dt.date(year, 1, 1))
    assert cal.day(dt.date(year, 10, 8)).estimated is False
    assert cal.day(dt.date(year, 10, 1)).estimated is True


def _copy_config(tmp_path: Path) -> Path:
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(REPO / "devices", tmp_path / "devices")
    shutil.copytree(REPO / "schedules", tmp_path / "schedules")
    return tmp_path / "config.yaml"


def test_local_holidays_file_overrides_the_package(tmp_path: Path) -> None:
    """Through the loader: schedules/holidays/2026.yaml turns a makeup workday into a holiday and a
    package holiday into a workday; the other days keep the package's data."""
    config = _copy_config(tmp_path)
    assert chinese_calendar.get_holiday_detail(D("2026-10-10")) == (
        False,
        "National Day",
    )  # makeup in the package
    (tmp_path / "schedules" / "holidays" / "2026.yaml").write_text(
        "year: 2026\ncomplete: false\ndays:\n"
        "  - {date: 2026-10-10, type: holiday, name: 国庆节}\n"
        "  - {date: 2026-10-07, type: workday}\n",
        encoding="utf-8",
    )
    district: District = load(config)
    cal = DayCalendar.for_district(district)
    moved = cal.day(D("2026-10-10"))
    assert (moved.day_type, moved.holiday, moved.source) == ("holiday", "National Day", "local")
    assert cal.day(D("2026-10-07")).day_type == "workday"
    assert cal.day(D("2026-10-06")).day_type == "holiday"
    assert cal.day(D("2026-10-06")).source == "package"


@pytest.mark.parametrize("day", ["2026-01-01", "2026-05-01", "2026-06-19", "2026-09-25"])
def test_package_days_agree_with_chinesecalendar(day: str) -> None:
    on_holiday, name = chinese_calendar.get_holiday_detail(D(day))
    info = DayCalendar().day(D(day))
    assert info.holiday == name
    assert (info.day_type in ("holiday", "weekend")) == on_holiday

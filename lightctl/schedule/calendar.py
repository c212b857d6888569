"""Day types of the Chinese calendar, with local corrections, event days and an estimate for years
without data.

Sources, per year: the `chinesecalendar` package (the State Council's arrangements; 2004-2026 in
1.11.0), overlaid by `schedules/holidays/<year>.yaml`. A year the package does not cover and no
complete local file gives is estimated (weekends, fixed-date holidays, lunar festivals) and every
day of it not listed locally is marked `estimated`.

Named event days (calendar events) make a workday, weekend or makeup workday an `event` day; a
statutory holiday that is also an event day stays a `holiday` and matches `event` rules as well, so
the plan's rule order decides between the holiday's program and the event's (docs/scheduling.md).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import chinese_calendar
from chinese_calendar import constants as cc_data
from lunardate import LunarDate

from lightctl.config.schedules import DayType, Event, HolidayFile
from lightctl.schedule.holidays import HOLIDAY_NAMES, canonical_holiday

if TYPE_CHECKING:
    from lightctl.config.loader import District

StatutoryType = Literal["workday", "weekend", "holiday", "makeup_workday"]
DaySource = Literal["package", "local", "estimate"]

# The years the installed chinesecalendar covers, found at run time so a package upgrade needs no edit.
PACKAGE_FIRST_YEAR: int = min(d.year for d in cc_data.holidays)
PACKAGE_LAST_YEAR: int = max(d.year for d in cc_data.holidays)

_H = chinese_calendar.Holiday
WARN_DAYS = 30  # calendar_data_missing from this many days before an uncovered year starts


@dataclass(frozen=True, slots=True)
class DayInfo:
    """What kind of day a date is, for the night that starts on it."""

    date: dt.date
    day_type: DayType  # event wins over workday / weekend / makeup_workday; a holiday stays holiday
    statutory: StatutoryType  # the day type before event days
    holiday: (
        str | None
    )  # the holiday's English name (as chinesecalendar spells it); makeup workdays carry it too
    events: tuple[str, ...]  # names of the calendar events on this date
    estimated: bool  # from the fallback estimate, not from data
    source: DaySource

    @property
    def holiday_zh(self) -> str | None:
        if self.holiday is None:
            return None
        return HOLIDAY_NAMES.get(self.holiday, self.holiday)

    def has_type(self, day_type: str) -> bool:
        """Whether a rule's `day_type` matches: the day's type, or `event` on any event day, or
        `holiday` on a statutory holiday that is also an event day."""
        if day_type == self.day_type:
            return True
        if day_type == "event":
            return bool(self.events)
        return day_type == "holiday" and self.statutory == "holiday"

    def is_holiday_named(self, canonical_names: frozenset[str]) -> bool:
        """A holiday-name rule matches only real holidays, never makeup workdays carrying the name."""
        return self.statutory == "holiday" and self.holiday is not None and self.holiday in canonical_names


@dataclass(frozen=True, slots=True)
class CalendarCoverage:
    """For /health and the alarm: which years have data and which is the first that does not."""

    package_years: tuple[int, int]
    local_years: tuple[int, ...]
    first_missing_year: int  # the first year from today's on without package data or a complete local file
    missing: bool  # calendar_data_missing is raised


def _weekend_or_workday(day: dt.date) -> StatutoryType:
    return "weekend" if day.weekday() >= 5 else "workday"


def _lunar_to_solar(year: int, month: int, day: int) -> dt.date | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # lunardate 0.3 renamed toSolarDate
            solar: dt.date = LunarDate(year, month, day).toSolarDate()
        return solar
    except ValueError:  # outside lunardate's table (1900-2099): the estimate then has no lunar festivals
        return None


def estimate_holidays(year: int) -> dict[dt.date, str]:
    """The fallback's statutory holidays of a year: date -> English holiday name.

    Fixed dates (1 Jan, 1-5 May, 1-7 Oct) and the lunar festivals: Spring Festival eve to day 3,
    Dragon Boat (5/5), Mid-Autumn (8/15). Makeup workdays cannot be estimated and are not.
    """
    days: dict[dt.date, str] = {dt.date(year, 1, 1): _H.new_years_day.value}
    for d in range(1, 6):
        days[dt.date(year, 5, d)] = _H.labour_day.value
    for d in range(1, 8):
        days[dt.date(year, 10, d)] = _H.national_day.value
    new_year = _lunar_to_solar(year, 1, 1)
    if new_year is not None:
        for offset in range(-1, 3):
            day = new_year + dt.timedelta(days=offset)
            if day.year == year:
                days[day] = _H.spring_festival.value
    # The eve of next year's Spring Festival can fall in this year only if it is on 31 Dec: never
    # in practice (the festival is 21 Jan - 20 Feb), so it is not looked for.
    dragon_boat = _lunar_to_solar(year, 5, 5)
    if dragon_boat is not None:
        days[dragon_boat] = _H.dragon_boat_festival.value
    mid_autumn = _lunar_to_solar(year, 8, 15)
    if mid_autumn is not None:
        days[mid_autumn] = _H.mid_autumn_festival.value  # named so even inside the National Day week
    return days


class DayCalendar:
    """Day types for any date; results are cached per date."""

    def __init__(
        self,
        events: Sequence[Event] = (),
        holiday_files: Mapping[int, HolidayFile] | None = None,
        *,
        warn_days: int = WARN_DAYS,
    ) -> None:
        self._events: dict[dt.date, list[str]] = {}
        for event in events:
            for day in _event_days(event):
                names = self._events.setdefault(day, [])
                if event.name not in names:
                    names.append(event.name)
        self._local: dict[int, HolidayFile] = dict(holiday_files or {})
        self._local_days: dict[dt.date, tuple[StatutoryType, str | None]] = {}
        for file in self._local.values():
            for entry in file.days:
                name = None if entry.name is None else (canonical_holiday(entry.name) or entry.name)
                self._local_days[entry.date] = (entry.type, name)
        self._warn = dt.timedelta(days=warn_days)
        self._cache: dict[dt.date, DayInfo] = {}
        self._estimates: dict[int, dict[dt.date, str]] = {}

    @classmethod
    def for_district(cls, district: District) -> DayCalendar:
        return cls(district.events, district.holiday_files)

    # -- coverage -------------------------------------------------------------------------------

    def package_covers(self, year: int) -> bool:
        return PACKAGE_FIRST_YEAR <= year <= PACKAGE_LAST_YEAR

    def has_data(self, year: int) -> bool:
        """Package data or a complete local file: no estimate is needed for the year."""
        local = self._local.get(year)
        return self.package_covers(year) or (local is not None and local.complete)

    def first_year_without_data(self, from_year: int) -> int:
        year = from_year
        while self.has_data(year):
            year += 1
        return year

    def missing_year(self, today: dt.date) -> int | None:
        """The year whose data is missing, if today is in it or within `warn_days` before it starts."""
        year = self.first_year_without_data(today.year)
        if today >= dt.date(year, 1, 1) - self._warn:
            return year
        return None

    def calendar_data_missing(self, today: dt.date) -> bool:
        return self.missing_year(today) is not None

    def coverage(self, today: dt.date) -> CalendarCoverage:
        return CalendarCoverage(
            package_years=(PACKAGE_FIRST_YEAR, PACKAGE_LAST_YEAR),
            local_years=tuple(sorted(self._local)),
            first_missing_year=self.first_year_without_data(today.year),
            missing=self.calendar_data_missing(today),
        )

    # -- days -----------------------------------------------------------------------------------

    def day(self, date: dt.date) -> DayInfo:
        info = self._cache.get(date)
        if info is None:
            info = self._compute(date)
            self._cache[date] = info
        return info

    def days(self, dates: Iterable[dt.date]) -> list[DayInfo]:
        return [self.day(d) for d in dates]

    def _compute(self, date: dt.date) -> DayInfo:
        statutory, name, estimated, source = self._statutory(date)
        events = tuple(self._events.get(date, ()))
        day_type: DayType = statutory
        if events and statutory != "holiday":
            day_type = "event"
        return DayInfo(date, day_type, statutory, name, events, estimated, source)

    def _statutory(self, date: dt.date) -> tuple[StatutoryType, str | None, bool, DaySource]:
        local = self._local_days.get(date)
        if local is not None:
            return local[0], local[1], False, "local"
        if self.package_covers(date.year):
            name = cc_data.holidays.get(date)
            if name is not None:
                return "holiday", str(name), False, "package"
            name = cc_data.workdays.get(date)
            if name is not None:
                return "makeup_workday", str(name), False, "package"
            return _weekend_or_workday(date), None, False, "package"
        file = self._local.get(date.year)
        if file is not None and file.complete:
            # A complete file lists every statutory day; the rest of the year is plain weeks.
            return _weekend_or_workday(date), None, False, "local"
        estimate = self._estimates.get(date.year)
        if estimate is None:
            estimate = self._estimates[date.year] = estimate_holidays(date.year)
        name = estimate.get(date)
        if name is not None:
            return "holiday", name, True, "estimate"
        return _weekend_or_workday(date), None, True, "estimate"


def _event_days(event: Event) -> list[dt.date]:
    days = list(event.dates)
    for span in event.ranges:
        day = span.start
        while day <= span.end:
            days.append(day)
            day += dt.timedelta(days=1)
    return days

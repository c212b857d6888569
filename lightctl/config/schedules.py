"""schedules/*.yaml: calendars (event days), programs (timed steps), plans (which program where).

schedules/holidays/<year>.yaml adds or overrides statutory day types for one year.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lightctl.schedule.timeexpr import parse_time

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
DayType = Literal["workday", "weekend", "holiday", "makeup_workday", "event"]
DAY_TYPES: tuple[DayType, ...] = ("workday", "weekend", "holiday", "makeup_workday", "event")
TARGET = re.compile(r"^(?:(road|zone|kind|gateway|concentrator):)?([a-z0-9][a-z0-9-]*)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(Strict):
    at: str
    on: bool | None = None
    level: int | None = Field(None, ge=0, le=100)
    k1: bool | None = None
    k2: bool | None = None
    scene: int | None = Field(None, ge=0, le=15)
    brightness: int | None = Field(None, ge=0, le=100)

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        parse_time(value)
        return value

    @model_validator(mode="after")
    def _sets_something(self) -> Step:
        if all(getattr(self, f) is None for f in ("on", "level", "k1", "k2", "scene", "brightness")):
            raise ValueError("a step must set at least one of on, level, k1, k2, scene, brightness")
        return self


class Program(Strict):
    id: Slug
    name: str = ""
    kind: Literal["lamp", "group", "facade"]
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Program:
        allowed = {
            "lamp": {"on", "level"},
            "group": {"on", "level", "k1", "k2"},
            "facade": {"on", "scene", "brightness"},
        }[self.kind]
        for i, step in enumerate(self.steps):
            used = {
                f for f in ("on", "level", "k1", "k2", "scene", "brightness") if getattr(step, f) is not None
            }
            extra = used - allowed
            if extra:
                raise ValueError(
                    f"steps[{i}]: {', '.join(sorted(extra))} do not apply to {self.kind} programs"
                )
        return self


class DateRange(Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _order(self) -> DateRange:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class Rule(Strict):
    """One line of a plan; all conditions given must hold; a rule with none matches every night."""

    day_type: DayType | list[DayType] | None = None
    holiday: str | list[str] | None = None  # statutory holiday name, English or Chinese
    event: str | list[str] | None = None  # named local event (calendar events)
    dates: DateRange | None = None
    program: Slug

    def day_types(self) -> list[str]:
        return _as_list(self.day_type)

    def holidays(self) -> list[str]:
        return _as_list(self.holiday)

    def events(self) -> list[str]:
        return _as_list(self.event)


def _as_list(value: str | list[str] | list[DayType] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Plan(Strict):
    id: Slug
    name: str = ""
    targets: list[str] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)

    @field_validator("targets")
    @classmethod
    def _targets(cls, values: list[str]) -> list[str]:
        for value in values:
            match = TARGET.match(value)
            if not match:
                raise ValueError(
                    f"bad target {value!r}: use an id, road:<id>, zone:<id>, kind:<kind> or gateway:<id>"
                )
            if match.group(1) == "kind" and match.group(2) not in ("lamp", "group", "facade"):
                raise ValueError(f"bad target {value!r}: kind is lamp, group or facade")
        return values


class Event(Strict):
    """A named local event: the nights it covers are of day type `event`."""

    name: str = Field(min_length=1)
    dates: list[dt.date] = Field(default_factory=list)
    ranges: list[DateRange] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> Event:
        if not self.dates and not self.ranges:
            raise ValueError("an event needs dates or ranges")
        return self


class Calendar(Strict):
    events: list[Event] = Field(default_factory=list)


class ScheduleFile(Strict):
    calendar: Calendar | None = None
    programs: list[Program] = Field(default_factory=list)
    plans: list[Plan] = Field(default_factory=list)


class HolidayDay(Strict):
    date: dt.date
    type: Literal["holiday", "makeup_workday", "workday", "weekend"]
    name: str | None = None


class HolidayFile(Strict):
    """schedules/holidays/<year>.yaml: the State Council's arrangement for one year."""

    year: int = Field(ge=2000, le=2200)
    complete: bool = True  # the whole year's statutory days are listed: no fallback estimate
    days: list[HolidayDay] = Field(default_factory=list)

    @model_validator(mode="after")
    def _in_year(self) -> HolidayFile:
        for i, day in enumerate(self.days):
            if day.date.year != self.year:
                raise ValueError(f"days[{i}]: {day.date} is not in {self.year}")
        return self

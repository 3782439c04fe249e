"""Working days in China: weekends, public holidays and adjusted working weekends (调休).

Reminders go out only on working days. The State Council publishes each year's
holidays late in the year before, so they are a table, not a rule: a
`WorkingCalendar` holds that table as plain sets of dates. A workflow can carry
it in its state and replay it without any package, file or clock, and a new
version can be compared with the old one before it is applied.

Years the table does not cover fall back to Monday to Friday and are flagged
as estimated: a reminder dated in 2027 can say that it may still shift once
the office enters 2027's holidays.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_serializer, model_validator

from domain.audit import OFFICE_TZ
from domain.types import Name

SATURDAY = 5


def at_local_hour(day: date, hour: int) -> datetime:
    """`day` at `hour`:00 office time, as an aware datetime."""
    return datetime.combine(day, time(hour), tzinfo=OFFICE_TZ)


def office_date(moment: datetime) -> date:
    """The office's calendar date of an aware moment."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a moment must be timezone-aware; naive datetimes are ambiguous")
    return moment.astimezone(OFFICE_TZ).date()


class WorkingCalendar(BaseModel):
    """Which days are working days, as data.

    A day is a working day when it is an adjusted working day (`workdays`), or
    when it is a Monday to Friday that is not a holiday. `holidays` may list the
    weekend days inside a holiday period too (the package does); that changes
    nothing. Data is only accepted for `covered_years`, so "covered" and
    "estimated" can never disagree about a year.
    """

    name: Name = "China mainland"
    version: int = Field(default=1, ge=1)
    holidays: set[date] = Field(default_factory=set)
    workdays: set[date] = Field(default_factory=set)
    covered_years: set[int] = Field(default_factory=set)

    @model_validator(mode="after")
    def _consistent(self) -> WorkingCalendar:
        clash = self.holidays & self.workdays
        if clash:
            raise ValueError(f"{min(clash).isoformat()} is both a holiday and an adjusted working day")
        stray = [d for d in self.holidays | self.workdays if d.year not in self.covered_years]
        if stray:
            raise ValueError(f"{min(stray).isoformat()} lies in a year the calendar does not list as covered")
        weekdays = [d for d in self.workdays if d.weekday() < SATURDAY]
        if weekdays:
            raise ValueError(f"{min(weekdays).isoformat()} is a weekday: only a Saturday or Sunday "
                             "can be an adjusted working day")
        return self

    @field_serializer("holidays", "workdays", "covered_years")
    def _sorted(self, values: set[Any]) -> list[Any]:
        # Sorted, so the same calendar always serialises to the same workflow payload.
        return sorted(values)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_chinesecalendar(cls, years: Iterable[int] | None = None, *, name: str | None = None,
                             version: int = 1) -> WorkingCalendar:
        """The official table from the `chinesecalendar` package, for `years` (default: all it knows).

        Requested years the package does not know are left uncovered (estimated),
        not refused: a five-year project plan still gets dates. The package is
        imported here only, so a calendar in workflow state never touches it.
        """
        import chinese_calendar

        known = {d.year for d in chinese_calendar.holidays}
        known = set(range(min(known), max(known) + 1))
        covered = known if years is None else known & set(years)
        return cls(
            name=name or f"China mainland (chinesecalendar {chinese_calendar.__version__})",
            version=version,
            holidays={d for d in chinese_calendar.holidays if d.year in covered},
            workdays={d for d in chinese_calendar.workdays if d.year in covered},
            covered_years=covered,
        )

    def with_year(self, year: int, holidays: Iterable[date], workdays: Iterable[date] = (),
                  *, name: str | None = None) -> WorkingCalendar:
        """A new version with `year`'s data entered (or replaced) by the office.

        Returns a copy with `version` + 1: the old calendar stays as it was, so
        `notices_moved_by_calendar` can show what the change moves before it is
        applied.
        """
        holidays, workdays = set(holidays), set(workdays)
        outside = [d for d in holidays | workdays if d.year != year]
        if outside:
            raise ValueError(f"{min(outside).isoformat()} is not in {year}")
        return WorkingCalendar(
            name=name or self.name,
            version=self.version + 1,
            holidays={d for d in self.holidays if d.year != year} | holidays,
            workdays={d for d in self.workdays if d.year != year} | workdays,
            covered_years=self.covered_years | {year},
        )

    # ------------------------------------------------------------ questions

    def is_estimated(self, day: date) -> bool:
        """True when `day`'s year has no official data: it is judged by weekday alone."""
        return day.year not in self.covered_years

    def any_estimated(self, first: date, last: date) -> bool:
        """True when any day from `first` to `last` (either order) lies in an uncovered year."""
        low, high = min(first, last), max(first, last)
        return any(year not in self.covered_years for year in range(low.year, high.year + 1))

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < SATURDAY

    def add_working_days(self, day: date, n: int) -> date:
        """The date `n` working days after `day` (before it when `n` < 0); `day` itself is not counted.

        With `n` == 0 the answer is `day` unchanged, working day or not.
        """
        step = timedelta(days=1 if n > 0 else -1)
        remaining = abs(n)
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_before(self, day: date, n: int) -> date:
        """The working day `n` working days before `day` (`day` itself need not be one)."""
        if n < 0:
            raise ValueError("n must not be negative")
        return self.add_working_days(day, -n)

    def next_working_day_on_or_after(self, day: date) -> date:
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def previous_working_day_on_or_before(self, day: date) -> date:
        while not self.is_working_day(day):
            day -= timedelta(days=1)
        return day

    def send_slot(self, now: datetime, hour: int = 9, until_hour: int = 18) -> datetime:
        """The earliest moment at or after `now` when a notice may go out.

        That is `now` itself on a working day between `hour`:00 and
        `until_hour`:00 office time, otherwise `hour`:00 of the next working day
        (today's, if it is a working day and `hour` has not come yet). A late
        notice is thus sent as soon as the office is open, never at night.
        """
        check_hours(hour, until_hour)
        today = office_date(now)
        if self.is_working_day(today):
            opens = at_local_hour(today, hour)
            if now < opens:
                return opens
            if now < datetime.combine(today, time(), tzinfo=OFFICE_TZ) + timedelta(hours=until_hour):
                return now.astimezone(OFFICE_TZ)
        return at_local_hour(self.next_working_day_on_or_after(today + timedelta(days=1)), hour)


def check_hours(hour: int, until_hour: int) -> None:
    """The sending window is [hour:00, until_hour:00) office time, within one day."""
    if not 0 <= hour < until_hour <= 24:
        raise ValueError(f"the sending window {hour}:00-{until_hour}:00 is not a window within one day")

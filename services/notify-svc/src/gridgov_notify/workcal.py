"""SLA clocks on the Chinese working calendar.

Working days come from three sources, in priority order:

1. explicit overrides passed to :class:`WorkCalendar` (local notices, data fixes);
2. the ``chinese_calendar`` library, which knows statutory holidays *and* the
   make-up working days (调休) that fall on weekends;
3. plain Mon–Fri for years the library has no data for yet (logged as a warning),
   so a new year never stops dispatch.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, cast
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar.constants import holidays as _lib_holidays

logger = logging.getLogger(__name__)


def library_years() -> tuple[int, int]:
    """First and last year the installed ``chinese_calendar`` has holiday data for."""
    return min(_lib_holidays).year, max(_lib_holidays).year


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")


class WorkCalendar:
    """Decides which local dates are working days and does working-day arithmetic."""

    def __init__(
        self,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        tz: str = "Asia/Shanghai",
        work_hours: tuple[time, time] | None = None,
    ) -> None:
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        clash = self.extra_holidays & self.extra_workdays
        if clash:
            raise ValueError(f"dates are both extra holidays and extra workdays: {sorted(clash)}")
        self.tz = ZoneInfo(tz)
        if work_hours is not None:
            opens, closes = work_hours
            if opens.tzinfo is not None or closes.tzinfo is not None:
                raise ValueError("work_hours are local wall-clock times and must be naive")
            if not opens < closes:
                raise ValueError(f"work_hours must open before they close, got {work_hours}")
        self.work_hours = work_hours
        # Warn once per uncovered year rather than on every lookup in a loop.
        self._warned_years: set[int] = set()

    def is_workday(self, d: date) -> bool:
        if isinstance(d, datetime):  # datetime subclasses date: judge its local calendar date
            d = d.astimezone(self.tz).date() if d.tzinfo is not None else d.date()
        if d in self.extra_workdays:
            return True
        if d in self.extra_holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(d))
        except NotImplementedError:
            if d.year not in self._warned_years:
                self._warned_years.add(d.year)
                first, last = library_years()
                logger.warning(
                    "chinese_calendar has no holiday data for %d (covers %d-%d); "
                    "treating Mon-Fri as working days. Upgrade chinesecalendar or add "
                    "extra_holidays/extra_workdays.",
                    d.year,
                    first,
                    last,
                )
            return d.weekday() < 5

    def next_workday(self, d: date) -> date:
        """The first working day on or after ``d``."""
        while not self.is_workday(d):
            d += timedelta(days=1)
        return d

    def _day_start(self, d: date) -> datetime:
        opens = self.work_hours[0] if self.work_hours else time(0)
        return datetime.combine(d, opens, tzinfo=self.tz)

    def clock_start(self, start: datetime) -> datetime:
        """Where a working-day clock effectively starts (local time, see add_working_days)."""
        _require_aware(start, "start")
        local = start.astimezone(self.tz)
        day = local.date()
        if not self.is_workday(day):
            return self._day_start(self.next_workday(day))
        if self.work_hours is not None:
            opens, closes = self.work_hours
            if local.time() < opens:
                return self._day_start(day)
            if local.time() >= closes:
                return self._day_start(self.next_workday(day + timedelta(days=1)))
        return local

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """Deadline ``n`` working days after ``start``, returned in UTC.

        Rule, all in the calendar's local time zone:

        * If ``start`` falls on a working day (and, when ``work_hours`` is set, inside
          ``[opens, closes)``), the clock starts at ``start`` itself.
        * If ``start`` falls on a non-working day, the clock starts at the beginning of the
          next working day: ``opens`` if ``work_hours`` is set, else 00:00. So a report filed
          on Saturday with "1wd" is due Tuesday 00:00 (i.e. the end of Monday).
        * With ``work_hours``, a start before opening moves to that day's opening; a start at
          or after closing moves to the next working day's opening.
        * The deadline is the same local wall-clock time as the effective start, on the
          ``n``-th working day after the effective start's date. ``n == 0`` returns the
          effective start.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        begin = self.clock_start(start)
        day = begin.date()
        for _ in range(n):
            day = self.next_workday(day + timedelta(days=1))
        # Rebuild from the wall-clock time so the result keeps the local time of day.
        due = datetime.combine(day, begin.time(), tzinfo=self.tz)
        return due.astimezone(UTC)


SlaUnit = Literal["m", "h", "wd"]
_SLA_RE = re.compile(r"([0-9]+)(m|h|wd)")


@dataclass(frozen=True, slots=True)
class Sla:
    """A service-level deadline: ``15m``/``4h`` run around the clock, ``3wd`` in working days."""

    amount: int
    unit: SlaUnit

    def __post_init__(self) -> None:
        if self.unit not in ("m", "h", "wd"):
            raise ValueError(f"unknown SLA unit {self.unit!r}; expected 'm', 'h' or 'wd'")
        if self.amount <= 0:
            raise ValueError(f"SLA amount must be a positive integer, got {self.amount}")

    @classmethod
    def parse(cls, text: str) -> Sla:
        if not isinstance(text, str):
            raise ValueError(f"SLA must be a string like '15m', '4h' or '3wd', got {text!r}")
        match = _SLA_RE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"malformed SLA {text!r}: expected <positive integer><unit>, unit one of "
                "'m' (minutes), 'h' (hours), 'wd' (working days), e.g. '15m', '4h', '3wd'"
            )
        return cls(int(match.group(1)), cast(SlaUnit, match.group(2)))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def deadline(self, start: datetime, calendar: WorkCalendar) -> datetime:
        """Deadline in UTC for a clock started at ``start`` (tz-aware)."""
        _require_aware(start, "start")
        if self.unit == "m":
            return start.astimezone(UTC) + timedelta(minutes=self.amount)
        if self.unit == "h":
            return start.astimezone(UTC) + timedelta(hours=self.amount)
        return calendar.add_working_days(start, self.amount)

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridgov_notify.workcal import Sla, WorkCalendar, library_years

SH = ZoneInfo("Asia/Shanghai")


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def test_library_covers_2025() -> None:
    first, last = library_years()
    assert first <= 2025 <= last


# --- 调休 around National Day 2025: holiday Oct 1-8, make-up days Sun Sep 28 and Sat Oct 11.


def test_make_up_weekend_days_are_workdays(cal: WorkCalendar) -> None:
    assert date(2025, 9, 28).weekday() == 6 and cal.is_workday(date(2025, 9, 28))
    assert date(2025, 10, 11).weekday() == 5 and cal.is_workday(date(2025, 10, 11))
    assert not cal.is_workday(date(2025, 9, 27))  # ordinary Saturday


def test_national_day_weekdays_are_not_workdays(cal: WorkCalendar) -> None:
    for day in range(1, 9):
        assert not cal.is_workday(date(2025, 10, day)), day
    assert date(2025, 10, 8).weekday() == 2  # a Wednesday off
    assert cal.is_workday(date(2025, 10, 9))


def test_three_working_days_across_national_day(cal: WorkCalendar) -> None:
    start = sh(2025, 9, 30, 10, 30)  # day before the holiday
    due = Sla.parse("3wd").deadline(start, cal)
    # Oct 1-8 off -> Thu 9, Fri 10, make-up Sat 11.
    assert due == sh(2025, 10, 11, 10, 30).astimezone(UTC)
    assert due.tzinfo is UTC


def test_make_up_sunday_counts(cal: WorkCalendar) -> None:
    # Fri Sep 26 + 1wd: Sat 27 is off, Sun 28 is a make-up working day.
    assert cal.add_working_days(sh(2025, 9, 26, 16), 1) == sh(2025, 9, 28, 16)


# --- Plain rules.


def test_plain_week_and_utc_in_out(cal: WorkCalendar) -> None:
    start = datetime(2025, 3, 14, 2, 0, tzinfo=UTC)  # Fri 10:00 Shanghai
    assert cal.add_working_days(start, 1) == datetime(2025, 3, 17, 2, 0, tzinfo=UTC)  # Mon


def test_utc_date_differs_from_local_date(cal: WorkCalendar) -> None:
    # Sat 2025-03-15 20:00 UTC is Sun 04:00 in Shanghai: a non-working day either way,
    # but Fri 2025-03-14 20:00 UTC is Sat 04:00 local, so the local date must be used.
    start = datetime(2025, 3, 14, 20, 0, tzinfo=UTC)
    assert cal.add_working_days(start, 1) == sh(2025, 3, 18, 0)


def test_start_on_non_working_day_counts_from_next_working_day_start(cal: WorkCalendar) -> None:
    # Sat 15:00 -> clock starts Mon 00:00 -> 1wd is Tue 00:00 (end of Monday).
    assert cal.add_working_days(sh(2025, 3, 15, 15), 1) == sh(2025, 3, 18, 0)
    assert cal.add_working_days(sh(2025, 3, 15, 15), 0) == sh(2025, 3, 17, 0)


def test_work_hours_shift_the_clock_start() -> None:
    cal = WorkCalendar(work_hours=(time(9), time(18)))
    assert cal.add_working_days(sh(2025, 3, 15, 15), 1) == sh(2025, 3, 18, 9)  # Saturday
    assert cal.add_working_days(sh(2025, 3, 17, 7), 1) == sh(2025, 3, 18, 9)  # before open
    assert cal.add_working_days(sh(2025, 3, 17, 11), 1) == sh(2025, 3, 18, 11)  # in hours
    assert cal.add_working_days(sh(2025, 3, 14, 18), 1) == sh(2025, 3, 18, 9)  # Fri close


def test_overrides_win_over_library() -> None:
    cal = WorkCalendar(
        extra_holidays={date(2025, 3, 17)},  # e.g. a local typhoon closure on a Monday
        extra_workdays={date(2025, 10, 2)},
    )
    assert not cal.is_workday(date(2025, 3, 17))
    assert cal.is_workday(date(2025, 10, 2))
    assert cal.add_working_days(sh(2025, 3, 14, 10), 1) == sh(2025, 3, 18, 10)


def test_is_workday_uses_local_date_of_aware_datetime(cal: WorkCalendar) -> None:
    # 2025-10-08 17:00 UTC is Thu Oct 9 01:00 in Shanghai, the first day back at work.
    assert cal.is_workday(datetime(2025, 10, 8, 17, 0, tzinfo=UTC))
    assert not cal.is_workday(datetime(2025, 10, 8, 15, 0, tzinfo=UTC))


def test_conflicting_overrides_rejected() -> None:
    with pytest.raises(ValueError, match="both"):
        WorkCalendar(extra_holidays={date(2025, 1, 2)}, extra_workdays={date(2025, 1, 2)})


def test_uncovered_year_falls_back_to_mon_fri(caplog: pytest.LogCaptureFixture) -> None:
    year = library_years()[1] + 1
    cal = WorkCalendar()
    monday = date(year, 3, 1) + timedelta(days=(7 - date(year, 3, 1).weekday()) % 7)
    with caplog.at_level(logging.WARNING, logger="gridgov_notify.workcal"):
        assert cal.is_workday(monday)
        assert not cal.is_workday(monday + timedelta(days=5))  # Saturday
        assert cal.add_working_days(datetime.combine(monday, time(9), SH), 5) == (
            datetime.combine(monday + timedelta(days=7), time(9), SH)
        )
    warnings = [r for r in caplog.records if str(year) in r.getMessage()]
    assert len(warnings) == 1  # once per year, not per lookup


def test_uncovered_year_overrides_still_apply() -> None:
    year = library_years()[1] + 1
    cal = WorkCalendar(extra_holidays={date(year, 10, 1)})
    assert not cal.is_workday(date(year, 10, 1))


def test_naive_start_rejected(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_working_days(datetime(2025, 3, 14, 10), 1)
    with pytest.raises(ValueError, match="n must be"):
        cal.add_working_days(sh(2025, 3, 14), -1)


# --- Sla.


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [("15m", 15, "m"), ("4h", 4, "h"), ("3wd", 3, "wd"), (" 2wd ", 2, "wd")],
)
def test_sla_parse(text: str, amount: int, unit: str) -> None:
    sla = Sla.parse(text)
    assert (sla.amount, sla.unit) == (amount, unit)
    assert str(sla) == text.strip()


@pytest.mark.parametrize(
    "text", ["", "15", "m", "0m", "-1h", "1.5h", "3d", "3 wd", "3WD", "4hours", "１h", "3wd3"]
)
def test_sla_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="SLA"):
        Sla.parse(text)


def test_clock_slas_run_around_the_clock(cal: WorkCalendar) -> None:
    start = sh(2025, 10, 1, 23, 50)  # a holiday, late evening
    assert Sla.parse("15m").deadline(start, cal) == datetime(2025, 10, 1, 16, 5, tzinfo=UTC)
    assert Sla.parse("4h").deadline(start, cal) == sh(2025, 10, 2, 3, 50)
    assert Sla.parse("4h").deadline(start, cal).tzinfo is UTC

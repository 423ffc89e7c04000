"""Tests of slas.business_calendar: the 24x7 and working-days SLA calendars.

Expected deadlines are worked out by hand from the 2026 State Council schedule.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slas.business_calendar import (
    CALENDARS_DIR,
    LOCAL_TZ,
    AroundTheClock,
    Calendar,
    CalendarFileError,
    WorkingDays,
    load_calendar,
    load_year_file,
)

DAY = 86_400
HOUR = 3_600
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def workdays() -> WorkingDays:
    """A fresh calendar from the shipped files (no cache, so warnings are not yet consumed)."""
    return WorkingDays.from_directory(CALENDARS_DIR)


def year_file(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "year": 2026,
        "source": "国务院办公厅关于2026年部分节假日安排的通知",
        "holidays": [{"date": "2026-10-01", "name": "国庆节"}],
        "workdays": [{"date": "2026-10-10", "name": "国庆节调休"}],
    }
    data.update(overrides)
    return data


def write_year_file(directory: Path, data: Any, name: str = "cn-2026.json") -> Path:
    path = directory / name
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped 2026 file ----------------------------------------------------------------------


def test_shipped_2026_file() -> None:
    calendar = load_year_file(CALENDARS_DIR / "cn-2026.json")
    assert calendar.year == 2026
    assert calendar.source == "国务院办公厅关于2026年部分节假日安排的通知"
    assert len(calendar.holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert sorted(calendar.workdays) == [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ]
    assert calendar.holidays[date(2026, 2, 15)] == "春节"
    assert calendar.holidays[date(2026, 10, 7)] == "国庆节"


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 1, 1), False),  # 元旦, Thursday
        (date(2026, 1, 4), True),  # 元旦调休, Sunday
        (date(2026, 1, 5), True),  # plain Monday
        (date(2026, 1, 10), False),  # plain Saturday
        (date(2026, 2, 14), True),  # 春节调休, Saturday
        (date(2026, 2, 23), False),  # last day of 春节, Monday
        (date(2026, 2, 28), True),  # 春节调休, Saturday
        (date(2026, 4, 6), False),  # 清明节, Monday
        (date(2026, 5, 5), False),  # 劳动节, Tuesday
        (date(2026, 5, 9), True),  # 劳动节调休, Saturday
        (date(2026, 6, 19), False),  # 端午节, Friday
        (date(2026, 9, 20), True),  # 国庆节调休, Sunday
        (date(2026, 9, 25), False),  # 中秋节, Friday
        (date(2026, 10, 7), False),  # 国庆节, Wednesday
        (date(2026, 10, 10), True),  # 国庆节调休, Saturday
    ],
)
def test_working_day_rule(workdays: WorkingDays, day: date, working: bool) -> None:
    assert workdays.is_working_day(day) is working


def test_years_lists_loaded_files(workdays: WorkingDays) -> None:
    assert workdays.years() == [2026]


# --- hand-computed deadlines --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        # National Day: Wed 09-30 10:00 has 14 h left; 10-01..07 are off; 10-08 (38 h),
        # 10-09 (62 h), then 10 h into the 调休 Saturday 10-10.
        (local(2026, 9, 30, 10), 3 * DAY, local(2026, 10, 10, 10)),
        # Fri 09-18 16:00 has 8 h left; Sat 09-19 is off; Sun 09-20 is a 调休 working day (32 h);
        # Mon 09-21 (56 h); 16 h into Tue 09-22.
        (local(2026, 9, 18, 16), 3 * DAY, local(2026, 9, 22, 16)),
        # Spring Festival, both adjusted Saturdays: Fri 02-13 12:00 has 12 h; Sat 02-14 (36 h);
        # 02-15..23 off; 02-24..27 Tue-Fri (132 h); Sat 02-28 (156 h); Sun 03-01 off;
        # 12 h into Mon 03-02.
        (local(2026, 2, 13, 12), 7 * DAY, local(2026, 3, 2, 12)),
        # Fri 02-13 09:00 + 1 working day: 15 h on Friday, 9 h into the 调休 Saturday 02-14.
        (local(2026, 2, 13, 9), 1 * DAY, local(2026, 2, 14, 9)),
        # Labour Day: Thu 04-30 18:00 has 6 h; 05-01..05 off; Wed 05-06..Fri 05-08 (78 h) >= 30 h:
        # 24 h into Wed 05-06 ends at its 24:00.
        (local(2026, 4, 30, 18), 30 * HOUR, local(2026, 5, 7)),
        # Mid-Autumn: Thu 09-24 20:00 has 4 h; Fri 09-25..Sun 09-27 off; 2 h into Mon 09-28.
        (local(2026, 9, 24, 20), 6 * HOUR, local(2026, 9, 28, 2)),
    ],
)
def test_add_hand_computed(
    workdays: WorkingDays, start: datetime, seconds: float, due: datetime
) -> None:
    result = workdays.add(start, seconds)
    assert result == due
    assert result.tzinfo is UTC
    assert workdays.between(start, result) == seconds


def test_spring_festival_between_counts_both_adjusted_saturdays(workdays: WorkingDays) -> None:
    # 02-13 Fri, 02-14 Sat (调休), 02-24..27 Tue-Fri, 02-28 Sat (调休) = 7 days.
    assert workdays.between(local(2026, 2, 13), local(2026, 3, 2)) == 7 * DAY
    # The festival itself contributes nothing, weekend days inside it included.
    assert workdays.between(local(2026, 2, 15), local(2026, 2, 24)) == 0


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        # A start on 国庆节 counts from 10-08 00:00.
        (local(2026, 10, 3, 15), 1 * DAY, local(2026, 10, 9)),
        (local(2026, 10, 3, 15), 1.5 * DAY, local(2026, 10, 9, 12)),
        # A start on 元旦 (Thu): Fri 01-02 and Sat 01-03 are off too, Sun 01-04 is 调休.
        (local(2026, 1, 1, 9), 1 * HOUR, local(2026, 1, 4, 1)),
        # A start on the last day of 春节 (Mon 02-23).
        (local(2026, 2, 23, 23, 30), 30 * 60, local(2026, 2, 24, 0, 30)),
    ],
)
def test_start_on_holiday(
    workdays: WorkingDays, start: datetime, seconds: float, due: datetime
) -> None:
    assert workdays.add(start, seconds) == due
    assert workdays.between(start, due) == seconds


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        # Plain Saturday evening: the clock starts on Monday 00:00.
        (local(2026, 3, 7, 20), 8 * HOUR, local(2026, 3, 9, 8)),
        # Plain Sunday: ditto, and three days run Mon-Wed.
        (local(2026, 3, 8, 11), 3 * DAY, local(2026, 3, 12)),
        # Sunday 01-04 is a 调休 working day: the clock runs at once.
        (local(2026, 1, 4, 10), 20 * HOUR, local(2026, 1, 5, 6)),
        # Saturday 06-20 is inside 端午节 (06-19..21): Monday 06-22 is the next working day.
        (local(2026, 6, 20, 12), 1 * HOUR, local(2026, 6, 22, 1)),
    ],
)
def test_start_on_weekend(
    workdays: WorkingDays, start: datetime, seconds: float, due: datetime
) -> None:
    assert workdays.add(start, seconds) == due
    assert workdays.between(start, due) == seconds


def test_zero_duration_returns_start_even_off_duty(workdays: WorkingDays) -> None:
    saturday = local(2026, 3, 7, 20)
    assert workdays.add(saturday, 0) == saturday
    assert workdays.add(saturday, 0).tzinfo is UTC


def test_between_is_zero_for_empty_or_reversed_spans(workdays: WorkingDays) -> None:
    start = local(2026, 3, 9, 9)
    assert workdays.between(start, start) == 0.0
    assert workdays.between(start, start - timedelta(hours=5)) == 0.0
    assert workdays.between(local(2026, 10, 1), local(2026, 10, 8)) == 0.0


def test_between_accepts_any_aware_zone(workdays: WorkingDays) -> None:
    # 2026-03-09 09:00 Shanghai is 01:00 UTC; 2026-03-10 09:00 Shanghai is 02:00 Paris (CET).
    start = datetime(2026, 3, 9, 1, tzinfo=UTC)
    end = datetime(2026, 3, 10, 2, tzinfo=ZoneInfo("Europe/Paris"))
    assert workdays.between(start, end) == DAY


# --- round-trip property ------------------------------------------------------------------------


def random_start(rng: random.Random) -> datetime:
    """An instant between 2025-12-01 and 2027-01-31 local, biased towards day boundaries."""
    day = local(2025, 12, 1) + timedelta(days=rng.randrange(0, 427))
    kind = rng.random()
    if kind < 0.2:
        return day  # local midnight
    if kind < 0.3:
        return day - timedelta(microseconds=1)  # just before midnight
    return day + timedelta(microseconds=rng.randrange(0, DAY * 1_000_000))


@pytest.mark.parametrize("seed", [1, 2, 3, 20260930])
def test_add_between_round_trip(seed: int) -> None:
    calendar = WorkingDays.from_directory(CALENDARS_DIR)
    rng = random.Random(seed)
    starts_off_duty = 0
    for _ in range(500):
        start = random_start(rng)
        if not calendar.is_working_day(start.astimezone(LOCAL_TZ).date()):
            starts_off_duty += 1
        # whole microseconds: the resolution of datetime, so the round trip is exact
        micros = rng.choice([0, 1, rng.randrange(1, 10**9), rng.randrange(1, 40 * DAY * 10**6)])
        seconds = micros / 1_000_000
        due = calendar.add(start, seconds)
        assert due >= start
        assert calendar.between(start, due) == seconds
        # and the other way round: the deadline of what elapsed until a working instant is it
        end = start + timedelta(microseconds=rng.randrange(0, 30 * DAY * 10**6))
        elapsed = calendar.between(start, end)
        back = calendar.add(start, elapsed)
        assert back <= end
        assert calendar.between(back, end) == 0
        just_before_end = end - timedelta(microseconds=1)
        if end > start and calendar.is_working_day(just_before_end.astimezone(LOCAL_TZ).date()):
            assert back == end
        # additivity over a split point
        middle = start + (end - start) * rng.random()
        assert calendar.between(start, middle) + calendar.between(middle, end) == pytest.approx(
            elapsed, abs=1e-6
        )
    assert starts_off_duty > 50  # the property was exercised outside working days too


def test_round_trip_with_fractional_seconds(workdays: WorkingDays) -> None:
    rng = random.Random(7)
    for _ in range(200):
        start = random_start(rng)
        seconds = rng.uniform(0, 10 * DAY)
        # a float that is not a whole number of microseconds rounds to the nearest one
        assert workdays.between(start, workdays.add(start, seconds)) == pytest.approx(
            seconds, abs=1e-6
        )


def test_year_long_spans_are_fast(workdays: WorkingDays) -> None:
    start, end = local(2026, 1, 1, 9), local(2026, 12, 31, 17)
    workdays.between(start, end)  # builds the 2026 table once
    runs = 50
    began = time.perf_counter()
    for _ in range(runs):
        elapsed = workdays.between(start, end)
        due = workdays.add(start, elapsed)
    per_pair = (time.perf_counter() - began) / runs
    assert due == end
    assert per_pair < 0.005  # about 0.2 ms in practice; generous for slow CI machines


# --- years without a file -----------------------------------------------------------------------


def test_fallback_year_uses_monday_to_friday_and_warns_once(
    workdays: WorkingDays, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kefu.slas.calendar")
    # 2030-01-01 is a Tuesday: without a 2030 file it is an ordinary working day.
    assert workdays.add(local(2030, 1, 1, 9), 2 * DAY) == local(2030, 1, 3, 9)
    # Fri 2030-01-04 12:00 + 1 day: 12 h Friday, weekend skipped, 12 h Monday.
    assert workdays.add(local(2030, 1, 4, 12), DAY) == local(2030, 1, 7, 12)
    assert workdays.between(local(2030, 1, 5), local(2030, 1, 7)) == 0
    assert workdays.is_working_day(date(2030, 10, 1))  # a Tuesday; no 国庆节 data for 2030
    warnings = [r for r in caplog.records if r.name == "kefu.slas.calendar"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "2030" in warnings[0].getMessage()
    assert workdays.years() == [2026]


def test_fallback_warns_once_per_year(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(CALENDARS_DIR / "cn-2026.json", tmp_path / "cn-2026.json")
    calendar = load_calendar("workdays", tmp_path)
    caplog.set_level(logging.WARNING, logger="kefu.slas.calendar")
    # Dec 2025 -> Jan 2027 crosses two years without files and one with.
    for _ in range(3):
        calendar.between(local(2025, 12, 15), local(2027, 1, 15))
    messages = [r.getMessage() for r in caplog.records if r.name == "kefu.slas.calendar"]
    assert len(messages) == 2
    assert "2025" in messages[0] and "2027" in messages[1]


# --- input validation ---------------------------------------------------------------------------

CALENDARS = [AroundTheClock(), WorkingDays.from_directory(CALENDARS_DIR)]


@pytest.mark.parametrize("calendar", CALENDARS, ids=lambda c: c.name)
def test_naive_datetimes_are_rejected(calendar: Calendar) -> None:
    naive = datetime(2026, 3, 9, 9)
    aware = local(2026, 3, 9, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add(naive, HOUR)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.between(naive, aware)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.between(aware, naive)


@pytest.mark.parametrize("calendar", CALENDARS, ids=lambda c: c.name)
@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf")])
def test_bad_durations_are_rejected(calendar: Calendar, seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        calendar.add(local(2026, 3, 9, 9), seconds)


# --- malformed files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"year": 2026, "holidays": [', "not valid JSON"),
        ([2026], "JSON object"),
        ({"year": 2026, "source": "x", "holidays": []}, "missing key(s): workdays"),
        (year_file(year="2026"), "'year' must be an integer"),
        (year_file(year=2027), "file name says 2026"),
        (year_file(source=""), "'source'"),
        (year_file(holidays={"2026-10-01": "国庆节"}), "must be a list"),
        (year_file(holidays=["2026-10-01"]), "holidays[0]: must be an object"),
        (year_file(holidays=[{"date": "2026-02-30", "name": "春节"}]), "no such calendar day"),
        (year_file(holidays=[{"date": "2026/10/01", "name": "国庆节"}]), "expected YYYY-MM-DD"),
        (year_file(holidays=[{"date": "20261001", "name": "国庆节"}]), "expected YYYY-MM-DD"),
        (year_file(holidays=[{"date": "2026-10-01"}]), "'name' must be a non-empty string"),
        (
            year_file(holidays=[{"date": "2025-12-31", "name": "元旦"}]),
            "2025-12-31 is outside the file's year 2026",
        ),
        (
            year_file(workdays=[{"date": "2027-01-02", "name": "元旦调休"}]),
            "workdays[0]: date 2027-01-02 is outside the file's year 2026",
        ),
        (
            year_file(
                holidays=[{"date": "2026-10-10", "name": "国庆节"}],
                workdays=[{"date": "2026-10-10", "name": "国庆节调休"}],
            ),
            "in both 'holidays' and 'workdays': 2026-10-10",
        ),
        (
            year_file(
                holidays=[
                    {"date": "2026-10-01", "name": "国庆节"},
                    {"date": "2026-10-01", "name": "国庆节"},
                ]
            ),
            "listed twice",
        ),
        (year_file(workdays=[{"date": "2026-10-09", "name": "国庆节调休"}]), "is a Friday"),
    ],
)
def test_malformed_file_is_rejected_at_load(tmp_path: Path, content: Any, problem: str) -> None:
    write_year_file(tmp_path, content)
    with pytest.raises(ValueError) as excinfo:
        load_calendar("workdays", tmp_path)
    assert isinstance(excinfo.value, CalendarFileError)
    assert excinfo.value.path.name == "cn-2026.json"
    message = str(excinfo.value)
    assert "cn-2026.json" in message
    assert problem in message


def test_badly_named_file_is_rejected(tmp_path: Path) -> None:
    write_year_file(tmp_path, year_file(), name="cn-2026-draft.json")
    with pytest.raises(ValueError, match=r"cn-2026-draft\.json.*cn-<year>\.json"):
        load_calendar("workdays", tmp_path)


def test_missing_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory not found"):
        load_calendar("workdays", tmp_path / "nowhere")


def test_valid_file_in_other_directory(tmp_path: Path) -> None:
    write_year_file(tmp_path, year_file())
    calendar = load_calendar("workdays", tmp_path)
    assert isinstance(calendar, WorkingDays)
    assert calendar.years() == [2026]
    assert not calendar.is_working_day(date(2026, 10, 1))
    assert calendar.is_working_day(date(2026, 10, 2))  # not listed in this file: a Friday
    assert calendar.is_working_day(date(2026, 10, 10))


# --- load_calendar ------------------------------------------------------------------------------


def test_load_calendar_by_name() -> None:
    around = load_calendar("24x7")
    working = load_calendar("workdays")
    assert isinstance(around, AroundTheClock) and around.name == "24x7"
    assert isinstance(working, WorkingDays) and working.name == "workdays"
    assert isinstance(around, Calendar) and isinstance(working, Calendar)
    assert load_calendar("workdays") is working  # cached per directory
    assert load_calendar("workdays", CALENDARS_DIR) is working
    assert working.years() == [2026]


def test_load_calendar_caches_per_directory(tmp_path: Path) -> None:
    write_year_file(tmp_path, year_file())
    first = load_calendar("workdays", tmp_path)
    assert load_calendar("workdays", tmp_path) is first
    assert load_calendar("workdays") is not first


@pytest.mark.parametrize("name", ["", "workday", "WORKDAYS", "24/7", "business"])
def test_unknown_calendar_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown SLA calendar.*'24x7', 'workdays'"):
        load_calendar(name)


# --- 24x7 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        (local(2026, 10, 1, 23, 30), 90 * 60, local(2026, 10, 2, 1)),
        (local(2026, 2, 14, 12), 10 * DAY, local(2026, 2, 24, 12)),
        (local(2026, 3, 7, 20), 0, local(2026, 3, 7, 20)),
        (local(2026, 3, 7, 20), 0.25, local(2026, 3, 7, 20) + timedelta(milliseconds=250)),
    ],
)
def test_around_the_clock(start: datetime, seconds: float, due: datetime) -> None:
    calendar = load_calendar("24x7")
    result = calendar.add(start, seconds)
    assert result == due
    assert result.tzinfo is UTC
    assert calendar.between(start, result) == seconds
    assert calendar.between(result, start) == 0.0


def test_around_the_clock_counts_real_time_across_dst() -> None:
    # Europe/Paris springs forward on 2026-03-29 at 02:00: only 23 real hours between midnights.
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 29, tzinfo=paris)
    end = datetime(2026, 3, 30, tzinfo=paris)
    calendar = AroundTheClock()
    assert calendar.between(start, end) == 23 * HOUR
    assert calendar.add(start, 23 * HOUR) == end
